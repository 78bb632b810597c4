"""The one call everybody uses: words in, pictures out.

    pipe = minidiff.load_pretrained()
    images = pipe.generate("a large red star in the top left", n=8, seed=0)   # (8, 32, 32, 3) uint8

Every call starts with `prepare`: it encodes the prompt rows once (the prompt batch, then its null
or negative batch: `encode`), builds the guided eps_fn (classifier-free guidance,
`diffusion.guided_eps_fn`) and draws the starting noise from `seed` (`noise`). `generate` then
runs the sampler loop of `minidiff.samplers`; `trace` returns every step of the same run for
watching; `img2img` and `inpaint` hand the same prepared call to `minidiff.editing`.
"""

import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import adapters, diffusion, editing, pixels, samplers
from .checkpoint import CheckpointError, load_model
from .device import pick_device
from .model import TextToImage
from .scene_prompts import TOO_MANY, parse_scene_prompt
from .schedules import make_alpha_bar
from .tokenizer import Tokenizer

WEIGHTS_DIR = Path(__file__).parent / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "minidiff-shapes.safetensors"
# The shipped models by name: load_pretrained("latent"), `minidiff generate --model latent`.
MODELS = {
    "pixel": DEFAULT_WEIGHTS,
    "latent": WEIGHTS_DIR / "minidiff-latent.safetensors",
    "skewed": WEIGHTS_DIR / "minidiff-skewed.safetensors",
    "scenes": WEIGHTS_DIR / "minidiff-scenes.safetensors",
    "scenes-transformer": WEIGHTS_DIR / "minidiff-scenes-transformer.safetensors",
    "scenes-bag": WEIGHTS_DIR / "minidiff-scenes-bag.safetensors",
    "flow": WEIGHTS_DIR / "minidiff-flow.safetensors",  # the latent model by flow matching
    "turbo": WEIGHTS_DIR / "minidiff-turbo.safetensors",  # its few-step student
    "fast": WEIGHTS_DIR / "minidiff-fast.safetensors",  # the 5-minute preset, the GAN's rival
    "gan": WEIGHTS_DIR / "minidiff-gan.safetensors",  # the other family, on the same 5 minutes
    "gan-long": WEIGHTS_DIR / "minidiff-gan-long.safetensors",  # the pixel model's 29 minutes
}
# Chosen by measurement (benchmarks/README.md, the model card): the shipped model draws what it is
# asked without guidance (adherence 0.995-1.000 at three seeds), and guidance makes it prefer large
# shapes when the size is not named. DDPM's 20 steps draw closer to real pictures (lower Frechet
# distance) than DDIM's, and without guidance a step is one network call, not two.
DEFAULT_STEPS = 20
DEFAULT_GUIDANCE = 1.0
DEFAULT_SAMPLER = "ddpm"
SAMPLE_PROMPTS = (
    "a large red circle in the center",
    "a small blue square in the top left",
    "a large yellow triangle at the bottom",
    "a large green star on the right",
    "a large purple star",
    "a small orange circle",
    "a green triangle",
    "a blue star in the bottom right",
)
SCENE_SAMPLE_PROMPTS = (  # what a scene model's training run draws as it learns
    "a red circle and a blue square",
    "a yellow star to the left of a green square",
    "three purple triangles",
    "a small orange star above a large blue circle",
    "two red squares",
    "a green circle",
    "four yellow circles",
    "a blue triangle below a red star",
)


class NegativePromptWarning(UserWarning):
    """A negative prompt was given where it cannot act (no guidance)."""


@dataclass(frozen=True)
class Settings:
    """How the pipeline draws: the keyword settings of generate, trace, img2img and inpaint
    (and of Pipeline.prepare), with the pipeline's defaults. The sampler loop's own options
    (samplers.SampleOptions) are made from them."""

    steps: int = DEFAULT_STEPS
    guidance_scale: float | torch.Tensor = DEFAULT_GUIDANCE  # one, or one per picture
    negative_prompt: str | None = None
    seed: int = 0
    sampler: str = DEFAULT_SAMPLER
    eta: float = 0.0

    @classmethod
    def of(cls, settings: dict) -> "Settings":
        """Settings from keyword arguments; an unknown name is refused in one sentence."""
        names = [f.name for f in fields(cls)]
        unknown = [k for k in settings if k not in names]
        if unknown:
            raise TypeError(f"unknown setting {unknown[0]!r}; the settings are {', '.join(names)}")
        return cls(**settings)

    def __post_init__(self):
        diffusion.check_guidance_scale(self.guidance_scale)
        if self.sampler not in samplers.SAMPLERS:
            raise ValueError(
                f"unknown sampler {self.sampler!r}; choose one of {', '.join(samplers.SAMPLERS)}"
            )


