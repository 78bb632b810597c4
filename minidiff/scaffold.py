"""The training scaffold: the loop every minidiff training runs in, written once.

A training says what one optimizer step is; the scaffold does everything around it, the same way
for the text-to-image models (minidiff.train), the autoencoder (minidiff.train_autoencoder) and the
judge (minidiff.judge), and for any training added later:

    class MyTask:                          # anything with these three, see Task
        modules = {"model": model}         # what a checkpoint holds
        optimizers = {"opt": optimizer}
        def step(self, step, progress):    # one optimizer step on batch `step`
            ...                            # learning_rate(step, cfg, progress), step_generator
            return optimizer_step(optimizer, loss, step)  # the loss, as a number

    result = run(MyTask(), cfg, "runs/mine", model_config.to_dict(), watch=Watch(stop_at=100))

- the learning-rate schedule: `learning_rate` (linear warm-up, then cosine decay);
- one optimizer step: `optimizer_step` (a non-finite loss stops the run, gradient clipping);
- the step seed: `step_generator` (the noise of step k comes from (seed, k), and batch k is always
  the same pictures, so a resumed run continues the very same curve);
- the run folder: an atomic checkpoint every `checkpoint_every` steps and at the end
  (minidiff.checkpoint), resumed with resume=True (only `steps` and `minutes` may change), and
  log.jsonl, one record per logged step;
- an optional wall-clock budget (`minutes`) that the schedule spans and the run ends at;
- the progress bar; Ctrl-C or `kill` (SIGTERM) writes a checkpoint and stops; a `stop` event set
  from another thread (a notebook's Stop button) ends the run as a spent budget does;
- several processes under torchrun (minidiff.distributed): rank 0's clock decides for all, and
  rank 0 alone writes the checkpoint, the log and what on_step makes.
"""

from __future__ import annotations

import json
import math
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import torch
from tqdm.auto import tqdm

from . import distributed
from .checkpoint import load_training, run_checkpoint, save_training


@dataclass
class LoopConfig:
    """What the scaffold reads of a training config; each training's config extends it."""

    steps: int = 1000  # the most steps; with `minutes`, the run may end sooner
    minutes: float | None = None  # a wall-clock budget: the schedule spans it, the run ends at it
    lr: float = 1e-3
    warmup: int = 100  # linear warm-up steps, then cosine decay
    final_lr: float = 0.1  # the learning rate at the end of the decay, as a share of lr
    seed: int = 0
    checkpoint_every: int = 250
    log_every: int = 10

    def check(self) -> None:
        """Refuse settings the loop cannot run, in one sentence each."""
        for name in ("steps", "checkpoint_every", "log_every", *self.positive_counts()):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number of at least 1, got {value!r}")
        if isinstance(self.warmup, bool) or not isinstance(self.warmup, int) or self.warmup < 0:
            raise ValueError(f"warmup must be a whole number of steps >= 0, got {self.warmup!r}")
        if self.minutes is not None and not (math.isfinite(self.minutes) and self.minutes > 0):
            raise ValueError(f"minutes must be a positive number, got {self.minutes}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr}")
        if not 0 <= self.final_lr <= 1:
            raise ValueError(f"final_lr must be a share of lr in [0, 1], got {self.final_lr}")

    def positive_counts(self) -> tuple[str, ...]:
        """The names of a subclass's own settings that must be whole numbers >= 1."""
        return ()


