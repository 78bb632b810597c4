"""The concept reader: a program that reads one object of the extended world (minidiff.concepts):
its colour, its shape (the cross among them), its size, its position and its style (flat or
outline).

    readings = read_concepts(images)   # uint8 (N, 32, 32, 3) -> N Readings (None: nothing there)

The world's judge was trained on four flat shapes and reads a cross as whichever of them it
resembles; a reader for new things needs no training when the pictures come from a known
program. It is the scene judge's method (minidiff.scene_judge) with one step added, and every
step can be checked:

1. **Segment.** The pixels far from the background, in 8-connected blobs; the blob with the most
   coverage is the object, and it claims the pixels next to it (its soft edge).
2. **Colour.** The palette colour whose background-to-colour segment fits those pixels best;
   projected on it, each pixel gives alpha, the share of it the object covers.
3. **Fill the holes.** The background pixels that cannot reach the picture's border without
   crossing the object are inside it: an outline encloses them, a flat fill has none. The filled
   object is the flat shape of its outline; the share of it left empty is its hollowness, and
   more than HOLLOW is the outline style.
4. **Shape, by analysis by synthesis.** Redraw each of the five shapes flat (concepts.coverage) at
   the filled object's centroid, with the width that gives its area, sharp and blurred, and keep
   the one that fits best.
5. **Size**: that width against the geometric mean of the small and large widths. **Position**:
   the nearest of the nine places the renderer puts a box of that shape and size.

Its agreement with the truth is measured on rendered pictures, sharp and blurred with noise, in
tests/test_concepts.py and benchmarks/bench_finetune.py.
"""

import math
from dataclasses import dataclass

import numpy as np

from . import concepts, world
from .scene_judge import (
    BACKGROUND,
    FOREGROUND_ALPHA,
    blobs,
    blur3,
    neighbour_max,
    segment_fit,
    shape_constants,
)

HOLLOW = 0.1  # the share of the filled object left empty above which it is read as an outline
OBJECT_ALPHA = 0.2  # a pixel with this much of the object's colour blocks the way to the border
CHUNK = 200


@dataclass(frozen=True)
class Reading:
    colour: str
    shape: str
    size: str
    position: str
    style: str
    hollowness: float  # the share of the filled object that is empty: ~0 flat, ~0.6 outline
    fit: float  # squared error of the best redrawn shape / its area: 0 is perfect


# per shape of concepts.SHAPES, the cross among them, (5,) each
AREA_PER_WIDTH2, CENTROID_DX, CENTROID_DY = shape_constants(concepts.SHAPES, concepts.coverage)


def _places(shape: str, size: str) -> np.ndarray:
    """The box centres (9, 2) at which the renderer puts a shape of this size, without jitter."""
    hpw = concepts.HEIGHT_PER_WIDTH[shape]
    half = np.full(6, 0.5)  # uniforms of 0.5: no jitter
    return np.array(
        [world.place(hpw, "red", size, p, half)[:2] for p in world.POSITIONS], dtype=np.float32
    )


PLACES = {(s, z): _places(s, z) for s in concepts.SHAPES for z in world.SIZES}
SIZE_SPLIT = math.sqrt(world.WIDTHS["small"] * world.WIDTHS["large"])


def _reach_border(blocked: np.ndarray) -> np.ndarray:
    """The pixels (N, S, S) that reach the border through unblocked 4-neighbours."""
    reach = np.zeros_like(blocked)
    reach[:, [0, -1], :] = True
    reach[:, :, [0, -1]] = True
    reach &= ~blocked
    while True:
        p = np.pad(reach, ((0, 0), (1, 1), (1, 1)))
        grown = (p[:, 1:-1, 1:-1] | p[:, :-2, 1:-1] | p[:, 2:, 1:-1] | p[:, 1:-1, :-2]) | p[
            :, 1:-1, 2:
        ]
        grown &= ~blocked
        if np.array_equal(grown, reach):
            return reach
        reach = grown


