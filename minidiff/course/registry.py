"""Every figure and every explorer of the course, known in one place (the repository's folders
are minidiff.course.paths').

`minidiff figures` (make_figures, below), `minidiff site`, the command line's help and the tests
read this module, so adding a notebook's explorer or figure touches one place:

    FIGURES    figure name -> function(pipe, out) -> [paths]  (minidiff.course.figures)
    EXPLORERS  every explorer a notebook calls: its name, its notebook, the figure that draws its
               static twin (the animation shown without a kernel) and how that one is built

Only the names of functions are imported here; the modules behind them load when they run.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from minidiff.course import figures

# name -> function(pipe, out) -> [paths]; None: the figure is its explorers' twins alone
FIGURES: dict[str, Callable | None] = {
    "hero": figures.hero,
    "prompt_box": figures.prompt_box,
    "schedules": figures.schedules,
    "denoiser": figures.denoiser,
    "training": figures.training,
    "sampling": figures.sampling,
    "words": figures.words,
    "guidance": figures.guidance,
    "latent": figures.latent,
    "editing": figures.editing,
    "bias": figures.bias,
    "failures": figures.failures,
    "ladder": figures.ladder,
    "schedulers": None,
    "scenes": figures.scenes,
    "fewsteps": figures.fewsteps,
    "teaching": figures.teaching,
    "gans": figures.gans,
    "fakes": figures.fakes,
}


@dataclass(frozen=True)
class ExplorerEntry:
    name: str  # the function a notebook calls, e.g. "guidance_explorer"
    notebook: str  # the notebook that shows it, e.g. "06_guidance"
    figure: str | None  # the FIGURES entry that writes its static twin (None: it has none)
    build: Callable | None = None  # build(pipe) -> the explorer whose twin is written


def _widgets():
    from minidiff.course import widgets

    return widgets


def _twin_of_schedules(pipe):
    from minidiff import world

    return _widgets().schedule_explorer(world.example(*figures.EXAMPLE).image)


def _twin_of_latent(pipe):
    from minidiff.checkpoint import load_autoencoder
    from minidiff.course import latent

    return latent.latent_explorer(load_autoencoder())


def _twin_of_bias(pipe):
    from minidiff import load_pretrained
    from minidiff.course import bias

    return bias.bias_explorer(
        {"skewed": load_pretrained("skewed", device=pipe.device), "shipped": pipe}
    )


def _twin_of_schedulers(pipe):
    from minidiff.course import real_systems
    from minidiff.judge import load_judge

    return real_systems.scheduler_explorer(pipe, prompt="a red star", judge=load_judge())


def _twin_of_scenes(pipe):
    from minidiff import load_pretrained
    from minidiff.course import binding

    return binding.scene_explorer(load_pretrained("scenes", device=pipe.device))


def _twin_of_steps(pipe):
    from minidiff.course import fewsteps

    return fewsteps.steps_explorer(**fewsteps.explorer_models(pipe.device))


def _twin_of_strength(pipe):
    from minidiff.course import teaching

    return teaching.strength_explorer(pipe)


def _twin_of_families(pipe):
    from minidiff import load_pretrained
    from minidiff.course import gans

    return gans.family_explorer(
        load_pretrained("fast", device=pipe.device), load_pretrained("gan", device=pipe.device)
    )


def _twin_of_robustness(pipe):
    from minidiff.course import fakes

    return fakes.robustness_explorer()


def _edits():
    from minidiff.course import edits

    return edits


EXPLORERS: tuple[ExplorerEntry, ...] = (
    ExplorerEntry("prompt_box", "00_start_here", None),  # its twin is the prompt_box figure
    ExplorerEntry("schedule_explorer", "01_noise", "schedules", _twin_of_schedules),
    ExplorerEntry(
        "denoiser_explorer",
        "02_the_denoiser",
        "denoiser",
        lambda pipe: _widgets().denoiser_explorer(pipe, prompt=figures.PROMPT, seed=0),
    ),
    ExplorerEntry("snapshot_explorer", "03_training", "training"),  # built by that figure
    ExplorerEntry("live_training", "03_training", None),  # it trains: nothing to show without
    ExplorerEntry(
        "step_scrubber",
        "04_sampling",
        "sampling",
        lambda pipe: _widgets().step_scrubber(pipe, prompt=figures.PROMPT, steps=20, seed=0),
    ),
    ExplorerEntry(
        "prompt_explorer",
        "05_words_to_vectors",
        "words",
        lambda pipe: _widgets().prompt_explorer(pipe, prompt=figures.PROMPT, seed=0),
    ),
    ExplorerEntry(
        "guidance_explorer",
        "06_guidance",
        "guidance",
        lambda pipe: _widgets().guidance_explorer(
            pipe, prompt="a red star", scales=(0, 1, 1.5, 2, 3, 5, 8), n=8, seed=0
        ),
    ),
    ExplorerEntry("latent_explorer", "07_latent_diffusion", "latent", _twin_of_latent),
    ExplorerEntry(
        "img2img_explorer", "08_editing", "editing", lambda pipe: _edits().img2img_explorer(pipe)
    ),
    ExplorerEntry(
        "inpaint_explorer", "08_editing", "editing", lambda pipe: _edits().inpaint_explorer(pipe)
    ),
    ExplorerEntry("bias_explorer", "09_measuring_and_bias", "bias", _twin_of_bias),
    ExplorerEntry("scheduler_explorer", "10_the_real_thing", "schedulers", _twin_of_schedulers),
    ExplorerEntry("scene_explorer", "11_scenes", "scenes", _twin_of_scenes),
    ExplorerEntry("steps_explorer", "12_fewer_steps", "fewsteps", _twin_of_steps),
    ExplorerEntry("strength_explorer", "13_teach_a_word", "teaching", _twin_of_strength),
    ExplorerEntry("live_finetune", "13_teach_a_word", None),  # it trains: nothing to show
    ExplorerEntry("family_explorer", "14_gans_against_diffusion", "gans", _twin_of_families),
    ExplorerEntry(
        "robustness_explorer", "15_telling_fakes_from_real", "fakes", _twin_of_robustness
    ),
)


def explorer_calls() -> tuple[str, ...]:
    """How a notebook cell that shows an explorer reads: "guidance_explorer(", ..."""
    return tuple(f"{entry.name}(" for entry in EXPLORERS)


def twins(figure: str) -> list[ExplorerEntry]:
    """The explorers whose static twins the figure `figure` writes."""
    return [entry for entry in EXPLORERS if entry.figure == figure]


def make_figures(
    out: str | os.PathLike = "figures", pipe=None, only: list[str] | None = None
) -> list[Path]:
    """Draw the figures named in `only` (default: all of FIGURES) into `out`; returns the paths.

    pipe defaults to the shipped model (or $MINIDIFF_WEIGHTS, see minidiff.course.pipe).
    """
    import matplotlib
    from tqdm.auto import tqdm

    from minidiff import course

    names = list(FIGURES) if not only else list(only)
    unknown = [n for n in names if n not in FIGURES]
    if unknown:
        raise ValueError(f"unknown figure {unknown[0]!r}; choose from {', '.join(FIGURES)}")
    matplotlib.use("Agg", force=False)  # drawing files only: no window needed
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pipe = pipe if pipe is not None else course.pipe()
    written = []
    for name in tqdm(names, desc="figures"):
        if FIGURES[name] is not None:
            written += FIGURES[name](pipe, out)
        for entry in twins(name):  # the static twins of the explorers this figure goes with
            if entry.build is not None:
                explorer = entry.build(pipe)
                written.append(explorer.save_static(out / Path(explorer.static_figure).name))
    return written
