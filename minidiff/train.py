"""Training: one loop, from scratch, on Shapes-world pictures drawn on the fly.

    minidiff train --preset small --out runs/small          # start
    minidiff train --preset small --out runs/small --resume # go on after an interruption

Each step (`train_step`) draws the next batch of training pictures and captions (batch k is always
the same pictures), noises them with the step's generator, and takes one AdamW step on the loss of
`minidiff.diffusion.training_loss`. An EMA copy of the weights is what gets sampled and shipped.
Everything around the step (learning-rate schedule, step seed, checkpoints and resume, time budget,
progress, Ctrl-C) is the training scaffold's, `minidiff.scaffold`, which every training shares.
"""

import copy
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from . import distributed, pixels, scaffold, scenes, world
from .autoencoder import AutoencoderConfig
from .checkpoint import (
    DEFAULT_AUTOENCODER,
    SCENE_AUTOENCODER,
    SCENE_WEIGHTS,
    CheckpointError,
    load_autoencoder,
    load_model,
    read_file,
    save_model,
)
from .device import pick_device
from .diffusion import OBJECTIVES, training_loss
from .model import WORLDS, ModelConfig, TextToImage, trainable_parameters
from .scaffold import LoopConfig, RunResult, TrainingDiverged, Watch, learning_rate, step_generator
from .schedules import make_alpha_bar
from .text_encoder import TextEncoderConfig
from .tokenizer import MAX_TOKENS, Tokenizer
from .unet import UNetConfig

__all__ = [
    "TrainConfig",
    "TrainingDiverged",
    "Watch",
    "learning_rate",
    "preset",
    "train",
    "train_step",
    "with_objective",
]


@dataclass
class TrainConfig(LoopConfig):
    """A text-to-image training: the scaffold's settings (LoopConfig), then the model's own."""

    steps: int = 6000
    warmup: int = 200  # linear warm-up steps, then cosine decay to lr / 10
    batch_size: int = 64
    betas: tuple[float, float] = (0.9, 0.99)  # AdamW's moment decays
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    p_uncond: float = 0.1  # condition dropout, for classifier-free guidance
    t_sampling: str = "logit_normal"  # or "uniform"
    sample_every: int = 1000
    snapshot_steps: tuple[int, ...] = ()  # also save EMA weights at these steps
    autoencoder: str | None = None  # a latent model's autoencoder file (its weights are copied in)
    # start the U-Net from this model file's U-Net (same design), the text encoder fresh: how
    # notebook 11 gives a trained denoiser a new text encoder (a bag of words, a deeper one)
    unet_from: str | None = None
    skew: world.Skew | None = None  # draw the training split with this bias (notebook 09)

    def positive_counts(self) -> tuple[str, ...]:
        return ("batch_size", "sample_every")


def _text(width: int, layers: int, world: str = "shapes", kind: str = "transformer"):
    return TextEncoderConfig(
        vocab_size=len(Tokenizer.for_world(world)),
        max_tokens=MAX_TOKENS,
        width=width,
        layers=layers,
        heads=4,
        kind=kind,
    )


