"""Notebook 10, the real thing: minidiff's model under diffusers' schedulers, and minidiff beside
Stable Diffusion, part by part.

    from minidiff.course import real_systems
    real_systems.scheduler_explorer(pipe, judge=judge)  # a prompt, every scheduler and step count
    real_systems.components(pipe)                       # the parts, minidiff beside SD 1.5 and SDXL
    real_systems.benchmark_results()                    # benchmarks/bench_diffusers_schedulers.py

The pictures come from `minidiff.diffusers_bridge`: minidiff's network and prompt rows, diffusers'
sampling loop. The explorer computes every frame when it is built; its slider and dropdown only
pick one, in the notebook and on the static site alike.
"""

import html
from dataclasses import dataclass
from pathlib import Path

from minidiff import diffusers_bridge, world
from minidiff.course.explorer import SCALE, Explorer, W, selection_slider, text_box
from minidiff.course.paths import RESULTS_DIR, read_results
from minidiff.course.plotting import bare
from minidiff.grid import make_grid
from minidiff.model import count_parameters
from minidiff.pipeline import DEFAULT_GUIDANCE, DEFAULT_SAMPLER, DEFAULT_STEPS

PROMPT = "a red star"
STEP_COUNTS = (2, 5, 10, 20, 50)  # each divides T = 1000, as diffusers' DDIM needs (the bridge)
NAMES = {
    "ddim": "DDIM",
    "ddpm": "DDPM",
    "euler": "Euler",
    "euler_ancestral": "Euler ancestral",
    "dpm": "DPM-Solver++ (2M)",
    "unipc": "UniPC",
}
RESULTS = RESULTS_DIR / "diffusers_schedulers.json"


def scheduler_class(kind: str) -> str:
    """The diffusers class behind a bridge kind: "dpm" -> "DPMSolverMultistepScheduler"."""
    from minidiff.model import ModelConfig
    from minidiff.text_encoder import TextEncoderConfig

    config = ModelConfig(text=TextEncoderConfig(vocab_size=2))  # a scheduler reads T and schedule
    return type(diffusers_bridge.diffusers_scheduler(config, kind)).__name__


def network_calls(config, kind: str, steps: int) -> int:
    """How many times the scheduler's loop calls the network for `steps` steps (its timesteps)."""
    scheduler = diffusers_bridge.diffusers_scheduler(config, kind, prediction="eps")
    scheduler.set_timesteps(steps)
    return len(scheduler.timesteps)


def scheduler_pictures(
    pipe,
    prompt: str = PROMPT,
    kinds=diffusers_bridge.KINDS,
    step_counts=STEP_COUNTS,
    n: int = 8,
    seed: int = 0,
    guidance_scale: float = DEFAULT_GUIDANCE,
) -> dict:
    """{(kind, steps): uint8 (n, 32, 32, 3)}: the prompt's n pictures from the same n noises
    (seed), sampled by each diffusers scheduler with each number of steps."""
    if not kinds or not step_counts:
        raise ValueError(
            f"need at least one scheduler and one step count, got {kinds!r} and {step_counts!r}"
        )
    return {
        (kind, steps): diffusers_bridge.sample_with_diffusers(
            pipe, prompt, n=n, steps=steps, guidance_scale=guidance_scale, seed=seed, kind=kind
        )
        for kind in kinds
        for steps in step_counts
    }


