"""Training: one loop, from scratch, on Shapes-world pictures drawn on the fly.

    minidiff train --preset small --out runs/small          # start
    minidiff train --preset small --out runs/small --resume # go on after an interruption

Each step draws the next batch of training pictures and captions (batch k is always the same
pictures), noises them with a generator seeded by (seed, step), and takes one AdamW step on the loss
of `minidiff.diffusion.training_loss`. An EMA copy of the weights is what gets sampled and shipped.
Because data and noise depend only on the step number, a run resumed from a checkpoint continues the
very same loss curve. Checkpoints are written atomically (see `minidiff.checkpoint`); Ctrl-C saves
one before stopping.
"""

import copy
import json
import math
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import world
from .autoencoder import AutoencoderConfig
from .checkpoint import (
    DEFAULT_AUTOENCODER,
    CheckpointError,
    load_autoencoder,
    load_training,
    read_file,
    run_checkpoint,
    save_model,
    save_training,
)
from .device import pick_device
from .diffusion import training_loss
from .model import ModelConfig, TextToImage, trainable_parameters
from .schedules import make_alpha_bar
from .text_encoder import TextEncoderConfig
from .tokenizer import MAX_TOKENS, Tokenizer
from .unet import UNetConfig


@dataclass
class TrainConfig:
    steps: int = 6000  # the most steps; with `minutes`, the run may end sooner
    minutes: float | None = None  # a wall-clock budget: the schedule spans it, the run ends at it
    batch_size: int = 64
    lr: float = 1e-3
    warmup: int = 200  # linear warm-up steps, then cosine decay to lr / 10
    betas: tuple[float, float] = (0.9, 0.99)  # AdamW's moment decays
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    p_uncond: float = 0.1  # condition dropout, for classifier-free guidance
    t_sampling: str = "logit_normal"  # or "uniform"
    seed: int = 0
    checkpoint_every: int = 250
    sample_every: int = 1000
    snapshot_steps: tuple[int, ...] = ()  # also save EMA weights at these steps
    log_every: int = 10
    autoencoder: str | None = None  # a latent model's autoencoder file (its weights are copied in)
    skew: world.Skew | None = None  # draw the training split with this bias (notebook 09)


def _text(width: int, layers: int) -> TextEncoderConfig:
    return TextEncoderConfig(vocab_size=len(Tokenizer()), max_tokens=MAX_TOKENS, width=width,
                             layers=layers, heads=4)


def preset(name: str) -> tuple[ModelConfig, TrainConfig]:
    """Named (model, training) configurations. 'tiny' is for tests; 'small' is the shipped model."""
    if name == "tiny":  # seconds on a CPU; learns nothing useful
        model = ModelConfig(text=_text(32, 1),
                            unet=UNetConfig(channels=(16, 32, 32), context_dim=32, heads=2))
        return model, TrainConfig(steps=20, batch_size=8, warmup=5, checkpoint_every=10,
                                  sample_every=20, log_every=5, lr=1e-3)
    if name == "small":  # the shipped model: 1.85M parameters, about 30 minutes of 2 CPU cores.
        # Uniform t, as the fast preset measured; 9000 steps for the last percent of position.
        model = ModelConfig(text=_text(128, 2),
                            unet=UNetConfig(channels=(48, 96, 96), context_dim=128, heads=4))
        return model, TrainConfig(steps=9000, batch_size=64, lr=1e-3, t_sampling="uniform",
                                  snapshot_steps=(100, 300, 1000, 2000, 3000, 4500, 6000))
    if name == "fast":  # the small model in 5 minutes on both cores of a laptop (measured:
        # benchmarks/README.md). Uniform t, not logit-normal: the layout (position) is decided
        # at high noise, which logit-normal t rarely shows the network.
        model, _ = preset("small")
        return model, TrainConfig(steps=100_000, minutes=5.0, batch_size=64, lr=1e-3,
                                  warmup=200, ema_decay=0.995, t_sampling="uniform",
                                  checkpoint_every=500, sample_every=500,
                                  snapshot_steps=tuple(range(250, 4001, 250)))
    if name == "latent":  # the fast recipe on the shipped autoencoder's 8 x 8 x 4 latents: the
        # same U-Net design, with cross-attention at every level, so that it attends on the same
        # 8 x 8 and 4 x 4 grids as the pixel model (whose finest level is 16 x 16)
        model, _ = preset("small")
        model = replace(model, autoencoder=_autoencoder_config(DEFAULT_AUTOENCODER),
                        unet=replace(model.unet, image_channels=4, image_size=8, patch=1,
                                     attention_levels=(0, 1, 2)))
        _, fast = preset("fast")  # the same 5 minutes, so the two can be compared
        return model, replace(fast, sample_every=1000, autoencoder=str(DEFAULT_AUTOENCODER),
                              snapshot_steps=tuple(range(250, 20001, 250)))
    if name == "skewed":  # the fast recipe on a training split where 80% of the stars that
        # captions leave uncoloured are yellow (world.Skew()), for the bias experiment
        model, cfg = preset("fast")
        return model, replace(cfg, skew=world.Skew())
    if name == "base":  # wider, for a GPU
        model = ModelConfig(text=_text(128, 2),
                            unet=UNetConfig(channels=(64, 128, 128), context_dim=128, heads=4))
        return model, TrainConfig(steps=10000, batch_size=128, lr=1e-3)
    raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")


