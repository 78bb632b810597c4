"""Let diffusers' schedulers drive a minidiff model: the same network, diffusers' sampling loop.

    from minidiff.diffusers_bridge import diffusers_scheduler, sample_with_diffusers
    scheduler = diffusers_scheduler(pipe.config, kind="ddim")      # a diffusers DDIMScheduler
    pictures = sample_with_diffusers(pipe, "a red star", n=8, steps=20, guidance_scale=3.0, seed=0)

A minidiff ModelConfig says everything a diffusers scheduler needs to know about the network:

    minidiff ModelConfig         diffusers scheduler config
    -------------------------    -------------------------------------------------------------
    T                            num_train_timesteps
    schedule "linear"            beta_schedule "linear"             (alphas_cumprod == alpha_bar)
    schedule "cosine"            beta_schedule "squaredcos_cap_v2"  (alphas_cumprod == alpha_bar)
    prediction "eps"/"x0"/"v"    prediction_type "epsilon"/"sample"/"v_prediction"
                                 (the bridge hands diffusers the guided eps_hat, so "epsilon")
    make_timesteps "trailing"    timestep_spacing "trailing"
    alpha_bar at t_prev = -1: 1  set_alpha_to_one=True, steps_offset=0
    sample(clip_x0=True)         clip_sample=True, and step(..., use_clipped_model_output=True)

The kinds, and the minidiff sampler (TWINS) that computes the same steps:

    kind               diffusers scheduler                 minidiff twin
    "ddim"             DDIMScheduler                       "ddim"
    "ddpm"             DDPMScheduler                       "ddpm"
    "euler"            EulerDiscreteScheduler              -
    "euler_ancestral"  EulerAncestralDiscreteScheduler     "euler_ancestral"
    "dpm"              DPMSolverMultistepScheduler         "dpmpp_2m"
    "unipc"            UniPCMultistepScheduler             -

"ddim" and "ddpm" give `Pipeline.generate`'s pictures on the same seed (to float rounding).
"euler_ancestral" and "dpm" do not clip x0_hat to [-1, 1] as minidiff's loop does, so theirs differ
by a grey level or two. One caveat: diffusers' DDIMScheduler finds the previous timestep as
t - T // steps inside step(), so it agrees with minidiff's list only when steps divides T (10, 20,
50 do; 30 does not). Heun (HeunDiscreteScheduler) and PNDM (Stable Diffusion 1.5's default) are
left out: both average noise guesses made at both ends of a step, and on this cosine schedule the
first step falls from sigma = sqrt((1 - alpha_bar) / alpha_bar) of about 20,000 at t = 999 to 13,
which magnifies the difference between the two guesses; their pictures stay noisy at 20 steps.

diffusers is imported inside the functions (minidiff itself needs only torch and numpy).
"""

import inspect

import numpy as np
import torch

from . import pixels
from .pipeline import DEFAULT_GUIDANCE, DEFAULT_STEPS

BETA_SCHEDULES = {"linear": "linear", "cosine": "squaredcos_cap_v2"}  # minidiff -> diffusers
PREDICTION_TYPES = {"eps": "epsilon", "x0": "sample", "v": "v_prediction"}
KINDS = ("ddim", "ddpm", "euler", "euler_ancestral", "dpm", "unipc")
TWINS = {"ddim": "ddim", "ddpm": "ddpm", "euler_ancestral": "euler_ancestral", "dpm": "dpmpp_2m"}


