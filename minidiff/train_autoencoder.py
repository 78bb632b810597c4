"""Training the autoencoder of the latent model: reconstruct Shapes-world pictures through an
8 x 8 x 4 bottleneck.

    minidiff train-autoencoder --out runs/autoencoder            # start
    minidiff train-autoencoder --out runs/autoencoder --resume   # go on after an interruption

Like the diffusion training (`minidiff.train`), batch k is always the same pictures and the noise
of step k comes from a generator seeded by (seed, k), so a resumed run continues the same curve;
checkpoints are written atomically and Ctrl-C saves one. The loss is the autoencoder's own
(`Autoencoder.forward`: per-pixel MSE plus a weak KL term). At the end the scale factor is
measured and the weights are written, fp16, to `out`/autoencoder.safetensors.
"""

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import world
from .autoencoder import Autoencoder, AutoencoderConfig
from .checkpoint import (
    FORMAT,
    load_state,
    optimizer_state,
    read_file,
    restore_optimizer,
    run_checkpoint,
    save_autoencoder,
    write_file,
)
from .device import pick_device


@dataclass
class AutoencoderTraining:
    steps: int = 2500
    batch_size: int = 64
    lr: float = 2e-3
    warmup: int = 100  # linear warm-up steps, then cosine decay to lr / 20
    seed: int = 0
    checkpoint_every: int = 250


def learning_rate(step: int, cfg: AutoencoderTraining) -> float:
    progress = max(0.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return cfg.lr * min(1.0, (step + 1) / cfg.warmup) * (
        0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


@torch.no_grad()
def measure_scale_factor(model: Autoencoder, n: int = 2048, seed: int = 0) -> float:
    """1 / std of the (unscaled) latent means of n training pictures: the factor that gives the
    diffusion model latents of unit variance."""
    images, _, _ = world.batch("train", 0, n, seed=seed)
    mean, _ = model.posterior(world.to_tensor(images).to(next(model.parameters()).device))
    return 1.0 / mean.std().item()


def _save_checkpoint(path: Path, model: Autoencoder, optimizer, step: int, seconds: float,
                     cfg: AutoencoderTraining) -> None:
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    opt_tensors, param_groups = optimizer_state(optimizer)
    write_file({**tensors, **opt_tensors}, {"format": FORMAT, "kind": "autoencoder-training", "step": str(step),
                         "elapsed": str(seconds), "config": json.dumps(model.config.to_dict()),
                         "train_config": json.dumps(asdict(cfg)),
                         "param_groups": param_groups}, path)


def train_autoencoder(out: str | Path, cfg: AutoencoderTraining | None = None,
                      config: AutoencoderConfig | None = None, resume: bool = False,
                      device: str | None = None, progress: bool = True,
                      stop_at: int | None = None) -> Autoencoder:
    """Train (or resume) an autoencoder run in `out`; returns the trained model (eval mode).
    `stop_at` ends the run early at that step, as an interruption does (checkpoint, no model)."""
    cfg = cfg or AutoencoderTraining()
    config = config or AutoencoderConfig()
    out = Path(out)
    ckpt = run_checkpoint(out, resume)
    for name in ("steps", "batch_size", "checkpoint_every", "warmup"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be at least 1, got {getattr(cfg, name)}")
    if not cfg.lr > 0:
        raise ValueError(f"lr must be a positive number, got {cfg.lr}")
    dev = pick_device(device)
    torch.manual_seed(cfg.seed)
    model = Autoencoder(config).to(dev)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    start, elapsed = 0, 0.0
    if resume:
        tensors, metadata = read_file(ckpt)
        if metadata.get("kind") != "autoencoder-training":
            raise ValueError(f"'{ckpt}' is not an autoencoder training checkpoint")
        stored = json.loads(metadata["train_config"])
        if ({**stored, "steps": cfg.steps} != asdict(cfg)
                or AutoencoderConfig.from_dict(json.loads(metadata["config"])) != config):
            raise ValueError(f"'{ckpt}' was made with other settings; resume with the same ones "
                             "(only --steps may change)")
        load_state(model, {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, ckpt)
        restore_optimizer(optimizer, tensors, metadata["param_groups"])
        start, elapsed = int(metadata["step"]), float(metadata["elapsed"])
    out.mkdir(parents=True, exist_ok=True)
    model.train()
    step, t0, loss = start, time.perf_counter() - elapsed, None
    bar = tqdm(total=cfg.steps, initial=start, desc="autoencoder", unit="step",
               disable=not progress)
    end = cfg.steps if stop_at is None else min(cfg.steps, stop_at)
    try:
        while step < end:
            images, _, _ = world.batch("train", step * cfg.batch_size, cfg.batch_size,
                                       seed=cfg.seed)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, cfg)
            generator = torch.Generator(dev).manual_seed(cfg.seed * 1_000_003 + step)
            _, loss = model(world.to_tensor(images).to(dev), generator)
            if not torch.isfinite(loss):
                raise RuntimeError(f"the loss became {loss.item()} at step {step}; the last good "
                                   f"checkpoint is '{ckpt}' — try a lower learning rate")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.5f}", refresh=False)
            if step % cfg.checkpoint_every == 0 or step == end:
                _save_checkpoint(ckpt, model, optimizer, step, time.perf_counter() - t0, cfg)
    except KeyboardInterrupt:
        _save_checkpoint(ckpt, model, optimizer, step, time.perf_counter() - t0, cfg)
        bar.close()
        print(f"stopped at step {step}; checkpoint saved, continue with --resume")
        raise
    bar.close()
    model.eval()
    if step < cfg.steps:  # stopped early: the checkpoint is the result
        return model
    model.config.scale_factor = measure_scale_factor(model)
    save_autoencoder(model, out / "autoencoder.safetensors",
                     info={"steps": step, "elapsed_s": round(time.perf_counter() - t0, 1),
                           "final_loss": None if loss is None else round(loss.item(), 6), "train_config": asdict(cfg)})
    return model
