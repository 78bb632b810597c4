"""Pictures to PNG: lay a batch of uint8 pictures out as a grid and save it."""

import os

import numpy as np


def make_grid(
    images: np.ndarray, ncol: int | None = None, pad: int = 2, scale: int = 4, background: int = 255
) -> np.ndarray:
    """(N, H, W, 3) uint8 -> one (rows*H', cols*W', 3) uint8 picture, each cell scaled up
    `scale` times."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(
            f"images must be uint8 of shape (N, H, W, 3), got {images.dtype} {images.shape}"
        )
    n, h, w, _ = images.shape
    ncol = ncol or int(np.ceil(np.sqrt(n)))
    nrow = int(np.ceil(n / ncol))
    big = images.repeat(scale, axis=1).repeat(scale, axis=2)  # nearest-neighbour: crisp pixels
    H, W = h * scale, w * scale
    out = np.full((nrow * (H + pad) + pad, ncol * (W + pad) + pad, 3), background, np.uint8)
    for i in range(n):
        r, c = divmod(i, ncol)
        out[
            pad + r * (H + pad) : pad + r * (H + pad) + H,
            pad + c * (W + pad) : pad + c * (W + pad) + W,
        ] = big[i]
    return out


def save_png(image: np.ndarray, path: str | os.PathLike) -> None:
    from PIL import Image

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    Image.fromarray(image).save(path)