def diffusers_scheduler(config, kind: str = "ddim", prediction: str | None = None):
    """A new diffusers scheduler with the schedule, T and prediction of `config`, a ModelConfig
    (or the prediction given, such as "eps" for a network call already read as eps_hat)."""
    import diffusers

    if config.schedule not in BETA_SCHEDULES:
        raise ValueError(
            f"diffusers has no schedule matching {config.schedule!r}; "
            f"known: {', '.join(BETA_SCHEDULES)}"
        )
    prediction = prediction or config.prediction
    if prediction not in PREDICTION_TYPES:
        raise ValueError(
            f"diffusers has no prediction_type matching {prediction!r}; "
            f"known: {', '.join(PREDICTION_TYPES)}"
        )
    common = {
        "num_train_timesteps": config.T,
        "beta_schedule": BETA_SCHEDULES[config.schedule],
        "prediction_type": PREDICTION_TYPES[prediction],
        "timestep_spacing": "trailing",
    }
    if kind == "ddim":
        return diffusers.DDIMScheduler(
            **common, clip_sample=True, set_alpha_to_one=True, steps_offset=0
        )
    if kind == "ddpm":
        return diffusers.DDPMScheduler(**common, clip_sample=True, variance_type="fixed_small")
    if kind == "euler":
        return diffusers.EulerDiscreteScheduler(**common)
    if kind == "euler_ancestral":
        return diffusers.EulerAncestralDiscreteScheduler(**common)
    if kind == "dpm":
        return diffusers.DPMSolverMultistepScheduler(**common)
    if kind == "unipc":
        return diffusers.UniPCMultistepScheduler(**common)
    raise ValueError(f"unknown scheduler kind {kind!r}; choose one of {', '.join(KINDS)}")


@torch.no_grad()
def diffusers_loop(
    scheduler, model_output, x_T: torch.Tensor, steps: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """diffusers' usual sampling loop, x_T (B, 3, 32, 32) -> x0 (B, 3, 32, 32). The timesteps live
    inside the scheduler, which counts its own steps; minidiff's `samplers.sample` walks an
    explicit (t, t_prev) list instead."""
    import diffusers

    step_options = {}
    if "generator" in inspect.signature(scheduler.step).parameters:  # UniPC's step takes none
        step_options["generator"] = generator
    if isinstance(scheduler, diffusers.DDIMScheduler):
        # minidiff re-derives eps_hat from the clipped x0_hat; diffusers only does when asked
        step_options["use_clipped_model_output"] = True
    scheduler.set_timesteps(steps, device=x_T.device)
    x = x_T * scheduler.init_noise_sigma  # 1 for DDIM/DDPM; Euler works in a rescaled x
    for t in scheduler.timesteps:
        x_in = scheduler.scale_model_input(x, t)  # back to x_t for the network (a no-op in DDIM)
        out = model_output(x_in, round(float(t)))  # Euler's timesteps are whole floats
        x = scheduler.step(out, t, x, **step_options).prev_sample
    return x


def sample_with_diffusers(
    pipe,
    prompt: str,
    n: int = 8,
    steps: int = DEFAULT_STEPS,
    guidance_scale: float = DEFAULT_GUIDANCE,
    seed: int = 0,
    kind: str = "ddim",
) -> np.ndarray:
    """Like `pipe.generate(prompt, n, steps, guidance_scale, seed=seed)`, but sampled by a diffusers
    scheduler -> uint8 (n, 32, 32, 3). Same seed, same starting noise x_T as the pipeline."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive whole number of pictures, got {n!r}")
    if getattr(pipe, "latent", False):
        raise ValueError(
            "the bridge samples pictures, 3 x 32 x 32; this is a latent model (use "
            "minidiff.load_pretrained() for the pixel one)"
        )
    return DiffusersPipe(pipe).generate(
        prompt, n, steps=steps, guidance_scale=guidance_scale, sampler=kind, seed=seed
    )


class DiffusersPipe:
    """What `evaluate` needs of a pipeline, `generate`, with a diffusers scheduler as the sampler:
    `sampler` names a bridge kind. The prepared call (prompt rows, guided network call, seeded
    starting noise) is the wrapped Pipeline's own, so a kind with a minidiff twin draws the twin's
    pictures."""

    def __init__(self, pipe):
        self.pipe = pipe

    def generate(
        self,
        prompts,
        n: int = 1,
        steps: int = DEFAULT_STEPS,
        guidance_scale: float = DEFAULT_GUIDANCE,
        sampler: str = "ddim",
        seed: int = 0,
    ) -> np.ndarray:
        scheduler = diffusers_scheduler(self.pipe.config, sampler, prediction="eps")
        p = self.pipe.prepare(prompts, n, steps=steps, guidance_scale=guidance_scale, seed=seed)
        # the schedulers take "epsilon": the prepared eps_fn has already read the network's
        # output (whatever it predicts) as eps_hat
        x0 = diffusers_loop(scheduler, p.eps_fn, p.x_T, steps, p.options.generator)
        return pixels.to_uint8(self.pipe.decode(x0))
