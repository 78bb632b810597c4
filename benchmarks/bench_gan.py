"""GANs against diffusion at an equal training budget (notebook 14).

    python benchmarks/bench_gan.py --rates --threads 2     # one training step of each, timed
    python benchmarks/bench_gan.py --train --threads 2     # 3 seeds of each on that budget
    python benchmarks/bench_gan.py --mode-seeking         # one GAN run against collapse
    minidiff train-gan --steps 2720 --out runs/gan-long    # the pixel model's 28.7 minutes
    python benchmarks/bench_gan.py --evaluate --threads 2 --json benchmarks/results/gan.json

The budget is wall-clock time on this machine, turned into training steps by each family's own
measured step rate (`--rates`, the two timed in turns, so that whatever else runs on the machine
slows both alike): a run then does the same work whether or not it shares the machine. Each
family brings its best recipe for a short budget: for diffusion the course's 5-minute preset
(`minidiff train --preset fast`, the latent model, 1.87M parameters); the GAN is minidiff.gan's
(G 1.58M, D 1.12M parameters).

Measured for every run, with the same judge as `minidiff evaluate`:
- **adherence**: all four attributes right, on seen, held-out and paraphrased prompts;
- **coverage**: for prompts that name colour and shape but leave size and position open, the
  share of the 18 (size, position) cells that appear in 96 pictures, and the KL divergence of
  their histogram to uniform (0 for a model that spreads evenly; log 18 = 2.89 for one that always
  draws the same cell: mode collapse as a number). A uniform sampler of 96 pictures is shown
  beside them, since a finite sample is never exactly uniform;
- **FD** in judge features (`minidiff evaluate`'s, with its floor between two real sets);
- **milliseconds for 8 pictures** at each family's defaults (median of repeated calls).
The shipped pixel model (28.7 minutes of another machine) is measured beside them for scale.
"""

import argparse
import json
import statistics
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import report
import torch

import minidiff
from minidiff import coverage, gan
from minidiff.evaluate import evaluate
from minidiff.judge import load_judge
from minidiff.train import TextToImageTask, build_model, preset, train

RUNS = Path("runs")
RATES = Path("benchmarks/results/gan_rates.json")
SEEDS = (0, 1, 2)
COVERAGE_PROMPTS = ("a red circle", "a blue square", "a yellow triangle", "a square")
COVERAGE_PICTURES = 96  # per prompt
TIMING_PROMPT = "a large red circle in the top left"
# The course's 5-minute recipe (notebook 03): the latent model, the fastest diffusion recipe here
DIFFUSION_PRESET = "fast"


def _diffusion_task():
    model_config, cfg = preset(DIFFUSION_PRESET)
    return TextToImageTask(build_model(model_config, cfg, torch.device("cpu")), cfg)


def _gan_task():
    torch.manual_seed(0)
    return gan.GanTask(gan.ConditionalGAN(gan.GanConfig()), gan.GanTraining())


def measure_rates(repeats: int) -> dict:
    """Training steps per second of each family: the median of `repeats` timed steps, the two
    timed in turns after two warm-up steps each."""
    tasks = {"diffusion": _diffusion_task(), "gan": _gan_task()}
    tasks["gan"].gan.train()
    times: dict[str, list[float]] = {name: [] for name in tasks}
    for step in range(repeats + 2):
        for name, task in tasks.items():
            start = time.perf_counter()
            task.step(step, None)
            if step >= 2:
                times[name].append(time.perf_counter() - start)
    return {name: 1 / statistics.median(t) for name, t in times.items()}


def budget_steps(minutes: float) -> dict[str, int]:
    rates = json.loads(RATES.read_text())["steps_per_second"]
    return {name: round(rate * minutes * 60) for name, rate in rates.items()}


