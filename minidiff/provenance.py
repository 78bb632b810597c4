"""Provenance metadata, the contrast to a watermark: a signature kept beside the pixels.

    provenance.save_signed(picture, "drawn.png", secret=b"the maker's key")
    provenance.verify("drawn.png", secret=b"the maker's key")    # "signed"

A generator can say where a picture came from in the file itself: C2PA manifests, or the PNG
text chunks that image tools write. Here that is one PNG text chunk holding an HMAC-SHA256 of the
pixels under a secret key. While the chunk is there it proves the pixels are the ones signed
("signed"; a changed pixel gives "tampered"). But it is not part of the picture: saving the
picture again (PIL without the chunk, a JPEG, a screenshot, most uploads) drops it, and the
picture is then simply "unsigned", which is what every picture nobody signed also is. A watermark
(minidiff.watermark) lives in the pixels instead, and is lost only by changing them.

[HMAC] Krawczyk, Bellare, Canetti 1997, RFC 2104: HMAC, Keyed-Hashing for Message Authentication.
"""

import hashlib
import hmac
import os
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin, UnidentifiedImageError

CHUNK = "minidiff-signature"  # the keyword of the PNG text chunk
VERDICTS = ("signed", "unsigned", "tampered")


def signature(picture: np.ndarray, secret: bytes) -> str:
    """HMAC-SHA256(secret, "HxWx3:" + the pixel bytes) as 64 hex digits   [HMAC]

    picture: uint8 (H, W, 3). The shape is signed too, so the same bytes read as another shape
    do not verify."""
    picture = np.asarray(picture)
    if picture.dtype != np.uint8 or picture.ndim != 3 or picture.shape[-1] != 3:
        raise ValueError(
            f"picture must be a uint8 array (H, W, 3), got {picture.dtype} {picture.shape}"
        )
    if not isinstance(secret, bytes) or not secret:
        raise ValueError(f"secret must be non-empty bytes, got {type(secret).__name__}")
    h, w, _ = picture.shape
    message = f"{h}x{w}x3:".encode() + np.ascontiguousarray(picture).tobytes()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def save_signed(picture: np.ndarray, path: str | os.PathLike, secret: bytes) -> Path:
    """Write picture (uint8 (H, W, 3)) as a PNG at path with its signature in a text chunk."""
    info = PngImagePlugin.PngInfo()
    info.add_text(CHUNK, signature(picture, secret))
    path = Path(path)
    Image.fromarray(np.asarray(picture)).save(path, format="PNG", pnginfo=info)
    return path


def verify(path: str | os.PathLike, secret: bytes) -> str:
    """One of VERDICTS for the picture file at path: "signed" (the chunk is there and matches
    the pixels), "unsigned" (no chunk: never signed, or saved again since) or "tampered" (a
    chunk that does not match: changed pixels, or another secret)."""
    try:
        with Image.open(path) as f:
            claimed = f.info.get(CHUNK)
            picture = np.asarray(f.convert("RGB"))
    except (FileNotFoundError, UnidentifiedImageError) as e:
        raise ValueError(f"{path} is not a picture file that PIL can read ({e})") from None
    if claimed is None:
        return "unsigned"
    return "signed" if hmac.compare_digest(claimed, signature(picture, secret)) else "tampered"