def preset(name: str) -> tuple[ModelConfig, TrainConfig]:
    """Named (model, training) configurations. 'tiny' is for tests; 'small' is the shipped model."""
    if name == "tiny":  # seconds on a CPU; learns nothing useful
        model = ModelConfig(
            text=_text(32, 1), unet=UNetConfig(channels=(16, 32, 32), context_dim=32, heads=2)
        )
        return model, TrainConfig(
            steps=20,
            batch_size=8,
            warmup=5,
            checkpoint_every=10,
            sample_every=20,
            log_every=5,
            lr=1e-3,
        )
    if name == "small":  # the shipped model: 1.85M parameters, about 30 minutes of 2 CPU cores.
        # Uniform t, as the fast preset measured; 9000 steps for the last percent of position.
        model = ModelConfig(
            text=_text(128, 2), unet=UNetConfig(channels=(48, 96, 96), context_dim=128, heads=4)
        )
        return model, TrainConfig(
            steps=9000,
            batch_size=64,
            lr=1e-3,
            t_sampling="uniform",
            snapshot_steps=(100, 300, 1000, 2000, 3000, 4500, 6000),
        )
    if name == "fast":  # a model that draws what it is asked in 5 minutes of a laptop's two
        # cores, with a margin: the latent model's network and data (pictures 16 times smaller
        # than pixels, so a step costs less and learns more), a faster EMA and a higher learning
        # rate, chosen at 980 steps, which is 5 minutes at half this machine's throughput
        # (benchmarks/README.md, "the fast preset, retuned")
        model, latent = preset("latent")
        return model, replace(latent, lr=FAST_LR, warmup=100, ema_decay=0.99, sample_every=500)
    if name == "fast-pixel":  # the fast preset before its retune: the small pixel model in 5
        # minutes (benchmarks/README.md). Uniform t, not logit-normal: the layout (position) is
        # decided at high noise, which logit-normal t rarely shows the network.
        model, _ = preset("small")
        return model, TrainConfig(
            steps=100_000,
            minutes=5.0,
            batch_size=64,
            lr=1e-3,
            warmup=200,
            ema_decay=0.995,
            t_sampling="uniform",
            checkpoint_every=500,
            sample_every=500,
            snapshot_steps=tuple(range(250, 4001, 250)),
        )
    if name == "latent":  # the fast recipe on the shipped autoencoder's 8 x 8 x 4 latents: the
        # same U-Net design, with cross-attention at every level, so that it attends on the same
        # 8 x 8 and 4 x 4 grids as the pixel model (whose finest level is 16 x 16)
        model, _ = preset("small")
        model = replace(
            model,
            autoencoder=_autoencoder_config(DEFAULT_AUTOENCODER),
            unet=replace(
                model.unet, image_channels=4, image_size=8, patch=1, attention_levels=(0, 1, 2)
            ),
        )
        _, fast = preset("fast-pixel")  # the same 5 minutes, so the two can be compared
        return model, replace(
            fast,
            sample_every=1000,
            autoencoder=str(DEFAULT_AUTOENCODER),
            snapshot_steps=tuple(range(250, 20001, 250)),
        )
    if name == "skewed":  # the fast recipe on a training split where 80% of the stars that
        # captions leave uncoloured are yellow (world.Skew()), for the bias experiment
        model, cfg = preset("fast-pixel")
        return model, replace(cfg, skew=world.Skew())
    if name.startswith("scenes"):
        return _scenes_preset(name)
    if name == "base":  # wider, for a GPU
        model = ModelConfig(
            text=_text(128, 2), unet=UNetConfig(channels=(64, 128, 128), context_dim=128, heads=4)
        )
        return model, TrainConfig(steps=10000, batch_size=128, lr=1e-3)
    raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")


def _scenes_preset(name: str) -> tuple[ModelConfig, TrainConfig]:
    """The scene model (notebook 11) and its variants for the binding experiments.

    Latent: the scene autoencoder's 12 x 12 x 4 latents of the 48 x 48 scenes, with cross-attention
    on the 6 x 6 and 3 x 3 grids (the 3 x 3 grid is the scenes' cells). "scenes-pixel" is the first
    recipe, pixels folded into 3 x 3 patches (a 16 x 16 grid); benchmarks/README.md, "The scene
    model", measures the two against each other.
    """
    text = _text(128, 2, "scenes")
    train_cfg = TrainConfig(
        steps=100_000,
        minutes=30.0,  # the wall-clock budget: the schedule spans it (see the fast preset)
        batch_size=64,
        lr=1e-3,
        warmup=200,
        ema_decay=0.998,  # an average over about 500 steps: a 30-minute run makes several thousand
        t_sampling="uniform",
        checkpoint_every=500,
        sample_every=1000,
        snapshot_steps=tuple(range(500, 20001, 500)),
    )
    if name == "scenes-pixel":
        unet = UNetConfig(image_size=48, patch=3, channels=(48, 96, 96), context_dim=128, heads=4)
        return ModelConfig(text=text, unet=unet, world="scenes"), train_cfg
    unet = UNetConfig(
        image_channels=4, image_size=12, patch=1, channels=(48, 96, 96), context_dim=128, heads=4
    )
    autoencoder = _autoencoder_config(SCENE_AUTOENCODER)
    model = ModelConfig(text=text, unet=unet, world="scenes", autoencoder=autoencoder)
    train_cfg = replace(train_cfg, autoencoder=str(SCENE_AUTOENCODER))
    if name == "scenes":
        return model, train_cfg
    # The binding experiment (notebook 11), from scratch: the same data, seed and 1,500 steps,
    # with text encoders and U-Nets of other kinds and sizes (benchmarks/README.md).
    short = replace(
        train_cfg, steps=SCENES_SHORT_STEPS, minutes=None, ema_decay=0.995, snapshot_steps=()
    )
    # A new text encoder for the shipped scene model's U-Net: the U-Net starts trained, the text
    # encoder fresh, and both train the same steps on the same data; only the encoder differs.
    retext = replace(
        short,
        steps=SCENES_RETEXT_STEPS,
        warmup=100,
        sample_every=SCENES_RETEXT_STEPS,
        unet_from=str(SCENE_WEIGHTS),
    )
    variants = {
        "scenes-short": (model, short),
        "scenes-short-bag": (replace(model, text=_text(128, 2, "scenes", kind="bag")), short),
        # a bigger text encoder against a bigger U-Net, each about 1M parameters more (Imagen)
        "scenes-short-text6": (replace(model, text=_text(128, 6, "scenes")), short),
        "scenes-short-unet": (replace(model, unet=replace(unet, channels=(64, 128, 128))), short),
        # no pooled prompt vector in the time embedding: the words reach the U-Net only through
        # cross-attention, where each can land on its own object
        "scenes-short-nopool": (replace(model, unet=replace(unet, pooled_text=False)), short),
        "scenes-bag": (replace(model, text=_text(128, 2, "scenes", kind="bag")), retext),
        "scenes-transformer": (model, retext),
        "scenes-transformer6": (replace(model, text=_text(128, 6, "scenes")), retext),
    }
    if name not in variants:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return variants[name]


