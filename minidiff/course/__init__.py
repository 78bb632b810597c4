"""What the course notebooks share: which model to load, the training snapshots, showing pictures.

    from minidiff import course
    pipe = course.pipe()                     # the shipped model (or $MINIDIFF_WEIGHTS)
    course.show(pipe.generate("a red star", n=8, seed=0))

Two environment variables let a course maintainer point every notebook at other weights without
editing them: MINIDIFF_WEIGHTS (a model file or training checkpoint) and MINIDIFF_SNAPSHOTS (a
folder of step-XXXXXX.safetensors files). MINIDIFF_DEVICE picks the device ("cpu", "cuda", "mps");
by default it is chosen automatically.
"""

import os
import re
from pathlib import Path

import numpy as np

from minidiff.course.plotting import bare

PACKAGE = Path(__file__).resolve().parents[1]  # minidiff/
SNAPSHOT_DIR = PACKAGE / "weights" / "snapshots"


def pipe(device: str | None = None):
    """The shipped text-to-image model as a Pipeline, or the file named by $MINIDIFF_WEIGHTS
    (minidiff.load_pretrained reads it), on $MINIDIFF_DEVICE or the best device there is."""
    from minidiff import load_pretrained

    return load_pretrained(device=device)


def snapshot_paths() -> dict[int, Path]:
    """{training step: weights file} of the shipped training snapshots, oldest first.

    Read from minidiff/weights/snapshots/, or from the folder $MINIDIFF_SNAPSHOTS if that is set.
    """
    folder = Path(os.environ.get("MINIDIFF_SNAPSHOTS") or SNAPSHOT_DIR)
    found = {}
    for path in folder.glob("step-*.safetensors"):
        match = re.fullmatch(r"step-(\d+)\.safetensors", path.name)
        if match:
            found[int(match.group(1))] = path
    if not found:
        raise FileNotFoundError(f"no training snapshots (step-XXXXXX.safetensors) in '{folder}'")
    return dict(sorted(found.items()))


def show(
    images: np.ndarray,
    ncol: int | None = None,
    titles: list[str] | None = None,
    row_labels: list[str] | None = None,
    scale: float = 1.0,
    title: str | None = None,
) -> None:
    """Show uint8 pictures (N, 32, 32, 3) in a grid, with optional titles.

    titles label each picture; row_labels label each row (for a prompt x seed grid, say).
    """
    import matplotlib.pyplot as plt

    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must have shape (N, H, W, 3), got {images.shape}")
    n = len(images)
    ncol = ncol or min(n, 8)
    nrow = -(-n // ncol)
    if titles is not None and len(titles) != n:
        raise ValueError(f"got {len(titles)} titles for {n} pictures")
    if row_labels is not None and len(row_labels) != nrow:
        raise ValueError(f"got {len(row_labels)} row labels for {nrow} rows")
    label_width = 2.2 if row_labels else 0.0
    fig, axes = plt.subplots(
        nrow,
        ncol,
        squeeze=False,
        figsize=(scale * (1.1 * ncol + label_width), scale * (1.1 * nrow + (0.3 if title else 0))),
    )
    for i, ax in enumerate(axes.flat):
        bare(ax)
        if i < n:
            ax.imshow(images[i], interpolation="nearest")
            if titles is not None:
                ax.set_title(titles[i], fontsize=8)
    if row_labels is not None:
        for r, label in enumerate(row_labels):
            axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    plt.show()
