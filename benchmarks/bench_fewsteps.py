"""Notebook 12's measurements: teachers and few-step students at 1 to 20 steps, three seeds, and
the latency of 8 pictures; with the flow against v runs of bench_flow.py beside them.

    python benchmarks/bench_fewsteps.py \\
        --model "flow=flow" --model "latent (v), DDIM=latent@ddim" --model "latent (v)=latent#20" \\
        --model "turbo (student)=turbo" \\
        --model "reflow student=runs/turbo/reflow/model.safetensors" \\
        --flow-runs runs/flow/latent-v-980 runs/flow/latent-flow-980 ... \\
        --out benchmarks/results/fewsteps.json

Each model is evaluated with the full `minidiff evaluate` (825 pictures: seen, held-out and
paraphrased prompts; Frechet distance against real renders) at its own default sampler, at every
step count it can draw (a student: those it was made for), at seeds 0, 1 and 2. Latency: the
median of 5 runs after one warm-up, 8 pictures, at the model's default guidance, 2 threads.
"""

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

import minidiff
from minidiff.device import cpu_name
from minidiff.evaluate import evaluate
from minidiff.pipeline import SAMPLE_PROMPTS

STEP_COUNTS = (1, 2, 4, 8, 20)
SEEDS = (0, 1, 2)


def latency(pipe, steps: int, runs: int = 5, **settings) -> float:
    prompts = list(SAMPLE_PROMPTS)
    pipe.generate(prompts, n=1, steps=steps, **settings)  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        pipe.generate(prompts, n=1, steps=steps, **settings)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def parse(spec: str) -> tuple[str, str, str | None, tuple[int, ...] | None]:
    """NAME=WHERE[@SAMPLER][#STEPS,STEPS...] -> (name, where, sampler, step counts)."""
    name, rest = spec.split("=", 1)
    counts = None
    if "#" in rest:
        rest, listed = rest.split("#", 1)
        counts = tuple(int(n) for n in listed.split(","))
    where, _, sampler = rest.partition("@")
    return name, where, sampler or None, counts


def measure(name: str, where: str, sampler=None, counts=None, seeds=SEEDS) -> dict:
    pipe = minidiff.load_pretrained(where, device="cpu")
    counts = counts or (pipe.student["steps"] if pipe.student else STEP_COUNTS)
    sampler = sampler or pipe.default_settings.sampler
    out = {
        "where": where,
        "objective": pipe.config.prediction,
        "sampler": sampler,
        "student": pipe.student and {k: pipe.student[k] for k in ("method", "steps", "teacher")},
        "by_steps": [],
        "latency_s": {},
    }
    for steps in counts:
        out["latency_s"][str(steps)] = latency(pipe, steps, sampler=sampler)
        for seed in seeds:
            r = evaluate(pipe, steps=steps, seed=seed, progress=False, sampler=sampler)
            row = {
                "steps": steps,
                "seed": seed,
                "seen": r.adherence["seen"]["all"],
                "held_out": r.adherence["held_out"]["all"],
                "paraphrase": r.adherence["paraphrase"]["all"],
                "fd": r.frechet_distance,
            }
            out["by_steps"].append(row)
            print(name, row, f"{out['latency_s'][str(steps)] * 1000:.1f} ms", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        help="NAME=WHERE[@SAMPLER][#STEPS,...]: a file or shipped name, its sampler, step counts",
    )
    parser.add_argument("--flow-runs", nargs="*", default=[], type=Path)
    parser.add_argument(
        "--latency-only", action="store_true", help="time the models already in --out again"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/fewsteps.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    results.setdefault("models", {})
    results["machine"] = f"{cpu_name()}, {args.threads} threads"
    if args.latency_only:  # again, on a quiet machine: every measured model at its step counts
        for name, model in results["models"].items():
            pipe = minidiff.load_pretrained(model["where"], device="cpu")
            for steps in model["latency_s"]:
                seconds = latency(pipe, int(steps), sampler=model["sampler"])
                model["latency_s"][steps] = seconds
                print(f"{name}, {steps} steps: {seconds * 1000:.1f} ms", flush=True)
    for spec in args.model:
        name, where, sampler, counts = parse(spec)
        results["models"][name] = measure(name, where, sampler, counts)
        args.out.write_text(json.dumps(results, indent=1))
    if args.flow_runs:  # each run's bench_flow.json, and bench_flow_<sampler>.json if measured
        results["flow_against_v"] = {}
        for run in args.flow_runs:
            last = (run / "log.jsonl").read_text().splitlines()[-1]
            for file in sorted(run.glob("bench_flow*.json")):
                rows = json.loads(file.read_text())
                rows["training_steps"] = json.loads(last)["step"]
                rows.setdefault("sampler", "euler" if rows["objective"] == "flow" else "ddpm")
                results["flow_against_v"][f"{run.name}, {rows['sampler']}"] = rows
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
