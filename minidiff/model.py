"""The text-to-image network: a text encoder and a U-Net, and the config that describes both.

`TextToImage(x_t, t, ids)` is the raw network call used in training. At sampling time the prompt is
encoded once (`encode_text`) and the U-Net is called every step with the cached token vectors.
The config also records how the network was trained (schedule, number of timesteps, what it
predicts), because a sampler needs to know that to read the network's output; the network itself
never looks at those fields.
"""

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from . import scenes, world
from .autoencoder import Autoencoder, AutoencoderConfig
from .text_encoder import TextEncoder, TextEncoderConfig
from .unet import UNet, UNetConfig

WORLDS = ("shapes", "scenes")
PICTURE_SIZES = {"shapes": world.IMAGE_SIZE, "scenes": scenes.CANVAS}  # pixels a side


@dataclass
class ModelConfig:
    text: TextEncoderConfig
    unet: UNetConfig = field(default_factory=UNetConfig)
    schedule: str = "cosine"  # name in minidiff.schedules.SCHEDULES
    T: int = 1000  # number of training timesteps
    prediction: str = "v"  # what the network outputs: "eps", "x0", "v", or "flow" (a velocity)
    # A latent model denoises the latents of this autoencoder (an AutoencoderConfig as a dict,
    # minidiff.autoencoder), whose frozen weights travel in the same file; None: it denoises pixels.
    autoencoder: dict | None = None
    # The world it draws: "shapes" (one object, 32 x 32) or "scenes" (one to four objects,
    # 48 x 48; minidiff.scenes). It picks the tokenizer's words and the training pictures.
    world: str = "shapes"

    @property
    def picture_size(self) -> int:
        """The side of the pictures it draws, in pixels (a latent model's after decoding)."""
        if self.autoencoder is None:
            return self.unet.image_size
        factor = AutoencoderConfig.from_dict(self.autoencoder).factor
        return self.unet.image_size * factor

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        try:
            unet = dict(d["unet"])
            for key in ("channels", "attention_levels"):
                unet[key] = tuple(unet[key])
            rest = {k: v for k, v in d.items() if k not in ("text", "unet")}
            if rest.get("autoencoder") is not None:  # as AutoencoderConfig writes it (tuples)
                rest["autoencoder"] = AutoencoderConfig.from_dict(rest["autoencoder"]).to_dict()
            return cls(text=TextEncoderConfig(**d["text"]), unet=UNetConfig(**unet), **rest)
        except (KeyError, TypeError) as e:
            raise ValueError(f"this is not a minidiff model config ({e})") from None


class TextToImage(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.unet.context_dim != config.text.width:
            raise ValueError(
                f"unet.context_dim ({config.unet.context_dim}) must equal the text "
                f"encoder width ({config.text.width})"
            )
        if (config.prediction == "flow") != (config.schedule == "flow"):
            raise ValueError(
                "a flow model pairs prediction 'flow' with schedule 'flow', got prediction "
                f"{config.prediction!r} with schedule {config.schedule!r}"
            )
        if config.world not in WORLDS:
            raise ValueError(f"unknown world {config.world!r}; choose one of {', '.join(WORLDS)}")
        self.config = config
        self.text_encoder = TextEncoder(config.text)
        self.unet = UNet(config.unet)
        self.autoencoder = None
        if config.autoencoder is not None:
            ae = AutoencoderConfig.from_dict(config.autoencoder)
            side = PICTURE_SIZES[config.world]
            latent = (ae.latent_channels, config.unet.image_size * ae.factor)
            if (config.unet.image_channels, side) != latent:
                raise ValueError(
                    f"a latent U-Net must take {ae.latent_channels} channels of "
                    f"{side // ae.factor} x {side // ae.factor}, got "
                    f"{config.unet.image_channels} of {config.unet.image_size}"
                )
            self.autoencoder = Autoencoder(ae).requires_grad_(False)  # trained before, frozen

    def encode_text(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """ids (B, L) -> context (B, L, D), mask (B, L)."""
        return self.text_encoder(ids)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        context, mask = self.text_encoder(ids)
        return self.unet(x_t, t, context, mask)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def trainable_parameters(module: nn.Module) -> list[nn.Parameter]:
    """The parameters training updates (a latent model's autoencoder is frozen)."""
    return [p for p in module.parameters() if p.requires_grad]


def shape_table(model: TextToImage, batch: int = 1) -> str:
    """A per-block table of output shapes and parameter counts, from one real forward pass."""
    rows: list[tuple[str, str, int]] = []
    hooks = []

    def record(name):
        def hook(module, args, out):
            shape = out[0].shape if isinstance(out, tuple) else out.shape
            rows.append((name, str(tuple(shape)), count_parameters(module)))

        return hook

    named = [("text_encoder", model.text_encoder)]
    unet = model.unet
    named += [("unet.conv_in", unet.conv_in)]
    named += [(f"unet.down.{i}", m) for i, m in enumerate(unet.down)]
    named += [
        (f"unet.downsample.{i}", m)
        for i, m in enumerate(unet.downsample)
        if not isinstance(m, nn.Identity)
    ]
    named += [("unet.mid", unet.mid)]
    named += [(f"unet.up.{i}", m) for i, m in enumerate(unet.up)]
    named += [("unet.conv_out", unet.conv_out)]
    for name, module in named:
        hooks.append(module.register_forward_hook(record(name)))
    cfg = model.config
    device = next(model.parameters()).device
    x = torch.zeros(
        batch, cfg.unet.image_channels, cfg.unet.image_size, cfg.unet.image_size, device=device
    )
    ids = torch.ones(batch, cfg.text.max_tokens, dtype=torch.long, device=device)
    try:
        with torch.no_grad():
            model(x, torch.zeros(batch, dtype=torch.long, device=device), ids)
    finally:
        for h in hooks:
            h.remove()
    lines = [f"{'block':<20} {'output shape':<22} {'parameters':>10}"]
    lines += [f"{n:<20} {s:<22} {p:>10,}" for n, s, p in rows]
    lines.append(f"{'total':<20} {'':<22} {count_parameters(model):>10,}")
    return "\n".join(lines)


def unet_flops(model: TextToImage, batch: int = 1) -> int:
    """FLOPs of one U-Net call on `batch` pictures (the cost of a sampling step without guidance),
    counted by torch's FlopCounterMode on a real forward pass (matmuls and convolutions: a
    multiply-add counts as 2). The text encoder runs once per prompt, not per step; it is left out.
    """
    from torch.utils.flop_counter import FlopCounterMode

    cfg = model.config
    device = next(model.parameters()).device
    x = torch.zeros(
        batch, cfg.unet.image_channels, cfg.unet.image_size, cfg.unet.image_size, device=device
    )
    ids = torch.ones(batch, cfg.text.max_tokens, dtype=torch.long, device=device)
    with torch.no_grad():
        context, mask = model.encode_text(ids)
        with FlopCounterMode(display=False) as counter:
            model.unet(x, torch.zeros(batch, dtype=torch.long, device=device), context, mask)
    return counter.get_total_flops() // batch
