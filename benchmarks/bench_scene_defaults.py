"""How the scene model's own sampling defaults were chosen: GenEval's categories at candidate
settings (sampler:steps:guidance), one picture a prompt.

    python benchmarks/bench_scene_defaults.py --weights runs/scenes/model.safetensors \
        --threads 2 --json benchmarks/results/scene_defaults.json

The settings are chosen on seed 1 (`--seeds 1`, the default), so that `minidiff evaluate --model
scenes`, which draws with seed 0, reports pictures the choice never saw. The prompts are GenEval's:
the choice of two numbers (a sampler and a guidance scale) is tuned on them, not the network.
"""

import argparse

import report

from minidiff.evaluate_scenes import evaluate_scenes
from minidiff.geneval import CATEGORIES

CANDIDATES = ["ddpm:20:1", "ddim:20:1", "ddpm:20:3", "ddim:20:2", "ddim:20:3", "ddim:20:5"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True, help="a scene model file")
    parser.add_argument("--settings", nargs="+", default=CANDIDATES)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    report.add_common_options(parser)
    args = parser.parse_args()
    report.apply_threads(args.threads)
    import minidiff

    pipe = minidiff.load_pretrained(args.weights, device=args.device)
    rows, extra = [], {"runs": []}
    for text in args.settings:
        sampler, steps, guidance = text.split(":")
        settings = {"sampler": sampler, "steps": int(steps), "guidance_scale": float(guidance)}
        for seed in args.seeds:
            result = evaluate_scenes(pipe, repeats=1, seed=seed, progress=False, **settings)
            scores = result.scores
            rows.append([text, seed, scores.overall, *(scores.categories[c] for c in CATEGORIES)])
            extra["runs"].append(
                {"setting": text, "seed": seed, "overall": scores.overall, **scores.categories}
            )
            print(f"{text} seed {seed}: overall {scores.overall:.3f}", flush=True)
    columns = ["sampler:steps:guidance", "seed", "overall", *CATEGORIES]
    report.finish("the scene model's sampling defaults", columns, rows, extra, args)


if __name__ == "__main__":
    main()
