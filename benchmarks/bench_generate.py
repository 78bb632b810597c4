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

import report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    report.add_sampling_options(parser, smoke_steps=5)
    args = parser.parse_args()
    pipe = report.sampling_setup(args)

    stats = report.time_generate(pipe, args, args.sampler, args.steps)

    columns = [
        "sampler",
        "pictures",
        "steps",
        "guidance",
        "median s",
        "min s",
        "max s",
        "pictures/s",
        "ms/step",
    ]
    rows = [
        [
            args.sampler,
            args.n,
            args.steps,
            args.guidance,
            stats["median_s"],
            stats["min_s"],
            stats["max_s"],
            args.n / stats["median_s"],
            1000 * stats["median_s"] / args.steps,
        ]
    ]
    weights = args.weights or "shipped weights"
    report.finish(
        f"generate: {args.n} pictures of one prompt ({weights}), "
        f"median of {args.repeats} runs after 1 warm-up",
        columns,
        rows,
        {"device": str(pipe.device), "timing": stats, "weights": weights},
        args,
    )


if __name__ == "__main__":
    main()
