"""Objects in a picture without the judge: which pixels are not background, and how many separate
blobs they form (notebooks 08 and 09).

    from minidiff.course.blobs import count_objects
    count_objects(pictures)          # (N,) objects in each picture
"""

import numpy as np

from minidiff import world

FOREGROUND = 40  # a pixel is foreground if some channel is this far from the background colour
MIN_BLOB = 6  # pixels: smaller specks are noise, not an object


def foreground(pictures: np.ndarray) -> np.ndarray:
    """uint8 (N, 32, 32, 3) -> bool (N, 32, 32): the pixels that are not background."""
    diff = np.abs(pictures.astype(np.int16) - np.array(world.BACKGROUND, np.int16))
    return diff.max(axis=-1) > FOREGROUND


def label_blobs(mask: np.ndarray) -> np.ndarray:
    """bool (N, H, W) -> int (N, H, W): 0 for background, and one number per 8-connected blob
    (the smallest flat index of its pixels plus 1). Label propagation: every foreground pixel
    takes the smallest label among itself and its neighbours until nothing changes."""
    _, h, w = mask.shape
    big = h * w + 1
    labels = np.where(mask, np.arange(1, h * w + 1).reshape(1, h, w), big)
    while True:
        padded = np.pad(labels, ((0, 0), (1, 1), (1, 1)), constant_values=big)
        neighbours = np.stack(
            [
                padded[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
                for dy in (-1, 0, 1)
                for dx in (-1, 0, 1)
            ]
        )
        new = np.where(mask, neighbours.min(axis=0), big)
        if np.array_equal(new, labels):
            return np.where(mask, labels, 0)
        labels = new


def blob_sizes(pictures: np.ndarray) -> list[list[int]]:
    """For each picture, the pixel counts of its blobs of at least MIN_BLOB pixels, largest
    first."""
    labels = label_blobs(foreground(pictures))
    out = []
    for picture in labels:
        counts = np.bincount(picture.ravel())[1:]
        out.append(sorted((int(c) for c in counts if c >= MIN_BLOB), reverse=True))
    return out


def count_objects(pictures: np.ndarray) -> np.ndarray:
    """(N,) the number of separate objects (blobs of at least MIN_BLOB pixels) in each picture."""
    return np.array([len(sizes) for sizes in blob_sizes(pictures)])
