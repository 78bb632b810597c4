"""Measuring what goes wrong (notebook 09): the failure classifier, the share's confidence
interval, and the perfect generator that every metric is read against.

    from minidiff.course import measuring
    kinds = measuring.failures(pictures, prompts, judge)  # {kind: (N,) bool}

The judge (minidiff.judge) answers four questions about a picture it assumes holds one object.
`failures` also looks at the pixels themselves (minidiff.course.blobs: which pixels are not
background, how many separate blobs they form, how large the blob is, how pure its colour). That
finds the failures the judge cannot name: a blank picture, two objects, a malformed or smeared one.
"""

import math

import numpy as np

from minidiff import world
from minidiff.course.blobs import blob_sizes

CORE = 120  # the object's own colour is read from pixels this far from the background (not its
# anti-aliased edge, which blends into the background)
OFF_PALETTE = 40  # a core colour further than this from every palette colour is off-palette:
# 432 rendered pictures are at most 25 away (99th percentile), the shipped model's at most 30
KINDS = (
    "blank",
    "two objects",
    "malformed",
    "off-palette colour",
    "wrong colour",
    "wrong shape",
    "wrong size",
    "wrong position",
)


# foreground pixels / width^2 of each shape: the mean over 400 rendered test pictures, measured
# with blob_sizes (anti-aliased edges count, so a square covers more than its width squared)
FILL = {"circle": 0.85, "square": 1.12, "triangle": 0.50, "star": 0.48}


def _expected_area(shape: str, size: str) -> float:
    """Foreground pixels of a shape of this size in the world (see FILL)."""
    return FILL[shape] * world.WIDTHS[size] ** 2


def failures(pictures: np.ndarray, prompts: list[str], judge) -> dict[str, np.ndarray]:
    """Which pictures fail, and how: {kind: (N,) bool} for every kind in KINDS (a picture may
    fail in several ways).

    - blank: no blob at all;
    - two objects: two or more blobs;
    - malformed: one blob, but its area is under half or over twice what the judged shape and
      size cover in the world, or the judge is unsure of the shape (probability < 0.6);
    - off-palette colour: the mean colour of the object's core (pixels at least CORE from the
      background) is further than OFF_PALETTE (0..255 units) from every colour of the palette: a
      blend of two colours, a faded object;
    - wrong colour / shape / size / position: the judge reads another value than the prompt names.
    """
    import torch

    pictures = np.asarray(pictures)
    sizes = blob_sizes(pictures)
    blobs = np.array([len(s) for s in sizes])
    out = {"blank": blobs == 0, "two objects": blobs >= 2}
    judged = judge.predict(pictures)
    with torch.no_grad():
        logits = judge(pictures)
    shape_p = torch.softmax(logits["shape"], dim=-1).max(dim=-1).values.cpu().numpy()
    area = np.array([s[0] if s else 0 for s in sizes])
    expected = np.array(
        [
            _expected_area(world.SHAPES[s], world.SIZES[z])
            for s, z in zip(judged["shape"], judged["size"])
        ]
    )
    one = blobs == 1
    out["malformed"] = one & ((area < expected / 2) | (area > 2 * expected) | (shape_p < 0.6))
    far = np.abs(pictures.astype(np.int16) - np.array(world.BACKGROUND, np.int16)).max(axis=-1)
    core = far > CORE
    mean_colour = np.array(
        [
            p[m].mean(axis=0) if m.any() else np.full(3, np.nan)
            for p, m in zip(pictures.astype(float), core)
        ]
    )
    palette = np.array(list(world.PALETTE.values()), float)
    distance = np.linalg.norm(mean_colour[:, None] - palette[None], axis=-1).min(axis=1)
    out["off-palette colour"] = one & ((distance > OFF_PALETTE) | ~core.any(axis=(1, 2)))
    for attribute in world.ATTRIBUTES:
        asked = [world.parse_prompt(p).get(attribute) for p in prompts]
        values = world.ATTRIBUTES[attribute]
        out[f"wrong {attribute}"] = np.array(
            [a is not None and values[j] != a for a, j in zip(asked, judged[attribute])]
        )
    return {k: out[k] for k in KINDS}


def failure_rates(kinds: dict[str, np.ndarray]) -> dict[str, float]:
    """The share of pictures of each kind, and of pictures with any failure ("any")."""
    rates = {k: float(v.mean()) for k, v in kinds.items()}
    rates["any"] = float(np.logical_or.reduce(list(kinds.values())).mean())
    return rates


# -- skew ----------------------------------------------------------------------------------------
def wilson(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95% Wilson score interval of a share hits / n."""
    if n == 0:
        return (0.0, 1.0)
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


class PerfectGenerator:
    """A "model" that draws exactly what it is asked: the world's own renderer, with every
    attribute a prompt leaves out drawn uniformly. What evaluate() reports for it is the best any
    model can score with this judge and this prompt set: the scale the other numbers are read on."""

    def generate(
        self, prompts, n: int = 1, steps=None, guidance_scale=None, sampler=None, seed: int = 0
    ) -> np.ndarray:
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        repeated = [p for p in prompts for _ in range(n)]
        return world.render_prompts(repeated, seed=[seed, 7])