@dataclass
class Prepared:
    """What Pipeline.prepare hands a sampler loop: the guided network call, the seeded starting
    noise, the timestep list and the loop's options (with the seeded generator)."""

    eps_fn: samplers.EpsFn
    x_T: torch.Tensor  # (B, C, H, W)
    timesteps: list[tuple[int, int]]
    options: samplers.SampleOptions


@dataclass
class Trajectory:
    """A watched sampling run: the final pictures and every step (tensors on the CPU).

    For a latent model the steps hold latents (n, 4, 8, 8); `frames` decodes them to pictures
    and `latents` gives them as they are.
    """

    images: np.ndarray  # (n, 32, 32, 3) uint8
    steps: list[samplers.Step]
    decode: Callable[[torch.Tensor], torch.Tensor] | None = None  # latents -> pictures

    def latents(self, which: str = "x_t") -> np.ndarray:
        """(S, n, C, H, W) float32: x_t, x0_hat or eps_hat at every step, as the sampler saw
        them (latents for a latent model, pixels in [-1, 1] for a pixel model)."""
        self._check(which)
        return np.stack([getattr(s, which).float().numpy() for s in self.steps])

    def frames(self, which: str = "x_t") -> np.ndarray:
        """(S, n, 32, 32, 3) uint8 pictures of x_t, x0_hat or eps_hat at every step (decoded,
        for a latent model)."""
        self._check(which)
        decode = self.decode or (lambda x: x)
        return np.stack([pixels.to_uint8(decode(getattr(s, which))) for s in self.steps])

    @staticmethod
    def _check(which: str) -> None:
        if which not in ("x_t", "x0_hat", "eps_hat"):
            raise ValueError(f"which must be 'x_t', 'x0_hat' or 'eps_hat', got {which!r}")

    @property
    def timesteps(self) -> list[int]:
        return [int(s.t) for s in self.steps]