def train_runs(family: str, seed: int, minutes: float, device: str | None) -> None:
    """One run of one family on the budget, in runs/<family>-<minutes>min-s<seed>."""
    steps = budget_steps(minutes)[family]
    out = RUNS / f"{family}-{minutes:g}min-s{seed}"
    if family == "diffusion":
        model_config, cfg = preset(DIFFUSION_PRESET)
        cfg = replace(cfg, steps=steps, minutes=None, seed=seed, snapshot_steps=())
        train(model_config, cfg, out, device=device)
    else:
        gan.train_gan(out, gan.GanTraining(steps=steps, seed=seed), device=device)


def measure_coverage(pipe, judge, seed: int = 0) -> dict:
    """The (size, position) cells that prompts leaving them open reach (minidiff.coverage): share
    covered and KL to uniform, averaged over COVERAGE_PROMPTS."""
    covered, kl = [], []
    for k, prompt in enumerate(COVERAGE_PROMPTS):
        pictures = pipe.generate(prompt, n=COVERAGE_PICTURES, seed=10_000 + 100 * seed + k)
        counts = coverage.histogram(judge.predict(pictures))
        covered.append(coverage.coverage(counts))
        kl.append(coverage.kl_to_uniform(counts))
    return {"coverage": float(np.mean(covered)), "kl_to_uniform": float(np.mean(kl))}


def milliseconds_for_8(pipe, repeats: int = 15) -> float:
    times = []
    for seed in range(repeats + 1):
        start = time.perf_counter()
        pipe.generate(TIMING_PROMPT, n=8, seed=seed)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times[1:])  # the first call warms up


def measure(label: str, path: Path, judge, family: str, seed: int) -> dict:
    pipe = minidiff.load_pretrained(str(path), device="cpu")
    rep = evaluate(pipe, judge=judge, progress=False)
    row = {
        "run": label,
        "family": family,
        "seed": seed,
        "weights": str(path),
        "adherence": {g: rep.adherence[g]["all"] for g in ("seen", "held_out", "paraphrase")},
        "attributes": rep.adherence,  # per group: colour, shape, size, position and all
        "fd": rep.frechet_distance,
        "fd_floor": rep.frechet_floor,
        **measure_coverage(pipe, judge),
        "ms_for_8": milliseconds_for_8(pipe),
        "steps": _trained_steps(path),
    }
    print(
        f"{label:<26} seen {row['adherence']['seen']:.3f}  held-out "
        f"{row['adherence']['held_out']:.3f}  paraphrase {row['adherence']['paraphrase']:.3f}  "
        f"coverage {row['coverage']:.2f}  KL {row['kl_to_uniform']:.2f}  FD {row['fd']:.1f}  "
        f"{row['ms_for_8']:.1f} ms"
    )
    return row


def _trained_steps(path: Path) -> int | None:
    log = path.parent / "log.jsonl"
    if not log.exists():
        return None
    return json.loads(log.read_text().strip().splitlines()[-1]).get("step")


def spread(rows: list[dict]) -> dict:
    """Mean and (min, max) of each measured number over the seeds of one family."""
    keys = {
        "seen": lambda r: r["adherence"]["seen"],
        "held_out": lambda r: r["adherence"]["held_out"],
        "paraphrase": lambda r: r["adherence"]["paraphrase"],
        "coverage": lambda r: r["coverage"],
        "kl_to_uniform": lambda r: r["kl_to_uniform"],
        "fd": lambda r: r["fd"],
        "ms_for_8": lambda r: r["ms_for_8"],
    }
    return {
        k: {
            "mean": float(np.mean([f(r) for r in rows])),
            "min": min(f(r) for r in rows),
            "max": max(f(r) for r in rows),
        }
        for k, f in keys.items()
    }


