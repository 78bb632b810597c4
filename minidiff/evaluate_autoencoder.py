"""Evaluating the autoencoder of the latent model: does a picture survive the trip through its
8 x 8 x 4 latent? (`minidiff evaluate-autoencoder`, notebook 07)

    report = evaluate_autoencoder(load_autoencoder())
    print(report.table())

The judge reads each test picture and its decoded copy; the share it reads the same is the
agreement. For the scenes world (`world_name="scenes"`) the scene judge reads every object of the
decoded test scenes against the true scenes (scene_judge.agreement: per object, and whole scenes).
PSNR compares the pixels, and the latents' statistics show what the scale factor does.
"""

from dataclasses import asdict, dataclass

import numpy as np
import torch

from . import pixels, scene_judge, scenes, world
from .judge import load_judge


@dataclass
class AutoencoderReport:
    pictures: int  # test pictures encoded and decoded
    agreement: dict[str, float]  # attribute or "all" -> share the judge reads the same after
    psnr: float  # dB, mean over pictures, on 0..255 pixels
    latent_mean: list[float]  # per channel, of the scaled latents (what the diffusion model sees)
    latent_std: list[float]
    scale_factor: float  # stored in the autoencoder: 1 / std of training latents
    measured_scale_factor: float  # 1 / std of these test pictures' unscaled latents
    compression: float  # numbers in a picture / numbers in its latent

    def to_dict(self) -> dict:
        return asdict(self)

    def table(self) -> str:
        agreement = ", ".join(f"{k} {v:.4f}" for k, v in self.agreement.items())
        stats = ", ".join(f"{m:+.3f} / {s:.3f}" for m, s in zip(self.latent_mean, self.latent_std))
        return "\n".join(
            [
                f"autoencoder on {self.pictures} test pictures",
                f"  the judge reads the decoded picture as the original: {agreement}",
                f"  PSNR {self.psnr:.2f} dB; compression {self.compression:.0f}x",
                f"  latent mean / std per channel (scaled): {stats}",
                (
                    f"  scale factor {self.scale_factor:.4f} (1 / std on these pictures: "
                    f"{self.measured_scale_factor:.4f})"
                ),
            ]
        )


def evaluate_autoencoder(
    autoencoder, n: int = 1000, seed: int = 0, judge=None, world_name: str = "shapes"
) -> AutoencoderReport:
    """Encode and decode n test pictures of a world ("shapes" or "scenes"); compare what the judge
    reads in both, and the pixels."""
    if world_name not in ("shapes", "scenes"):
        raise ValueError(f"unknown world {world_name!r}; choose shapes or scenes")
    source = scenes if world_name == "scenes" else world
    images, _, truth = source.batch("test", 0, n, seed=seed)
    device = next(autoencoder.parameters()).device
    with torch.no_grad():
        x = pixels.to_tensor(images).to(device)
        mean, _ = autoencoder.posterior(x)  # (n, C, h, w), unscaled
        decoded = pixels.to_uint8(autoencoder.decode(mean * autoencoder.config.scale_factor))
    if world_name == "scenes":
        agreement = scene_judge.agreement(truth, scene_judge.read_scenes(decoded))
    else:
        judge = judge if judge is not None else load_judge()
        before, after = judge.predict(images), judge.predict(decoded)
        same = {a: before[a] == after[a] for a in world.ATTRIBUTES}
        agreement = {a: float(v.mean()) for a, v in same.items()}
        agreement["all"] = float(np.logical_and.reduce(list(same.values())).mean())
    mse = ((images.astype(np.float64) - decoded.astype(np.float64)) ** 2).mean(axis=(1, 2, 3))
    psnr = float(np.mean(10 * np.log10(255.0**2 / np.maximum(mse, 1e-10))))
    scaled = (mean * autoencoder.config.scale_factor).transpose(0, 1).flatten(1)  # (C, n*h*w)
    return AutoencoderReport(
        n,
        agreement,
        psnr,
        scaled.mean(1).tolist(),
        scaled.std(1).tolist(),
        autoencoder.config.scale_factor,
        1.0 / mean.std().item(),
        images[0].size / mean[0].numel(),
    )