FAST_LR = 1.5e-3
SCENES_SHORT_STEPS = 1500
SCENES_RETEXT_STEPS = 600
PRESETS = (
    "tiny",
    "small",
    "fast",
    "fast-pixel",
    "latent",
    "skewed",
    "base",
    "scenes",
    "scenes-pixel",
    "scenes-short",
    "scenes-short-bag",
    "scenes-short-text6",
    "scenes-short-unet",
    "scenes-short-nopool",
    "scenes-bag",
    "scenes-transformer",
    "scenes-transformer6",
)


def with_objective(model: ModelConfig, objective: str) -> ModelConfig:
    """The model config trained with another objective (`minidiff train --objective`): "flow"
    (rectified flow, with its own schedule) or a diffusion prediction ("eps", "x0", "v") on the
    preset's schedule (cosine, if the preset was a flow one)."""
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; choose one of {', '.join(OBJECTIVES)}")
    if objective == "flow":
        return replace(model, prediction="flow", schedule="flow")
    schedule = "cosine" if model.schedule == "flow" else model.schedule
    return replace(model, prediction=objective, schedule=schedule)


def _autoencoder_config(path) -> dict:
    try:
        _, metadata = read_file(path)
    except CheckpointError:
        raise CheckpointError(
            f"the latent model needs a trained autoencoder at '{path}'; train "
            "one with 'minidiff train-autoencoder'"
        ) from None
    return AutoencoderConfig.from_dict(json.loads(metadata["config"])).to_dict()


_TOKENIZERS = {name: Tokenizer.for_world(name) for name in WORLDS}


def training_batch(world_name: str, step: int, cfg: TrainConfig):
    """Training batch number `step` of a world: (uint8 pictures (B, S, S, 3), captions)."""
    start = step * cfg.batch_size
    if world_name == "scenes":
        images, captions, _ = scenes.batch("train", start, cfg.batch_size, seed=cfg.seed)
    else:
        images, captions, _ = world.batch(
            "train", start, cfg.batch_size, seed=cfg.seed, skew=cfg.skew
        )
    return images, captions


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, step: int, decay: float) -> None:
    """ema <- d * ema + (1 - d) * model, with d warmed up so early averages are not all init."""
    d = min(decay, (1 + step) / (10 + step))
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p, 1 - d)


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    return torch.optim.AdamW(
        trainable_parameters(model), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay
    )


def train_step(
    model: torch.nn.Module,
    ema: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    step: int,
    cfg: TrainConfig,
    alpha_bar: torch.Tensor,
    progress: float | None = None,
    denoiser: torch.nn.Module | None = None,
) -> float:
    """One optimizer step on training batch number `step`; returns its loss.

    Draws the batch (the same pictures and captions for the same step and seed), noises it with a
    generator seeded by (seed, step), and takes one AdamW step on diffusion.training_loss (with
    condition dropout) at the scheduled learning rate (`progress`: see learning_rate), clipping the
    gradient norm; then moves the EMA copy. `model` is anything with `.config` (a ModelConfig) that
    maps (x_t, t, ids) -> out; `denoiser`, if given, is what the loss calls instead (the model
    wrapped in DistributedDataParallel). Under torchrun, rank r of N draws batch number
    step * N + r and its noise (minidiff.distributed).
    """
    dev = next(model.parameters()).device
    ranks = distributed.current()
    batch = step * ranks.world_size + ranks.rank  # one data stream per rank
    images, captions = training_batch(model.config.world, batch, cfg)
    x0 = pixels.to_tensor(images).to(dev)  # (B, 3, 32, 32), or 48 x 48 scenes
    if model.autoencoder is not None:  # a latent model denoises the pictures' latents
        with torch.no_grad():
            x0 = model.autoencoder.encode(x0)  # (B, 4, 8, 8)
    tokenizer = _TOKENIZERS[model.config.world]
    ids = tokenizer.encode(captions).to(dev)  # (B, L)
    null_ids = tokenizer.encode("")[0].to(dev)  # (L,) the empty prompt
    scaffold.set_learning_rate(optimizer, learning_rate(step, cfg, progress))
    generator = step_generator(cfg.seed, batch, dev)
    loss = training_loss(
        denoiser or model,
        x0,
        ids,
        null_ids,
        alpha_bar,
        model.config.prediction,
        cfg.p_uncond,
        cfg.t_sampling,
        generator=generator,
    )
    value = scaffold.optimizer_step(optimizer, loss, step, cfg.grad_clip)
    ema_update(ema, model, step, cfg.ema_decay)
    return value


