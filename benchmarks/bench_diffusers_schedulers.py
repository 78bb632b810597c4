"""Prompt adherence and quality of one minidiff model under each diffusers scheduler and step count.

    python benchmarks/bench_diffusers_schedulers.py --threads 1  # ->
    results/diffusers_schedulers.json
    python benchmarks/bench_diffusers_schedulers.py --smoke       # seconds: does it run?

The network and the prompt rows are minidiff's, the sampling loop is diffusers'
(`minidiff.diffusers_bridge`). For every scheduler kind and number of steps: `minidiff evaluate`
at the pipeline's default guidance (the judge's all-attributes adherence on seen pairs, held-out
pairs and paraphrases, and over all three; the mean and the lowest diversity of left-out
attributes; the Fréchet distance in judge features), the network calls per picture, the seconds
the evaluation took, and, for the kinds with a minidiff twin (diffusers_bridge.TWINS), the largest
pixel difference (0-255) between the scheduler's pictures and the twin's own of the first 48
prompts, same seed. Notebook 10 reads the JSON.
"""

import argparse

import numpy as np
import report

import minidiff
from minidiff.checkpoint import CheckpointError
from minidiff.course.paths import RESULTS_DIR
from minidiff.course.real_systems import network_calls
from minidiff.diffusers_bridge import KINDS, TWINS, DiffusersPipe, diffusers_scheduler
from minidiff.evaluate import CHUNK, GROUPS, evaluate, prompt_set
from minidiff.pipeline import DEFAULT_GUIDANCE

RESULTS = RESULTS_DIR / "diffusers_schedulers.json"


def twin_difference(pipe, bridged, kind, steps, guidance, seed, quick) -> int | None:
    """Largest pixel difference between the kind's pictures and its minidiff twin's, on the
    first CHUNK seen prompts as `evaluate` draws them (seed 1000 * seed); None without a twin."""
    if kind not in TWINS:
        return None
    prompts = prompt_set(quick)["seen"][:CHUNK]
    kwargs = {"n": 1, "steps": steps, "guidance_scale": guidance, "seed": 1000 * seed}
    ours = pipe.generate(prompts, sampler=TWINS[kind], **kwargs)
    theirs = bridged.generate(prompts, sampler=kind, **kwargs)
    return int(np.abs(ours.astype(int) - theirs.astype(int)).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--weights",
        default=None,
        help="model file or training checkpoint (default: the shipped weights)",
    )
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    parser.add_argument(
        "--step-counts", type=int, nargs="+", default=[2, 5, 10, 20, 50], dest="step_counts"
    )
    parser.add_argument("--guidance", type=float, default=DEFAULT_GUIDANCE)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="evaluate's quick prompt set")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="two schedulers, 2 steps, the quick prompt set: a quick check",
    )
    report.add_common_options(parser)
    parser.set_defaults(json=str(RESULTS))
    args = parser.parse_args()
    if args.smoke:
        args.kinds, args.step_counts, args.quick = ["ddim", "unipc"], [2], True
        if args.json == str(RESULTS):
            args.json = None  # smoke numbers are not results
    report.apply_threads(args.threads)
    try:
        pipe = minidiff.load_pretrained(args.weights, device=args.device)
    except CheckpointError as e:
        raise SystemExit(str(e)) from None
    bridged = DiffusersPipe(pipe)

    columns = [
        "scheduler",
        "steps",
        "network calls",
        "seen",
        "held-out",
        "paraphrase",
        "all",
        "diversity",
        "lowest diversity",
        "FD",
        "FD floor",
        "twin max diff",
        "seconds",
    ]
    rows, runs, classes = [], [], {}
    for kind in args.kinds:
        classes[kind] = type(diffusers_scheduler(pipe.config, kind)).__name__
        for steps in args.step_counts:
            r = evaluate(
                bridged,
                quick=args.quick,
                steps=steps,
                guidance_scale=args.guidance,
                sampler=kind,
                seed=args.seed,
                progress=False,
            )
            pictures = sum(r.pictures[g] for g in GROUPS)
            pooled = sum(r.adherence[g]["all"] * r.pictures[g] for g in GROUPS) / pictures
            per_attribute = [v for k, v in r.diversity.items() if k != "mean"]
            row = [
                kind,
                steps,
                network_calls(pipe.config, kind, steps),
                r.adherence["seen"]["all"],
                r.adherence["held_out"]["all"],
                r.adherence["paraphrase"]["all"],
                pooled,
                r.diversity["mean"],
                min(per_attribute),
                r.frechet_distance,
                r.frechet_floor,
                twin_difference(pipe, bridged, kind, steps, args.guidance, args.seed, args.quick),
                r.settings["seconds"],
            ]
            print(
                "  ".join(str(round(v, 3)) if isinstance(v, float) else str(v) for v in row),
                flush=True,
            )
            rows.append(row)
            runs.append(r.to_dict())
    pictures = sum(runs[0]["pictures"].values())
    report.finish(
        f"diffusers schedulers driving minidiff's network: minidiff evaluate "
        f"({pictures} pictures each, guidance {args.guidance:g}, seed {args.seed})",
        columns,
        rows,
        {"device": str(pipe.device), "classes": classes, "evaluations": runs},
        args,
    )


if __name__ == "__main__":
    main()
