"""Coverage: does a model use every way a prompt leaves open, or always draw the same picture?

"a red circle" says nothing of size or place, so the world allows 2 x 9 = 18 (size, position)
cells for it, and its training pictures fill them evenly. A model that covers the data draws them
all about equally often; a collapsed one (a GAN's known failure, mode collapse) draws a few.
Two numbers, from the judge's readings of the pictures of one prompt:

- **coverage**: the share of the K cells that appear at all;
- **KL to uniform**: KL(p || u) = sum_i p_i log(K p_i), 0 for a model that spreads evenly over
  the cells and log K (2.89 for 18 cells) for one that always draws the same cell.

A finite sample of a perfectly even model scores below 1 and above 0; `uniform_reference` says by
how much, so a model's numbers are read beside it.
"""

import numpy as np

from . import world

POSITIONS = len(world.ATTRIBUTES["position"])
CELLS = len(world.ATTRIBUTES["size"]) * POSITIONS  # (size, position) pairs: 18


def cells(judged: dict[str, np.ndarray]) -> np.ndarray:
    """The (size, position) cell of each judged picture: size index * 9 + position index, (N,)."""
    return np.asarray(judged["size"]) * POSITIONS + np.asarray(judged["position"])


def histogram(judged: dict[str, np.ndarray]) -> np.ndarray:
    """How many pictures fall in each (size, position) cell: (2, 9) counts."""
    return np.bincount(cells(judged), minlength=CELLS).reshape(-1, POSITIONS)


def coverage(counts: np.ndarray) -> float:
    """The share of cells with at least one picture."""
    counts = np.asarray(counts).ravel()
    return float((counts > 0).mean())


def kl_to_uniform(counts: np.ndarray) -> float:
    """KL(p || uniform) = sum_i p_i log(K p_i) of a histogram of K cells (0 log 0 = 0)."""
    counts = np.asarray(counts, dtype=np.float64).ravel()
    if counts.sum() <= 0:
        raise ValueError("the histogram is empty; judge at least one picture")
    p = counts / counts.sum()
    p = p[p > 0]
    return float((p * np.log(len(counts) * p)).sum())


def uniform_reference(pictures: int, draws: int = 2000, seed: int = 0) -> dict[str, float]:
    """What a perfectly even model of `pictures` pictures scores, on average over `draws`
    samples: {"coverage": ..., "kl_to_uniform": ...}."""
    rng = np.random.default_rng(seed)
    samples = [
        np.bincount(rng.integers(CELLS, size=pictures), minlength=CELLS) for _ in range(draws)
    ]
    return {
        "coverage": float(np.mean([coverage(c) for c in samples])),
        "kl_to_uniform": float(np.mean([kl_to_uniform(c) for c in samples])),
    }
