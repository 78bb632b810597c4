"""Telling generated pictures from real ones (notebook 15): the detector's ROC AUC and accuracy.

    python benchmarks/bench_detector.py --threads 2 --ship

After Wang et al. 2020 (CNNDetection): two detectors (minidiff.detector), one trained plainly and
one with blur, resizing and JPEG augmentations, each on real train-split renders against ONE
generator's pictures (the shipped pixel model at its defaults: DDPM, 20 steps, guidance 1). Both
are then measured on held-out test sets: the test split's first --n captions as rendered, and as
drawn by the training generator with other seeds, by the same model with other samplers and
fewer steps, by the 5-minute pixel recipe (--five-minute), the latent, flow and turbo models and
the GAN (--gan). Each row: ROC AUC, and the accuracy, share caught and false alarms at the
threshold chosen on the training generator's validation set (val split, its own seeds); then
the same with the generated pictures snapped to the palette (the hard case). Robustness: real and
generated pictures both blurred, resized or re-encoded as JPEG, over a range of strengths.

Writes benchmarks/results/detector.json and detector.npz (example pictures and their scores);
--ship also writes the plain detector to minidiff/weights/detector.safetensors and its card.
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import minidiff
from minidiff import detector, gan, world
from minidiff.device import cpu_name
from minidiff.scaffold import Watch

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
VAL_SEED, TEST_SEED = 400_000, 500_000  # the training pool draws from detector.POOL_SEED on
BLUR_SIGMAS = (0.0, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)  # 0: untouched
JPEG_QUALITIES = (None, 95, 90, 75, 50, 30, 20, 10)  # None: not re-encoded
RESIZE_SCALES = (1.0, 0.75, 0.5, 0.375, 0.25)  # 1: untouched
ATTACKS = {
    "blur": ("sigma", BLUR_SIGMAS, lambda x, s: detector.blur(x, s) if s else x),
    "jpeg": ("quality", JPEG_QUALITIES, lambda x, q: detector.jpeg(x, q) if q else x),
    "resize": ("scale", RESIZE_SCALES, lambda x, s: detector.resize(x, s) if s < 1 else x),
}


def generated_sets(args, captions: list[str]) -> list[dict]:
    """The generators of the held-out rows: name, family, how to draw the test captions."""
    pixel = minidiff.load_pretrained("pixel")

    def pixel_with(**settings):
        return lambda: detector.draw(pixel, captions, TEST_SEED, **settings)

    def model(name: str, where: str) -> tuple[str, str, object]:
        """A row for another model, drawn at its own default settings, which the name states."""
        pipe = minidiff.load_pretrained(where)
        s = pipe.default_settings
        label = f"{name}, {s.sampler} {s.steps}, guidance {s.guidance_scale:g}"
        return label, "model", lambda: detector.draw(pipe, captions, TEST_SEED)

    sets = [
        ("pixel model, DDPM 20 (the training generator)", "training", pixel_with()),
        ("pixel model, DDIM 20", "sampler", pixel_with(sampler="ddim")),
        ("pixel model, DPM-Solver++ 2M 20", "sampler", pixel_with(sampler="dpmpp_2m")),
        ("pixel model, Euler ancestral 20 (the DDPM step in other coordinates)", "sampler",
         pixel_with(sampler="euler_ancestral")),
        ("pixel model, DDPM 10", "steps", pixel_with(steps=10)),
        ("pixel model, DDIM 10", "steps", pixel_with(sampler="ddim", steps=10)),
        ("pixel model, DDIM 5", "steps", pixel_with(sampler="ddim", steps=5)),
        model(f"5-minute pixel recipe on a skewed split ({args.five_minute})", args.five_minute),
        model("latent model", "latent"),
        model("flow model (latent)", "flow"),
        model("turbo (few-step student of flow)", "turbo"),
    ]  # fmt: skip
    if Path(args.gan).is_file():
        G, info = gan.load_gan(args.gan)
        name = f"GAN ({Path(args.gan).parent.name}, step {info.get('step')}), one network call"
        sets.append((name, "gan", lambda: gan.generate(G, captions, TEST_SEED)))
    else:
        print(f"note: no GAN weights at {args.gan}; the GAN row is skipped")
    return [{"name": n, "family": f, "draw": d} for n, f, d in sets]


def measured(real_scores, fake_scores, threshold: float) -> dict:
    rates = detector.at_threshold(real_scores, fake_scores, threshold)
    return {"auc": detector.roc_auc(real_scores, fake_scores), **rates}


def train(args, runs: Path) -> dict[str, detector.Detector]:
    made = {}
    for name, augment in (("plain", False), ("augmented", True)):
        cfg = detector.DetectorTraining(
            steps=args.aug_steps if augment else args.steps,
            batch_size=args.batch_size,
            pool=args.pool,
            seed=args.seed,
            augment=augment,
            checkpoint_every=10_000,
        )
        if augment:  # the same pool: drawn once
            (runs / name).mkdir(parents=True, exist_ok=True)
            shutil.copy(runs / "plain" / "pool.npz", runs / name / "pool.npz")
        made[name] = detector.train_detector(runs / name, cfg, watch=Watch(progress=False))
        info = made[name].info
        print(
            f"{name} detector: {cfg.steps} steps in {info['train_seconds']:.0f} s; its pool of "
            f"{cfg.pool} generated pictures took {info['pool_seconds']:.0f} s to draw"
        )
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pool", type=int, default=1000, help="generated training pictures")
    parser.add_argument("--steps", type=int, default=600, help="the plain detector's steps")
    parser.add_argument("--aug-steps", type=int, default=1200, help="the augmented one's steps")
    parser.add_argument("--batch-size", type=int, default=64, help="per class")
    parser.add_argument("--n", type=int, default=500, help="test pictures per class and row")
    parser.add_argument("--val", type=int, default=300, help="validation pictures per class")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--five-minute", default="skewed", help="the 5-minute pixel model")
    parser.add_argument("--gan", default=str(ROOT / "runs" / "gan" / "gan.safetensors"))
    parser.add_argument("--runs", default=None, help="run folders (default: a temporary one)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default=str(RESULTS / "detector.json"))
    parser.add_argument("--ship", action="store_true", help="ship the plain detector and card")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the script runs")
    args = parser.parse_args()
    if args.smoke:
        args.pool, args.steps, args.aug_steps, args.n, args.val = 64, 20, 20, 40, 40
    torch.set_num_threads(args.threads)
    start, load_at_start = time.perf_counter(), list(os.getloadavg())  # others on the machine
    runs = Path(args.runs or tempfile.mkdtemp(prefix="bench-detector-"))
    detectors = train(args, runs)

    val_real, val_captions, _ = world.batch("val", 0, args.val)
    val_fake = detector.draw(minidiff.load_pretrained("pixel"), val_captions, VAL_SEED)
    thresholds, val_auc = {}, {}
    for name, d in detectors.items():
        thresholds[name] = detector.best_threshold(d.score(val_real), d.score(val_fake))
        val_auc[name] = detector.roc_auc(d.score(val_real), d.score(val_fake))

    real, captions, _ = world.batch("test", 0, args.n)
    real_scores = {name: d.score(real) for name, d in detectors.items()}
    rows, examples, fakes = [], {"real": real[:8]}, {}
    for s in generated_sets(args, captions):
        t = time.perf_counter()
        fake = s["draw"]()
        seconds = time.perf_counter() - t
        snapped = detector.snap_to_palette(fake)
        row = {"name": s["name"], "family": s["family"], "draw_seconds": round(seconds, 1)}
        for name, d in detectors.items():
            row[name] = measured(real_scores[name], d.score(fake), thresholds[name])
            row[name + "_snapped"] = measured(real_scores[name], d.score(snapped), thresholds[name])
        rows.append(row)
        fakes[s["name"]] = fake
        examples[s["name"]], examples[s["name"] + ", snapped"] = fake[:8], snapped[:8]
        print(f"{s['name']}: drawn in {seconds:.1f} s", flush=True)

    trained_on = fakes[rows[0]["name"]]
    both_snapped = {  # control: are the snapped pictures caught by their hard edges alone?
        name: measured(
            d.score(detector.snap_to_palette(real)),
            d.score(detector.snap_to_palette(trained_on)),
            thresholds[name],
        )
        for name, d in detectors.items()
    }
    robustness = {}
    for attack, (strength, values, apply) in ATTACKS.items():
        robustness[attack] = {strength: list(values)}
        for name, d in detectors.items():
            robustness[attack][name] = [
                measured(d.score(apply(real, v)), d.score(apply(trained_on, v)), thresholds[name])
                for v in values
            ]
        examples[f"{attack} {values[-2]}"] = apply(trained_on[:8], values[-2])
    wall = time.perf_counter() - start

    report(rows, robustness, both_snapped, thresholds, val_auc)

    def git(*words: str) -> str:
        return subprocess.run(["git", *words], capture_output=True, text=True, cwd=ROOT).stdout

    commit = git("rev-parse", "--short", "HEAD").strip()
    if git("status", "--porcelain", "--", "minidiff", "benchmarks/bench_detector.py").strip():
        commit += ", with uncommitted changes"
    record = {
        "command": "python " + " ".join(sys.argv),
        "smoke": args.smoke,
        "commit": commit,
        "machine": {
            "cpu": cpu_name(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "load_average_at_start_and_end": [load_at_start, list(os.getloadavg())],
        },
        "wall_seconds": round(wall, 1),
        "sizes": {k: getattr(args, k) for k in ("pool", "steps", "aug_steps", "batch_size", "n")},
        "val_pictures": args.val,
        "seeds": {"pool": detector.POOL_SEED * (args.seed + 1), "val": VAL_SEED, "test": TEST_SEED},
        "detectors": {
            name: {"info": d.info, "threshold": thresholds[name], "val_auc": val_auc[name]}
            for name, d in detectors.items()
        },
        "rows": rows,
        "both_snapped": both_snapped,
        "robustness": robustness,
        "gan": args.gan if Path(args.gan).is_file() else None,
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(record, indent=1) + "\n")
    save_examples(Path(args.json).with_suffix(".npz"), examples, detectors)
    print(f"wrote {args.json} and its .npz; the whole benchmark took {wall / 60:.1f} minutes")
    if args.ship:
        ship(detectors["plain"], record)


def save_examples(path: Path, examples: dict, detectors: dict) -> None:
    """Eight pictures of each group, with each detector's score (logit; > threshold: generated)."""
    groups = list(examples)
    images = np.concatenate([examples[g] for g in groups])  # (8 * groups, 32, 32, 3)
    group = np.repeat(np.arange(len(groups)), [len(examples[g]) for g in groups])
    scores = {f"score_{name}": d.score(images) for name, d in detectors.items()}
    np.savez_compressed(path, images=images, group=group, groups=np.array(groups), **scores)


