"""`python -m minidiff ...` is the `minidiff` command, so that PyTorch's launcher can start it:
torchrun --nproc_per_node 2 -m minidiff train --preset fast --out runs/fast2x"""

from .cli import main

if __name__ == "__main__":
    main()
