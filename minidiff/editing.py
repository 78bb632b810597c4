"""Editing a picture you already have with the sampler loop: img2img [SDEdit] and inpainting
[RePaint]. Both hand minidiff.samplers.sample a starting point (and inpainting a constraint
after every step); they take the same timestep list and SampleOptions as sample().
"""

from __future__ import annotations

import math

from torch import Tensor

from minidiff.diffusion import noised
from minidiff.samplers import (
    EpsFn,
    SampleOptions,
    Step,
    check_timesteps,
    is_flow_schedule,
    randn_like,
    sample,
)


def img2img(
    eps_fn: EpsFn,
    x_init: Tensor,
    strength: float,
    alpha_bar: Tensor,
    timesteps: list[tuple[int, int]],
    options: SampleOptions | None = None,
) -> tuple[Tensor, list[Step]]:
    """Redraw the picture x_init (B, C, H, W): noise it part of the way, then denoise [SDEdit].

    strength in (0, 1] is the share of the timestep list that is run: its last
    ceil(strength · len(timesteps)) pairs. x_init is noised to the first kept t with q_sample
    (along the straight path, for a flow model), so a small strength keeps most of the picture
    and strength 1 starts from (almost) pure noise.
    """
    options = options or SampleOptions()
    if x_init.ndim != 4:
        raise ValueError(f"x_init must have shape (B, C, H, W), got {tuple(x_init.shape)}.")
    if (
        isinstance(strength, bool)
        or not isinstance(strength, (int, float))
        or not 0.0 < strength <= 1.0
    ):
        raise ValueError(f"strength must be a number in (0, 1], got {strength!r}.")
    check_timesteps(timesteps, alpha_bar.shape[0])
    # the 1e-9 keeps float noise (0.3 * 10 = 3.0000000000000004) from adding a step
    n_kept = max(1, math.ceil(strength * len(timesteps) - 1e-9))
    timesteps = timesteps[-n_kept:]
    flow = is_flow_schedule(alpha_bar)
    x_t = noised(x_init, timesteps[0][0], alpha_bar, randn_like(x_init, options.generator), flow)
    return sample(eps_fn, x_t, alpha_bar, timesteps, options)


def paste_known(x: Tensor, known_t: Tensor, keep: Tensor) -> Tensor:
    """keep · known_t + (1 - keep) · x: the kept region (keep = 1) from the known picture at the
    current noise level, the rest from the sampler's own picture x   [RePaint eq. 8]."""
    return keep * known_t + (1 - keep) * x


def inpaint(
    eps_fn: EpsFn,
    known: Tensor,
    mask: Tensor,
    alpha_bar: Tensor,
    timesteps: list[tuple[int, int]],
    options: SampleOptions | None = None,
) -> tuple[Tensor, list[Step]]:
    """Fill in the picture `known` (B, C, H, W) where mask (B or 1, 1, H, W) is 0; keep it where 1.

    After every step the kept region of x_prev is replaced by `known` noised to t_prev
    (paste_known), so the network always sees a picture whose kept part is right for its noise
    level [RePaint, without its resampling]. At t_prev = -1 that is `known` itself, kept exactly.
    """
    options = options or SampleOptions()
    if known.ndim != 4:
        raise ValueError(f"known must have shape (B, C, H, W), got {tuple(known.shape)}.")
    B, _, H, W = known.shape
    if tuple(mask.shape) not in ((B, 1, H, W), (1, 1, H, W)):
        raise ValueError(
            f"mask must have shape ({B}, 1, {H}, {W}) or (1, 1, {H}, {W}), got {tuple(mask.shape)}."
        )
    if bool(mask.min() < 0) or bool(mask.max() > 1):
        raise ValueError("mask values must lie in [0, 1] (1 = keep the known picture).")
    check_timesteps(timesteps, alpha_bar.shape[0])
    keep = mask.to(dtype=known.dtype, device=known.device)
    flow = is_flow_schedule(alpha_bar)

    def constrain(x: Tensor, t: int) -> Tensor:
        if t == -1:
            return paste_known(x, known, keep)
        return paste_known(
            x, noised(known, t, alpha_bar, randn_like(known, options.generator), flow), keep
        )

    x_T = constrain(randn_like(known, options.generator), timesteps[0][0])
    return sample(eps_fn, x_T, alpha_bar, timesteps, options, constrain=constrain)
