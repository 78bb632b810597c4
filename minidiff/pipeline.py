"""The one call everybody uses: words in, pictures out.

    pipe = minidiff.load_pretrained()
    images = pipe.generate("a large red star in the top left", n=8, seed=0)   # (8, 32, 32, 3) uint8

`generate` encodes the prompt once, builds a guided eps_fn (classifier-free guidance, with the
negative prompt standing in for the empty one if given), draws the starting noise from `seed` and runs
the sampler loop of `minidiff.samplers`. `trace` returns every step of the same run for watching.
"""

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import diffusion, samplers, world
from .checkpoint import CheckpointError, load_model
from .device import pick_device
from .model import TextToImage
from .schedules import make_alpha_bar
from .tokenizer import Tokenizer

WEIGHTS_DIR = Path(__file__).parent / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "minidiff-shapes.safetensors"
DEFAULT_STEPS = 20
DEFAULT_GUIDANCE = 1.5  # chosen by measurement: see minidiff/weights/MODEL_CARD.md
SAMPLERS = ("ddim", "ddpm")


@dataclass
class Trajectory:
    """A watched sampling run: the final pictures and every step (tensors on the CPU)."""

    images: np.ndarray  # (n, 32, 32, 3) uint8
    steps: list[samplers.Step]

    def frames(self, which: str = "x_t") -> np.ndarray:
        """(S, n, 32, 32, 3) uint8 pictures of x_t or x0_hat at every step."""
        if which not in ("x_t", "x0_hat", "eps_hat"):
            raise ValueError(f"which must be 'x_t', 'x0_hat' or 'eps_hat', got {which!r}")
        return np.stack([world.to_uint8(getattr(s, which)) for s in self.steps])

    @property
    def timesteps(self) -> list[int]:
        return [int(s.t) for s in self.steps]


