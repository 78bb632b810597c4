"""Quality against the number of steps for every sampler, and what each setting costs.

    python benchmarks/bench_samplers.py                         # shipped weights, all samplers
    python benchmarks/bench_samplers.py --steps 5 8 10 --samplers dpmpp_2m ddim

For every sampler and number of steps: `minidiff evaluate` at the default guidance (all-attributes
adherence on seen and held-out pairs and on paraphrases, the mean and the lowest per-attribute
diversity of left-out attributes, the Fréchet distance in judge features), and the latency of
`pipe.generate` for 8 pictures of one prompt
(median of `--repeats` runs after one warm-up). The pipeline's default sampler and steps are
chosen from this table: the cheapest setting whose adherence is no lower and whose Fréchet
distance is no higher than those of the old default (DDIM, 20 steps).
"""

import argparse

import report

from minidiff.evaluate import evaluate
from minidiff.samplers import FLOW_SAMPLERS, SAMPLERS

DIFFUSION_SAMPLERS = [s for s in SAMPLERS if s not in FLOW_SAMPLERS]  # the shipped model's


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    report.add_sampling_options(parser, smoke_steps=4)
    parser.set_defaults(repeats=5)
    parser.add_argument(
        "--step-counts", type=int, nargs="+", default=[4, 6, 8, 10, 15, 20], dest="step_counts"
    )
    parser.add_argument("--samplers", nargs="+", default=DIFFUSION_SAMPLERS, choices=SAMPLERS)
    parser.add_argument("--quick", action="store_true", help="evaluate's quick prompt set")
    args = parser.parse_args()
    pipe = report.sampling_setup(args)
    if args.smoke:
        args.step_counts, args.samplers, args.quick = [4], ["ddim", "dpmpp_2m"], True

    columns = [
        "sampler",
        "steps",
        "seen",
        "held-out",
        "paraphrase",
        "diversity",
        "lowest diversity",
        "FD",
        "8 pictures, s",
    ]
    rows, runs = [], []
    for sampler in args.samplers:
        for steps in args.step_counts:
            r = evaluate(
                pipe,
                quick=args.quick,
                steps=steps,
                guidance_scale=args.guidance,
                sampler=sampler,
                progress=False,
            )
            seconds = report.time_generate(pipe, args, sampler, steps)["median_s"]
            per_attribute = [v for k, v in r.diversity.items() if k != "mean"]
            row = [
                sampler,
                steps,
                r.adherence["seen"]["all"],
                r.adherence["held_out"]["all"],
                r.adherence["paraphrase"]["all"],
                r.diversity["mean"],
                min(per_attribute),
                r.frechet_distance,
                seconds,
            ]
            print(
                "  ".join(str(round(v, 3)) if isinstance(v, float) else str(v) for v in row),
                flush=True,
            )
            rows.append(row)
            runs.append(r.to_dict())
    report.finish(
        f"samplers: quality and latency against steps (guidance {args.guidance}, "
        f"latency median of {args.repeats} runs of {args.n} pictures)",
        columns,
        rows,
        {"device": str(pipe.device), "evaluations": runs},
        args,
    )


if __name__ == "__main__":
    main()
