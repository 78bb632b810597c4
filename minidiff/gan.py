"""A conditional GAN on the Shapes world: the other family of image generators (notebook 14).

    minidiff train-gan --out runs/gan            # Ctrl-C saves; --resume continues

A generator G turns a noise vector z and the prompt into a picture in one network call; a
discriminator D scores (picture, prompt) pairs, real renders high and G's pictures low. They are
trained against each other   [GAN, Goodfellow et al. 2014]:

    L_D = E[max(0, 1 - D(x, y))] + E[max(0, 1 + D(G(z, y), y))]      hinge loss   [SAGAN, 2019]
    L_G = -E[D(G(z, y), y)]

D reads the prompt by projection: D(x, y) = w·h(x) + <e(y), h(x)>, with h(x) its picture features
and e(y) the prompt's vector   [projection discriminator, Miyato & Koyama 2018]. Every layer of D
has spectral normalisation, which keeps it 1-Lipschitz and the game stable   [Miyato et al. 2018].
Both read prompts with the course's text encoder (minidiff.text_encoder), each its own copy,
pooled to one vector; G also keeps an EMA copy, which is what gets sampled.

Each training step takes one D step and one G step on training batch number `step`, in the
training scaffold (minidiff.scaffold): schedule, step seed, resumable atomic checkpoints.
"""

import copy
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from . import pixels, scaffold, world
from .checkpoint import CheckpointError, load_state, read_file, save_weights
from .scaffold import LoopConfig, RunResult, Watch, learning_rate, step_generator
from .text_encoder import TextEncoder, TextEncoderConfig
from .tokenizer import MAX_TOKENS, Tokenizer
from .train import ema_update

KIND = "gan"


def _text_config() -> TextEncoderConfig:
    """The course's text encoder (2 layers, width 128) over the one-object world's words."""
    return TextEncoderConfig(vocab_size=len(Tokenizer()), max_tokens=MAX_TOKENS)


@dataclass
class GanConfig:
    z_dim: int = 64
    g_channels: tuple[int, ...] = (256, 128, 64, 32)  # at 4, 8, 16 and 32 px
    d_channels: tuple[int, ...] = (32, 64, 128)  # at 32, 16 and 8 px, each then halved
    text: TextEncoderConfig = field(default_factory=lambda: _text_config())

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "GanConfig":
        try:
            return cls(
                z_dim=int(d["z_dim"]),
                g_channels=tuple(d["g_channels"]),
                d_channels=tuple(d["d_channels"]),
                text=TextEncoderConfig(**d["text"]),
            )
        except (KeyError, TypeError) as e:
            raise CheckpointError(f"this is not a GAN config ({e})") from None


def pooled(encoder: TextEncoder, ids: torch.Tensor) -> torch.Tensor:
    """The prompt as one vector: the mean of its token vectors, (B, L) ids -> (B, D)."""
    context, mask = encoder(ids)
    m = mask.unsqueeze(-1).to(context.dtype)  # (B, L, 1)
    return (context * m).sum(1) / m.sum(1)