# -- the explorer and its static twin ------------------------------------------------------------
class SchedulerExplorer(Explorer):
    static_figure = "figures/10_schedulers.png"

    def __init__(
        self,
        pipe,
        prompt: str = PROMPT,
        kinds=diffusers_bridge.KINDS,
        step_counts=STEP_COUNTS,
        n: int = 8,
        seed: int = 0,
        judge=None,
    ):
        self.pipe, self.kinds, self.step_counts = pipe, tuple(kinds), tuple(step_counts)
        self.n, self.seed, self.judge = n, seed, judge
        self.pictures: dict = {}
        self.prompt = text_box(prompt, "prompt")
        self.button = self._generate_button()
        self.scheduler = W.Dropdown(
            options=[(NAMES.get(k, k), k) for k in self.kinds],
            value=self.kinds[0],
            description="scheduler",
        )
        value = DEFAULT_STEPS if DEFAULT_STEPS in self.step_counts else self.step_counts[-1]
        super().__init__(
            selection_slider(list(self.step_counts), value, "steps"),
            controls=[W.HBox([self.prompt, self.button]), self.scheduler],
            caption=f"{n} pictures from the same {n} noises: minidiff's network, "
            "sampled by the diffusers scheduler chosen above with the number of "
            "steps on the slider",
            outer=self.scheduler,
        )
        self.compute()

    def compute(self) -> None:
        from minidiff import evaluate

        prompt = self.prompt.value
        self.pictures = scheduler_pictures(
            self.pipe, prompt, self.kinds, self.step_counts, self.n, self.seed
        )
        frames = {}
        for (kind, steps), group in self.pictures.items():
            calls = network_calls(self.pipe.config, kind, steps)
            label = (
                f"{NAMES.get(kind, kind)} (diffusers {scheduler_class(kind)}) · {steps} "
                f"steps · {calls} network calls"
            )
            if self.judge is not None:
                right = evaluate.adherence([prompt] * len(group), self.judge.predict(group))["all"]
                label += (
                    f" · the judge reads {round(right * len(group))} of {len(group)} "
                    f"as '{html.escape(prompt)}'"
                )
            frames[kind, steps] = (make_grid(group, ncol=min(self.n, 4), scale=SCALE), label)
        self._set_frames(frames)

    def save_static(self, path=None, per_cell: int = 4) -> Path:
        """Write the static twin: every scheduler (rows) at every step count (columns), the
        first `per_cell` pictures of each, as a PNG (default: static_figure)."""
        return schedulers_figure(
            self.pictures,
            path or self.static_figure,
            per_cell,
            title=f'"{self.prompt.value}": the same {per_cell} noises under '
            "each diffusers scheduler and number of steps",
        )


def scheduler_explorer(
    pipe,
    prompt: str = PROMPT,
    kinds=diffusers_bridge.KINDS,
    step_counts=STEP_COUNTS,
    n: int = 8,
    seed: int = 0,
    judge=None,
):
    """Dropdown over diffusers' schedulers, slider over the number of steps: the prompt's n
    pictures from the same n noises (with the judge's reading under them, if a judge is given)."""
    return SchedulerExplorer(pipe, prompt, kinds, step_counts, n, seed, judge)


