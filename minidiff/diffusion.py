"""Forward noising, what the network predicts, the training loss, and guidance.

The network is a plain function `out = denoiser(x_t, t, ids)`; it knows nothing about diffusion.
This file holds the diffusion side: how a clean picture x0 becomes x_t [DDPM eq. 4], how the
network's output is read as a noise guess eps_hat or a picture guess x0_hat, the loss that trains
it (with condition dropout), and classifier-free guidance. Names follow the glossary in
`minidiff.schedules`. Pictures are (B, C, H, W); `alpha_bar` is the float64 (T,) schedule.

A flow model (prediction "flow", schedule "flow") walks a straight line instead [RF, SD3]:
x_t = (1 - σ) x_0 + σ ε, and the network predicts the velocity u = ε - x_0 (flow_sample).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from minidiff.schedules import sigma_from_alpha_bar

PREDICTIONS = ("eps", "x0", "v", "flow")
# What `minidiff train --objective` names: a diffusion model's prediction on its preset's schedule,
# or "flow", which brings its own schedule (schedules.flow_alpha_bar).
OBJECTIVES = PREDICTIONS
T_SAMPLINGS = ("uniform", "logit_normal")


def per_image(c: float | Tensor, x: Tensor) -> Tensor:
    """One number, or one per image (B,), as shape (B, 1, 1, 1) in x's dtype and device.

    The one broadcasting helper: coefficients are computed in float64 from the schedule and cast
    only here (some devices, such as Apple MPS, have no float64).
    """
    c = torch.as_tensor(c, dtype=torch.float64)
    return c.to(dtype=x.dtype).to(device=x.device).reshape(-1, *[1] * (x.ndim - 1))


def to_f64(ab: float | Tensor) -> Tensor:
    return torch.as_tensor(ab, dtype=torch.float64)


def alpha_bar_at(alpha_bar: Tensor, t: int | Tensor) -> Tensor:
    """ᾱ_t for an int t, or for one timestep per image (LongTensor (B,)); float64.

    t = -1 means "before the first step of a sampler": the clean picture, where ᾱ = 1. This is
    the one place that is written down.
    """
    T = alpha_bar.shape[0]
    t = torch.as_tensor(t).to(alpha_bar.device)
    if t.is_floating_point() or int(t.min()) < -1 or int(t.max()) >= T:
        raise ValueError(
            f"timesteps must be integers in 0..{T - 1} (or -1 for the clean "
            f"picture), got {t.tolist()}."
        )
    clean = torch.ones((), dtype=alpha_bar.dtype, device=alpha_bar.device)
    return torch.where(t == -1, clean, alpha_bar[t.clamp(min=0)])


def q_sample(x0: Tensor, t: int | Tensor, alpha_bar: Tensor, eps: Tensor) -> Tensor:
    """x_t ~ q(x_t | x_0) = N(sqrt(ᾱ_t) x_0, (1 - ᾱ_t) I)   [DDPM eq. 4]

    Drawn as x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε with ε = eps, noise shaped like x0 (B, C, H, W);
    t is an int or one timestep per image (B,).
    """
    ab_t = alpha_bar_at(alpha_bar, t)
    return per_image(ab_t.sqrt(), x0) * x0 + per_image((1 - ab_t).sqrt(), x0) * eps


def flow_sigma_at(alpha_bar: Tensor, t: int | Tensor) -> Tensor:
    """σ_t of the flow schedule for an int t or one per image (B,), float64; t = -1 gives 0."""
    return sigma_from_alpha_bar(alpha_bar_at(alpha_bar, t))


def check_flow_schedule(alpha_bar: Tensor) -> None:
    if float(alpha_bar[-1]) != 0.0:
        raise ValueError(
            "a flow model needs the 'flow' schedule (schedules.flow_alpha_bar), which ends at "
            "pure noise; this alpha_bar does not."
        )


def flow_sample(x0: Tensor, t: int | Tensor, alpha_bar: Tensor, eps: Tensor) -> Tensor:
    """x_t = (1 - σ_t) x_0 + σ_t ε   [RF eq. 1; SD3 eq. 3 with a_t = 1 - t, b_t = t]

    The straight line from the picture (σ = 0) to the noise (σ = 1); alpha_bar is the "flow"
    schedule, which gives σ_t = (t + 1) / T. t is an int or one timestep per image (B,).
    """
    check_flow_schedule(alpha_bar)
    sigma = per_image(flow_sigma_at(alpha_bar, t), x0)
    return (1 - sigma) * x0 + sigma * eps


def noised(x0: Tensor, t: int | Tensor, alpha_bar: Tensor, eps: Tensor, flow: bool) -> Tensor:
    """x0 noised to timestep t along the model's own path: flow_sample for a flow model, else
    q_sample. What img2img and inpainting (minidiff.editing) start from."""
    return flow_sample(x0, t, alpha_bar, eps) if flow else q_sample(x0, t, alpha_bar, eps)


def flow_velocity_from_v(v: Tensor, x_t: Tensor, ab_t: float | Tensor) -> Tensor:
    """u = (sqrt(ᾱ) + sqrt(1-ᾱ)) v + (sqrt(1-ᾱ) - sqrt(ᾱ)) x_t   (the glossary, minidiff.schedules)

    The flow velocity ε - x_0 from a v-prediction v and its (variance-preserving) x_t: what a
    v model "means" in flow terms. Both are linear in (x_0, ε), so one reads as the other.
    """
    ab_t = to_f64(ab_t)
    a, s = per_image(ab_t.sqrt(), x_t), per_image((1 - ab_t).sqrt(), x_t)
    return (a + s) * v + (s - a) * x_t


def x0_from_eps(x_t: Tensor, eps_hat: Tensor, ab_t: float | Tensor) -> Tensor:
    """x0_hat = (x_t - sqrt(1 - ᾱ_t) eps_hat) / sqrt(ᾱ_t)   [DDPM eq. 15, DDIM eq. 9]"""
    ab_t = to_f64(ab_t)
    return (x_t - per_image((1 - ab_t).sqrt(), x_t) * eps_hat) / per_image(ab_t.sqrt(), x_t)


def eps_from_x0(x_t: Tensor, x0_hat: Tensor, ab_t: float | Tensor) -> Tensor:
    """eps_hat = (x_t - sqrt(ᾱ_t) x0_hat) / sqrt(1 - ᾱ_t)   [DDPM eq. 4, solved for ε]"""
    ab_t = to_f64(ab_t)
    return (x_t - per_image(ab_t.sqrt(), x_t) * x0_hat) / per_image((1 - ab_t).sqrt(), x_t)


def v_from(x0: Tensor, eps: Tensor, ab_t: float | Tensor) -> Tensor:
    """v = sqrt(ᾱ_t) ε - sqrt(1 - ᾱ_t) x_0   [v sec. 4]

    The "velocity": the rate of change of x_t as the noise level turns. A network that predicts
    v stays well behaved at both ends of the schedule, where predicting ε or x_0 is ill-posed.
    """
    ab_t = to_f64(ab_t)
    return per_image(ab_t.sqrt(), x0) * eps - per_image((1 - ab_t).sqrt(), x0) * x0


def split_prediction(
    out: Tensor, x_t: Tensor, ab_t: float | Tensor, prediction: str
) -> tuple[Tensor, Tensor]:
    """Read the network's output as (eps_hat, x0_hat), whatever it was trained to predict.

    x_t = sqrt(ᾱ) x_0 + sqrt(1-ᾱ) ε ties the three together, so one guess gives the other. For v:
    x0_hat = sqrt(ᾱ) x_t - sqrt(1-ᾱ) v  and  eps_hat = sqrt(ᾱ) v + sqrt(1-ᾱ) x_t   [v sec. 4].
    For a flow model's velocity u (x_t on the straight line, σ from the flow schedule's ᾱ):
    x0_hat = x_t - σ u  and  eps_hat = x_t + (1 - σ) u.
    """
    if prediction == "eps":
        return out, x0_from_eps(x_t, out, ab_t)
    if prediction == "x0":
        return eps_from_x0(x_t, out, ab_t), out
    if prediction == "v":
        ab_t = to_f64(ab_t)
        a, s = per_image(ab_t.sqrt(), x_t), per_image((1 - ab_t).sqrt(), x_t)
        return a * out + s * x_t, a * x_t - s * out
    if prediction == "flow":
        sigma = per_image(sigma_from_alpha_bar(ab_t), x_t)
        return x_t + (1 - sigma) * out, x_t - sigma * out
    raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}.")


def sample_t(
    n: int, T: int, t_sampling: str, generator: torch.Generator | None, device: torch.device
) -> Tensor:
    """n training timesteps (LongTensor (n,)).

    "uniform": every t equally likely [DDPM algorithm 1].
    "logit_normal": t = floor(T · sigmoid(u)), u ~ N(0, 1), which favours the middle of the
    schedule, where the network has the most to learn [SD3 sec. 3.1].
    """
    if t_sampling == "uniform":
        return torch.randint(0, T, (n,), generator=generator, device=device)
    if t_sampling == "logit_normal":
        u = torch.randn(n, generator=generator, device=device)
        return (T * torch.sigmoid(u)).floor().long().clamp(0, T - 1)
    raise ValueError(f"t_sampling must be one of {T_SAMPLINGS}, got {t_sampling!r}.")


def training_loss(
    denoiser: Callable[[Tensor, Tensor, Tensor], Tensor],
    x0: Tensor,
    ids: Tensor,
    null_ids: Tensor,
    alpha_bar: Tensor,
    prediction: str = "v",
    p_uncond: float = 0.1,
    t_sampling: str = "uniform",
    generator: torch.Generator | None = None,
) -> Tensor:
    """Mean squared error between the network's output and its target, for one batch.

    L = E_{t, x_0, ε} || target - denoiser(x_t, t, ids) ||²   [DDPM eq. 14]
    with target ε ("eps", as in DDPM), x_0 ("x0") or v ("v"), and x_t from q_sample; or, for
    "flow", target u = ε - x_0 and x_t = (1 - σ) x_0 + σ ε from flow_sample [RF; SD3 eq. 2]
    (the conditional flow matching loss, with alpha_bar the "flow" schedule).

    Condition dropout [CFG algorithm 1]: each row of ids (B, L) is replaced by null_ids (the empty
    prompt, shape (L,) or (1, L)) with probability p_uncond, so the same network also learns the
    unconditional prediction that guidance needs.
    """
    if prediction not in PREDICTIONS:
        raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}.")
    if not 0.0 <= p_uncond <= 1.0:
        raise ValueError(f"p_uncond must be between 0 and 1, got {p_uncond}.")
    if ids.ndim != 2:
        raise ValueError(f"ids must have shape (B, L), got {tuple(ids.shape)}.")
    B, L = ids.shape
    if x0.shape[0] != B:
        raise ValueError(f"x0 has {x0.shape[0]} images but ids has {B} rows; they must match.")
    if tuple(null_ids.shape) not in ((L,), (1, L)):
        raise ValueError(
            f"null_ids must have shape ({L},) or (1, {L}), got {tuple(null_ids.shape)}."
        )

    t = sample_t(B, alpha_bar.shape[0], t_sampling, generator, x0.device)  # (B,)
    eps = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    drop = torch.rand(B, generator=generator, device=x0.device) < p_uncond  # (B,)
    ids = torch.where(drop.to(ids.device)[:, None], null_ids.to(ids.device).reshape(1, L), ids)

    flow = prediction == "flow"
    x_t = noised(x0, t, alpha_bar, eps, flow)  # (B, C, H, W)
    out = denoiser(x_t, t, ids)
    if out.shape != x0.shape:
        raise ValueError(
            f"the denoiser returned shape {tuple(out.shape)} but x0 has shape {tuple(x0.shape)}."
        )
    if prediction == "eps":
        target = eps
    elif prediction == "x0":
        target = x0
    elif flow:
        target = eps - x0
    else:
        target = v_from(x0, eps, alpha_bar_at(alpha_bar, t))
    return F.mse_loss(out, target)


def check_guidance_scale(guidance_scale: float | Tensor) -> None:
    """Refuse a guidance scale that is not a finite number >= 0 (one, or one per picture)."""
    if isinstance(guidance_scale, bool) or not isinstance(guidance_scale, (int, float, Tensor)):
        raise ValueError(f"guidance_scale must be a number >= 0, got {guidance_scale!r}.")
    s = torch.as_tensor(guidance_scale, dtype=torch.float64)
    if not bool(torch.isfinite(s).all()) or bool((s < 0).any()):
        shown = guidance_scale if s.ndim == 0 else s.tolist()
        raise ValueError(f"guidance_scale must be a finite number >= 0, got {shown}.")


def is_guided(guidance_scale: float | Tensor) -> bool:
    """Whether a network call at this scale is guided: it then needs the null (or negative) rows
    after the prompt rows. Any scale but a plain 1 is; at 1 the guided prediction is the
    conditional one, so the rows are not doubled (one scale per picture always doubles them)."""
    return isinstance(guidance_scale, Tensor) or float(guidance_scale) != 1.0


def guided_eps(eps_cond: Tensor, eps_uncond: Tensor, guidance_scale: float | Tensor) -> Tensor:
    """eps_hat = eps_uncond + s (eps_cond - eps_uncond)   [CFG eq. 6, with s = 1 + w]

    s = 0 ignores the prompt, s = 1 is the plain conditional prediction, s > 1 pushes the guess
    further away from the unconditional one (or from a negative prompt passed as eps_uncond).
    s is one number or one per picture (B,). Written as s·eps_cond + (1 - s)·eps_uncond so that
    s = 0 and s = 1 are exact.
    """
    check_guidance_scale(guidance_scale)
    s = per_image(guidance_scale, eps_cond)
    return s * eps_cond + (1 - s) * eps_uncond


def composed_eps(eps_null: Tensor, eps_parts: list[Tensor], weight: float) -> Tensor:
    """eps_hat = eps_null + w * sum_i (eps_i - eps_null)   [Composable Diffusion's AND, Liu 2022]

    Each part's prediction pulls away from the unconditional one, and the pulls add up; with one
    part this is classifier-free guidance at scale w (guided_eps)."""
    return eps_null + weight * sum(e - eps_null for e in eps_parts)


def guided_eps_fn(
    unet: Callable[[Tensor, Tensor, Tensor, Tensor], Tensor],
    context: Tensor,
    mask: Tensor,
    alpha_bar: Tensor,
    prediction: str,
    guidance_scale: float | Tensor,
) -> Callable[[Tensor, int], Tensor]:
    """The guided network call: eps_hat(x_t, t) for B pictures, what every sampler loop calls.

    unet(x_t, t, context, mask) -> out is the network on text already encoded. context (R, L, D)
    and mask (R, L) hold one row per picture: with guidance, R = 2B, the B prompts followed by
    their B null (or negative) prompts, and one network call on the doubled batch gives both
    predictions, guided with guided_eps; at scale 1 (a plain number) R = B and nothing is doubled.
    guidance_scale is one number or one per picture (B,). The output, whatever the network
    predicts (see split_prediction), is read as eps_hat; a flow model's ("flow") stays its
    velocity u_hat, the direction the flow sampler ("euler") steps along (guiding u or eps is
    the same thing: both are x_t plus a multiple of the output, and guidance weights sum to 1).
    """
    check_guidance_scale(guidance_scale)
    guided = is_guided(guidance_scale)

    @torch.no_grad()
    def eps_hat(x_t: Tensor, t: int) -> Tensor:
        x_in = torch.cat([x_t, x_t]) if guided else x_t  # (R, C, H, W)
        if x_in.shape[0] != context.shape[0]:
            raise ValueError(
                f"{x_t.shape[0]} pictures need {x_in.shape[0]} rows of encoded "
                f"prompts, got {context.shape[0]}."
            )
        t_in = torch.full((x_in.shape[0],), t, device=x_t.device, dtype=torch.long)
        out = unet(x_in, t_in, context, mask)
        if prediction == "flow":
            eps = out
        else:
            eps, _ = split_prediction(out, x_in, alpha_bar_at(alpha_bar, t), prediction)
        if not guided:
            return eps
        eps_cond, eps_uncond = eps.chunk(2)
        return guided_eps(eps_cond, eps_uncond, guidance_scale)

    return eps_hat