class Generator(nn.Module):
    """(z (B, z_dim), ids (B, L)) -> pictures (B, 3, 32, 32) in [-1, 1], in one call."""

    def __init__(self, cfg: GanConfig):
        super().__init__()
        self.cfg = cfg
        self.text = TextEncoder(cfg.text)
        c = cfg.g_channels
        self.fc = nn.Linear(cfg.z_dim + cfg.text.width, c[0] * 4 * 4)
        layers = []
        for c_in, c_out in zip(c, c[1:]):  # 4 -> 8 -> 16 -> 32 px
            layers += [
                nn.Upsample(scale_factor=2),
                nn.Conv2d(c_in, c_out, 3, padding=1),
                nn.BatchNorm2d(c_out),
                nn.ReLU(),
            ]
        self.up = nn.Sequential(*layers)
        self.out = nn.Conv2d(c[-1], 3, 3, padding=1)

    def forward(self, z: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        h = self.fc(torch.cat([z, pooled(self.text, ids)], dim=1))  # (B, C0 * 16)
        h = F.relu(h.view(len(z), self.cfg.g_channels[0], 4, 4))  # (B, C0, 4, 4)
        return torch.tanh(self.out(self.up(h)))  # (B, 3, 32, 32)


class Discriminator(nn.Module):
    """Scores (picture, prompt) pairs, high for real ones: D(x, condition(ids)) -> (B,)."""

    def __init__(self, cfg: GanConfig):
        super().__init__()
        self.text = TextEncoder(cfg.text)
        layers, c_in = [], 3
        for c in cfg.d_channels:  # 32 -> 16 -> 8 -> 4 px
            layers += [
                spectral_norm(nn.Conv2d(c_in, c, 3, padding=1)),
                nn.LeakyReLU(0.1),
                spectral_norm(nn.Conv2d(c, c, 4, stride=2, padding=1)),
                nn.LeakyReLU(0.1),
            ]
            c_in = c
        self.features = nn.Sequential(*layers)
        self.position = spectral_norm(nn.Linear(c_in * 4 * 4, c_in))  # keeps where things are
        self.score = spectral_norm(nn.Linear(c_in, 1))
        self.embed = spectral_norm(nn.Linear(cfg.text.width, c_in))

    def condition(self, ids: torch.Tensor) -> torch.Tensor:
        """The prompt's projection vector e(y), (B, L) ids -> (B, C): read once a step."""
        return self.embed(pooled(self.text, ids))

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        """Pictures (B, 3, 32, 32) and e(y) from `condition` -> scores (B,)."""
        h = F.leaky_relu(self.position(self.features(x).flatten(1)), 0.1)  # (B, C)
        return self.score(h)[:, 0] + (e * h).sum(1)  # w·h + <e(y), h>


class ConditionalGAN(nn.Module):
    def __init__(self, config: GanConfig):
        super().__init__()
        self.config = config
        self.generator = Generator(config)
        self.discriminator = Discriminator(config)


@dataclass
class GanTraining(LoopConfig):
    steps: int = 6000
    warmup: int = 0
    final_lr: float = 1.0  # a constant learning rate, as GANs are usually trained
    lr: float = 2e-4  # G's
    lr_d: float = 2e-4
    betas: tuple[float, float] = (0.0, 0.9)  # Adam's, as BigGAN and SAGAN use
    batch_size: int = 64
    ema_decay: float = 0.999
    mode_seeking: float = 0.0  # weight of MSGAN's term against mode collapse (0: the plain recipe)

    def check(self) -> None:
        super().check()
        if not (math.isfinite(self.mode_seeking) and self.mode_seeking >= 0):
            raise ValueError(f"mode_seeking must be a number >= 0, got {self.mode_seeking}")
        if not (math.isfinite(self.lr_d) and self.lr_d > 0):
            raise ValueError(f"lr_d must be a positive number, got {self.lr_d}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must lie in [0, 1), got {self.ema_decay}")

    def positive_counts(self) -> tuple[str, ...]:
        return ("batch_size",)


def d_hinge_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """The discriminator's hinge loss on its scores of real and generated pairs."""
    return F.relu(1 - real).mean() + F.relu(1 + fake).mean()


class GanTask:
    """The scaffold's view of a GAN training: G, D, G's EMA and one Adam each."""

    def __init__(self, gan: ConditionalGAN, cfg: GanTraining):
        self.gan, self.cfg = gan, cfg
        self.ema = copy.deepcopy(gan.generator).requires_grad_(False)
        self.tokenizer = Tokenizer()
        self.modules = {"gan": gan, "ema": self.ema}
        self.optimizers = {
            "g": torch.optim.Adam(gan.generator.parameters(), lr=cfg.lr, betas=cfg.betas),
            "d": torch.optim.Adam(gan.discriminator.parameters(), lr=cfg.lr_d, betas=cfg.betas),
        }

    def step(self, step: int, progress: float | None) -> float:
        cfg, G, D = self.cfg, self.gan.generator, self.gan.discriminator
        dev = next(G.parameters()).device
        images, captions, _ = world.batch("train", step * cfg.batch_size, cfg.batch_size, cfg.seed)
        x = pixels.to_tensor(images).to(dev)  # (B, 3, 32, 32)
        ids = self.tokenizer.encode(captions).to(dev)
        generator = step_generator(cfg.seed, step, dev)
        z = torch.randn(len(x), self.gan.config.z_dim, generator=generator, device=dev)
        rate = learning_rate(step, cfg, progress) / cfg.lr
        scaffold.set_learning_rate(self.optimizers["g"], cfg.lr * rate)
        scaffold.set_learning_rate(self.optimizers["d"], cfg.lr_d * rate)
        fake = G(z, ids)  # (B, 3, 32, 32), drawn once for both steps
        e = D.condition(ids)
        d_loss = d_hinge_loss(D(x, e), D(fake.detach(), e))
        d_value = scaffold.optimizer_step(self.optimizers["d"], d_loss, step)
        with torch.no_grad():
            e = D.condition(ids)  # as the discriminator just updated reads the prompt
        g_loss = -D(fake, e).mean()
        if cfg.mode_seeking > 0:
            g_loss = g_loss + cfg.mode_seeking * self.mode_seeking_loss(z, ids, fake, generator)
        scaffold.optimizer_step(self.optimizers["g"], g_loss, step)
        ema_update(self.ema, G, step, cfg.ema_decay)  # training's one EMA rule, on weights;
        with torch.no_grad():  # BatchNorm's running statistics are copied as they are
            for kept, live in zip(self.ema.buffers(), G.buffers()):
                kept.copy_(live)
        return d_value

    def mode_seeking_loss(self, z, ids, fake, generator) -> torch.Tensor:
        """1 / (d(G(z1, y), G(z2, y)) / d(z1, z2)), on half the batch with a second z each: small
        when two z for the same prompt give different pictures   [MSGAN, Mao et al. 2019, eq. 3].
        Nothing else in the GAN's losses asks G to use z at all."""
        half = len(z) // 2
        z2 = torch.randn(half, z.shape[1], generator=generator, device=z.device)
        other = self.gan.generator(z2, ids[:half])  # (B/2, 3, 32, 32), the same prompts
        pictures = (fake[:half] - other).abs().mean((1, 2, 3))  # (B/2,) L1 distances
        return 1 / ((pictures / (z[:half] - z2).abs().mean(1)).mean() + 1e-5)


def save_gan(generator: Generator, path, info: dict | None = None) -> None:
    """The generator alone (what draws), as a file of kind "gan", in float16."""
    holder = nn.Module()
    holder.config = generator.cfg
    holder.generator = generator
    save_weights(holder, path, KIND, info, dtype=torch.float16)


def load_gan(path, device: str | torch.device = "cpu") -> tuple[Generator, dict]:
    """A generator written by save_gan (or `minidiff train-gan`), in eval mode, and its info;
    a file of another kind (a diffusion model, a judge) is refused in one sentence."""
    tensors, metadata = read_file(path)
    if metadata.get("kind") != KIND:
        raise CheckpointError(
            f"'{path}' holds {metadata.get('kind', 'unknown')} weights, not a GAN generator"
        )
    generator = Generator(GanConfig.from_dict(json.loads(metadata["config"])))
    state = {k.removeprefix("generator."): v for k, v in tensors.items()}
    load_state(generator, state, path)
    return generator.to(device).eval(), json.loads(metadata.get("info", "{}"))


@torch.no_grad()
def generate(generator: Generator, prompts: list[str], seed: int = 0) -> np.ndarray:
    """One picture per prompt in one network call -> uint8 (N, 32, 32, 3); the same seed gives
    the same z, on every device (drawn on the CPU)."""
    dev = next(generator.parameters()).device
    ids = Tokenizer().encode(list(prompts)).to(dev)
    z = torch.randn(len(ids), generator.cfg.z_dim, generator=torch.Generator().manual_seed(seed))
    return pixels.to_uint8(generator(z.to(dev), ids))


@dataclass(frozen=True)
class GanSettings:
    """What a GAN has of the diffusion pipeline's settings: one network call, no guidance."""

    steps: int = 1
    guidance_scale: float = 1.0
    sampler: str = "gan"


class GanPipeline:
    """A GAN behind the diffusion Pipeline's `generate`, so that the same evaluation, explorers
    and command line can draw with either family: `minidiff.load_pretrained("gan")`."""

    default_settings = GanSettings()

    def __init__(self, generator: Generator, device: str | torch.device, info: dict):
        self.generator, self.device, self.info = generator, torch.device(device), info

    def generate(
        self, prompt: str | list[str], n: int = 8, seed: int = 0, **settings
    ) -> np.ndarray:
        """n pictures per prompt as uint8 (n * prompts, 32, 32, 3), like Pipeline.generate;
        a setting a GAN does not have (more steps, guidance, a sampler) is refused."""
        for name, value in settings.items():
            if value is not None and value != getattr(self.default_settings, name, object()):
                raise ValueError(
                    f"a GAN draws in one network call and has no {name} to set (got {value!r})"
                )
        if prompt is None:
            raise ValueError("this GAN draws only from a prompt; it has no unconditional mode")
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive whole number of pictures, got {n!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be a whole number, got {seed!r}")
        return generate(self.generator, [p for p in prompts for _ in range(n)], seed)


def load_pipeline(path, device: str | None = None) -> GanPipeline:
    """The GAN written at `path` (by save_gan or `minidiff train-gan`) as a GanPipeline."""
    from .device import pick_device

    dev = pick_device(device)
    generator, info = load_gan(path, dev)
    return GanPipeline(generator, dev, info)


def train_gan(
    out_dir,
    cfg: GanTraining,
    config: GanConfig | None = None,
    *,
    resume: bool = False,
    device: str | None = None,
    watch: Watch | None = None,
) -> RunResult:
    """Train (or resume) a conditional GAN in `out_dir`; at the end, G's EMA weights are written
    to out_dir/gan.safetensors."""
    from .device import pick_device

    config = config or GanConfig()
    cfg.check()
    torch.manual_seed(cfg.seed)
    task = GanTask(ConditionalGAN(config).to(pick_device(device)), cfg)
    task.gan.train()
    out = Path(out_dir)
    result = scaffold.run(task, cfg, out, config.to_dict(), resume=resume, watch=watch, desc="gan")
    if result.finished:
        last = result.history[-1] if result.history else {}
        info = {"step": result.step, "train_config": asdict(cfg), "elapsed_s": last.get("elapsed")}
        save_gan(task.ema, out / "gan.safetensors", info)
    return result
