"""Turning noise into a picture: the timestep list, one DDPM or DDIM step, and the watched loop.

A sampler builds its list of (t, t_prev) pairs once (make_timesteps) and walks it; each step
only looks at the two ᾱ values of its pair, so skipping steps needs no special case. t_prev = -1
means "before the first step": the clean picture, where ᾱ = 1 (see diffusion.alpha_bar_at, the one
place this is written). The loop is written once, in sample(); img2img and inpaint reuse it,
and all three take an explicit timestep list and the same keyword-only options. Names follow the
glossary in `minidiff.schedules`; eps_fn(x_t, t) -> eps_hat is the (possibly guided) network.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from minidiff.diffusion import alpha_bar_at, eps_from_x0, per_image, q_sample, to_f64, x0_from_eps

SPACINGS = ("trailing", "leading", "linspace")
SAMPLERS = ("ddim", "ddpm")

EpsFn = Callable[[Tensor, int], Tensor]


def make_timesteps(n_steps: int, T: int = 1000, spacing: str = "trailing") -> list[tuple[int, int]]:
    """n_steps pairs (t, t_prev), t strictly decreasing, the last t_prev = -1.

    The t values are the same as diffusers' `scheduler.timesteps` for this timestep_spacing:
      "trailing": count down from T-1 in strides of T/n_steps, so the first step starts from
                  (almost) pure noise [Lin table 2];
      "leading":  0, T//n, 2·T//n, ... (diffusers' default and the DDIM paper's choice; it never
                  visits t = T-1, so it starts from a picture that is not all noise);
      "linspace": n_steps evenly spaced numbers from T-1 down to 0, rounded.
    """
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise ValueError(f"T (the number of timesteps) must be a positive int, got {T!r}.")
    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or not 1 <= n_steps <= T:
        raise ValueError(f"steps must be between 1 and {T}, got {n_steps}.")
    if spacing == "trailing":
        # np.arange's float stride, as diffusers computes it, so that ties round the same way;
        # that stride can give one element too many, which is dropped.
        ts = np.round(np.arange(T, 0, -T / n_steps))[:n_steps] - 1
    elif spacing == "leading":
        ts = np.arange(n_steps)[::-1] * (T // n_steps)
    elif spacing == "linspace":
        ts = np.linspace(0, T - 1, n_steps).round()[::-1]
    else:
        raise ValueError(f"spacing must be one of {SPACINGS}, got {spacing!r}.")
    ts = [int(t) for t in ts]
    return list(zip(ts, ts[1:] + [-1], strict=True))


def beta_tilde(ab_t: float | Tensor, ab_prev: float | Tensor) -> Tensor:
    """β̃ = (1 - ᾱ_prev) / (1 - ᾱ_t) · β,  with β = 1 - ᾱ_t / ᾱ_prev   [DDPM eq. 7]

    The variance of the true posterior q(x_prev | x_t, x_0). β is the beta of the whole jump
    from t_prev to t, so this also holds when the timestep list skips steps.
    """
    ab_t, ab_prev = to_f64(ab_t), to_f64(ab_prev)
    return (1 - ab_prev) / (1 - ab_t) * (1 - ab_t / ab_prev)


def _denoised(x_t: Tensor, eps_hat: Tensor, ab_t, clip_x0: bool) -> tuple[Tensor, Tensor]:
    """(eps_hat, x0_hat); with clip_x0, x0_hat is clipped to the picture range [-1, 1] and
    eps_hat re-derived from it (diffusers: clip_sample=True, use_clipped_model_output=True)."""
    x0_hat = x0_from_eps(x_t, eps_hat, ab_t)
    if clip_x0:
        x0_hat = x0_hat.clamp(-1, 1)
        eps_hat = eps_from_x0(x_t, x0_hat, ab_t)
    return eps_hat, x0_hat


def _add_noise(x_prev: Tensor, sigma: Tensor, noise: Tensor | None, who: str) -> Tensor:
    if noise is None:
        if bool((sigma > 0).any()):
            raise ValueError(f"{who} adds noise at this step: pass noise (zeros give the mean).")
        return x_prev
    return x_prev + per_image(sigma, x_prev) * noise


def ddim_step(
    x_t: Tensor,
    eps_hat: Tensor,
    ab_t: float | Tensor,
    ab_prev: float | Tensor,
    eta: float = 0.0,
    noise: Tensor | None = None,
    clip_x0: bool = False,
) -> tuple[Tensor, Tensor]:
    """One DDIM step from t to t_prev; returns (x_prev, x0_hat).

    x_prev = sqrt(ᾱ_prev) x0_hat + sqrt(1 - ᾱ_prev - σ²) eps_hat + σ z   [DDIM eq. 12]
    σ = η sqrt(β̃) = η sqrt((1 - ᾱ_prev) / (1 - ᾱ_t)) sqrt(1 - ᾱ_t / ᾱ_prev)   [DDIM eq. 16]
    η = 0 is deterministic; η = 1 is the DDPM posterior (same mean and variance as ddpm_step).
    z is `noise` (B, C, H, W), needed only when σ > 0.
    """
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must be between 0 and 1, got {eta}.")
    eps_hat, x0_hat = _denoised(x_t, eps_hat, ab_t, clip_x0)
    ab_prev = to_f64(ab_prev)
    sigma = eta * beta_tilde(ab_t, ab_prev).sqrt()
    direction = per_image((1 - ab_prev - sigma**2).sqrt(), x_t) * eps_hat  # "pointing to x_t"
    x_prev = per_image(ab_prev.sqrt(), x_t) * x0_hat + direction
    return _add_noise(x_prev, sigma, noise, "ddim_step with eta > 0"), x0_hat


def ddpm_step(
    x_t: Tensor,
    eps_hat: Tensor,
    ab_t: float | Tensor,
    ab_prev: float | Tensor,
    noise: Tensor | None = None,
    clip_x0: bool = False,
) -> tuple[Tensor, Tensor]:
    """One DDPM step from t to t_prev; returns (x_prev, x0_hat).

    x_prev ~ q(x_prev | x_t, x_0 = x0_hat) = N(mu, β̃ I)   [DDPM eq. 6]
    mu = sqrt(ᾱ_prev) β / (1 - ᾱ_t) · x0_hat + sqrt(1 - β) (1 - ᾱ_prev) / (1 - ᾱ_t) · x_t
                                                                              [DDPM eq. 7]
    with β = 1 - ᾱ_t / ᾱ_prev, the beta of the whole jump, so skipped steps work too. The
    variance is β̃ (diffusers: variance_type="fixed_small"). z is `noise`, needed when t_prev >= 0.
    """
    eps_hat, x0_hat = _denoised(x_t, eps_hat, ab_t, clip_x0)
    ab_t, ab_prev = to_f64(ab_t), to_f64(ab_prev)
    beta = 1 - ab_t / ab_prev
    c_x0 = ab_prev.sqrt() * beta / (1 - ab_t)
    c_xt = (1 - beta).sqrt() * (1 - ab_prev) / (1 - ab_t)
    x_prev = per_image(c_x0, x_t) * x0_hat + per_image(c_xt, x_t) * x_t
    return _add_noise(x_prev, beta_tilde(ab_t, ab_prev).sqrt(), noise, "ddpm_step"), x0_hat


@dataclass
class Step:
    """One step of the loop, as callbacks and trajectories see it (detached, on x's device)."""

    t: int
    x_t: Tensor  # (B, C, H, W) the picture the network was shown at t
    x0_hat: Tensor  # (B, C, H, W) its guess of the clean picture (clipped when clip_x0)
    eps_hat: Tensor  # (B, C, H, W) its guess of the noise, as eps_fn returned it


def _check_timesteps(timesteps: list[tuple[int, int]], T: int) -> None:
    if len(timesteps) == 0:
        raise ValueError("timesteps is empty; build it with make_timesteps(n_steps, T).")
    for i, (t, t_prev) in enumerate(timesteps):
        if not (0 <= t < T and -1 <= t_prev < t):
            raise ValueError(
                f"each pair needs 0 <= t < {T} and -1 <= t_prev < t, got {(t, t_prev)}."
            )
        if i > 0 and t != timesteps[i - 1][1]:
            raise ValueError(f"pair {(t, t_prev)} does not start where the pair before it ended.")


def seeded_noise(seed: int, shape: tuple[int, ...], device: torch.device | str = "cpu"
                 ) -> tuple[Tensor, torch.Generator]:
    """(x_T, generator): starting noise x_T ~ N(0, I) of `shape`, drawn first from a generator
    seeded with `seed`, and that generator, from which the loop draws any later noise.

    The one rule behind "the same seed gives the same picture": the pipeline, the probes, the
    diffusers bridge and the benchmarks all start from this.
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be a whole number, got {seed!r}.")
    generator = torch.Generator(device).manual_seed(seed)
    return torch.randn(shape, generator=generator, device=device), generator


def _randn_like(x: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


@torch.no_grad()
def sample(
    eps_fn: EpsFn,
    x_T: Tensor,
    alpha_bar: Tensor,
    timesteps: list[tuple[int, int]],
    *,
    sampler: str = "ddim",
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    callback: Callable[[Step], None] | None = None,
    keep_trajectory: bool = False,
    clip_x0: bool = True,
    constrain: Callable[[Tensor, int], Tensor] | None = None,
) -> tuple[Tensor, list[Step]]:
    """Walk the (t, t_prev) pairs from x_T (B, C, H, W) to a picture; returns (x0, trajectory).

    eps_fn(x_t, t) -> eps_hat is called once per step; callback(Step) sees every step, and the
    trajectory holds them all when keep_trajectory (else it is []). sampler "ddim" uses eta
    (0: deterministic); "ddpm" ignores it. Noise comes from `generator`, so the same seed gives
    the same picture. constrain(x_prev, t_prev) -> x_prev, if given, edits the picture after
    every step (inpaint uses it). The last step has ᾱ_prev = 1, so it returns its x0_hat.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}.")
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must be between 0 and 1, got {eta}.")
    _check_timesteps(timesteps, alpha_bar.shape[0])
    x_t, trajectory = x_T, []
    for t, t_prev in timesteps:
        ab_t, ab_prev = alpha_bar_at(alpha_bar, t), alpha_bar_at(alpha_bar, t_prev)
        eps_hat = eps_fn(x_t, t)
        if eps_hat.shape != x_t.shape:
            raise ValueError(
                f"eps_fn returned shape {tuple(eps_hat.shape)} for x_t of shape {tuple(x_t.shape)}."
            )
        adds_noise = t_prev >= 0 and (sampler == "ddpm" or eta > 0)
        noise = _randn_like(x_t, generator) if adds_noise else None
        if sampler == "ddim":
            x_prev, x0_hat = ddim_step(x_t, eps_hat, ab_t, ab_prev, eta, noise, clip_x0)
        else:
            x_prev, x0_hat = ddpm_step(x_t, eps_hat, ab_t, ab_prev, noise, clip_x0)
        if constrain is not None:
            x_prev = constrain(x_prev, t_prev)
        step = Step(t, x_t.detach(), x0_hat.detach(), eps_hat.detach())
        if callback is not None:
            callback(step)
        if keep_trajectory:
            trajectory.append(step)
        x_t = x_prev
    return x_t, trajectory


