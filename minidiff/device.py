"""Where the model runs: CUDA if there is an NVIDIA GPU, Apple's MPS on a Mac, else the CPU."""

import os
import platform
from pathlib import Path

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
    available = {
        "cpu": True,
        "cuda": torch.cuda.is_available(),
        "mps": torch.backends.mps.is_available(),
    }
    kind = requested.split(":")[0]
    if kind not in available:
        raise ValueError(f"unknown device '{requested}'; choose cpu, cuda or mps")
    if not available[kind]:
        raise ValueError(
            f"device '{requested}' is not available on this machine; "
            f"available: {', '.join(k for k, ok in available.items() if ok)}"
        )
    return torch.device(requested)


def cpu_name() -> str:
    """The processor's model name, for benchmark reports and model cards."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