def report(rows, robustness, both_snapped, thresholds, val_auc) -> None:
    names = list(thresholds)
    print("\nthresholds (chosen on the training generator's validation pictures):")
    for n in names:
        print(f"  {n}: {thresholds[n]:.3f} (validation AUC {val_auc[n]:.4f})")
    print("\nAUC / accuracy at that threshold; as drawn, then snapped to the palette")
    head = "".join(f"{n + ' drawn':>20}{n + ' snapped':>20}" for n in names)
    print(f"{'generated by':<70}{head}")
    for r in rows:
        cells = "".join(
            f"{r[n + k]['auc']:>12.3f} /{r[n + k]['accuracy']:>6.3f}"
            for n in names
            for k in ("", "_snapped")
        )
        print(f"{r['name']:<70}{cells}")
    for n in names:
        b = both_snapped[n]
        print(
            f"control, {n}: real and generated both snapped: AUC {b['auc']:.3f}, "
            f"accuracy {b['accuracy']:.3f}"
        )
    print("\nrobustness on the training generator's test set (real and generated alike)")
    for attack, values in robustness.items():
        strength = next(k for k in values if k not in names)
        for i, v in enumerate(values[strength]):
            cells = "".join(
                f"   {n} AUC {values[n][i]['auc']:.3f} acc {values[n][i]['accuracy']:.3f}"
                for n in names
            )
            print(f"  {attack:<7}{strength} {str(v):<6}{cells}")