def evaluate_all(minutes: float) -> dict:
    judge = load_judge()
    rows = []
    for seed in SEEDS:
        for family, name in (("diffusion", "model"), ("gan", "gan")):
            path = RUNS / f"{family}-{minutes:g}min-s{seed}" / f"{name}.safetensors"
            if path.exists():
                rows.append(
                    measure(f"{family} {minutes:g} min, seed {seed}", path, judge, family, seed)
                )
    seeking = RUNS / f"gan-{minutes:g}min-mode-seeking" / "gan.safetensors"
    if seeking.exists():
        rows.append(measure(f"gan {minutes:g} min, mode seeking", seeking, judge, "gan-ms", 0))
    longer = RUNS / "gan-long" / "gan.safetensors"  # the pixel model's 28.7 minutes, in steps
    if longer.exists():
        rows.append(measure("gan 29 min, seed 0", longer, judge, "gan-long", 0))
    reference = minidiff.pipeline.MODELS["pixel"]  # diffusion with six times the budget
    rows.append(measure("pixel model (shipped, 29 min)", reference, judge, "diffusion-shipped", 0))
    by_family = {}
    for family in ("diffusion", "gan"):
        mine = [r for r in rows if r["family"] == family]
        if mine:
            by_family[family] = spread(mine)
    return {
        "rows": rows,
        "spread": by_family,
        "uniform_sampler": coverage.uniform_reference(COVERAGE_PICTURES),
    }


CARD = """# {name}: model card

{what} Trained from scratch by minidiff's own code on Shapes-world pictures drawn on the fly;
nothing was downloaded. It is the seed-0 run of the three that `benchmarks/bench_gan.py` trains
for each family on the same budget: {minutes:g} minutes of this machine's throughput for that
family's training step, measured alone (`--rates`: {rate:.2f} steps a second).

| | |
| --- | --- |
| command | `{command} |
| seed | 0 |
| code | commit `{commit}` |
| hardware | {cpu}, {threads} torch thread(s) per run, the two families' runs side by side, no GPU |
| wall time | {wall:.1f} minutes for {steps} steps of 64 pictures (shared; alone: {minutes:g}) |
| parameters | {parameters} |
| on disk | float16, {size:.2f} MB |
| written | {date} |

## Measured (`python benchmarks/bench_gan.py --evaluate`, the same judge as `minidiff evaluate`)

| all attributes right: seen | held-out | paraphrase | coverage | KL to uniform | FD | ms for 8 |
| ---: | ---: | ---: | ---: | ---: | ---: | ---: |
| {seen:.3f} | {held_out:.3f} | {paraphrase:.3f} | {coverage:.2f} | {kl:.2f} | {fd:.1f} | {ms:.1f} |

The other seeds, the other family and what each number means: benchmarks/README.md, "GANs against
diffusion", and notebook 14.
"""


