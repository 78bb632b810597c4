"""Training beyond one process: PyTorch's own launcher and DistributedDataParallel.

    torchrun --nproc_per_node 2 -m minidiff train --preset fast --out runs/fast2x

torchrun starts N copies of the command and tells each its place (the environment variables RANK,
LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT). `setup()` reads them and joins the process
group: gloo on the CPU, NCCL on CUDA GPUs (one GPU per process). Without torchrun nothing here
does anything, and a run is the single process it always was.

How a run with N ranks differs from one process (minidiff.scaffold and minidiff.train read this
module's `current()`):
- every rank draws its own data stream: rank r of N trains on batch number step * N + r, with the
  noise of that batch number, so N ranks see N different batches a step (an N times larger
  batch, as data parallelism is);
- DistributedDataParallel averages the gradients in backward, so every rank takes the same
  optimizer step and holds the same weights (and the same EMA copy);
- the schedule's clock (the share of a time budget spent) and the decision to stop are rank 0's,
  sent to the others each step, so that no rank steps alone and waits forever;
- rank 0 alone writes the checkpoint, the log, the snapshots and the model; every rank reads the
  checkpoint on --resume.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Ranks:
    """Where this process stands: its rank, how many there are, and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Whether this process writes files (rank 0)."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


SINGLE = Ranks()
_current = SINGLE


def current() -> Ranks:
    """This process's place: Ranks() (one process) unless setup() joined a process group."""
    return _current


def setup(device: torch.device | None = None) -> Ranks:
    """Join torchrun's process group if this process was started by torchrun (WORLD_SIZE > 1):
    NCCL when `device` is CUDA, else gloo. Returns this process's Ranks; calling it again
    returns the same."""
    global _current
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1 or _current.active:
        return _current
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = device is not None and torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if cuda else "gloo")
    _current = Ranks(rank, world_size, local_rank)
    return _current


def teardown() -> None:
    """Leave the process group (after the last collective call)."""
    global _current
    if _current.active and dist.is_initialized():
        dist.destroy_process_group()
    _current = SINGLE


def rank_device(device: torch.device) -> torch.device:
    """This rank's device: its own GPU (cuda:LOCAL_RANK) under torchrun, else `device`."""
    if _current.active and device.type == "cuda":
        return torch.device("cuda", _current.local_rank)
    return device


def wrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model as DistributedDataParallel when there are several ranks (its gradients are
    averaged in backward), else the model itself."""
    if not _current.active:
        return model
    device = next(model.parameters()).device
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


def from_main(value: float) -> float:
    """Rank 0's `value` on every rank (one float; the others' are ignored)."""
    if not _current.active:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.broadcast(t, src=0)
    return float(t.item())


def barrier() -> None:
    if _current.active:
        dist.barrier()
