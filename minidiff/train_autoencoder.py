"""Training the autoencoder of the latent model: reconstruct Shapes-world pictures through an
8 x 8 x 4 bottleneck (or the scenes world's 48 x 48 pictures through 12 x 12 x 4).

    minidiff train-autoencoder --out runs/autoencoder            # start
    minidiff train-autoencoder --out runs/autoencoder --resume   # go on after an interruption
    minidiff train-autoencoder --world scenes --out runs/scene-autoencoder

It runs in the training scaffold (`minidiff.scaffold`), like every training: batch k is always the
same pictures and the noise of step k comes from step_generator(seed, k), so a resumed run
continues the same curve; checkpoints are written atomically and Ctrl-C saves one. The loss is the
autoencoder's own
(`Autoencoder.forward`: per-pixel MSE plus a weak KL term). At the end the scale factor is
measured and the weights are written, fp16, to `out`/autoencoder.safetensors.
"""

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from . import pixels, scaffold, scenes, world
from .autoencoder import Autoencoder, AutoencoderConfig
from .checkpoint import save_autoencoder
from .device import pick_device
from .scaffold import LoopConfig, Watch, learning_rate, step_generator


@dataclass
class AutoencoderTraining(LoopConfig):
    steps: int = 2500
    lr: float = 2e-3
    warmup: int = 100  # linear warm-up steps, then cosine decay to lr / 20
    final_lr: float = 0.05
    batch_size: int = 64
    world: str = "shapes"  # whose training pictures: "shapes" (32 x 32) or "scenes" (48 x 48)

    def positive_counts(self) -> tuple[str, ...]:
        return ("batch_size",)

    def check(self) -> None:
        super().check()
        if self.world not in WORLDS:
            raise ValueError(f"unknown world {self.world!r}; choose one of {', '.join(WORLDS)}")


WORLDS = ("shapes", "scenes")


def training_pictures(world_name: str, start: int, n: int, seed: int = 0):
    """Training pictures start .. start + n of a world, uint8 (n, S, S, 3)."""
    source = scenes if world_name == "scenes" else world
    images, _, _ = source.batch("train", start, n, seed=seed)
    return images


@torch.no_grad()
def measure_scale_factor(
    model: Autoencoder, n: int = 2048, seed: int = 0, world_name: str = "shapes"
) -> float:
    """1 / std of the (unscaled) latent means of n training pictures: the factor that gives the
    diffusion model latents of unit variance."""
    images = training_pictures(world_name, 0, n, seed=seed)
    mean, _ = model.posterior(pixels.to_tensor(images).to(next(model.parameters()).device))
    return 1.0 / mean.std().item()


class AutoencoderTask:
    """The scaffold's view of the autoencoder's training: one network, AdamW without decay."""

    def __init__(self, model: Autoencoder, cfg: AutoencoderTraining):
        self.model, self.cfg = model, cfg
        self.modules = {"model": model}
        self.optimizers = {
            "opt": torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
        }

    def step(self, step: int, progress: float | None) -> float:
        cfg, optimizer = self.cfg, self.optimizers["opt"]
        dev = next(self.model.parameters()).device
        images = training_pictures(cfg.world, step * cfg.batch_size, cfg.batch_size, cfg.seed)
        scaffold.set_learning_rate(optimizer, learning_rate(step, cfg, progress))
        _, loss = self.model(pixels.to_tensor(images).to(dev), step_generator(cfg.seed, step, dev))
        return scaffold.optimizer_step(optimizer, loss, step)


def train_autoencoder(
    out: str | Path,
    cfg: AutoencoderTraining | None = None,
    config: AutoencoderConfig | None = None,
    resume: bool = False,
    device: str | None = None,
    watch: Watch | None = None,
) -> Autoencoder:
    """Train (or resume) an autoencoder run in `out` in the training scaffold (scaffold.run);
    returns the trained model (eval mode). watch.stop_at ends the run early at that step, as an
    interruption does (checkpoint, no model file)."""
    cfg, config = cfg or AutoencoderTraining(), config or AutoencoderConfig()
    cfg.check()
    torch.manual_seed(cfg.seed)
    task = AutoencoderTask(Autoencoder(config).to(pick_device(device)).train(), cfg)
    result = scaffold.run(
        task, cfg, out, config.to_dict(), resume=resume, watch=watch, desc="autoencoder"
    )
    model = task.model.eval()
    if not result.finished:  # stopped early: the checkpoint is the result
        return model
    model.config.scale_factor = measure_scale_factor(model, world_name=cfg.world)
    last = result.history[-1] if result.history else {}
    save_autoencoder(
        model,
        Path(out) / "autoencoder.safetensors",
        info={
            "steps": result.step,
            "elapsed_s": last.get("elapsed"),
            "final_loss": last.get("loss"),
            "train_config": json.loads(json.dumps(asdict(cfg))),
        },
    )
    return model