def ship(minutes: float, commit: str) -> None:
    """Copy the seed-0 run of each family into the package, with its card."""
    import datetime

    from minidiff.checkpoint import load_model, save_model
    from minidiff.device import cpu_name
    from minidiff.model import count_parameters
    from minidiff.pipeline import MODELS

    result = json.loads(Path("benchmarks/results/gan.json").read_text())
    rates = result["rates"]["steps_per_second"]
    for family, name, file in (
        ("diffusion", "minidiff-fast", "model"),
        ("gan", "minidiff-gan", "gan"),
    ):
        run = RUNS / f"{family}-{minutes:g}min-s0"
        row = next(r for r in result["rows"] if r["family"] == family and r["seed"] == 0)
        log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
        target = MODELS["fast" if family == "diffusion" else "gan"]
        if family == "diffusion":
            model, info = load_model(run / f"{file}.safetensors")
            save_model(model, target, info={**info, "commit": commit}, dtype=torch.float16)
            parameters = (
                f"U-Net {count_parameters(model.unet):,}, text encoder "
                f"{count_parameters(model.text_encoder):,} (the autoencoder's frozen "
                "weights travel in the same file)"
            )
            what = (
                "The diffusion side of notebook 14: the course's 5-minute recipe (`minidiff "
                "train --preset fast`, the latent model) on this machine's budget."
            )
            command = (
                "python benchmarks/bench_gan.py --train --families diffusion --seeds 0 --threads "
                f"1` (`--preset fast`, its schedule over {row['steps']} steps instead of 5 minutes)"
            )
        else:
            generator, _ = gan.load_gan(run / f"{file}.safetensors")
            shutil_copy(run / f"{file}.safetensors", target)
            parameters = f"generator {count_parameters(generator):,} (not the discriminator)"
            what = (
                "The GAN of notebook 14 (`minidiff.gan`: hinge loss, spectral norm, a "
                "projection discriminator, the course's text encoder)."
            )
            command = (
                "python benchmarks/bench_gan.py --train --families gan --seeds 0 --threads 1` "
                f"(`minidiff train-gan --steps {row['steps']} --seed 0 --out {run}`)"
            )
        target.with_suffix(".md").write_text(
            CARD.format(
                name=target.name,
                what=what,
                minutes=minutes,
                rate=rates[family],
                command=command,
                commit=commit,
                cpu=cpu_name(),
                threads=result["rates"].get("train_threads", 1),
                wall=log[-1]["elapsed"] / 60,
                steps=row["steps"],
                parameters=parameters,
                size=target.stat().st_size / 1e6,
                date=datetime.date.today().isoformat(),
                seen=row["adherence"]["seen"],
                held_out=row["adherence"]["held_out"],
                paraphrase=row["adherence"]["paraphrase"],
                coverage=row["coverage"],
                kl=row["kl_to_uniform"],
                fd=row["fd"],
                ms=row["ms_for_8"],
            )
        )
        print(f"shipped {run} as {target} ({target.stat().st_size / 1e6:.2f} MB)")


def shutil_copy(source: Path, target: Path) -> None:
    import os
    import shutil

    shutil.copyfile(source, target)
    os.chmod(target, 0o644)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rates", action="store_true", help="time a training step of each")
    parser.add_argument("--train", action="store_true", help="train 3 seeds of each")
    parser.add_argument(
        "--mode-seeking", action="store_true", help="train one GAN run with MSGAN's term"
    )
    parser.add_argument("--evaluate", action="store_true", help="measure every trained run")
    parser.add_argument("--minutes", type=float, default=5.0, help="the budget (default 5)")
    parser.add_argument("--repeats", type=int, default=20, help="timed steps for --rates")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--families", nargs="+", default=["diffusion", "gan"])
    parser.add_argument(
        "--ship",
        metavar="COMMIT",
        default=None,
        help="copy the seed-0 runs into the package, cards naming COMMIT",
    )
    report.add_common_options(parser)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.rates:
        rates = measure_rates(args.repeats)
        print("training steps per second: " + ", ".join(f"{k} {v:.2f}" for k, v in rates.items()))
        RATES.write_text(
            json.dumps(
                {
                    "steps_per_second": rates,
                    "machine": report.machine("cpu"),
                    "threads": torch.get_num_threads(),
                },
                indent=1,
            )
            + "\n"
        )
    if args.train:
        print(f"{args.minutes:g} minutes = {budget_steps(args.minutes)} steps")
        for family in args.families:
            for seed in args.seeds:
                train_runs(family, seed, args.minutes, args.device)
    if args.mode_seeking:
        # the plain recipe collapses (benchmarks/README.md); the same budget in steps with MSGAN's
        # term, which asks two z of one prompt to give two pictures
        steps = budget_steps(args.minutes)["gan"]
        cfg = gan.GanTraining(steps=steps, seed=0, mode_seeking=1.0)
        gan.train_gan(RUNS / f"gan-{args.minutes:g}min-mode-seeking", cfg, device=args.device)
    if args.evaluate:
        result = evaluate_all(args.minutes)
        result["budget_minutes"] = args.minutes
        result["budget_steps"] = budget_steps(args.minutes)
        result["rates"] = json.loads(RATES.read_text())
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
            print(f"wrote {args.json}")
    if args.ship:
        ship(args.minutes, args.ship)


if __name__ == "__main__":
    main()
