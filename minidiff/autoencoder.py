"""A tiny autoencoder: 32 x 32 x 3 pictures <-> 8 x 8 x 4 latents, the space the latent model
denoises   [LDM, Rombach 2022, section 3.1].

    minidiff train-autoencoder --out runs/autoencoder     # minidiff.train_autoencoder
    ae = minidiff.checkpoint.load_autoencoder()            # the shipped one
    z = ae.encode(x)                                             # (B, 3, 32, 32) -> (B, 4, 8, 8)
    x_hat = ae.decode(z)

The encoder halves the picture twice (a factor f = 4 per side) and outputs, for every latent
element, the mean and log-variance of a Gaussian q(z | x); training draws z from it and pays a
small KL penalty towards N(0, I), as Stable Diffusion's VAE does. That penalty keeps the latent
space smooth, so a point near a picture's latent decodes to a picture near it. It is weak (the
reconstruction must keep every attribute), so the latents do not come out with unit variance;
`scale_factor` = 1 / std(latents of training pictures) fixes that, as 0.18215 does for Stable
Diffusion. `encode` returns the mean, already multiplied by scale_factor: what the diffusion model
sees. `decode` divides it out again.
"""

from dataclasses import asdict, dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class AutoencoderConfig:
    image_channels: int = 3
    latent_channels: int = 4
    channels: tuple[int, ...] = (16, 32, 64)  # per resolution: 32x32, 16x16, 8x8
    groups: int = 8  # GroupNorm groups
    kl_weight: float = 1e-3  # of the KL term, per latent element, against the per-pixel MSE
    scale_factor: float = 1.0  # 1 / std of the latents; measured after training

    @property
    def factor(self) -> int:
        """How many pixels one latent element covers per side."""
        return 2 ** (len(self.channels) - 1)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "AutoencoderConfig":
        try:
            return cls(**{**d, "channels": tuple(d["channels"])})
        except (KeyError, TypeError) as e:
            raise ValueError(f"this is not a minidiff autoencoder config ({e})") from None


class Block(nn.Module):
    """GroupNorm-SiLU-conv twice, plus the input: a residual block without a time embedding."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.GroupNorm(groups, channels),
            nn.SiLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.GroupNorm(groups, channels),
            nn.SiLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


class Autoencoder(nn.Module):
    def __init__(self, config: AutoencoderConfig | None = None):
        super().__init__()
        self.config = cfg = replace(config) if config is not None else AutoencoderConfig()
        chs = cfg.channels
        down: list[nn.Module] = [nn.Conv2d(cfg.image_channels, chs[0], 3, padding=1)]
        for i, c in enumerate(chs):
            if i > 0:  # a strided conv halves the side
                down.append(nn.Conv2d(chs[i - 1], c, 3, stride=2, padding=1))
            down.append(Block(c, cfg.groups))
        down += [
            nn.GroupNorm(cfg.groups, chs[-1]),
            nn.SiLU(),
            nn.Conv2d(chs[-1], 2 * cfg.latent_channels, 3, padding=1),
        ]  # mean, log-variance
        self.encoder = nn.Sequential(*down)
        up: list[nn.Module] = [nn.Conv2d(cfg.latent_channels, chs[-1], 3, padding=1)]
        for i in reversed(range(len(chs))):
            up.append(Block(chs[i], cfg.groups))
            if i > 0:  # nearest-neighbour upsampling, then a conv, doubles the side
                up += [nn.Upsample(scale_factor=2), nn.Conv2d(chs[i], chs[i - 1], 3, padding=1)]
        up += [
            nn.GroupNorm(cfg.groups, chs[0]),
            nn.SiLU(),
            nn.Conv2d(chs[0], cfg.image_channels, 3, padding=1),
        ]
        self.decoder = nn.Sequential(*up)

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, 3, 32, 32) in [-1, 1] -> mean, log-variance of q(z | x), each (B, 4, 8, 8),
        unscaled."""
        mean, logvar = self.encoder(x).chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Pictures (B, 3, 32, 32) -> the latents the diffusion model sees: scale_factor * mean."""
        return self.posterior(x)[0] * self.config.scale_factor

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents as `encode` returns them (B, 4, 8, 8) -> pictures (B, 3, 32, 32), in about
        [-1, 1]."""
        return self.decoder(z / self.config.scale_factor)

    def forward(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The training pass: (x_hat, loss), with z ~ q(z | x) drawn by reparameterisation."""
        mean, logvar = self.posterior(x)
        std = torch.exp(0.5 * logvar)
        z = mean + std * torch.randn(mean.shape, generator=generator, device=x.device)
        x_hat = self.decoder(z)
        # KL(N(mean, std^2) || N(0, 1)) per latent element   [VAE, Kingma 2014, appendix B]
        kl = 0.5 * (mean.square() + std.square() - 1.0 - logvar)
        return x_hat, F.mse_loss(x_hat, x) + self.config.kl_weight * kl.mean()
