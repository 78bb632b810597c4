"""Notebook 15's watermark figures: a Tree-Ring key (minidiff.watermark) in the shipped pixel
model's starting noise, what finds it after attacks, what it costs, how averaging forges it, and a
signed PNG chunk (minidiff.provenance) as the contrast.

    python benchmarks/bench_watermark.py --threads 2

The 297 prompts of `minidiff evaluate` that name all four attributes (189 seen, 108 held-out) are
drawn once with the key and once without it, from the same seeds (chunk k of 48 prompts from seed
k), with DDIM at 20 steps and guidance 1. Every picture is walked back to its noise with 20 DDIM
steps and scored against the key (lower = watermarked); the threshold lets through 1% of the clean
pictures. Each attack is applied to both sets, and the true-positive rate at 1% false positives is
given twice: with the threshold from the attacked clean pictures (the paper's protocol) and with
the threshold from the unattacked ones (what a detector that does not know the attack uses).
Writes benchmarks/results/watermark.json and, beside it, watermark.npz (example pictures, the key,
the averaged pattern and every score) for the notebook.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from minidiff import detector, load_pretrained, provenance, watermark, world
from minidiff.device import cpu_name
from minidiff.evaluate import adherence, frechet_distance, prompt_set
from minidiff.judge import load_judge
from minidiff.watermark import WatermarkKey

KEY = WatermarkKey()  # seed 0, rings 1-6 of the red channel
OTHER_KEYS = [WatermarkKey(seed=s) for s in range(1, 21)]  # can it tell which key?
CHUNK = 48  # prompts per generate call; call k is seeded with k
FPR = 0.01
ATTACKS = {  # strengths, weakest first; a notebook slider scrubs them
    "blur": (0.5, 1.0, 1.5, 2.0),  # Gaussian sigma in pixels (detector.blur)
    "jpeg": (95, 75, 50, 25, 10),  # quality (detector.jpeg)
    "crop": (0.9, 0.75),  # share of the side kept around the centre, resized back to 32
    "rotation": (15, 75),  # degrees, corners filled with the background
}
STAMP = (1.0, 2.0, 4.0)  # how many times the averaged pattern is added (or taken away)
SECRET = b"bench_watermark"


def crop(pictures: np.ndarray, keep: float) -> np.ndarray:
    """The centre round(32 * keep) pixels a side, resized back to 32 (bilinear)."""
    side = round(world.IMAGE_SIZE * keep)
    lo = (world.IMAGE_SIZE - side) // 2
    box, full = (lo, lo, lo + side, lo + side), (world.IMAGE_SIZE, world.IMAGE_SIZE)
    return np.stack(
        [np.asarray(Image.fromarray(p).crop(box).resize(full, Image.BILINEAR)) for p in pictures]
    )


def rotate(pictures: np.ndarray, degrees: float) -> np.ndarray:
    """Rotated about the centre (bilinear), the corners filled with the world's background."""
    return np.stack(
        [
            np.asarray(
                Image.fromarray(p).rotate(degrees, Image.BILINEAR, fillcolor=world.BACKGROUND)
            )
            for p in pictures
        ]
    )


def attack(pictures: np.ndarray, name: str, strength) -> np.ndarray:
    if name == "blur":
        return detector.blur(pictures, strength)
    if name == "jpeg":
        return detector.jpeg(pictures, strength)
    if name == "crop":
        return crop(pictures, strength)
    if name == "rotation":
        return rotate(pictures, strength)
    raise ValueError(f"unknown attack {name!r}; the attacks are {', '.join(ATTACKS)}")


def auc(marked: np.ndarray, clean: np.ndarray) -> float:
    """P(a watermarked picture scores below a clean one): detector.roc_auc on negated scores,
    since here low means watermarked."""
    return detector.roc_auc(-clean, -marked)


def rates(marked: np.ndarray, clean: np.ndarray, threshold: float) -> dict:
    own = watermark.threshold_at(clean, FPR)  # from these (attacked) clean pictures
    return {
        "tpr_at_1pct_fpr": float((marked < own).mean()),
        "auc": auc(marked, clean),
        "tpr_fixed_threshold": float((marked < threshold).mean()),
        "fpr_fixed_threshold": float((clean < threshold).mean()),
        "mean_score_marked": float(marked.mean()),
        "mean_score_clean": float(clean.mean()),
    }