def learning_rate(step: int, cfg: LoopConfig, progress: float | None = None) -> float:
    """Linear warm-up over cfg.warmup steps, then cosine decay from lr to final_lr · lr at the
    end of the run: at cfg.steps, or, for a run on a time budget, at `progress` (the share of it
    spent) = 1   [SGDR, without restarts]."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    if progress is None:
        progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    cosine = 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))  # 1 -> 0
    return cfg.lr * (cfg.final_lr + (1 - cfg.final_lr) * cosine)


def step_generator(seed: int, step: int, device: torch.device | str = "cpu") -> torch.Generator:
    """The generator of training step `step`: every random draw of that step comes from it."""
    return torch.Generator(device).manual_seed(seed * 1_000_003 + step)


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


class TrainingDiverged(RuntimeError):
    """The loss stopped being a finite number."""


def optimizer_step(
    optimizer: torch.optim.Optimizer, loss: torch.Tensor, step: int, grad_clip: float | None = None
) -> float:
    """One optimizer step on `loss`, the same in every training: refuse a non-finite loss before
    it reaches the weights, backpropagate, clip the gradient norm of the optimizer's parameters
    to grad_clip (if given), step. Returns the loss as a number."""
    if not torch.isfinite(loss):
        raise TrainingDiverged(f"the loss became {loss.item()} at step {step}")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip is not None:
        params = [p for group in optimizer.param_groups for p in group["params"]]
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    optimizer.step()
    return loss.item()


class Task(Protocol):
    """One training, as the scaffold sees it."""

    modules: dict[str, torch.nn.Module]  # checkpointed by name ("model", "ema", ...)
    optimizers: dict[str, torch.optim.Optimizer]  # checkpointed by name ("opt", ...)

    def step(self, step: int, progress: float | None) -> float:
        """One optimizer step on batch number `step`; returns its loss. `progress` is the share
        of the time budget spent (None without one), for learning_rate."""
        ...


@dataclass(frozen=True)
class Watch:
    """How a run is watched and stopped from outside, the same for every training."""

    progress: bool = True  # show a progress bar
    stop_at: int | None = None  # end early at this step, as an interruption (checkpoint, no model)
    stop: threading.Event | None = None  # set from another thread: end now, as a spent budget
    on_log: Callable[[dict], None] | None = None  # sees every logged record


QUIET = Watch(progress=False)


@dataclass
class RunResult:
    out_dir: Path
    step: int
    history: list[dict] = field(default_factory=list)  # one record per logged step
    finished: bool = False  # it reached cfg.steps or the end of its budget (or was told to stop)


def run(
    task: Task,
    cfg: LoopConfig,
    out_dir: str | Path,
    config: dict,
    *,
    resume: bool = False,
    watch: Watch | None = None,
    on_step: Callable[[int, bool], None] | None = None,
    desc: str = "training",
) -> RunResult:
    """Run (or resume) `task` in the run folder `out_dir` until cfg.steps, the time budget, or
    what `watch` says (stop, or stop_at: an early end, as an interruption, not finished).

    `config` (the networks' config as a dict) is stored in every checkpoint and must match on
    resume. watch.on_log(record) sees every logged {"step", "loss", "lr", "elapsed"};
    on_step(step, last) runs after every step, before its checkpoint (snapshots, sample grids).
    """
    watch = watch or Watch()
    cfg.check()
    ranks = distributed.current()
    out = Path(out_dir)
    ckpt = run_checkpoint(out, resume)
    settings = json.loads(json.dumps(asdict(cfg)))  # as stored: tuples become lists
    start, elapsed = _resume(ckpt, task, config, settings) if resume else (0, 0.0)
    history = _read_log(out / "log.jsonl", upto=start)
    distributed.barrier()  # every rank has checked and read the folder before rank 0 writes
    if ranks.main:
        _write_log(out / "log.jsonl", history)  # drop records after the resumed checkpoint

    def save(step: int) -> None:
        if ranks.main:
            seconds = time.perf_counter() - t0
            save_training(ckpt, task.modules, task.optimizers, config, settings, step, seconds)

    budget = None if cfg.minutes is None else 60.0 * cfg.minutes  # seconds
    end = cfg.steps if watch.stop_at is None else min(cfg.steps, watch.stop_at)
    bar = _progress_bar(cfg.steps, budget, start, elapsed, desc, watch.progress and ranks.main)
    step, t0 = start, time.perf_counter() - elapsed

    def spent() -> float | None:  # the share of the budget spent, by rank 0's clock
        return distributed.from_main((time.perf_counter() - t0) / budget) if budget else None

    out_of_time = False
    restore_sigterm = _sigterm_as_interrupt()
    try:
        while step < end and not out_of_time:
            try:
                loss = task.step(step, spent())
            except TrainingDiverged as e:
                raise TrainingDiverged(
                    f"{e}; the last good checkpoint is '{ckpt}'; try a lower "
                    f"learning rate than {cfg.lr}"
                ) from None
            step += 1
            now = spent()
            out_of_time = (budget is not None and now >= 1) or (
                watch.stop is not None and watch.stop.is_set()
            )
            bar.update(1 if budget is None else min(round(now * budget), bar.total) - bar.n)
            last = step == end or out_of_time
            if step % cfg.log_every == 0 or last:
                record = _log(
                    out / "log.jsonl", task, step, loss, time.perf_counter() - t0, ranks.main
                )
                history.append(record)
                if watch.on_log is not None:
                    watch.on_log(record)
                bar.set_postfix(step=step, loss=f"{record['loss']:.4f}")
            if on_step is not None and ranks.main:
                on_step(step, last)
            if step % cfg.checkpoint_every == 0 or last:
                save(step)
    except KeyboardInterrupt:
        save(step)
        bar.close()
        if ranks.main:
            print(f"stopped at step {step}; checkpoint saved, continue with --resume")
        raise
    finally:
        restore_sigterm()
    bar.close()
    return RunResult(out, step, history, finished=step == cfg.steps or out_of_time)


def _resume(ckpt: Path, task: Task, config: dict, settings: dict) -> tuple[int, float]:
    """Load the checkpoint into the task; (its step, the seconds spent). Only the settings
    steps and minutes may differ from the stored ones."""
    metadata = load_training(ckpt, task.modules, task.optimizers, config)
    stored = json.loads(metadata["train_config"])
    changeable = {"steps": settings["steps"], "minutes": settings["minutes"]}
    if {**stored, **changeable} != settings:
        raise ValueError(
            f"'{ckpt}' was made with other training settings; resume with the "
            "same ones (only steps and minutes may change)"
        )
    return int(metadata["step"]), float(metadata["elapsed"])


def _progress_bar(
    steps: int, budget: float | None, start: int, elapsed: float, desc: str, show: bool
) -> tqdm:
    """Counting steps, or, on a time budget, seconds."""
    if budget is None:
        return tqdm(total=steps, initial=start, desc=desc, unit="step", disable=not show)
    return tqdm(
        total=round(budget),
        initial=min(round(elapsed), round(budget)),
        desc=desc,
        unit="s",
        disable=not show,
    )


def _log(
    path: Path, task: Task, step: int, loss: float, elapsed: float, write: bool = True
) -> dict:
    """One record of the run's log; appended to log.jsonl if `write` (rank 0); returns it."""
    optimizer = next(iter(task.optimizers.values()))
    record = {
        "step": step,
        "loss": round(loss, 6),
        "lr": optimizer.param_groups[0]["lr"],
        "elapsed": round(elapsed, 3),
    }
    if write:
        with open(path, "a") as f:
            f.write(json.dumps(record) + "\n")
    return record


def _sigterm_as_interrupt() -> Callable[[], None]:
    """Let `kill` (SIGTERM) stop a run like Ctrl-C does: save a checkpoint, then stop."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    return lambda: signal.signal(signal.SIGTERM, previous)


def _read_log(path: Path, upto: int) -> list[dict]:
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in records if r["step"] <= upto]


def _write_log(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in records))
    tmp.replace(path)