class TextToImageTask:
    """The scaffold's view of a text-to-image training: the network, its EMA copy and AdamW."""

    def __init__(self, model: TextToImage, cfg: TrainConfig):
        self.model, self.cfg = model, cfg
        self.ema = copy.deepcopy(model).requires_grad_(False)
        self.denoiser = distributed.wrap(model)  # DistributedDataParallel under torchrun
        self.modules = {"model": model, "ema": self.ema}
        self.optimizers = {"opt": make_optimizer(model, cfg)}
        self.alpha_bar = make_alpha_bar(model.config.schedule, model.config.T)  # float64, CPU

    def step(self, step: int, progress: float | None) -> float:
        return train_step(
            self.model,
            self.ema,
            self.optimizers["opt"],
            step,
            self.cfg,
            self.alpha_bar,
            progress,
            self.denoiser,
        )


def build_model(model_config: ModelConfig, cfg: TrainConfig, device: torch.device) -> TextToImage:
    """A fresh network seeded by cfg.seed; a latent one gets its trained autoencoder copied in."""
    if cfg.skew is not None and model_config.world != "shapes":
        raise ValueError("a skewed training split exists only in the one-object world ('shapes')")
    torch.manual_seed(cfg.seed)
    model = TextToImage(model_config).to(device)
    if model_config.autoencoder is not None:
        if cfg.autoencoder is None:
            raise ValueError(
                "a latent model needs TrainConfig.autoencoder, the file of its trained autoencoder"
            )
        trained = load_autoencoder(cfg.autoencoder, device=device)
        if trained.config != AutoencoderConfig.from_dict(model_config.autoencoder):
            raise CheckpointError(
                f"the autoencoder at '{cfg.autoencoder}' is not the one this "
                "model config names; rebuild the preset after retraining it"
            )
        model.autoencoder.load_state_dict(trained.state_dict())
    if cfg.unet_from is not None:
        trained, _ = load_model(cfg.unet_from, device=device)
        if trained.config.unet != model_config.unet or trained.config.world != model_config.world:
            raise CheckpointError(
                f"the U-Net of '{cfg.unet_from}' is not the one this model config names; "
                "unet_from needs the same U-Net design and world"
            )
        model.unet.load_state_dict(trained.unet.state_dict())
    return model


def train(
    model_config: ModelConfig,
    train_config: TrainConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    device: str | None = None,
    watch: Watch | None = None,
    on_sample: Callable[[TextToImage, int], None] | None = None,
) -> RunResult:
    """Train (or resume) a run in `out_dir`, in the training scaffold (scaffold.run; `watch`:
    progress bar, early stop, log records). At the end (cfg.steps, the time budget, or
    watch.stop) the EMA weights are written to out_dir/model.safetensors.

    on_sample(ema, step), if given, is called every `sample_every` steps and at the end, to draw
    from the EMA weights (the command line writes a grid of pictures; see
    minidiff.pipeline.sample_grid). Training itself knows nothing about sampling.

    Under torchrun (`torchrun --nproc_per_node N -m minidiff train ...`), after
    minidiff.distributed.setup(), every rank trains its own data stream with DistributedDataParallel
    and rank 0 writes the files.
    """
    cfg, out = train_config, Path(out_dir)
    dev = distributed.rank_device(pick_device(device))  # under torchrun, this rank's own GPU
    task = TextToImageTask(build_model(model_config, cfg, dev), cfg)

    def after_step(step: int, last: bool) -> None:
        if step in cfg.snapshot_steps:
            save_model(
                task.ema,
                out / "snapshots" / f"step-{step:06d}.safetensors",
                info={"step": step},
                dtype=torch.float16,
            )
        if on_sample is not None and (step % cfg.sample_every == 0 or last):
            on_sample(task.ema, step)
            task.ema.train()

    task.model.train()
    result = scaffold.run(
        task, cfg, out, model_config.to_dict(), resume=resume, watch=watch, on_step=after_step
    )
    if result.finished and distributed.current().main:
        last = result.history[-1] if result.history else {}
        info = {
            "step": result.step,
            "train_config": json.loads(json.dumps(asdict(cfg))),
            "elapsed_s": last.get("elapsed"),
            "final_loss": last.get("loss"),
        }
        save_model(task.ema, out / "model.safetensors", info=info)
    return result
