"""Turning noise into a picture: the timestep list, one DDPM or DDIM step, and the watched loop.

A sampler builds its list of (t, t_prev) pairs once (make_timesteps) and walks it; each step
only looks at the two ᾱ values of its pair, so skipping steps needs no special case. t_prev = -1
means "before the first step": the clean picture, where ᾱ = 1 (see diffusion.alpha_bar_at, the one
place this is written). The loop is written once, in sample(); img2img and inpaint
(minidiff.editing) reuse it, and all three take an explicit timestep list and one SampleOptions.
Four samplers share the loop: DDPM and DDIM, and the two that real systems use most,
DPM-Solver++ (2M) and Euler ancestral. A fifth, "euler", is the one a flow model (SD3, FLUX)
is drawn with: Euler's method along the straight path's velocity. Names follow the glossary in
`minidiff.schedules`; eps_fn(x_t, t) -> eps_hat is the (possibly guided) network, and for a flow
model it returns the velocity u_hat instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from minidiff.diffusion import alpha_bar_at, eps_from_x0, per_image, to_f64, x0_from_eps
from minidiff.schedules import sigma_from_alpha_bar

SPACINGS = ("trailing", "leading", "linspace")
SAMPLERS = ("ddim", "ddpm", "dpmpp_2m", "euler_ancestral", "euler")
FLOW_SAMPLERS = ("euler",)  # the samplers that step along a flow model's velocity

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


def dpmpp_2m_step(
    x_t: Tensor,
    eps_hat: Tensor,
    ab_t: float | Tensor,
    ab_prev: float | Tensor,
    last: tuple[Tensor, float | Tensor] | None = None,
    clip_x0: bool = False,
) -> tuple[Tensor, Tensor]:
    """One DPM-Solver++ (2M) step from t to t_prev; returns (x_prev, x0_hat).

    With α = sqrt(ᾱ), σ = sqrt(1 - ᾱ), λ = log(α / σ) and h = λ_prev - λ_t   [DPM-Solver++ eq. 9]:
      first order (no `last`, or the final step):  D = x0_hat                  (this is DDIM)
      second order, `last` = (x0_hat, ᾱ) of the step before, r = (λ_t - λ_last) / h:
          D = x0_hat + (x0_hat - x0_hat_last) / (2 r)           [DPM-Solver++ alg. 2, "midpoint"]
      x_prev = (σ_prev / σ_t) x_t - α_prev (e^-h - 1) D
    Deterministic; diffusers: DPMSolverMultistepScheduler(algorithm_type="dpmsolver++",
    solver_order=2), which also takes a first-order last step.
    """
    eps_hat, x0_hat = _denoised(x_t, eps_hat, ab_t, clip_x0)
    ab_t, ab_prev = to_f64(ab_t), to_f64(ab_prev)
    alpha_t, sigma_t = ab_t.sqrt(), (1 - ab_t).sqrt()
    alpha_prev, sigma_prev = ab_prev.sqrt(), (1 - ab_prev).sqrt()
    exp_minus_h = alpha_t * sigma_prev / (sigma_t * alpha_prev)  # e^-h, 0 at the clean picture
    D = x0_hat
    if last is not None:
        x0_last, ab_last = last[0], to_f64(last[1])
        lam = lambda ab: 0.5 * torch.log(ab / (1 - ab))  # noqa: E731 -- λ = log(α / σ)
        r = (lam(ab_t) - lam(ab_last)) / (lam(ab_prev) - lam(ab_t))
        D = x0_hat + per_image(1 / (2 * r), x0_hat) * (x0_hat - x0_last)
    x_prev = (
        per_image(sigma_prev / sigma_t, x_t) * x_t
        - per_image(alpha_prev * (exp_minus_h - 1), x_t) * D
    )
    return x_prev, x0_hat


def euler_ancestral_step(
    x_t: Tensor,
    eps_hat: Tensor,
    ab_t: float | Tensor,
    ab_prev: float | Tensor,
    noise: Tensor | None = None,
    clip_x0: bool = False,
) -> tuple[Tensor, Tensor]:
    """One Euler ancestral step from t to t_prev; returns (x_prev, x0_hat).

    In the "variance exploding" view that k-diffusion and diffusers' Euler samplers use,
    x / sqrt(ᾱ) = x0 + s eps with s = sqrt((1 - ᾱ) / ᾱ)   [EDM sec. 2]. The step goes down to
    s_down with Euler's method along eps_hat, then adds fresh noise s_up z [k-diffusion]:
      s_up = sqrt(s_prev² (s_t² - s_prev²) / s_t²),   s_down = sqrt(s_prev² - s_up²)
      x_prev = sqrt(ᾱ_prev) (x0_hat + s_down eps_hat + s_up z)
    z is `noise`, needed when t_prev >= 0. diffusers: EulerAncestralDiscreteScheduler.
    """
    eps_hat, x0_hat = _denoised(x_t, eps_hat, ab_t, clip_x0)
    ab_t, ab_prev = to_f64(ab_t), to_f64(ab_prev)
    s_t2, s_prev2 = (1 - ab_t) / ab_t, (1 - ab_prev) / ab_prev
    s_up = (s_prev2 * (s_t2 - s_prev2) / s_t2).clamp(min=0).sqrt()
    s_down = (s_prev2 - s_up**2).clamp(min=0).sqrt()
    x_prev = x0_hat + per_image(s_down, x_t) * eps_hat
    x_prev = _add_noise(x_prev, s_up, noise, "euler_ancestral_step")
    return per_image(ab_prev.sqrt(), x_t) * x_prev, x0_hat


def flow_euler_step(
    x_t: Tensor,
    u_hat: Tensor,
    ab_t: float | Tensor,
    ab_prev: float | Tensor,
    clip_x0: bool = False,
) -> tuple[Tensor, Tensor, Tensor]:
    """One Euler step of a flow model from t to t_prev; returns (x_prev, x0_hat, eps_hat).

    The path x_σ = (1 - σ) x_0 + σ ε has velocity dx/dσ = ε - x_0 = u, so with the network's
    guess u_hat   [RF eq. 1; diffusers FlowMatchEulerDiscreteScheduler.step]:
      x_prev = x_t + (σ_prev - σ_t) u_hat
    σ is read from the flow schedule's ᾱ (schedules.sigma_from_alpha_bar). The guesses it implies
    are x0_hat = x_t - σ_t u_hat and eps_hat = x_t + (1 - σ_t) u_hat, and the step is the same as
    x_prev = (1 - σ_prev) x0_hat + σ_prev eps_hat: DDIM's "re-noise the guess", on a straight
    line. Deterministic. With clip_x0, x0_hat is clipped to [-1, 1] and u_hat re-derived from it.
    """
    sigma_t, sigma_prev = sigma_from_alpha_bar(ab_t), sigma_from_alpha_bar(ab_prev)
    s_t = per_image(sigma_t, x_t)
    x0_hat = x_t - s_t * u_hat
    if clip_x0:
        x0_hat = x0_hat.clamp(-1, 1)
        u_hat = (x_t - x0_hat) / s_t  # σ_t >= 1/T > 0 on every listed step
    eps_hat = x_t + (1 - s_t) * u_hat
    x_prev = x_t + per_image(sigma_prev - sigma_t, x_t) * u_hat
    return x_prev, x0_hat, eps_hat


def is_flow_schedule(alpha_bar: Tensor) -> bool:
    """Whether alpha_bar is the flow schedule: the only one here that ends at pure noise."""
    return float(alpha_bar[-1]) == 0.0


def check_sampler_fits(sampler: str, flow: bool) -> None:
    """Refuse, in one sentence, a sampler that cannot read the model's output: "euler" steps along
    a flow model's velocity, and the others read a noise guess that a flow model does not give."""
    if flow and sampler not in FLOW_SAMPLERS:
        raise ValueError(
            f"the sampler {sampler!r} does not fit a flow model, which is drawn with "
            f"{' or '.join(repr(s) for s in FLOW_SAMPLERS)}"
        )
    if not flow and sampler in FLOW_SAMPLERS:
        others = ", ".join(s for s in SAMPLERS if s not in FLOW_SAMPLERS)
        raise ValueError(
            f"the sampler {sampler!r} steps along a flow model's velocity and does not fit this "
            f"diffusion model; choose one of {others}"
        )