class Pipeline:
    def __init__(
        self, model: TextToImage, device: str | torch.device | None = None, info: dict | None = None
    ):
        self.device = pick_device(device) if not isinstance(device, torch.device) else device
        self.model = model.to(self.device).eval()
        self.config = model.config
        self.info = info or {}
        # A model file may carry its own default settings (the scene model draws best with
        # DDIM at guidance 3: its card); what a call passes overrides them.
        self.defaults = dict(self.info.get("defaults") or {})
        if self.flow:  # a flow model is drawn with Euler steps along its velocity
            self.defaults.setdefault("sampler", samplers.FLOW_SAMPLERS[0])
        try:
            Settings.of(self.defaults)
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"the model's stored default settings are not usable: {e}")
        # a few-step student (minidiff.distill) says the steps it was made for
        self.student = self.info.get("student") or None
        self.tokenizer = Tokenizer.for_world(self.config.world)
        new_words = tuple(self.info.get("new_words") or ())  # a fine-tuned model's own words
        if new_words:
            self.tokenizer = Tokenizer(self.tokenizer.vocab + new_words, self.tokenizer.max_tokens)
        self.base_model = self.model  # what load_adapter adds to and unload_adapter restores
        self.base_tokenizer = self.tokenizer
        self.attached: adapters.Attached | None = None
        # alpha_bar stays a float64 CPU tensor (MPS has no float64); samplers cast per step.
        self.alpha_bar = make_alpha_bar(self.config.schedule, self.config.T)
        self.autoencoder = getattr(model, "autoencoder", None)  # None for a pixel model

    # -- a taught word (minidiff.finetune) -------------------------------------------------------
    def load_adapter(self, path: str | os.PathLike, scale: float = 1.0) -> None:
        """Take on what `minidiff finetune` wrote into `path`: a textual inversion's word, a LoRA
        adapter (its strength `scale`, 0 to about 1.5) or a fully fine-tuned model. One at a
        time; `unload_adapter` puts the model back as it was."""
        if self.attached is not None:
            raise ValueError(
                f"the {self.attached.adapter.method} adapter for "
                f"{self.attached.adapter.word!r} is loaded; call unload_adapter() first"
            )
        adapter = adapters.read_adapter(path)
        if adapter.method != "lora" and scale != 1.0:
            raise ValueError(f"a {adapter.method} result has no strength; only LoRA has a scale")
        self.attached = adapters.attach(self.base_model, self.tokenizer, adapter)
        self.model, self.tokenizer = self.attached.model, self.attached.tokenizer
        self.config = self.model.config
        if adapter.method == "lora":
            self.set_adapter_scale(scale)

    def set_adapter_scale(self, scale: float) -> None:
        """The strength of a loaded LoRA adapter: 0 draws as the base model, 1 as trained."""
        if self.attached is None or self.attached.adapter.method != "lora":
            raise ValueError("no LoRA adapter is loaded; load one with load_adapter(path)")
        if (
            isinstance(scale, bool)
            or not isinstance(scale, (int, float))
            or not (math.isfinite(scale) and 0 <= scale <= 4)
        ):
            raise ValueError(f"the LoRA scale must be a number from 0 to 4, got {scale!r}")
        adapters.set_lora_scale(self.attached, float(scale))

    def unload_adapter(self) -> None:
        """Back to the base model and its vocabulary, as before load_adapter."""
        if self.attached is None:
            raise ValueError("no adapter is loaded")
        adapters.detach(self.attached, self.base_model)
        self.model = self.base_model.eval()
        self.tokenizer = self.base_tokenizer
        self.config = self.model.config
        self.attached = None

    @property
    def latent(self) -> bool:
        return self.autoencoder is not None

    @property
    def flow(self) -> bool:
        """Whether it is a flow model (rectified flow, as SD3 and FLUX): drawn with "euler"."""
        return self.config.prediction == "flow"

    @property
    def clip_x0(self) -> bool:
        """Whether the samplers clip x0_hat to [-1, 1]: the range of pictures, not of latents
        (whose scale factor gives them unit variance, so about a third lie outside it)."""
        return not self.latent

    @torch.no_grad()
    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """What the sampler produced -> pictures (B, 3, 32, 32) in about [-1, 1], on x's device:
        the autoencoder's decoder for a latent model, nothing for a pixel model."""
        if self.autoencoder is None:
            return x
        return self.autoencoder.decode(x.to(self.device)).to(x.device)

    @torch.no_grad()
    def encode_pictures(self, x: torch.Tensor) -> torch.Tensor:
        """Pictures (B, 3, 32, 32) -> what the sampler works on (latents for a latent model)."""
        return x if self.autoencoder is None else self.autoencoder.encode(x)

    # -- the prompt rows and the guided network call -------------------------------------------
    def encode(
        self,
        prompts: str | list[str] | None,
        n: int = 1,
        negative_prompt: str | None = None,
        guided: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The encoded prompt rows the guided network call reads: (context (R, L, D), mask (R, L)).

        Each prompt is repeated n times (P*n rows); with guidance, as many rows of the negative
        prompt, or of the empty prompt "" when there is none, follow them, so R = 2*P*n; without,
        R = P*n. prompts=None is the empty prompt: sampling without a condition.
        """
        if prompts is None:
            prompts = [""]
        else:
            prompts = [prompts] if isinstance(prompts, str) else list(prompts)
            for p in prompts:
                if not isinstance(p, str):
                    raise TypeError(f"a prompt must be a string, got {type(p).__name__}")
                if not p.strip():
                    raise ValueError(
                        "the prompt is empty; describe a picture such as "
                        "'a red circle', or pass prompt=None to sample unconditionally"
                    )
                if self.config.world == "scenes":
                    self._check_scene(p)
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive whole number of pictures, got {n!r}")
        ids = self.tokenizer.encode(prompts).repeat_interleave(n, dim=0)  # (P*n, L)
        if guided:
            null = self.tokenizer.encode(negative_prompt or "")  # (1, L)
            ids = torch.cat([ids, null.expand(ids.shape[0], -1)])  # (2*P*n, L)
        with torch.no_grad():
            return self.model.encode_text(ids.to(self.device))

    def _check_student(self, s: "Settings") -> None:
        """Refuse, in one sentence, what a few-step student was not made for: other step counts,
        and guidance (it was distilled at guidance 1, without the unconditional prediction)."""
        made_for = self.student["steps"]
        if s.steps not in made_for:
            listed = ", ".join(str(n) for n in made_for)
            raise ValueError(
                f"this few-step student was distilled to draw in {listed} steps, not {s.steps}; "
                "pass one of those, or use its teacher for more"
            )
        if diffusion.is_guided(s.guidance_scale):
            raise ValueError(
                "this few-step student was distilled at guidance 1 and cannot be guided; leave "
                "guidance_scale at 1"
            )

    def _check_scene(self, prompt: str) -> None:
        """Refuse, in one sentence, a prompt no scene can show (five objects, "a red blue
        circle", a relation no layout satisfies); an unknown word gets the tokenizer's sentence,
        which names the closest known words."""
        known = set(self.tokenizer.vocab) | set(TOO_MANY)  # "five": refused as too many
        if any(w not in known for w in self.tokenizer.words(prompt)):
            self.tokenizer.encode(prompt)  # raises UnknownWordError
        parse_scene_prompt(prompt)

    def eps_fn(
        self, context: torch.Tensor, mask: torch.Tensor, guidance_scale: float | torch.Tensor
    ):
        """eps_hat(x_t, t) for prompt rows made by `encode` (or edited after it, as the mix of two
        prompts in minidiff.course.probe.interpolate_prompts): diffusion.guided_eps_fn on this
        model."""
        return diffusion.guided_eps_fn(
            self.model.unet, context, mask, self.alpha_bar, self.config.prediction, guidance_scale
        )

    @property
    def default_settings(self) -> "Settings":
        """What a call without settings draws with: the pipeline's defaults (Settings), with
        the model's own defaults over them."""
        return Settings.of(self.defaults)

    @property
    def picture_size(self) -> int:
        """The side of the pictures it draws: 32 (one object) or 48 (scenes)."""
        return self.config.picture_size

    @property
    def noise_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one picture as the sampler sees it: (3, 32, 32) pixels or (4, 8, 8)
        latents, read from the model's config."""
        unet = self.config.unet
        return (unet.image_channels, unet.image_size, unet.image_size)

    def noise(self, seed: int, rows: int) -> tuple[torch.Tensor, torch.Generator]:
        """(x_T (rows, C, H, W), generator): the seeded starting noise (samplers.seeded_noise)."""
        return samplers.seeded_noise(seed, (rows, *self.noise_shape), self.device)

    def prepare(self, prompt: str | list[str] | None, n: int = 1, **settings) -> Prepared:
        """Everything one sampling call needs, from a prompt and the sampling settings (Settings):
        checks them, encodes the prompt rows, builds the guided eps_fn and draws the seeded noise.

        generate, trace, img2img and inpaint start here, and so do the course's probes and the
        diffusers bridge, so that the same settings give the same noise and the same network call.
        """
        s = Settings.of({**self.defaults, **settings})
        samplers.check_sampler_fits(s.sampler, self.flow)
        if self.student is not None:
            self._check_student(s)
        guided = diffusion.is_guided(s.guidance_scale)
        if s.negative_prompt is not None and not guided:
            warnings.warn(
                f"the negative prompt {s.negative_prompt!r} has no effect at guidance "
                "scale 1; set guidance_scale above 1 (3 is a good start) to use it",
                NegativePromptWarning,
                stacklevel=2,
            )
        timesteps = samplers.make_timesteps(s.steps, self.config.T)
        context, mask = self.encode(prompt, n, s.negative_prompt, guided)
        x_T, generator = self.noise(s.seed, context.shape[0] // 2 if guided else context.shape[0])
        options = samplers.SampleOptions(
            sampler=s.sampler, eta=s.eta, clip_x0=self.clip_x0, generator=generator
        )
        return Prepared(self.eps_fn(context, mask, s.guidance_scale), x_T, timesteps, options)

    # -- public API ------------------------------------------------------------------------------
    def generate(self, prompt: str | list[str] | None, n: int = 8, **settings) -> np.ndarray:
        """n pictures per prompt as uint8 (n * prompts, 32, 32, 3); settings as in Settings
        (steps, guidance_scale, negative_prompt, seed, sampler, eta)."""
        return self._run(prompt, n, settings, keep_trajectory=False).images

    def trace(self, prompt: str | list[str] | None, n: int = 1, **settings) -> Trajectory:
        """Like `generate`, but also returns every step (t, x_t, x0_hat, eps_hat) of the run."""
        return self._run(prompt, n, settings, keep_trajectory=True)

    def _run(self, prompt, n: int, settings: dict, keep_trajectory: bool) -> Trajectory:
        p = self.prepare(prompt, n, **settings)
        x0, trajectory = samplers.sample(
            p.eps_fn,
            p.x_T,
            self.alpha_bar,
            p.timesteps,
            replace(p.options, keep_trajectory=keep_trajectory),
        )
        cpu = [samplers.Step(s.t, s.x_t.cpu(), s.x0_hat.cpu(), s.eps_hat.cpu()) for s in trajectory]
        return Trajectory(
            pixels.to_uint8(self.decode(x0)), cpu, self.decode if self.latent else None
        )

    def img2img(
        self, image: np.ndarray, prompt: str, strength: float = 0.6, n: int = 1, **settings
    ) -> np.ndarray:
        """Redraw `image` ((32, 32, 3) uint8) towards `prompt`; strength 1 ignores the image.
        Settings as in `generate`, with the same defaults (the same sampler too)."""
        x_init = pixels.picture_to_tensor(image, size=self.picture_size).to(self.device)
        x_init = self.encode_pictures(x_init).expand(n, -1, -1, -1)
        p = self.prepare(prompt, n, **settings)
        x0, _ = editing.img2img(p.eps_fn, x_init, strength, self.alpha_bar, p.timesteps, p.options)
        return pixels.to_uint8(self.decode(x0))

    def inpaint(
        self, image: np.ndarray, mask: np.ndarray, prompt: str, n: int = 1, **settings
    ) -> np.ndarray:
        """Redraw where `mask` ((S, S) for S x S pictures, True = redraw) is set; keep the rest of
        `image` exactly. Settings as in `generate`, with the same defaults (the same sampler too).

        A latent model redraws every latent element that sees a masked pixel (one covers
        factor x factor pixels), decodes, and pastes the picture's own pixels back outside the
        mask, as diffusers' `apply_overlay` does: the outside is kept exactly, at the price of a
        seam the network never saw."""
        known = pixels.picture_to_tensor(image, size=self.picture_size).to(self.device)
        mask, side = np.asarray(mask), self.picture_size
        if mask.shape != (side, side):
            raise ValueError(f"mask must have shape ({side}, {side}), got {mask.shape}")
        redraw = torch.as_tensor(mask.astype(bool), device=self.device).float()[None, None]
        start = self.encode_pictures(known)  # (1, C, h, w): latents, or the picture itself
        if self.latent:  # a latent element is redrawn when any pixel it covers is
            redraw_start = F.max_pool2d(redraw, side // start.shape[-1])
        else:
            redraw_start = redraw
        p = self.prepare(prompt, n, **settings)
        x0, _ = editing.inpaint(
            p.eps_fn,
            start.expand(n, -1, -1, -1),
            1 - redraw_start,
            self.alpha_bar,
            p.timesteps,
            p.options,
        )
        drawn = self.decode(x0)
        return pixels.to_uint8(redraw * drawn + (1 - redraw) * known)  # the outside, exactly


def sample_grid(
    model: TextToImage,
    prompts: tuple[str, ...] | None = None,
    n: int = 4,
    seed: int = 0,
    scale: int = 4,
) -> np.ndarray:
    """One uint8 picture: a column per prompt, n pictures each, drawn by `model` at the defaults.

    What a training run shows as it learns (`minidiff train` writes one every sample_every steps).
    """
    from .grid import make_grid

    device = next(model.parameters()).device
    if prompts is None:
        prompts = SCENE_SAMPLE_PROMPTS if model.config.world == "scenes" else SAMPLE_PROMPTS
    images = Pipeline(model, device).generate(list(prompts), n=n, seed=seed)  # (P*n, 32, 32, 3)
    by_column = images.reshape(len(prompts), n, *images.shape[1:]).transpose(1, 0, 2, 3, 4)
    return make_grid(by_column.reshape(-1, *images.shape[1:]), ncol=len(prompts), scale=scale)


def weights_path(path: str | os.PathLike | None = None) -> Path:
    """The weights to load: `path` if given (a file, or the name of a shipped model in MODELS),
    else the file named by $MINIDIFF_WEIGHTS if that is set (so a course maintainer can point
    every notebook and command at other weights), else the shipped pixel model."""
    if isinstance(path, str) and path in MODELS:
        return MODELS[path]
    return Path(path or os.environ.get("MINIDIFF_WEIGHTS") or DEFAULT_WEIGHTS)


def load_pretrained(path: str | os.PathLike | None = None, device: str | None = None) -> Pipeline:
    """The shipped model (or another shipped one by name: "latent", "skewed"; or the model file /
    training checkpoint at `path`, or at $MINIDIFF_WEIGHTS) as a Pipeline, on `device`
    ($MINIDIFF_DEVICE, or the best there is)."""
    path = weights_path(path)
    if not path.exists() and path in MODELS.values():
        raise CheckpointError(
            f"the shipped weights are missing from the package ({path}); "
            "reinstall minidiff or train your own with 'minidiff train'"
        )
    dev = pick_device(device)
    model, info = load_model(path, device=dev)
    return Pipeline(model, dev, info)