def schedulers_figure(pictures: dict, path, per_cell: int = 4, title: str = "") -> Path:
    """{(kind, steps): uint8 (n, 32, 32, 3)} -> a PNG grid at `path`: a row per scheduler, a column
    per step count, the first per_cell pictures in each cell."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    kinds = list(dict.fromkeys(kind for kind, _ in pictures))
    step_counts = list(dict.fromkeys(steps for _, steps in pictures))
    fig = Figure(
        figsize=(
            1.8 + 0.55 * per_cell * len(step_counts),
            0.25 + 0.62 * len(kinds) + (0.3 if title else 0),
        ),
        layout="constrained",
    )
    axes = fig.subplots(len(kinds), len(step_counts), squeeze=False)
    for r, kind in enumerate(kinds):
        for c, steps in enumerate(step_counts):
            ax = axes[r, c]
            ax.imshow(
                make_grid(pictures[kind, steps][:per_cell], ncol=per_cell, pad=1, scale=1),
                interpolation="nearest",
            )
            bare(ax)
        axes[r, 0].set_ylabel(
            NAMES.get(kind, kind), rotation=0, ha="right", va="center", fontsize=10
        )
    for c, steps in enumerate(step_counts):
        axes[0, c].set_title(f"{steps} steps", fontsize=10)
    if title:
        fig.suptitle(title, fontsize=10)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=100, facecolor="white")
    return path


# -- minidiff beside Stable Diffusion, part by part ----------------------------------------------
@dataclass(frozen=True)
class Part:
    """One component: what minidiff has (counted from the loaded model) and what Stable Diffusion
    1.5 and SDXL have (published numbers; the sources are in SOURCES, cited as [n])."""

    name: str
    minidiff: str
    sd15: str
    sdxl: str


SOURCES = {
    1: "Rombach et al. 2022, High-Resolution Image Synthesis with Latent Diffusion Models (CVPR)",
    2: "Podell et al. 2023, SDXL: Improving Latent Diffusion Models for High-Resolution Image "
    "Synthesis, Table 1",
    3: "Radford et al. 2021, Learning Transferable Visual Models From Natural Language "
    "Supervision (CLIP): the text transformer and its byte-pair tokenizer",
    4: "the model cards and configs on the Hugging Face hub: stable-diffusion-v1-5 (scheduler, "
    "tokenizer, vae), stabilityai/stable-diffusion-xl-base-1.0; the defaults of diffusers' "
    "StableDiffusionPipeline and StableDiffusionXLPipeline",
}
# Stable Diffusion's published sizes, in parameters, as the table quotes them.
PUBLISHED = {
    "sd15": {"unet": 860e6, "text": 123e6, "vae": 84e6},
    "sdxl": {"unet": 2.6e9, "text": 817e6, "vae": 84e6},
}


def _millions(count: float) -> str:
    return f"{count / 1e9:.1f}B" if count >= 1e9 else f"{count / 1e6:.0f}M"


def components(pipe) -> list[Part]:
    """minidiff's parts, counted from `pipe`, beside Stable Diffusion 1.5's and SDXL's."""
    config, tokenizer, model = pipe.config, pipe.tokenizer, pipe.model
    size, text, unet = world.IMAGE_SIZE, config.text, config.unet
    p_uncond = pipe.info.get("train_config", {}).get("p_uncond")
    dropped = f"; prompt dropped {p_uncond:.0%} of the time in training" if p_uncond else ""
    if pipe.latent:  # the U-Net's input is the autoencoder's latent
        vae = (
            f"{count_parameters(pipe.autoencoder):,} parameters; {size}x{size}x3 -> "
            f"{unet.image_size}x{unet.image_size}x{unet.image_channels} latents"
        )
    else:
        vae = "none: this model denoises the pixels themselves"
    sd, xl = PUBLISHED["sd15"], PUBLISHED["sdxl"]
    return [
        Part(
            "pictures", f"{size}x{size}x3 (the Shapes world)", "512x512x3 [1, 4]", "1024x1024x3 [2]"
        ),
        Part(
            "tokenizer",
            f"one token per word: {len(tokenizer)} tokens, {tokenizer.max_tokens} per prompt",
            "CLIP's byte-pair tokenizer: 49,408 tokens, 77 per prompt [3, 4]",
            "two CLIP tokenizers, 77 tokens per prompt each [2, 4]",
        ),
        Part(
            "text encoder",
            f"{text.layers}-layer transformer, width {text.width}: "
            f"{count_parameters(model.text_encoder):,} parameters, trained with the U-Net",
            f"CLIP ViT-L/14's text transformer (12 layers, width 768): {_millions(sd['text'])}, "
            "frozen [2, 3, 4]",
            "CLIP ViT-L and OpenCLIP ViT-bigG, outputs joined to width 2048: "
            f"{_millions(xl['text'])} together, frozen [2]",
        ),
        Part(
            "U-Net",
            f"{count_parameters(model.unet):,} parameters; channels "
            f"{'/'.join(map(str, unet.channels))}; cross-attention in {len(unet.attention_levels)}"
            f" of its {len(unet.channels)} levels and the middle",
            f"{_millions(sd['unet'])}; channels 320/640/1280/1280; cross-attention at the 3 "
            "finest of its 4 levels [2, 4]",
            f"{_millions(xl['unet'])}; channels 320/640/1280; 0, 2 and 10 transformer blocks "
            "per level [2]",
        ),
        Part(
            "VAE (latent space)",
            vae,
            f"{_millions(sd['vae'])}; 512x512x3 -> 64x64x4 latents, scaling_factor 0.18215 [1, 4]",
            f"the same design, retrained: {_millions(xl['vae'])}; 1024x1024x3 -> 128x128x4, "
            "scaling_factor 0.13025 [2, 4]",
        ),
        Part(
            "noise schedule",
            f"{config.schedule}, T = {config.T}, the network predicts {config.prediction}",
            "scaled linear beta 0.00085 -> 0.012, T = 1000, predicts eps [1, 4]",
            "the same as SD 1.5 [2, 4]",
        ),
        Part(
            "scheduler (sampler)",
            f"{DEFAULT_SAMPLER.upper()}, {DEFAULT_STEPS} steps by default",
            "PNDM, 50 steps by default [4]",
            "Euler (EulerDiscreteScheduler), 50 steps by default [4]",
        ),
        Part(
            "guidance",
            f"classifier-free, default scale {DEFAULT_GUIDANCE:g}{dropped}",
            "classifier-free, default scale 7.5; text dropped 10% of the time in training [4]",
            "classifier-free, default scale 5 [4]",
        ),
        Part(
            "all parameters",
            f"{count_parameters(model):,}",
            f"about {_millions(sum(sd.values()))} (U-Net, text encoder and VAE above)",
            f"about {_millions(sum(xl.values()))} [2]",
        ),
    ]