PRESETS = ("tiny", "small", "fast", "latent", "skewed", "base")


def _autoencoder_config(path) -> dict:
    import json

    try:
        _, metadata = read_file(path)
    except CheckpointError:
        raise CheckpointError(f"the latent model needs a trained autoencoder at '{path}'; train "
                              "one with 'minidiff train-autoencoder'") from None
    return AutoencoderConfig.from_dict(json.loads(metadata["config"])).to_dict()


class TrainingDiverged(RuntimeError):
    """The loss stopped being a finite number."""


_TOKENIZER = Tokenizer()


def learning_rate(step: int, cfg: TrainConfig, progress: float | None = None) -> float:
    """Linear warm-up over cfg.warmup steps, then cosine decay to lr / 10 at the end of the run:
    at cfg.steps, or, for a run on a time budget, at `progress` (the share of it spent) = 1."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    if progress is None:
        progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, step: int, decay: float) -> None:
    """ema <- d * ema + (1 - d) * model, with d warmed up so early averages are not all init."""
    d = min(decay, (1 + step) / (10 + step))
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p, 1 - d)


def step_generator(seed: int, step: int, device: torch.device) -> torch.Generator:
    return torch.Generator(device).manual_seed(seed * 1_000_003 + step)


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    return torch.optim.AdamW(trainable_parameters(model), lr=cfg.lr, betas=cfg.betas,
                             weight_decay=cfg.weight_decay)


def train_step(model: torch.nn.Module, ema: torch.nn.Module, optimizer: torch.optim.Optimizer,
               step: int, cfg: TrainConfig, alpha_bar: torch.Tensor,
               progress: float | None = None) -> float:
    """One optimizer step on training batch number `step`; returns its loss.

    Draws the batch (the same pictures and captions for the same step and seed), noises it with a
    generator seeded by (seed, step), and takes one AdamW step on diffusion.training_loss (with
    condition dropout) at the scheduled learning rate (`progress`: see learning_rate), clipping the
    gradient norm; then moves the EMA copy. `model` is anything with `.config` (a ModelConfig) that maps (x_t, t, ids) -> out.
    """
    dev = next(model.parameters()).device
    images, captions, _ = world.batch("train", step * cfg.batch_size, cfg.batch_size,
                                      seed=cfg.seed, skew=cfg.skew)
    x0 = world.to_tensor(images).to(dev)  # (B, 3, 32, 32)
    if model.autoencoder is not None:  # a latent model denoises the pictures' latents
        with torch.no_grad():
            x0 = model.autoencoder.encode(x0)  # (B, 4, 8, 8)
    ids = _TOKENIZER.encode(captions).to(dev)  # (B, L)
    null_ids = _TOKENIZER.encode("")[0].to(dev)  # (L,) the empty prompt
    for group in optimizer.param_groups:
        group["lr"] = learning_rate(step, cfg, progress)
    generator = step_generator(cfg.seed, step, dev)
    loss = training_loss(model, x0, ids, null_ids, alpha_bar, model.config.prediction,
                         cfg.p_uncond, cfg.t_sampling, generator=generator)
    if not torch.isfinite(loss):
        raise TrainingDiverged(f"the loss became {loss.item()} at step {step}")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(trainable_parameters(model), cfg.grad_clip)
    optimizer.step()
    ema_update(ema, model, step, cfg.ema_decay)
    return loss.item()


@dataclass
class TrainResult:
    out_dir: Path
    step: int
    history: list[dict] = field(default_factory=list)  # one record per logged step


def train(model_config: ModelConfig, train_config: TrainConfig, out_dir: str | Path,
          resume: bool = False, device: str | None = None, progress: bool = True,
          stop_at: int | None = None,
          on_sample: Callable[[TextToImage, int], None] | None = None,
          on_log: Callable[[dict], None] | None = None,
          stop: threading.Event | None = None) -> TrainResult:
    """Train (or resume) a run in `out_dir`; `stop_at` ends early at that step, as an interruption.

    on_sample(ema, step), if given, is called every `sample_every` steps and at the end, to draw
    from the EMA weights (the command line writes a grid of pictures; see
    minidiff.pipeline.sample_grid). Training itself knows nothing about sampling.
    on_log(record) sees every logged {"step", "loss", "lr", "elapsed"}. Setting `stop` (from
    another thread, such as a notebook's Stop button) ends the run at the next step as a spent
    time budget does: checkpoint, samples and model.safetensors are written.
    """
    cfg = train_config
    out = Path(out_dir)
    ckpt = run_checkpoint(out, resume)
    for name in ("steps", "batch_size", "checkpoint_every", "sample_every", "log_every"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be at least 1, got {getattr(cfg, name)}")
    if cfg.minutes is not None and not (math.isfinite(cfg.minutes) and cfg.minutes > 0):
        raise ValueError(f"minutes must be a positive number, got {cfg.minutes}")
    budget = None if cfg.minutes is None else 60.0 * cfg.minutes  # seconds
    if not cfg.lr > 0:
        raise ValueError(f"lr must be positive, got {cfg.lr}")
    dev = pick_device(device)
    torch.manual_seed(cfg.seed)
    model = TextToImage(model_config).to(dev)
    if model_config.autoencoder is not None:
        if cfg.autoencoder is None:
            raise ValueError("a latent model needs TrainConfig.autoencoder, the file of its "
                             "trained autoencoder")
        trained = load_autoencoder(cfg.autoencoder, device=dev)
        if trained.config != AutoencoderConfig.from_dict(model_config.autoencoder):
            raise CheckpointError(f"the autoencoder at '{cfg.autoencoder}' is not the one this "
                                  "model config names; rebuild the preset after retraining it")
        model.autoencoder.load_state_dict(trained.state_dict())
    ema = copy.deepcopy(model).requires_grad_(False)
    optimizer = make_optimizer(model, cfg)
    start, elapsed = 0, 0.0
    if resume:
        start, stored = load_training(ckpt, model, ema, optimizer)
        stored_cfg = TrainConfig(**{**stored, **{k: tuple(v) for k, v in stored.items()
                                                  if isinstance(v, list)}})
        if stored_cfg.skew is not None:
            stored_cfg = replace(stored_cfg, skew=world.Skew(**stored_cfg.skew))
        if replace(stored_cfg, steps=cfg.steps, minutes=cfg.minutes) != cfg:
            raise ValueError(f"'{ckpt}' was made with other training settings; resume with the "
                             "same preset (only --steps and --minutes may change)")
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "log.jsonl"
    history = _read_log(log_path, upto=start)
    if history:
        elapsed = history[-1]["elapsed"]
    _write_log(log_path, history)  # drop records after the checkpoint we resumed from

    alpha_bar = make_alpha_bar(model_config.schedule, model_config.T)  # float64, on the CPU
    end = cfg.steps if stop_at is None else min(cfg.steps, stop_at)
    if budget is None:  # the bar counts steps, or, on a time budget, seconds
        bar = tqdm(total=cfg.steps, initial=start, desc="training", unit="step",
                   disable=not progress)
    else:
        bar = tqdm(total=round(budget), initial=min(round(elapsed), round(budget)),
                   desc="training", unit="s", disable=not progress)
    step, t0 = start, time.perf_counter() - elapsed
    spent = (lambda: (time.perf_counter() - t0) / budget) if budget else (lambda: None)
    out_of_time = False
    model.train()
    restore_sigterm = _sigterm_as_interrupt()
    try:
        while step < end and not out_of_time:
            try:
                loss = train_step(model, ema, optimizer, step, cfg, alpha_bar, spent())
            except TrainingDiverged as e:
                raise TrainingDiverged(f"{e}; the last good checkpoint is '{ckpt}' — try a lower "
                                       f"learning rate than {cfg.lr}") from None
            step += 1
            out_of_time = (budget is not None and spent() >= 1) or (stop is not None
                                                                    and stop.is_set())
            bar.update(1 if budget is None else min(round(spent() * budget), bar.total) - bar.n)
            last = step == end or out_of_time
            if step % cfg.log_every == 0 or last:
                record = {"step": step, "loss": round(loss, 6),
                          "lr": optimizer.param_groups[0]["lr"],
                          "elapsed": round(time.perf_counter() - t0, 3)}
                history.append(record)
                with open(log_path, "a") as f:
                    f.write(json.dumps(record) + "\n")
                if on_log is not None:
                    on_log(record)
                bar.set_postfix(step=step, loss=f"{record['loss']:.4f}")
            if step in cfg.snapshot_steps:
                save_model(ema, out / "snapshots" / f"step-{step:06d}.safetensors",
                           info={"step": step}, dtype=torch.float16)
            if on_sample is not None and (step % cfg.sample_every == 0 or step == cfg.steps
                                          or out_of_time):
                was_training = ema.training
                on_sample(ema, step)
                ema.train(was_training)
            if step % cfg.checkpoint_every == 0 or last:
                save_training(ckpt, model, ema, optimizer, step, asdict(cfg))
    except KeyboardInterrupt:
        save_training(ckpt, model, ema, optimizer, step, asdict(cfg))
        bar.close()
        print(f"stopped at step {step}; checkpoint saved, continue with --resume")
        raise
    finally:
        restore_sigterm()
    bar.close()
    if step == cfg.steps or out_of_time:
        info = {"step": step, "train_config": asdict(cfg), "elapsed_s": history[-1]["elapsed"]
                if history else None, "final_loss": history[-1]["loss"] if history else None}
        save_model(ema, out / "model.safetensors", info=info)
    return TrainResult(out, step, history)


def _sigterm_as_interrupt():
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