def table(result: dict) -> str:
    """The figures as text: detection under each attack, the cost, the averaging attack."""
    none = result["detection"]["none"]
    lines = [
        f"Tree-Ring on the shipped pixel model: {result['pictures_per_set']} pictures a set, "
        f"{result['steps']} DDIM steps both ways, {result['threads']} threads, "
        f"{result['seconds']['total']:.0f} s",
        "",
        f"{'attack':<16}{'TPR@1%FPR':>10}{'AUC':>8}{'TPR, clean thr.':>17}{'FPR, clean thr.':>17}",
        f"{'none':<16}{none['tpr_at_1pct_fpr']:>10.3f}{none['auc']:>8.3f}"
        f"{none['tpr_fixed_threshold']:>17.3f}{none['fpr_fixed_threshold']:>17.3f}",
    ]
    for name, rows in result["robustness"].items():
        for r in rows:
            lines.append(
                f"{name + ' ' + str(r['strength']):<16}{r['tpr_at_1pct_fpr']:>10.3f}"
                f"{r['auc']:>8.3f}{r['tpr_fixed_threshold']:>17.3f}{r['fpr_fixed_threshold']:>17.3f}"
            )
    other, cost = result["other_keys_tpr_at_1pct_fpr"], result["cost"]
    lines += [
        f"20 other keys on the marked pictures: TPR@1%FPR mean {other['mean']:.3f}, "
        f"max {other['max']:.3f}",
        "",
        f"{'':<10}{'adherence':>10}{'FD':>8}   (FD of two real sets: {cost['frechet_floor']:.2f})",
    ]
    for name in ("clean", "marked"):
        lines.append(
            f"{name:<10}{cost[name]['adherence_all']:>10.3f}{cost[name]['frechet_distance']:>8.2f}"
        )
    avg = result["averaging_attack"]
    lines += ["", "averaging attack: stamp, FPR on real renders (other keys), TPR after removal"]
    for f, r in zip(avg["forgery_on_real_renders"], avg["removal_from_held_back_marked"]):
        lines.append(
            f"  {f['stamp']:>4}: {f['fpr']:.3f} ({f['fpr_other_keys']:.3f}), {r['tpr']:.3f}"
        )
    lines += ["", f"signed PNG: {result['signed_png']}"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/watermark.json")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n", type=int, default=297, help="prompts (pictures per set)")
    parser.add_argument("--steps", type=int, default=20, help="DDIM steps, both ways")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    seconds = {}

    def lap(name: str) -> None:
        seconds[name] = round(time.perf_counter() - start - sum(seconds.values()), 1)
        print(f"  {name}: {seconds[name]:.0f} s", flush=True)

    pipe, judge = load_pretrained("pixel", device="cpu"), load_judge()
    parts = prompt_set()
    prompts = (parts["seen"] + parts["held_out"])[: args.n]
    chunks = [prompts[i : i + CHUNK] for i in range(0, len(prompts), CHUNK)]

    def draw(key):
        return np.concatenate(
            [
                watermark.generate(pipe, c, key=key, seed=k, steps=args.steps)
                for k, c in enumerate(chunks)
            ]
        )

    marked, clean = draw(KEY), draw(None)
    lap("drawing")

    # -- what the key costs the pictures: same prompts, same seeds ---------------------------------
    real = world.render_prompts(prompts, seed=[0, 1])
    real_features = judge.embed_pictures(real)
    cost = {
        name: {
            "adherence_all": adherence(prompts, judge.predict(pictures))["all"],
            "frechet_distance": frechet_distance(judge.embed_pictures(pictures), real_features),
        }
        for name, pictures in (("clean", clean), ("marked", marked))
    }
    cost["frechet_floor"] = frechet_distance(
        judge.embed_pictures(world.render_prompts(prompts, seed=[0, 2])), real_features
    )
    cost["pixels_changed"] = float((marked != clean).any(-1).mean())
    cost["mean_abs_change"] = float(np.abs(marked.astype(int) - clean).mean())
    lap("cost")

    # -- detection, clean and after each attack ----------------------------------------------------
    def walk_back(pictures):
        return torch.cat(
            [
                watermark.invert(pipe, pictures[i : i + 100], args.steps)
                for i in range(0, len(pictures), 100)
            ]
        )

    x_marked, x_clean = walk_back(marked), walk_back(clean)
    s_marked, s_clean = watermark.score(x_marked, KEY), watermark.score(x_clean, KEY)
    threshold = watermark.threshold_at(s_clean, FPR)
    detection = {"none": rates(s_marked, s_clean, threshold)}
    all_scores = {"none/marked": s_marked, "none/clean": s_clean}
    # each other key with its own threshold at 1% of the same clean pictures
    other_thresholds = [
        watermark.threshold_at(watermark.score(x_clean, k), FPR) for k in OTHER_KEYS
    ]

    def other_keys_flag(x_hat: torch.Tensor) -> list[float]:
        """The share of these pictures that each other key calls its own."""
        return [
            float((watermark.score(x_hat, k) < t).mean())
            for k, t in zip(OTHER_KEYS, other_thresholds, strict=True)
        ]

    other = other_keys_flag(x_marked)
    lap("detection")
    robustness = {}
    for name, strengths in ATTACKS.items():
        robustness[name] = []
        for strength in strengths:
            a_marked = watermark.score(walk_back(attack(marked, name, strength)), KEY)
            a_clean = watermark.score(walk_back(attack(clean, name, strength)), KEY)
            row = {"strength": strength, **rates(a_marked, a_clean, threshold)}
            robustness[name].append(row)
            all_scores[f"{name}={strength}/marked"] = a_marked
            all_scores[f"{name}={strength}/clean"] = a_clean
            print(f"  {name} {strength}: TPR {row['tpr_at_1pct_fpr']:.2f}, AUC {row['auc']:.3f}")
        lap(name)

    # -- the averaging attack [Yang et al. 2024]: the pattern from the attacker's half ------------
    pattern = marked[0::2].astype(np.float64).mean(0) - clean[0::2].astype(np.float64).mean(0)
    renders = world.render_prompts(prompts, seed=[0, 3])
    held_back = marked[1::2]  # the pictures the attacker did not average

    def stamp(pictures, s):
        return np.clip(np.rint(pictures + s * pattern), 0, 255).astype(np.uint8)

    forged, removed = [], []
    for s in (0.0, *STAMP):
        x_forged = walk_back(stamp(renders, s))
        s_forged = watermark.score(x_forged, KEY)
        s_removed = watermark.score(walk_back(stamp(held_back, -s)), KEY)
        forged.append(
            {
                "stamp": s,
                "fpr": float((s_forged < threshold).mean()),
                "fpr_other_keys": float(np.mean(other_keys_flag(x_forged))),
            }
        )
        removed.append({"stamp": s, "tpr": float((s_removed < threshold).mean())})
        all_scores[f"renders+{s}pattern"] = s_forged
        print(
            f"  stamp {s}: forged FPR {forged[-1]['fpr']:.2f}, removed TPR {removed[-1]['tpr']:.2f}"
        )
    averaging = {
        "averaged": {"marked": len(marked[0::2]), "clean": len(clean[0::2])},
        "pattern_abs_mean": float(np.abs(pattern).mean()),
        "pattern_abs_max": float(np.abs(pattern).max()),
        "forgery_on_real_renders": forged,
        "removal_from_held_back_marked": removed,
    }
    lap("averaging")

    # -- the signed PNG chunk ----------------------------------------------------------------------
    with tempfile.TemporaryDirectory() as tmp:
        signed = provenance.save_signed(marked[0], Path(tmp) / "signed.png", SECRET)
        with Image.open(signed) as f:
            f.save(Path(tmp) / "again.png")
            f.convert("RGB").save(Path(tmp) / "again.jpg", quality=95)
        signature = {
            "signed": provenance.verify(signed, SECRET),
            "saved_again_png": provenance.verify(Path(tmp) / "again.png", SECRET),
            "saved_again_jpeg": provenance.verify(Path(tmp) / "again.jpg", SECRET),
            "other_secret": provenance.verify(signed, b"someone else"),
        }

    seconds["total"] = round(time.perf_counter() - start, 1)
    result = {
        "machine": cpu_name(),
        "threads": args.threads,
        "torch": torch.__version__,
        "key": vars(KEY),
        "pictures_per_set": len(prompts),
        "steps": args.steps,
        "fpr": FPR,
        "threshold": threshold,
        "cost": cost,
        "detection": detection,
        "other_keys_tpr_at_1pct_fpr": {
            "mean": float(np.mean(other)),
            "max": float(np.max(other)),
            "each": other,
        },
        "robustness": robustness,
        "averaging_attack": averaging,
        "signed_png": signature,
        "seconds": seconds,
        "prompts_shown": prompts[:8],
    }
    size = world.IMAGE_SIZE
    x_T = pipe.prepare(prompts[:8], 1, sampler="ddim", seed=0).x_T
    examples = {
        "clean": clean[:8],
        "marked": marked[:8],
        "noise_clean": x_T.numpy(),
        "noise_marked": watermark.watermark_noise(x_T, KEY).numpy(),
        "key_pattern": watermark.key_pattern(KEY, size).real.numpy(),
        "key_mask": watermark.key_mask(KEY, size).numpy(),
        # the real part of the walked-back noise's spectrum, averaged: the key shows as rings
        # (ring 0, the middle, holds the pictures' light mean; hide it to see them)
        "spectrum_marked": watermark.centred_spectrum(x_marked[:, KEY.channel])
        .real.mean(0)
        .numpy(),
        "spectrum_clean": watermark.centred_spectrum(x_clean[:, KEY.channel]).real.mean(0).numpy(),
        "averaged_pattern": pattern,
        "renders": renders[:8],
        "forged": stamp(renders[:8], STAMP[0]),
        **{
            f"attacked/{name}={s}": attack(marked[:8], name, s)
            for name, strengths in ATTACKS.items()
            for s in strengths
        },
        **{f"scores/{k}": v for k, v in all_scores.items()},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    np.savez_compressed(out.with_suffix(".npz"), **examples)
    print(table(result))
    print(f"wrote {out} and {out.with_suffix('.npz')}")


if __name__ == "__main__":
    main()