class Pipeline:
    def __init__(self, model: TextToImage, device: str | torch.device | None = None,
                 info: dict | None = None):
        self.device = pick_device(device) if not isinstance(device, torch.device) else device
        self.model = model.to(self.device).eval()
        self.config = model.config
        self.info = info or {}
        self.tokenizer = Tokenizer()
        # alpha_bar stays a float64 CPU tensor (MPS has no float64); samplers cast per step.
        self.alpha_bar = make_alpha_bar(self.config.schedule, self.config.T)

    # -- the guided network call -------------------------------------------------------------
    def _ids(self, prompt: str | list[str] | None, n: int) -> torch.Tensor:
        if prompt is None:
            prompts = [""]
        else:
            prompts = [prompt] if isinstance(prompt, str) else list(prompt)
            for p in prompts:
                if not isinstance(p, str):
                    raise TypeError(f"a prompt must be a string, got {type(p).__name__}")
                if not p.strip():
                    raise ValueError("the prompt is empty; describe a picture such as "
                                     "'a red circle', or pass prompt=None to sample unconditionally")
        ids = self.tokenizer.encode(prompts)  # (P, L)
        return ids.repeat_interleave(n, dim=0).to(self.device)  # (P*n, L)

    def eps_fn(self, ids: torch.Tensor, guidance_scale: float, negative_ids: torch.Tensor | None):
        """eps_hat(x_t, t) for a batch of prompts, guided   [Ho & Salimans 2022, eq. 6]."""
        null = negative_ids if negative_ids is not None else self._ids(None, ids.shape[0])
        guided = guidance_scale != 1.0
        with torch.no_grad():
            context, mask = self.model.encode_text(torch.cat([ids, null]) if guided else ids)
        return self.eps_fn_from_context(context, mask, guidance_scale)

    def eps_fn_from_context(self, context: torch.Tensor, mask: torch.Tensor,
                            guidance_scale: float):
        """eps_hat(x_t, t) for prompts already encoded: context (R, L, D), mask (R, L).

        Without guidance (scale 1) the R rows are the B prompts of x_t. With guidance they are the
        B prompts followed by their B null (or negative) prompts, R = 2B. Edited prompt vectors,
        such as a mix of two prompts (minidiff.course.probe.interpolate_prompts), enter here.
        """
        cfg = self.config
        guided = guidance_scale != 1.0

        def eps_hat(x_t: torch.Tensor, t: int) -> torch.Tensor:
            x_in = torch.cat([x_t, x_t]) if guided else x_t
            t_in = torch.full((x_in.shape[0],), t, device=x_t.device, dtype=torch.long)
            ab_t = self.alpha_bar[t]
            with torch.no_grad():
                out = self.model.unet(x_in, t_in, context, mask)
            eps, _ = diffusion.split_prediction(out, x_in, ab_t, cfg.prediction)
            if not guided:
                return eps
            eps_cond, eps_uncond = eps.chunk(2)
            return diffusion.guided_eps(eps_cond, eps_uncond, guidance_scale)

        return eps_hat

    def _setup(self, prompt, n, guidance_scale, negative_prompt, sampler, seed):
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive whole number of pictures, got {n!r}")
        if not isinstance(guidance_scale, (int, float)) or guidance_scale < 0:
            raise ValueError(f"guidance_scale must be a number >= 0, got {guidance_scale!r}")
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
        if not isinstance(seed, int):
            raise TypeError(f"seed must be a whole number, got {seed!r}")
        ids = self._ids(prompt, n)
        negative = None
        if negative_prompt:
            neg = self.tokenizer.encode(negative_prompt).to(self.device)
            negative = neg.expand(ids.shape[0], -1)
        eps_fn = self.eps_fn(ids, float(guidance_scale), negative)
        generator = torch.Generator(self.device).manual_seed(seed)
        shape = (ids.shape[0], 3, world.IMAGE_SIZE, world.IMAGE_SIZE)
        return eps_fn, generator, shape

    # -- public API ------------------------------------------------------------------------------
    def generate(self, prompt: str | list[str] | None, n: int = 8, steps: int = DEFAULT_STEPS,
                 guidance_scale: float = DEFAULT_GUIDANCE, negative_prompt: str | None = None,
                 seed: int = 0, sampler: str = "ddim", eta: float = 0.0) -> np.ndarray:
        """n pictures per prompt as uint8 (n * prompts, 32, 32, 3)."""
        return self.trace(prompt, n, steps, guidance_scale, negative_prompt, seed, sampler, eta,
                          keep_trajectory=False).images

    def trace(self, prompt: str | list[str] | None, n: int = 1, steps: int = DEFAULT_STEPS,
              guidance_scale: float = DEFAULT_GUIDANCE, negative_prompt: str | None = None,
              seed: int = 0, sampler: str = "ddim", eta: float = 0.0,
              keep_trajectory: bool = True) -> Trajectory:
        """Like `generate`, but also returns every step (t, x_t, x0_hat, eps_hat) of the run."""
        eps_fn, generator, shape = self._setup(prompt, n, guidance_scale, negative_prompt,
                                               sampler, seed)
        timesteps = samplers.make_timesteps(steps, self.config.T)
        x_T = torch.randn(shape, generator=generator, device=self.device)
        x0, trajectory = samplers.sample(eps_fn, x_T, self.alpha_bar, timesteps, sampler=sampler,
                                         eta=eta, generator=generator,
                                         keep_trajectory=keep_trajectory)
        cpu = [samplers.Step(s.t, s.x_t.cpu(), s.x0_hat.cpu(), s.eps_hat.cpu()) for s in trajectory]
        return Trajectory(world.to_uint8(x0), cpu)

    def img2img(self, image: np.ndarray, prompt: str, strength: float = 0.6, n: int = 1,
                steps: int = DEFAULT_STEPS, guidance_scale: float = DEFAULT_GUIDANCE,
                negative_prompt: str | None = None, seed: int = 0) -> np.ndarray:
        """Redraw `image` ((32, 32, 3) uint8) towards `prompt`; strength 1 ignores the image."""
        x_init = self._picture(image, "image").expand(n, -1, -1, -1)
        eps_fn, generator, _ = self._setup(prompt, n, guidance_scale, negative_prompt, "ddim", seed)
        x0, _ = samplers.img2img(eps_fn, x_init, strength, self.alpha_bar, steps,
                                 generator=generator)
        return world.to_uint8(x0)

    def inpaint(self, image: np.ndarray, mask: np.ndarray, prompt: str, n: int = 1,
                steps: int = DEFAULT_STEPS, guidance_scale: float = DEFAULT_GUIDANCE,
                negative_prompt: str | None = None, seed: int = 0) -> np.ndarray:
        """Redraw where `mask` ((32, 32), True = redraw) is set; keep the rest of `image`."""
        known = self._picture(image, "image").expand(n, -1, -1, -1)
        mask = np.asarray(mask)
        if mask.shape != (world.IMAGE_SIZE, world.IMAGE_SIZE):
            raise ValueError(f"mask must have shape ({world.IMAGE_SIZE}, {world.IMAGE_SIZE}), "
                             f"got {mask.shape}")
        keep = torch.as_tensor(~mask.astype(bool), device=self.device).float()[None, None]
        eps_fn, generator, _ = self._setup(prompt, n, guidance_scale, negative_prompt, "ddim", seed)
        timesteps = samplers.make_timesteps(steps, self.config.T)
        x0, _ = samplers.inpaint(eps_fn, known, keep, self.alpha_bar, timesteps,
                                 generator=generator)
        return world.to_uint8(x0)

    def _picture(self, image: np.ndarray, name: str) -> torch.Tensor:
        image = np.asarray(image)
        expected = (world.IMAGE_SIZE, world.IMAGE_SIZE, 3)
        if image.shape != expected or image.dtype != np.uint8:
            raise ValueError(f"{name} must be a uint8 array of shape {expected}, "
                             f"got {image.dtype} {image.shape}")
        return world.to_tensor(image[None]).to(self.device)  # (1, 3, 32, 32)


def load_pretrained(path: str | os.PathLike | None = None,
                    device: str | None = None) -> Pipeline:
    """The shipped model (or the model file / training checkpoint at `path`) as a Pipeline."""
    path = Path(path) if path is not None else DEFAULT_WEIGHTS
    if not path.exists() and path == DEFAULT_WEIGHTS:
        raise CheckpointError(f"the shipped weights are missing from the package ({path}); "
                              "reinstall minidiff or train your own with 'minidiff train'")
    dev = pick_device(device)
    model, info = load_model(path, device=dev)
    return Pipeline(model, dev, info)
