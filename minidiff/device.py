"""Where the model runs: CUDA if there is an NVIDIA GPU, Apple's MPS on a Mac, else the CPU."""

import os

import torch


def pick_device(requested: str | torch.device | None = None) -> torch.device:
    """The best available device, or `requested` (or $MINIDIFF_DEVICE) if given and available."""
    if isinstance(requested, torch.device):
        requested = str(requested)
    requested = requested or os.environ.get("MINIDIFF_DEVICE") or None
    if requested is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    available = {"cpu": True, "cuda": torch.cuda.is_available(),
                 "mps": torch.backends.mps.is_available()}
    kind = requested.split(":")[0]
    if kind not in available:
        raise ValueError(f"unknown device '{requested}'; choose cpu, cuda or mps")
    if not available[kind]:
        raise ValueError(f"device '{requested}' is not available on this machine; "
                         f"available: {', '.join(k for k, ok in available.items() if ok)}")
    return torch.device(requested)
