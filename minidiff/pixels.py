"""Pictures <-> model space: uint8 (N, H, W, 3) in [0, 255] <-> float (N, 3, H, W) in [-1, 1].

The world (minidiff.world) draws pictures as people see them; the networks read and write the
other layout and range. These three functions are the only places that convert.
"""

import numpy as np
import torch

from minidiff import world


def to_tensor(images: np.ndarray):
    """uint8 (N, H, W, 3) in [0, 255] -> float32 torch tensor (N, 3, H, W) in [-1, 1]."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(
            f"to_tensor expects uint8 pictures of shape (N, H, W, 3), got "
            f"{images.dtype} {images.shape}; for one picture pass image[None]"
        )
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float()  # (N, 3, H, W)
    return x / 127.5 - 1


def picture_to_tensor(image: np.ndarray, name: str = "image", size: int = world.IMAGE_SIZE):
    """One picture, uint8 (size, size, 3) -> float32 tensor (1, 3, size, size) in [-1, 1]; size
    32 for the one-object world, 48 for scenes."""
    image = np.asarray(image)
    expected = (size, size, 3)
    if image.shape != expected or image.dtype != np.uint8:
        raise ValueError(
            f"{name} must be a uint8 array of shape {expected}, got {image.dtype} {image.shape}"
        )
    return to_tensor(image[None])


def to_uint8(x) -> np.ndarray:
    """Float tensor (N, 3, H, W), nominally in [-1, 1] -> uint8 (N, H, W, 3); clips outside."""
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"to_uint8 expects a tensor of shape (N, 3, H, W), got {tuple(x.shape)}")
    x = ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round()
    return x.to("cpu").byte().permute(0, 2, 3, 1).numpy()  # (N, H, W, 3)
