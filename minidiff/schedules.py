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

Flow matching (rectified flow) [RF, SD3] draws a straight line from the picture to the noise:

    sigma_flow        σ = (t + 1) / T, 0 .. 1        sigmas (FlowMatchEulerDiscreteScheduler)
    x_t (flow)        x_t = (1 - σ) x_0 + σ ε        sample
    u                 u = ε - x_0, the velocity      model_output
                      dx_t/dσ, constant on a line

It is the same family as the rest, in other coordinates: dividing x_t by sqrt((1-σ)² + σ²)
gives sqrt(ᾱ) x_0 + sqrt(1-ᾱ) ε with ᾱ = (1-σ)² / ((1-σ)² + σ²) (schedule "flow"), and then

    u = (sqrt(ᾱ) + sqrt(1-ᾱ)) v + (sqrt(1-ᾱ) - sqrt(ᾱ)) x_t        (x_t, v as in the table above)

so a flow model and a v model learn the same thing up to a weighting of the noise levels; what
differs is the path the sampler follows (straight in these coordinates, curved in the others) and
how much each noise level counts in training (`minidiff.diffusion.flow_velocity_from_v`).

Papers cited in the code as [NAME eq. N]:
    [DDPM]  Ho, Jain, Abbeel 2020, Denoising Diffusion Probabilistic Models.
    [DDIM]  Song, Meng, Ermon 2021, Denoising Diffusion Implicit Models.
    [iDDPM] Nichol, Dhariwal 2021, Improved Denoising Diffusion Probabilistic Models.
    [v]     Salimans, Ho 2022, Progressive Distillation for Fast Sampling of Diffusion Models.
    [CFG]   Ho, Salimans 2022, Classifier-Free Diffusion Guidance.
    [SD3]   Esser et al. 2024, Scaling Rectified Flow Transformers (logit-normal timesteps).
    [RF]    Liu, Gong, Liu 2023, Flow Straight and Fast (rectified flow); Lipman et al. 2023, Flow
            Matching for Generative Modeling.
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


def flow_sigmas(T: int = 1000) -> Tensor:
    """σ_t = (t + 1) / T for t = 0 .. T-1, float64 (T,): the noise share of a flow model's x_t at
    each timestep, from 1/T up to exactly 1 (pure noise) [RF]. t = -1, the clean picture, is σ = 0.
    diffusers' FlowMatchEulerDiscreteScheduler (shift 1) trains on the same σ values."""
    _check_T(T)
    return torch.arange(1, T + 1, dtype=torch.float64) / T


def flow_alpha_bar(T: int = 1000) -> Tensor:
    """ᾱ_t = (1 - σ_t)² / ((1 - σ_t)² + σ_t²): the straight path x_t = (1 - σ) x_0 + σ ε, divided
    by its length sqrt((1-σ)² + σ²), written as a schedule like the others (see the glossary).
    It ends at exactly 0 (pure noise), where a flow model's velocity is still well defined."""
    sigma = flow_sigmas(T)
    return (1 - sigma) ** 2 / ((1 - sigma) ** 2 + sigma**2)


def sigma_from_alpha_bar(alpha_bar: float | Tensor) -> Tensor:
    """σ = sqrt(1 - ᾱ) / (sqrt(ᾱ) + sqrt(1 - ᾱ)), the inverse of flow_alpha_bar; float64.
    ᾱ = 1 (the clean picture) gives σ = 0, ᾱ = 0 (pure noise) gives σ = 1."""
    ab = torch.as_tensor(alpha_bar, dtype=torch.float64)
    return (1 - ab).sqrt() / (ab.sqrt() + (1 - ab).sqrt())


SCHEDULES = {"linear": linear_alpha_bar, "cosine": cosine_alpha_bar, "flow": flow_alpha_bar}


def make_alpha_bar(name: str, T: int = 1000) -> Tensor:
    """The schedule called `name` ("linear", "cosine" or "flow") with T timesteps, float64 (T,)."""
    if name not in SCHEDULES:
        raise ValueError(f"schedule must be one of {sorted(SCHEDULES)}, got {name!r}.")
    _check_T(T)
    return SCHEDULES[name](T)


def snr(alpha_bar: Tensor) -> Tensor:
    """Signal-to-noise ratio SNR(t) = ᾱ_t / (1 - ᾱ_t): signal variance over noise variance."""
    return alpha_bar / (1 - alpha_bar)