def ship(plain: detector.Detector, record: dict) -> None:
    weights = ROOT / "minidiff" / "weights"
    made, steps = plain.info, plain.info["train_config"]["steps"]
    info = {
        **plain.info,
        "command": record["command"],
        "commit": record["commit"],
        "threshold": record["detectors"]["plain"]["threshold"],
        "test_auc": {r["name"]: round(r["plain"]["auc"], 4) for r in record["rows"]},
    }
    detector.save_detector(plain, weights / "detector.safetensors", info)
    lines = [
        "# detector.safetensors: model card",
        "",
        "The detector of generated pictures of notebook 15 (minidiff.detector, after Wang et al.",
        "2020, CNNDetection): a 4-convolution CNN of "
        f"{plain.info['parameters']:,} parameters that scores a 32 x 32 picture, high = generated.",
        "Trained without augmentations on real train-split renders against the shipped pixel",
        "model's pictures (DDPM, 20 steps, guidance 1) of the same captions. Trained from scratch",
        "by the benchmark below; nothing was downloaded.",
        "",
        "| | |",
        "| --- | --- |",
        f"| command | `{record['command']}` |",
        f"| seed | {plain.info['train_config']['seed']} |",
        f"| code | commit {record['commit']} |",
        f"| hardware | {record['machine']['cpu']}, torch threads: "
        f"{record['machine']['torch_threads']}, torch {record['machine']['torch']} |",
        f"| wall time | {made['train_seconds']:.0f} s for {steps} steps, after "
        f"{made['pool_seconds']:.0f} s drawing its pool of "
        f"{made['train_config']['pool']} generated pictures; the whole benchmark "
        f"{record['wall_seconds'] / 60:.1f} minutes |",
        f"| threshold | {info['threshold']:.3f} (logit; chosen on {record['val_pictures']} + "
        f"{record['val_pictures']} validation pictures) |",
        "",
        f"## Held-out test sets ({record['sizes']['n']} real test-split renders against as many "
        "generated pictures each)",
        "",
        "| generated by | AUC | accuracy | caught | false alarms | AUC, snapped | "
        "accuracy, snapped |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in record["rows"]:
        p, s = r["plain"], r["plain_snapped"]
        lines.append(
            f"| {r['name']} | {p['auc']:.3f} | {p['accuracy']:.3f} | {p['caught']:.3f} | "
            f"{p['false_alarms']:.3f} | {s['auc']:.3f} | {s['accuracy']:.3f} |"
        )
    lines += [
        "",
        "Robustness and the augmented detector: benchmarks/README.md, 'Telling generated "
        "pictures from real ones'.",
        "",
    ]
    (weights / "detector.md").write_text("\n".join(lines))
    print(f"shipped {weights / 'detector.safetensors'} and its card")


if __name__ == "__main__":
    main()