def img2img(
    eps_fn: EpsFn,
    x_init: Tensor,
    strength: float,
    alpha_bar: Tensor,
    timesteps: list[tuple[int, int]],
    *,
    sampler: str = "ddim",
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    callback: Callable[[Step], None] | None = None,
    keep_trajectory: bool = False,
    clip_x0: bool = True,
) -> tuple[Tensor, list[Step]]:
    """Redraw the picture x_init (B, C, H, W): noise it part of the way, then denoise [SDEdit].

    strength in (0, 1] is the share of the timestep list that is run: its last
    ceil(strength · len(timesteps)) pairs. x_init is noised to the first kept t with q_sample, so
    a small strength keeps most of the picture and strength 1 starts from (almost) pure noise.
    """
    if x_init.ndim != 4:
        raise ValueError(f"x_init must have shape (B, C, H, W), got {tuple(x_init.shape)}.")
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) \
            or not 0.0 < strength <= 1.0:
        raise ValueError(f"strength must be a number in (0, 1], got {strength!r}.")
    _check_timesteps(timesteps, alpha_bar.shape[0])
    # the 1e-9 keeps float noise (0.3 * 10 = 3.0000000000000004) from adding a step
    n_kept = max(1, math.ceil(strength * len(timesteps) - 1e-9))
    timesteps = timesteps[-n_kept:]
    x_t = q_sample(x_init, timesteps[0][0], alpha_bar, _randn_like(x_init, generator))
    return sample(eps_fn, x_t, alpha_bar, timesteps, sampler=sampler, eta=eta, generator=generator,
                  callback=callback, keep_trajectory=keep_trajectory, clip_x0=clip_x0)


