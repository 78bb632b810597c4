"""The bias experiment of notebook 09: does a model trained on skewed data reproduce the skew,
amplify it or reduce it?

    python benchmarks/bias_skew.py           # about 2 minutes on 2 CPU threads

The skewed model (minidiff/weights/minidiff-skewed.safetensors, `minidiff train --preset
skewed`) saw a training stream where 80% of the stars whose caption names no colour are yellow
(minidiff.world.Skew()). It is compared, on the same prompts and seeds, with a model trained by
the same recipe on the unskewed stream (runs/fast2, `minidiff train --preset fast-pixel`,
then named fast) and with the
shipped model. Prompts: "a star" at every size and position, or none (30 prompts), 16 pictures
each; the share of yellow stars the judge reads, with a 95% Wilson interval. The same for
circles, squares and triangles checks that the skew did not leak to other shapes. Writes
benchmarks/results/bias_skew.json.
"""

import json
import sys

import torch

from minidiff import load_pretrained, world
from minidiff.course.bias import skew_prompts, skew_share
from minidiff.course.measuring import wilson
from minidiff.course.paths import RESULTS_DIR, RUNS_DIR
from minidiff.judge import load_judge

MODELS = {
    "skewed": "skewed",
    "unskewed, same recipe": RUNS_DIR / "fast2" / "model.safetensors",
    "shipped": "pixel",
}


def main() -> None:
    torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)  # threads
    judge, skew = load_judge(), world.Skew()
    hits, total = world.skew_count(skew, n=50_000)  # the training stream the model saw
    low, high = wilson(hits, total)
    result = {
        "skew": vars(skew),
        "training": {"share": hits / total, "low": low, "high": high, "pictures": total},
        "models": {},
    }
    print(f"training stream: {hits / total:.3f} [{low:.3f}, {high:.3f}] of {total} stars")
    for label, weights in MODELS.items():
        pipe = load_pretrained(weights, device="cpu")
        rows = {}
        for guidance in (1.0, 1.5, 3.0):
            m = skew_share(pipe, skew, judge, n=16, seed=0, guidance_scale=guidance)
            rows[f"star, guidance {guidance:g}"] = {
                k: m[k] for k in ("share", "low", "high", "pictures", "counts")
            }
            print(
                f"{label}, guidance {guidance}: {m['share']:.3f} [{m['low']:.3f}, "
                f"{m['high']:.3f}] {m['counts']}",
                flush=True,
            )
        for shape in ("circle", "square", "triangle"):
            other = world.Skew(given_value=shape)
            m = skew_share(pipe, other, judge, n=8, seed=0)
            rows[f"{shape}, guidance 1"] = {
                k: m[k] for k in ("share", "low", "high", "pictures", "counts")
            }
            print(f"{label}, {shape}: yellow {m['share']:.3f}", flush=True)
        result["models"][label] = rows
    result["prompts"] = skew_prompts(skew)
    path = RESULTS_DIR / "bias_skew.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
