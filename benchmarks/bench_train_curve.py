"""Prompt adherence against wall-clock training time, from the snapshots of one training run.

    minidiff train --preset small --out runs/small           # makes the run (about 30 minutes)
    python benchmarks/bench_train_curve.py runs/small         # measures it (quick evaluation)
    python benchmarks/bench_train_curve.py runs/small --full  # the full 489-picture evaluation

A run folder holds log.jsonl (one record per logged step with the run's elapsed seconds),
snapshots/step-NNNNNN.safetensors (EMA weights saved at the preset's snapshot_steps) and, once
finished, model.safetensors (else checkpoint.safetensors, whose EMA weights are used). Each of
those is evaluated with `minidiff.evaluate.evaluate` and placed on the run's own clock: the elapsed
time logged at its step (interpolated between logged steps), which counts training, checkpoints
and sample grids, and carries on across --resume.

Printed: step, elapsed minutes, adherence with all four attributes right on the seen colour-shape
pairs and on the held-out pairs (for a scene model, `minidiff evaluate --model scenes`'s overall
GenEval score and its held-out bindings, with every category in the JSON), and the first
evaluated step at which the seen adherence reached --threshold (the answer is only as fine as
the snapshots are dense).
"""

import argparse
import json
import re
from pathlib import Path

import numpy as np
import report

import minidiff
from minidiff.evaluate import evaluate
from minidiff.evaluate_scenes import evaluate_scenes
from minidiff.pipeline import DEFAULT_STEPS


def elapsed_at(log: Path, step: int) -> float | None:
    """Seconds into the run at `step`, interpolated between the logged steps (0 at step 0); None
    past the last logged step (a checkpoint saved by an interruption)."""
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    steps = [0] + [r["step"] for r in records]
    seconds = [0.0] + [r["elapsed"] for r in records]
    if step > steps[-1]:
        return None
    return float(np.interp(step, steps, seconds))


def weights_files(run: Path) -> list[Path]:
    """The snapshots in step order, then the final model (or the latest checkpoint)."""
    snapshots = sorted(
        (run / "snapshots").glob("step-*.safetensors"),
        key=lambda p: int(re.findall(r"\d+", p.stem)[0]),
    )
    final = run / "model.safetensors"
    if not final.exists():
        final = run / "checkpoint.safetensors"
    return snapshots + ([final] if final.exists() else [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a training run folder (minidiff train --out)")
    parser.add_argument("--full", action="store_true", help="full evaluation instead of quick")
    parser.add_argument(
        "--eval-steps", type=int, default=DEFAULT_STEPS, help="sampling steps in the evaluation"
    )
    parser.add_argument("--sampler", default=None, help="default: the pipeline's")
    parser.add_argument("--guidance", type=float, default=None, help="default: the pipeline's")
    parser.add_argument(
        "--threshold",
        type=float,
        default=0.9,
        help="report the first time seen adherence reaches this",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="the first two weights files only, 5 sampling steps: a quick check",
    )
    report.add_common_options(parser)
    args = parser.parse_args()
    if args.smoke:
        args.full, args.eval_steps = False, 5
    report.apply_threads(args.threads)
    log = args.run / "log.jsonl"
    if not log.exists():
        raise SystemExit(f"'{args.run}' is not a training run folder: it has no log.jsonl")
    files = weights_files(args.run)
    if args.smoke:
        files = files[:2]
    if not files:
        raise SystemExit(f"'{args.run}' has no snapshots/, model.safetensors or checkpoint yet")

    rows, points, seen_steps, device = [], [], set(), None
    for path in files:
        pipe = minidiff.load_pretrained(path, device=args.device)
        device, step = pipe.device, pipe.info.get("step")
        if step is None:
            raise SystemExit(f"'{path}' does not record the step it was saved at")
        if step in seen_steps:  # a checkpoint at the step of the last snapshot
            continue
        seen_steps.add(step)
        seconds = elapsed_at(log, step)
        if seconds is None:
            print(f"skipping {path.name}: step {step} is past the end of {log}")
            continue
        minutes = seconds / 60
        print(f"evaluating step {step} ({path.name}) ...", flush=True)
        if pipe.config.world == "scenes":
            repeats = 4 if args.full else 1
            chosen = {"sampler": args.sampler, "guidance_scale": args.guidance}
            chosen = {k: v for k, v in chosen.items() if v is not None}
            geneval = evaluate_scenes(
                pipe, repeats, steps=args.eval_steps, progress=False, **chosen
            ).scores
            seen, held_out = geneval.overall, geneval.held_out["all"]
            rows.append([step, minutes, seen, held_out, "-", path.name])
            points.append({"step": step, "minutes": minutes, "file": str(path), **vars(geneval)})
            continue
        scores = evaluate(
            pipe,
            quick=not args.full,
            steps=args.eval_steps,
            progress=False,
            sampler=args.sampler,
            guidance_scale=args.guidance,
        )
        seen, held_out = scores.adherence["seen"]["all"], scores.adherence["held_out"]["all"]
        rows.append([step, minutes, seen, held_out, scores.settings["seconds"], path.name])
        points.append(
            {
                "step": step,
                "minutes": minutes,
                "file": str(path),
                "adherence": scores.adherence,
                "held_out_pairs": scores.held_out_pairs,
                "diversity": scores.diversity,
                "frechet_distance": scores.frechet_distance,
            }
        )

    reached = next((r for r in rows if r[2] >= args.threshold), None)
    if reached:
        note = (
            f"\nseen adherence first >= {args.threshold} at step {reached[0]}, "
            f"{reached[1]:.1f} min into the run"
        )
    else:
        best = max(rows, key=lambda r: r[2])
        note = (
            f"\nseen adherence never reached {args.threshold}; best {best[2]:.3f} at step "
            f"{best[0]} ({best[1]:.1f} min)"
        )
    columns = ["step", "minutes", "adherence", "held-out", "eval s", "weights"]
    kind = "full" if args.full else "quick"
    title = (
        f"adherence against training time: {args.run} ({kind} evaluation, "
        f"{args.eval_steps} steps; adherence = all four attributes right)"
    )
    report.finish(
        title,
        columns,
        rows,
        {
            "device": str(device),
            "points": points,
            "notes": [note],
            "first_reached": {"step": reached[0], "minutes": reached[1]} if reached else None,
        },
        args,
    )


if __name__ == "__main__":
    main()