def inpaint(
    eps_fn: EpsFn,
    known: Tensor,
    mask: Tensor,
    alpha_bar: Tensor,
    timesteps: list[tuple[int, int]],
    *,
    sampler: str = "ddim",
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    callback: Callable[[Step], None] | None = None,
    keep_trajectory: bool = False,
    clip_x0: bool = True,
) -> tuple[Tensor, list[Step]]:
    """Fill in the picture `known` (B, C, H, W) where mask (B or 1, 1, H, W) is 0; keep it where 1.

    After every step the kept region of x_prev is replaced by `known` noised to t_prev, so the
    network always sees a picture whose kept part is right for its noise level [RePaint eq. 8,
    without RePaint's resampling]. At t_prev = -1 that is `known` itself, kept exactly.
    """
    if known.ndim != 4:
        raise ValueError(f"known must have shape (B, C, H, W), got {tuple(known.shape)}.")
    B, _, H, W = known.shape
    if tuple(mask.shape) not in ((B, 1, H, W), (1, 1, H, W)):
        raise ValueError(
            f"mask must have shape ({B}, 1, {H}, {W}) or (1, 1, {H}, {W}), got {tuple(mask.shape)}."
        )
    if bool(mask.min() < 0) or bool(mask.max() > 1):
        raise ValueError("mask values must lie in [0, 1] (1 = keep the known picture).")
    _check_timesteps(timesteps, alpha_bar.shape[0])
    mask = mask.to(dtype=known.dtype, device=known.device)

    def paste_known(x: Tensor, t: int) -> Tensor:
        known_t = known if t == -1 else q_sample(known, t, alpha_bar, _randn_like(known, generator))
        return mask * known_t + (1 - mask) * x

    x_T = paste_known(_randn_like(known, generator), timesteps[0][0])
    return sample(eps_fn, x_T, alpha_bar, timesteps, sampler=sampler, eta=eta, generator=generator,
                  callback=callback, keep_trajectory=keep_trajectory, clip_x0=clip_x0,
                  constrain=paste_known)
