"""How long does `pipe.generate` take for 8 pictures of one prompt?

    python benchmarks/bench_generate.py                      # shipped weights, 20 steps, 10 runs
    python benchmarks/bench_generate.py --weights runs/small/model.safetensors --steps 50

One warm-up call (first-call allocations, lazy initialisation), then `--repeats` timed calls of
`pipe.generate(prompt, n=8, steps, guidance_scale, seed)` with the pipeline's default steps and
guidance. Each call is the whole user-facing path: tokenise, encode the prompt, `steps` guided
network calls on a batch of 2 x 8 (conditional and unconditional), and conversion to uint8.
Reports the median, min and max seconds per call and pictures per second at the median.
"""

import argparse
import time

import report

import minidiff
from minidiff.checkpoint import CheckpointError
from minidiff.pipeline import DEFAULT_GUIDANCE, DEFAULT_STEPS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=None,
                        help="model file or training checkpoint (default: the shipped weights)")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--guidance", type=float, default=DEFAULT_GUIDANCE)
    parser.add_argument("--n", type=int, default=8, help="pictures per call")
    parser.add_argument("--repeats", type=int, default=10, help="timed calls after one warm-up")
    parser.add_argument("--prompt", default="a large red star in the top left")
    parser.add_argument("--smoke", action="store_true", help="3 repeats, 5 steps: a quick check")
    report.add_common_options(parser)
    args = parser.parse_args()
    if args.smoke:
        args.repeats, args.steps = 3, 5
    if args.repeats < 1:
        raise SystemExit(f"--repeats must be at least 1, got {args.repeats}")
    report.apply_threads(args.threads)

    try:
        pipe = minidiff.load_pretrained(args.weights, device=args.device)
    except CheckpointError as e:
        raise SystemExit(str(e)) from None

    def generate():
        pipe.generate(args.prompt, n=args.n, steps=args.steps, guidance_scale=args.guidance,
                      seed=0)
        report.sync(pipe.device)

    generate()  # warm-up
    seconds = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        generate()
        seconds.append(time.perf_counter() - start)
    stats = report.timing(seconds)

    columns = ["pictures", "steps", "guidance", "median s", "min s", "max s", "pictures/s",
               "ms/step"]
    rows = [[args.n, args.steps, args.guidance, stats["median_s"], stats["min_s"], stats["max_s"],
             args.n / stats["median_s"], 1000 * stats["median_s"] / args.steps]]
    weights = args.weights or "shipped weights"
    report.finish(f"generate: {args.n} pictures of one prompt ({weights}), "
                  f"median of {args.repeats} runs after 1 warm-up", columns, rows,
                  {"device": str(pipe.device), "timing": stats, "weights": weights}, args)


if __name__ == "__main__":
    main()
