"""How the pipeline's defaults were chosen: `minidiff evaluate` at candidate settings and seeds.

    python benchmarks/bench_defaults.py --threads 2 --json benchmarks/results/defaults.json
    python benchmarks/bench_defaults.py --settings ddpm:20:1.0 ddim:20:1.5 --seeds 0 1 2

Each setting is sampler:steps:guidance. For every setting and seed: all-attributes adherence on
seen pairs, held-out pairs and paraphrases, the diversity of each left-out attribute and the
Fréchet distance in judge features. The targets: adherence no lower and Fréchet distance no higher
than the old defaults (DDIM, 20 steps, guidance 1.5), and diversity >= 0.9 for every attribute at
every seed (48 pictures per prompt leave a seed-to-seed spread of a few hundredths).
"""

import argparse

import report

from minidiff.evaluate import evaluate

CANDIDATES = [
    "ddim:20:1.5",
    "ddim:20:1.25",
    "ddim:20:1.0",
    "ddpm:20:1.5",
    "ddpm:20:1.25",
    "ddpm:20:1.1",
    "ddpm:20:1.0",
    "ddpm:10:1.0",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    report.add_sampling_options(parser, smoke_steps=4)
    parser.add_argument("--settings", nargs="+", default=CANDIDATES)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    pipe = report.sampling_setup(args)
    settings = []
    for text in args.settings:
        sampler, steps, guidance = text.split(":")
        settings.append((sampler, int(steps), float(guidance)))
    if args.smoke:
        settings, args.seeds = [(s, 2, g) for s, _, g in settings[:2]], args.seeds[:1]

    columns = [
        "sampler",
        "steps",
        "guidance",
        "seed",
        "seen",
        "held-out",
        "paraphrase",
        "colour",
        "shape",
        "size",
        "position",
        "FD",
    ]
    rows, runs = [], []
    for sampler, steps, guidance in settings:
        for seed in args.seeds:
            r = evaluate(
                pipe,
                quick=args.smoke,
                steps=steps,
                guidance_scale=guidance,
                sampler=sampler,
                seed=seed,
                progress=False,
            )
            d = r.diversity
            row = [
                sampler,
                steps,
                guidance,
                seed,
                r.adherence["seen"]["all"],
                r.adherence["held_out"]["all"],
                r.adherence["paraphrase"]["all"],
                d["colour"],
                d["shape"],
                d["size"],
                d["position"],
                r.frechet_distance,
            ]
            print(
                "  ".join(str(round(v, 3)) if isinstance(v, float) else str(v) for v in row),
                flush=True,
            )
            rows.append(row)
            runs.append(r.to_dict())
    report.finish(
        "defaults: adherence, diversity and Fréchet distance per setting and seed",
        columns,
        rows,
        {"device": str(pipe.device), "evaluations": runs},
        args,
    )


if __name__ == "__main__":
    main()
