"""Noise schedules: how much of the picture is left at each timestep.

A schedule is one float64 tensor `alpha_bar` of shape (T,): alpha_bar[t] is the fraction of the
signal's variance that survives at timestep t (t = 0 .. T-1), falling from almost 1 to almost 0.
Everything else in minidiff (noising, the loss, the samplers) reads the schedule from it.

Glossary -- the names used in minidiff's code, the papers' symbols, and the names you will meet
next in diffusers:

    minidiff          paper                          diffusers
    ---------------   ----------------------------   ------------------------------------------
    T                 T                              num_train_timesteps
    t                 t  (here an int 0 .. T-1)      timestep
    t_prev            t-1, or the next listed step   prev_timestep (-1: before the first step)
    beta              β_t                            betas
    alpha             α_t = 1 - β_t                  alphas
    alpha_bar         ᾱ_t = ∏_{s<=t} α_s  [DDPM]     alphas_cumprod
                      (DDIM writes this α_t)
    ab_t, ab_prev     ᾱ_t, ᾱ_{t_prev}                alpha_prod_t, alpha_prod_t_prev
    x0                x_0, the clean picture         original_samples
    x_t               x_t, the noisy picture         sample (the model's input)
    eps               ε ~ N(0, I)                    noise
    eps_hat           ε_θ(x_t, t)                    model_output (prediction_type="epsilon")
    x0_hat            x̂_0, the denoised guess        pred_original_sample
    v                 v = sqrt(ᾱ) ε - sqrt(1-ᾱ) x_0  model_output (prediction_type="v_prediction")
    beta_tilde        β̃_t, the posterior variance    variance_type="fixed_small"
    sigma             σ_t (DDIM eq. 16)              std_dev_t
    eta               η                              eta
    guidance_scale    w + 1 in [CFG], s elsewhere    guidance_scale
    snr               SNR(t) = ᾱ_t / (1 - ᾱ_t)       compute_snr (training utils)

Papers cited in the code as [NAME eq. N]:
    [DDPM]  Ho, Jain, Abbeel 2020, Denoising Diffusion Probabilistic Models.
    [DDIM]  Song, Meng, Ermon 2021, Denoising Diffusion Implicit Models.
    [iDDPM] Nichol, Dhariwal 2021, Improved Denoising Diffusion Probabilistic Models.
    [v]     Salimans, Ho 2022, Progressive Distillation for Fast Sampling of Diffusion Models.
    [CFG]   Ho, Salimans 2022, Classifier-Free Diffusion Guidance.
    [SD3]   Esser et al. 2024, Scaling Rectified Flow Transformers (logit-normal timesteps).
    [Lin]   Lin et al. 2023, Common Diffusion Noise Schedules and Sample Steps Are Flawed.
    [SDEdit]  Meng et al. 2022, SDEdit: Guided Image Synthesis and Editing with SDEs (img2img).
    [RePaint] Lugmayr et al. 2022, RePaint: Inpainting using Denoising Diffusion Models.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _check_T(T: int) -> None:
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise ValueError(f"T (the number of timesteps) must be a positive int, got {T!r}.")


def _alpha_bar_from_betas(betas: Tensor) -> Tensor:
    """ᾱ_t = ∏_{s<=t} (1 - β_s)   [DDPM, above eq. 4]

    betas are float32 and the running product is taken in float32, exactly as diffusers'
    DDPMScheduler does, so a model trained here runs unchanged under diffusers' schedulers.
    The result is returned as float64, the dtype the rest of minidiff expects.
    """
    return torch.cumprod(1.0 - betas.to(torch.float32), dim=0).to(torch.float64)  # (T,)


def linear_alpha_bar(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> Tensor:
    """β_t rising linearly from beta_start to beta_end   [DDPM sec. 4]

    Equals diffusers' DDPMScheduler(beta_schedule="linear").alphas_cumprod.
    """
    _check_T(T)
    betas = torch.linspace(beta_start, beta_end, T, dtype=torch.float32)  # (T,)
    return _alpha_bar_from_betas(betas)


def cosine_alpha_bar(T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> Tensor:
    """ᾱ(u) = f(u) / f(0),  f(u) = cos²((u + s) / (1 + s) · π/2),  u = t / T   [iDDPM eq. 17]

    Each β_t = 1 - ᾱ((t+1)/T) / ᾱ(t/T) is capped at max_beta so the last steps do not divide
    by a number near zero [iDDPM sec. 3.2]. Equals diffusers' DDPMScheduler(
    beta_schedule="squaredcos_cap_v2").alphas_cumprod (diffusers hard-codes s = 0.008).
    """
    _check_T(T)

    def f(u: float) -> float:
        return math.cos((u + s) / (1 + s) * math.pi / 2) ** 2

    betas = [min(1 - f((t + 1) / T) / f(t / T), max_beta) for t in range(T)]
    return _alpha_bar_from_betas(torch.tensor(betas, dtype=torch.float32))  # (T,)


SCHEDULES = {"linear": linear_alpha_bar, "cosine": cosine_alpha_bar}


def make_alpha_bar(name: str, T: int = 1000) -> Tensor:
    """The schedule called `name` ("linear" or "cosine") with T timesteps, float64 (T,)."""
    if name not in SCHEDULES:
        raise ValueError(f"schedule must be one of {sorted(SCHEDULES)}, got {name!r}.")
    _check_T(T)
    return SCHEDULES[name](T)


def snr(alpha_bar: Tensor) -> Tensor:
    """Signal-to-noise ratio SNR(t) = ᾱ_t / (1 - ᾱ_t): signal variance over noise variance."""
    return alpha_bar / (1 - alpha_bar)
