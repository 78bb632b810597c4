"""Flow matching against v-prediction at an equal training budget (issue 19, notebook 12).

    python benchmarks/bench_flow.py train --objective flow --steps 930 --out runs/flow/latent-flow
    python benchmarks/bench_flow.py train --objective v    --steps 930 --out runs/flow/latent-v
    python benchmarks/bench_flow.py measure runs/flow/latent-flow runs/flow/latent-v

`train` runs a preset (default: latent) with the objective swapped (`train.with_objective`) for a
fixed number of steps, not minutes: the same network costs the same per step under either
objective (measured below), so equal steps are an equal budget, and a step count cannot be
shortened by another job sharing the machine as a wall-clock budget would. The learning-rate
schedule spans the steps, as a wall-clock run's spans its minutes. `--steps` is the budget in
steps: minutes times the steps per second measured (`steps-per-second`) at the throughput to be
simulated. EMA snapshots are saved along the way.

`measure` evaluates each run: the full `minidiff evaluate` (seen, held-out, paraphrase, FD) of the
final model at the model's default sampler against sampling steps (1, 2, 4, 8, 20), and the quick
evaluation of every snapshot at 20 steps (adherence against training time). It prints markdown
tables and writes JSON beside the runs.
"""

import argparse
import json
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch

import minidiff
from minidiff.evaluate import evaluate
from minidiff.train import TextToImageTask, build_model, preset, train, with_objective

STEP_COUNTS = (1, 2, 4, 8, 20)


def configs(name: str, objective: str, steps: int, seed: int, changes: dict | None = None):
    model, cfg = preset(name)
    model = with_objective(model, objective)
    cfg = replace(cfg, **(changes or {}))
    snap = max(50, steps // 8 // 50 * 50)
    cfg = replace(
        cfg,
        steps=steps,
        minutes=None,
        seed=seed,
        sample_every=10**9,
        checkpoint_every=500,
        snapshot_steps=tuple(range(snap, steps, snap)),
    )
    return model, cfg


def steps_per_second(name: str, objective: str, threads: int, n: int = 15) -> float:
    """Training steps per second: median of n steps after 3 of warm-up, on the CPU."""
    torch.set_num_threads(threads)
    model, cfg = configs(name, objective, 1000, 0)
    task = TextToImageTask(build_model(model, cfg, torch.device("cpu")), cfg)
    times = []
    for step in range(n + 3):
        start = time.perf_counter()
        task.step(step, None)
        times.append(time.perf_counter() - start)
    return 1 / statistics.median(times[3:])


def measure_run(run: Path, full_steps=STEP_COUNTS, sampler: str | None = None) -> dict:
    """The final model at every step count (at its default sampler, or `sampler`), then, with the
    default sampler only, every snapshot at 20 steps (quick evaluation)."""
    final = minidiff.load_pretrained(run / "model.safetensors", device="cpu")
    rows = {
        "run": str(run),
        "objective": final.config.prediction,
        "sampler": sampler or final.default_settings.sampler,
        "training_steps": json.loads((run / "log.jsonl").read_text().splitlines()[-1])["step"],
        "by_steps": [],
        "curve": [],
    }
    for steps in full_steps:
        r = evaluate(final, steps=steps, progress=False, sampler=sampler)
        rows["by_steps"].append({"steps": steps, **summary(r)})
        print(run.name, steps, "steps", rows["by_steps"][-1], flush=True)
    if sampler is not None:
        return rows
    for snap in sorted((run / "snapshots").glob("step-*.safetensors")):
        pipe = minidiff.load_pretrained(snap, device="cpu")
        r = evaluate(pipe, quick=True, progress=False)
        rows["curve"].append({"step": int(snap.stem.split("-")[1]), **summary(r)})
        print(run.name, snap.stem, rows["curve"][-1], flush=True)
    return rows


def summary(r) -> dict:
    return {
        "seen": r.adherence["seen"]["all"],
        "held_out": r.adherence["held_out"]["all"],
        "paraphrase": r.adherence["paraphrase"]["all"],
        "fd": r.frechet_distance,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train")
    t.add_argument("--preset", default="latent")
    t.add_argument("--objective", required=True)
    t.add_argument("--steps", type=int, required=True)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--out", type=Path, required=True)
    t.add_argument(
        "--set", nargs="*", default=[], help="training settings to change: lr=1.5e-3 warmup=100"
    )
    r = sub.add_parser("steps-per-second")
    r.add_argument("--preset", default="latent")
    r.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    m = sub.add_parser("measure")
    m.add_argument("runs", type=Path, nargs="+")
    m.add_argument("--threads", type=int, default=2)
    m.add_argument("--sampler", default=None, help="another sampler (then no snapshot curve)")
    args = parser.parse_args()

    if args.command == "train":
        torch.set_num_threads(args.threads)
        changes = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
        model, cfg = configs(args.preset, args.objective, args.steps, args.seed, changes)
        resume = (args.out / "checkpoint.safetensors").exists()
        result = train(model, cfg, args.out, resume=resume, device="cpu")
        print(f"{args.out}: step {result.step}, {result.history[-1]['elapsed']:.0f} s")
    elif args.command == "steps-per-second":
        for threads in args.threads:
            for objective in ("v", "flow"):
                rate = steps_per_second(args.preset, objective, threads)
                print(f"{args.preset} {objective:>4} {threads} thread(s): {rate:.2f} steps/s")
    else:
        torch.set_num_threads(args.threads)
        for run in args.runs:
            rows = measure_run(run, sampler=args.sampler)
            name = f"bench_flow_{args.sampler}.json" if args.sampler else "bench_flow.json"
            (run / name).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
