"""The width lever of the fast preset: the same recipe and 5-minute budget, another U-Net width.

    python benchmarks/train_fast_width.py 32,64,64 runs/fast_w32      # 1.08M parameters
    python benchmarks/train_fast_width.py 64,128,128 runs/fast_w64    # 2.90M parameters
    minidiff evaluate --weights runs/fast_w32/model.safetensors       # then measure each

The preset's own width is (48, 96, 96), 1.85M parameters. Results: benchmarks/README.md.
"""

import sys
from dataclasses import replace

import torch

from minidiff.model import TextToImage, count_parameters
from minidiff.scaffold import QUIET
from minidiff.train import preset, train


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    channels = tuple(int(c) for c in sys.argv[1].split(","))
    torch.set_num_threads(2)
    model_config, cfg = preset("fast-pixel")
    model_config = replace(model_config, unet=replace(model_config.unet, channels=channels))
    print(
        f"U-Net channels {channels}: {count_parameters(TextToImage(model_config)):,} parameters",
        flush=True,
    )
    result = train(model_config, cfg, sys.argv[2], watch=QUIET)
    print(f"trained {result.step} steps in {cfg.minutes} minutes", flush=True)


if __name__ == "__main__":
    main()
