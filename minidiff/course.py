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

SNAPSHOT_DIR = Path(__file__).parent / "weights" / "snapshots"
FIGURES = Path(__file__).resolve().parent.parent / "figures"  # the repository's figures/ folder


def pipe(device: str | None = None):
    """The shipped text-to-image model as a Pipeline, or the file named by $MINIDIFF_WEIGHTS."""
    from . import load_pretrained

    return load_pretrained(os.environ.get("MINIDIFF_WEIGHTS") or None,
                           device=device or os.environ.get("MINIDIFF_DEVICE") or None)


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


def show(images: np.ndarray, ncol: int | None = None, titles: list[str] | None = None,
         row_labels: list[str] | None = None, scale: float = 1.0,
         title: str | None = None) -> None:
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
    fig, axes = plt.subplots(nrow, ncol, squeeze=False,
                             figsize=(scale * (1.1 * ncol + label_width),
                                      scale * (1.1 * nrow + (0.3 if title else 0))))
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
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


def figure(name: str) -> Path:
    """The path of a static figure in the repository's figures/ folder (see `minidiff figures`)."""
    return FIGURES / name


# -- live parts not in minidiff.widgets: the prompt box (00), the training snapshots (03) ---------
def prompt_box(pipe, prompt: str = "a small blue circle on the left", n: int = 8, seed: int = 0):
    """A prompt, a Generate button and the grid of pictures it draws (notebook 00).

    Nothing runs until the button is pressed, except one grid for the starting prompt. Errors
    (an unknown word, a too long prompt) are shown under the box in the learner's words.
    """
    import warnings

    import ipywidgets as W

    from .grid import make_grid
    from .widgets import png

    text = W.Text(value=prompt, description="prompt", layout=W.Layout(width="460px"))
    count = W.IntSlider(value=n, min=1, max=16, description="pictures")
    seed_box = W.IntText(value=seed, description="seed", layout=W.Layout(width="160px"))
    button = W.Button(description="Generate", button_style="primary")
    message = W.HTML()
    image = W.Image(format="png")

    def draw(_=None):
        button.disabled, button.description = True, "drawing..."
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                pictures = pipe.generate(text.value, n=count.value, seed=int(seed_box.value))
            image.value = png(make_grid(pictures, ncol=min(8, count.value), scale=5))
            message.value = "<br>".join(f"⚠ {w.message}" for w in caught)
        except ValueError as e:  # unknown words, empty prompt: say so, keep the last grid
            message.value = f"<b>✗</b> {e}"
        finally:
            button.disabled, button.description = False, "Generate"

    button.on_click(draw)
    draw()
    box = W.VBox([W.HBox([text, button]), W.HBox([count, seed_box]), message, image])
    box.static_figure = "figures/00_prompt_box.png"
    return box


def snapshot_explorer(pictures: dict, ncol: int = 8):
    """Slider over training steps, showing the pictures each snapshot drew (notebook 03).

    pictures: {training step: uint8 (N, 32, 32, 3)}, the same prompts and seed for every step,
    drawn beforehand, so that moving the slider only picks a grid.
    """
    from .grid import make_grid
    from .widgets import SCALE, Explorer, W

    class SnapshotExplorer(Explorer):
        static_figure = "figures/03_training_snapshots.gif"

        def __init__(self):
            options = [(f"{step:,}", step) for step in pictures]
            slider = W.SelectionSlider(options=options, value=options[-1][1],
                                       description="step", layout=W.Layout(width="600px"))
            super().__init__(slider, caption="the same prompts and the same noise, drawn by the "
                             "model after each number of training steps")
            self._set_frames({step: (make_grid(images, ncol=ncol, scale=SCALE // 2),
                                     f"after {step:,} training steps")
                              for step, images in pictures.items()})

    return SnapshotExplorer()