def component_table(parts: list[Part]) -> str:
    """The parts as an HTML table, with the sources under it."""
    cell = "<td style='text-align:left'>{}</td>".format
    rows = "".join(
        f"<tr>{cell('<b>' + html.escape(p.name) + '</b>')}"
        + "".join(cell(html.escape(v)) for v in (p.minidiff, p.sd15, p.sdxl))
        + "</tr>"
        for p in parts
    )
    head = "".join(
        f"<th style='text-align:left'>{h}</th>"
        for h in ("part", "minidiff (counted)", "Stable Diffusion 1.5", "SDXL base")
    )
    sources = "<br>".join(f"[{k}] {html.escape(v)}" for k, v in SOURCES.items())
    return f"<table><tr>{head}</tr>{rows}</table><small>{sources}</small>"


# -- the measurement: benchmarks/bench_diffusers_schedulers.py -----------------------------------
def results_table(results: dict) -> str:
    """Markdown: a row per scheduler, a column per number of steps, "adherence / FD" in each cell,
    from benchmark_results()["by_setting"]."""
    kinds = list(dict.fromkeys(kind for kind, _ in results))
    step_counts = sorted({steps for _, steps in results})
    lines = [
        "| scheduler | " + " | ".join(f"{s} steps" for s in step_counts) + " |",
        "| --- |" + " --- |" * len(step_counts),
    ]
    lines += [
        f"| {NAMES[kind]} | "
        + " | ".join(
            f"{results[kind, s]['all']:.3f} / {results[kind, s]['FD']:.1f}" for s in step_counts
        )
        + " |"
        for kind in kinds
    ]
    return "\n".join(lines)


def benchmark_results(path=None) -> dict:
    """The record benchmarks/bench_diffusers_schedulers.py wrote, with `rows` turned into
    {(kind, steps): {column: value}} under "by_setting"."""
    record = read_results(
        path or RESULTS, "python benchmarks/bench_diffusers_schedulers.py --threads 2"
    )
    columns = record["columns"]
    record["by_setting"] = {
        (row[0], row[1]): dict(zip(columns, row, strict=True)) for row in record["rows"]
    }
    return record