def read_concepts(images: np.ndarray) -> list[Reading | None]:
    """uint8 (N, 32, 32, 3) pictures of one object each -> what the reader sees in each, or None
    where it finds no object."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (32, 32, 3):
        raise ValueError(
            f"read_concepts expects uint8 pictures of shape (N, 32, 32, 3), got "
            f"{images.dtype} {images.shape}"
        )
    chunks = [images[start : start + CHUNK] for start in range(0, len(images), CHUNK)]
    return [reading for chunk in chunks for reading in _read(chunk)]


def _read(images: np.ndarray) -> list[Reading | None]:
    """The five steps of the module docstring on one chunk."""
    n, side = images.shape[:2]
    alpha6, off6 = segment_fit(images.astype(np.float32) - BACKGROUND)  # (N, S, S, 6)
    fg = alpha6.max(axis=-1) >= FOREGROUND_ALPHA
    # 1. segment: the blob with the most foreground pixels, and its edge
    labels = blobs(fg)
    out: list[Reading | None] = []
    for i in range(n):
        ids, counts = np.unique(labels[i][fg[i]], return_counts=True)
        if len(ids) == 0:
            out.append(None)
            continue
        core = labels[i] == ids[counts.argmax()]
        own = neighbour_max(core[None].astype(np.uint8))[0].astype(bool)
        # 2. colour, and alpha along it
        colour = int((off6[i][core]).sum(axis=0).argmin())
        a = np.where(own, np.clip(alpha6[i][..., colour], 0, 1), 0.0)  # (S, S)
        # 3. fill the holes
        inside = ~_reach_border((a >= OBJECT_ALPHA)[None])[0]
        filled = np.where(inside & (a < OBJECT_ALPHA), 1.0, a)  # (S, S)
        area = float(filled.sum())
        if area < 4.0:
            out.append(None)
            continue
        hollow = 1.0 - float(a.sum()) / area
        # 4. shape: each shape redrawn flat where the filled object is, with its area
        yy, xx = np.mgrid[0:side, 0:side] + 0.5
        mx, my = (filled * xx).sum() / area, (filled * yy).sum() / area
        w = np.sqrt(area / AREA_PER_WIDTH2)  # (5,)
        cx, cy = mx - CENTROID_DX * w, my - CENTROID_DY * w
        drawn = concepts.coverage(list(concepts.SHAPES), cx, cy, np.minimum(w, side - 2))
        sharp = ((filled - drawn) ** 2).sum(axis=(1, 2))
        blurred = ((filled - blur3(drawn)) ** 2).sum(axis=(1, 2))
        errors = np.minimum(sharp, blurred) / area
        s = int(errors.argmin())
        shape = concepts.SHAPES[s]
        # 5. size and position
        size = "small" if w[s] < SIZE_SPLIT else "large"
        places = PLACES[(shape, size)]
        where = int(((places - np.array([cx[s], cy[s]])) ** 2).sum(axis=1).argmin())
        out.append(
            Reading(
                world.COLOURS[colour],
                shape,
                size,
                world.POSITIONS[where],
                "outline" if hollow > HOLLOW else "flat",
                hollow,
                float(errors[s]),
            )
        )
    return out


ATTRIBUTES = ("colour", "shape", "size", "position", "style")


def agreement(truth: list[concepts.Drawing], read: list[Reading | None]) -> dict[str, float]:
    """The share of pictures read right, per attribute and for all five at once ("all")."""
    hits = {k: 0 for k in (*ATTRIBUTES, "all")}
    for d, r in zip(truth, read, strict=True):
        ok = {k: r is not None and getattr(r, k) == getattr(d, k) for k in ATTRIBUTES}
        for k, v in ok.items():
            hits[k] += v
        hits["all"] += all(ok.values())
    return {k: v / len(truth) for k, v in hits.items()}