@dataclass
class Step:
    """One step of the loop, as callbacks and trajectories see it (detached, on x's device)."""

    t: int
    x_t: Tensor  # (B, C, H, W) the picture the network was shown at t
    x0_hat: Tensor  # (B, C, H, W) its guess of the clean picture (clipped when clip_x0)
    eps_hat: Tensor  # (B, C, H, W) its guess of the noise, as eps_fn returned it


def check_timesteps(timesteps: list[tuple[int, int]], T: int) -> None:
    if len(timesteps) == 0:
        raise ValueError("timesteps is empty; build it with make_timesteps(n_steps, T).")
    for i, (t, t_prev) in enumerate(timesteps):
        if not (0 <= t < T and -1 <= t_prev < t):
            raise ValueError(
                f"each pair needs 0 <= t < {T} and -1 <= t_prev < t, got {(t, t_prev)}."
            )
        if i > 0 and t != timesteps[i - 1][1]:
            raise ValueError(f"pair {(t, t_prev)} does not start where the pair before it ended.")


def seeded_noise(
    seed: int, shape: tuple[int, ...], device: torch.device | str = "cpu"
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


def randn_like(x: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


@dataclass(frozen=True)
class SampleOptions:
    """How a sampling loop runs: the one set of options of sample, img2img and inpaint.

    sampler: one of SAMPLERS. "ddim" uses eta (0: deterministic); "ddpm" and "euler_ancestral"
             add noise at every step but the last; "dpmpp_2m" never does; "euler" is for flow
             models only, and deterministic.
    clip_x0: clip x0_hat to the picture range [-1, 1] (right for pixels, wrong for latents).
    generator: where every drawn noise comes from, so the same seed gives the same picture.
    callback: sees every Step as it happens; keep_trajectory: return them all.
    """

    sampler: str = "ddim"
    eta: float = 0.0
    clip_x0: bool = True
    generator: torch.Generator | None = None
    callback: Callable[[Step], None] | None = None
    keep_trajectory: bool = False

    def __post_init__(self):
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, got {self.sampler!r}.")
        if (
            isinstance(self.eta, bool)
            or not isinstance(self.eta, (int, float))
            or not 0.0 <= self.eta <= 1.0
        ):
            raise ValueError(f"eta must be a number between 0 and 1, got {self.eta!r}.")


@torch.no_grad()
def sample(
    eps_fn: EpsFn,
    x_T: Tensor,
    alpha_bar: Tensor,
    timesteps: list[tuple[int, int]],
    options: SampleOptions | None = None,
    constrain: Callable[[Tensor, int], Tensor] | None = None,
) -> tuple[Tensor, list[Step]]:
    """Walk the (t, t_prev) pairs from x_T (B, C, H, W) to a picture; returns (x0, trajectory).

    eps_fn(x_t, t) -> eps_hat is called once per step; options.callback sees every step, and the
    trajectory holds them all when options.keep_trajectory (else it is []). constrain(x_prev,
    t_prev) -> x_prev, if given, edits the picture after every step (inpaint uses it). The last
    step has ᾱ_prev = 1, so it returns its x0_hat.
    """
    options = SampleOptions() if options is None else options
    if not isinstance(options, SampleOptions):
        raise TypeError(f"options must be a SampleOptions, got {type(options).__name__}.")
    check_timesteps(timesteps, alpha_bar.shape[0])
    check_sampler_fits(options.sampler, is_flow_schedule(alpha_bar))
    sampler, eta, clip_x0, generator = (
        options.sampler,
        options.eta,
        options.clip_x0,
        options.generator,
    )
    x_t, trajectory, last = x_T, [], None
    for t, t_prev in timesteps:
        ab_t, ab_prev = alpha_bar_at(alpha_bar, t), alpha_bar_at(alpha_bar, t_prev)
        eps_hat = eps_fn(x_t, t)
        if eps_hat.shape != x_t.shape:
            raise ValueError(
                f"eps_fn returned shape {tuple(eps_hat.shape)} for x_t of shape {tuple(x_t.shape)}."
            )
        adds_noise = t_prev >= 0 and (sampler in ("ddpm", "euler_ancestral") or eta > 0)
        noise = randn_like(x_t, generator) if adds_noise else None
        if sampler == "euler":  # eps_fn gave the velocity; the step records the noise guess
            x_prev, x0_hat, eps_hat = flow_euler_step(x_t, eps_hat, ab_t, ab_prev, clip_x0)
        elif sampler == "ddim":
            x_prev, x0_hat = ddim_step(x_t, eps_hat, ab_t, ab_prev, eta, noise, clip_x0)
        elif sampler == "ddpm":
            x_prev, x0_hat = ddpm_step(x_t, eps_hat, ab_t, ab_prev, noise, clip_x0)
        elif sampler == "dpmpp_2m":  # second order after the first step, first order at the end
            x_prev, x0_hat = dpmpp_2m_step(
                x_t, eps_hat, ab_t, ab_prev, last if t_prev >= 0 else None, clip_x0
            )
            last = (x0_hat, ab_t)
        else:
            x_prev, x0_hat = euler_ancestral_step(x_t, eps_hat, ab_t, ab_prev, noise, clip_x0)
        if constrain is not None:
            x_prev = constrain(x_prev, t_prev)
        step = Step(t, x_t.detach(), x0_hat.detach(), eps_hat.detach())
        if options.callback is not None:
            options.callback(step)
        if options.keep_trajectory:
            trajectory.append(step)
        x_t = x_prev
    return x_t, trajectory
