"""A watermark in the starting noise, found again by running DDIM backwards [Tree-Ring].

    key = WatermarkKey(seed=7)
    marked = watermark.generate(pipe, "a large red circle", n=8, key=key)  # DDIM, eta 0
    clean = watermark.generate(pipe, "a large red circle", n=8, key=None)  # same seed, no key
    threshold = watermark.threshold_at(watermark.scores(pipe, clean, key), fpr=0.01)
    watermark.scores(pipe, marked, key) < threshold                        # True: the key is there

Tree-Ring hides nothing in the pixels. It writes a key into the Fourier transform of one channel
of the starting noise x_T: on rings 1 .. radius around the centre of the (centred) spectrum, one
number per ring, so that rotating the picture does not move it. The picture is then drawn with
deterministic DDIM. To check a picture, DDIM is run backwards with the empty prompt (the prompt is
not known at that point) to estimate x_T, and the estimate's spectrum is compared with the key on
those rings. The pictures look like any others; only someone who holds the key can look.

Names: x_T is the starting noise, x_T_hat its estimate from a picture (the paper's x'_T),
`pattern` the key κ as a centred spectrum (side, side), `mask` the rings M where it is written.

Papers cited as [NAME]:
    [Tree-Ring]  Wen, Kirchenbauer, Geiping, Goldstein 2023, Tree-Ring Watermarks: Fingerprints
                 for Diffusion Images that are Invisible and Robust.
    [DDIM]       Song, Meng, Ermon 2021, Denoising Diffusion Implicit Models.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from . import pixels, samplers
from .diffusion import alpha_bar_at, per_image, to_f64, x0_from_eps
from .pipeline import DEFAULT_STEPS, Pipeline


@dataclass(frozen=True)
class WatermarkKey:
    """The secret: the seed of the ring values, how many rings, and which channel holds them."""

    seed: int = 0
    # rings 1 .. radius: 112 of 1024 coefficients at 6; radii 4 to 8 separated about as well
    # (AUC 0.95-0.99) in a first trial of 95 pictures on the shipped pixel model
    radius: int = 6
    # red, for pixels: in that trial green and blue cost more adherence (0.92 and 0.86 against
    # 0.97 for red) and separated less
    channel: int = 0

    def __post_init__(self):
        for name in ("seed", "radius", "channel"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"the key's {name} must be a whole number, got {value!r}")
        if self.radius < 1 or self.channel < 0:
            raise ValueError(
                f"the key needs radius >= 1 and channel >= 0, got radius {self.radius} and "
                f"channel {self.channel}"
            )


def rings(side: int) -> Tensor:
    """(side, side) long: the ring of each coefficient of a centred spectrum (torch.fft.fftshift
    puts frequency 0 at [side // 2, side // 2]): ceil of its distance from there, so ring 0 is
    frequency 0 alone and ring r holds the frequencies at distance r - 1 < d <= r."""
    offsets = torch.arange(side, dtype=torch.float64) - side // 2
    distance = (offsets[:, None] ** 2 + offsets[None, :] ** 2).sqrt()
    return distance.ceil().long()


def key_mask(key: WatermarkKey, side: int) -> Tensor:
    """(side, side) bool: rings 1 .. key.radius, where the key is written [Tree-Ring].

    Ring 0 (the channel's mean) is left alone, unlike the paper: the estimate of x_T from a
    picture gets its mean from the picture's light background (9 times the noise's size here),
    not from the noise. The rings must stay inside the spectrum, whose highest frequency on an
    axis is side // 2 on one side only, so radius <= side // 2 - 1 (15 for 32 x 32 pixels)."""
    if key.radius > side // 2 - 1:
        raise ValueError(
            f"a key of radius {key.radius} does not fit a {side} x {side} spectrum; "
            f"use a radius from 1 to {side // 2 - 1}"
        )
    r = rings(side)
    return (r >= 1) & (r <= key.radius)


def key_pattern(key: WatermarkKey, side: int) -> Tensor:
    """(side, side) complex64: the key κ, one value per ring on key_mask and 0 elsewhere.

    The values are drawn from N(0, side²) with the key's seed: the spread a Fourier coefficient
    of N(0, 1) noise has (E|X_k|² = side² by Parseval), so the spectrum keeps its power and x_T
    keeps unit variance. Constant on each ring [Tree-Ring's "rings" key], and real, so that the
    spectrum stays that of a real picture (X_-k = conj(X_k) on symmetric rings): the paper's
    complex values lose their imaginary part when the real part of the inverse FFT is taken.
    """
    mask = key_mask(key, side)
    generator = torch.Generator().manual_seed(key.seed)
    values = torch.randn(key.radius + 1, generator=generator, dtype=torch.float64) * side
    pattern = torch.where(mask, values[rings(side).clamp(max=key.radius)], 0.0)
    return pattern.to(torch.complex64)


def centred_spectrum(x: Tensor) -> Tensor:
    """(..., H, W) real -> (..., H, W) complex: the 2-D FFT with frequency 0 in the middle."""
    return torch.fft.fftshift(torch.fft.fft2(x), dim=(-2, -1))


def watermark_noise(x_T: Tensor, key: WatermarkKey) -> Tensor:
    """Starting noise x_T (B, C, H, W) with the key written into channel key.channel:

        X = F(x_T[:, c]);  X_i = κ_i for i in M;  x_T[:, c] = Re F⁻¹(X)   [Tree-Ring]

    with F the centred 2-D FFT. The other channels and the coefficients outside M are kept."""
    if not isinstance(x_T, Tensor) or x_T.ndim != 4 or not x_T.is_floating_point():
        raise ValueError(f"x_T must be a float tensor (B, C, H, W), got {_describe(x_T)}")
    if not bool(torch.isfinite(x_T).all()):
        raise ValueError("x_T must be finite; it holds nan or inf")
    _, C, H, W = x_T.shape
    if H != W or key.channel >= C:
        raise ValueError(
            f"the key (channel {key.channel}) needs square noise with more than {key.channel} "
            f"channels, got shape {tuple(x_T.shape)}"
        )
    mask = key_mask(key, H).to(x_T.device)
    X = centred_spectrum(x_T[:, key.channel])  # (B, H, W) complex
    X = torch.where(mask, key_pattern(key, H).to(x_T.device), X)
    out = x_T.clone()
    out[:, key.channel] = torch.fft.ifft2(torch.fft.ifftshift(X, dim=(-2, -1))).real
    return out


def check_pipe(pipe: Pipeline) -> None:
    """Refuse, in one sentence, a pipeline the watermark is not made for."""
    if pipe.latent or pipe.flow:
        raise ValueError(
            "the watermark is written into a pixel diffusion model's starting noise and found "
            "by DDIM inversion; use the pixel model (load_pretrained())"
        )


def generate(
    pipe: Pipeline,
    prompt: str | list[str] | None,
    n: int = 1,
    *,
    key: WatermarkKey | None,
    **settings,
) -> np.ndarray:
    """n pictures per prompt (uint8 (n * prompts, H, W, 3)) drawn with the key in their starting
    noise, or without it (key=None) from the very same noise: pipe.prepare's seeded x_T, through
    watermark_noise, into samplers.sample. Settings as in pipe.generate; the sampler is DDIM at
    eta 0, the deterministic one that inversion can walk back."""
    check_pipe(pipe)
    settings = {"sampler": "ddim", **settings}
    if settings["sampler"] != "ddim" or settings.get("eta", 0.0) != 0.0:
        raise ValueError(
            "a watermarked picture is drawn with DDIM at eta 0, which inversion can walk back; "
            f"got sampler {settings['sampler']!r} at eta {settings.get('eta', 0.0)!r}"
        )
    p = pipe.prepare(prompt, n, **settings)
    x_T = p.x_T if key is None else watermark_noise(p.x_T, key)
    x0, _ = samplers.sample(p.eps_fn, x_T, pipe.alpha_bar, p.timesteps, p.options)
    return pixels.to_uint8(x0)


def ddim_inversion_step(
    x_prev: Tensor, eps_hat: Tensor, ab_prev: float | Tensor, ab_t: float | Tensor
) -> tuple[Tensor, Tensor]:
    """One DDIM step run backwards, from t_prev up to t; returns (x_t, x0_hat).

    x_t / sqrt(ᾱ_t) = x_prev / sqrt(ᾱ_prev)
                      + (sqrt((1 - ᾱ_t) / ᾱ_t) - sqrt((1 - ᾱ_prev) / ᾱ_prev)) eps_hat
                                                          [DDIM eq. 13, from t_prev to t]
    written as x0_hat = (x_prev - sqrt(1 - ᾱ_prev) eps_hat) / sqrt(ᾱ_prev), then
    x_t = sqrt(ᾱ_t) x0_hat + sqrt(1 - ᾱ_t) eps_hat. eps_hat should be the guess at x_t, which is
    not known yet; the guess at x_prev (taken at timestep t) stands in for it, the one
    approximation of inversion. With the same eps_hat, ddim_step at eta 0 undoes it exactly.
    """
    x0_hat = x0_from_eps(x_prev, eps_hat, ab_prev)
    ab_t = to_f64(ab_t)
    x_t = per_image(ab_t.sqrt(), x0_hat) * x0_hat + per_image((1 - ab_t).sqrt(), x0_hat) * eps_hat
    return x_t, x0_hat


@torch.no_grad()
def invert(
    pipe: Pipeline,
    pictures,
    steps: int = DEFAULT_STEPS,
    callback: Callable[[samplers.Step], None] | None = None,
) -> Tensor:
    """Pictures -> x_T_hat (N, C, H, W): DDIM run backwards over the timestep list of `steps`,
    with the empty prompt and no guidance [Tree-Ring], on pipe's device.

    pictures: uint8 (N, H, W, 3) or one (H, W, 3), or a float (N, 3, H, W) in [-1, 1].
    callback sees every step (t, the x it started from, x0_hat, eps_hat), as in samplers.sample.
    """
    check_pipe(pipe)
    x = pictures_to_tensor(pictures, pipe.picture_size).to(pipe.device)  # (N, 3, H, W)
    p = pipe.prepare(None, x.shape[0], steps=steps, sampler="ddim", guidance_scale=1.0)
    for t, t_prev in reversed(p.timesteps):
        eps_hat = p.eps_fn(x, t)
        ab_prev, ab_t = alpha_bar_at(pipe.alpha_bar, t_prev), alpha_bar_at(pipe.alpha_bar, t)
        x_next, x0_hat = ddim_inversion_step(x, eps_hat, ab_prev, ab_t)
        if callback is not None:
            callback(samplers.Step(t, x, x0_hat, eps_hat))
        x = x_next
    return x


def score(x_T_hat: Tensor, key: WatermarkKey) -> np.ndarray:
    """(N,) float64: how far each estimate's spectrum is from the key on its rings

        d = 1/|M| Σ_{i in M} |κ_i - F(x_T_hat)_i|   [Tree-Ring, the L1 distance]

    Low means watermarked; a picture drawn without the key scores about the size of a Fourier
    coefficient of its estimate."""
    if (
        not isinstance(x_T_hat, Tensor)
        or x_T_hat.ndim != 4
        or x_T_hat.shape[-1] != x_T_hat.shape[-2]
    ):
        raise ValueError(f"x_T_hat must be a tensor (N, C, H, H), got {_describe(x_T_hat)}")
    side = x_T_hat.shape[-1]
    mask, pattern = key_mask(key, side), key_pattern(key, side)
    X = centred_spectrum(x_T_hat[:, key.channel].detach().cpu().double())  # (N, H, W)
    return (X[:, mask] - pattern[mask]).abs().mean(dim=1).numpy()


def scores(
    pipe: Pipeline, pictures, key: WatermarkKey, steps: int = DEFAULT_STEPS, batch_size: int = 100
) -> np.ndarray:
    """(N,) float64: score(invert(pictures)), batch_size pictures at a time; low = watermarked."""
    x = pictures_to_tensor(pictures, pipe.picture_size)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a whole number >= 1, got {batch_size!r}")
    parts = [
        score(invert(pipe, x[i : i + batch_size], steps), key) for i in range(0, len(x), batch_size)
    ]
    return np.concatenate(parts)


def threshold_at(clean_scores, fpr: float = 0.01) -> float:
    """The detection threshold at a false-positive rate: a picture is called watermarked when
    its score is below it, and at most a share `fpr` of clean_scores (pictures known to be drawn
    without the key) are. The floor(fpr * N)-th smallest clean score (0-based)."""
    s = np.asarray(clean_scores, dtype=np.float64)
    if s.ndim != 1 or s.size == 0 or not np.isfinite(s).all():
        raise ValueError(
            f"clean_scores must be a non-empty list of finite numbers, got shape {s.shape} "
            f"with {int((~np.isfinite(s)).sum())} nan or inf"
        )
    if isinstance(fpr, bool) or not isinstance(fpr, (int, float)) or not 0 < fpr < 1:
        raise ValueError(f"fpr must be a number between 0 and 1, got {fpr!r}")
    return float(np.sort(s)[math.floor(fpr * s.size)])


def pictures_to_tensor(pictures, side: int) -> Tensor:
    """uint8 (N, side, side, 3) or (side, side, 3), or a float (N, 3, side, side) in [-1, 1]
    (numpy or torch) -> float32 tensor (N, 3, side, side) in [-1, 1]; anything else is refused
    in one sentence."""
    x = pictures.detach().cpu() if isinstance(pictures, Tensor) else pictures
    x = np.asarray(x)
    if x.dtype == np.uint8:
        x = x[None] if x.ndim == 3 else x
        if x.ndim != 4 or x.shape[1:] != (side, side, 3) or len(x) == 0:
            raise ValueError(
                f"uint8 pictures must have shape (N, {side}, {side}, 3), got {x.shape}"
            )
        return pixels.to_tensor(x)
    if x.dtype.kind != "f":
        raise ValueError(
            f"pictures must be uint8 (N, {side}, {side}, 3) or float (N, 3, {side}, {side}) in "
            f"[-1, 1], got {x.dtype}"
        )
    if x.ndim != 4 or x.shape[1:] != (3, side, side) or len(x) == 0:
        raise ValueError(f"float pictures must have shape (N, 3, {side}, {side}), got {x.shape}")
    if not np.isfinite(x).all() or np.abs(x).max() > 1:
        raise ValueError("float pictures must be finite and in [-1, 1]; these are not")
    return torch.from_numpy(x.astype(np.float32))


def _describe(x) -> str:
    return f"shape {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__
