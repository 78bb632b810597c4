"""The failure gallery of notebook 09: which settings make which failures more common.

    python benchmarks/failure_census.py      # about 3 minutes on 2 CPU threads

Draws the 432 prompts that name every attribute (one picture each) under each setting of
minidiff.course.gallery.SETTINGS (the defaults, and one knob changed at a time), classifies every
picture (minidiff.course.measuring.failures), writes the shares to
benchmarks/results/failure_census.json and the gallery to figures/09_failure_gallery.png; also
measures the prompts this world cannot draw (two objects).
"""

import json
import sys

import numpy as np
import torch

from minidiff import load_pretrained
from minidiff.course import gallery
from minidiff.course.paths import FIGURES_DIR, RESULTS_DIR
from minidiff.judge import load_judge


def main() -> None:
    torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)  # threads
    pipe, judge = load_pretrained(device="cpu"), load_judge()
    census = gallery.census(pipe, judge)
    print(gallery.rates_table(census))
    gallery.gallery_figure(census, FIGURES_DIR / "09_failure_gallery.png")
    two = gallery.two_object_prompts(pipe, judge)
    for prompt, r in two.items():
        print(
            f"{prompt!r}: objects per picture {np.bincount(r['objects']).tolist()}, "
            f"first colour {r['first']:.2f}, second colour {r['second']:.2f}, colours "
            f"{r['colours']}, shapes {r['shapes']}"
        )
    result = {
        "pictures_per_setting": len(gallery.full_prompts()),
        "rates": {k: v["rates"] for k, v in census.items()},
        "counts": {
            k: {kind: int(m.sum()) for kind, m in v["kinds"].items()} for k, v in census.items()
        },
        "two_objects": {
            p: {
                "objects": np.bincount(r["objects"], minlength=3).tolist(),
                "first": r["first"],
                "second": r["second"],
                "colours": r["colours"],
                "shapes": r["shapes"],
            }
            for p, r in two.items()
        },
    }
    path = RESULTS_DIR / "failure_census.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
