"""Notebook 09, the failure gallery: find failed pictures automatically, count them by kind, and
see which sampler settings make each kind more or less common.

    from minidiff.course import gallery
    census = gallery.census(pipe, judge, settings=gallery.SETTINGS[:2])
    gallery.gallery_figure(census, "figures/09_failure_gallery.png")

Every picture of a run is classified by minidiff.course.measuring.failures; a setting is one
change from the defaults (DDPM, 20 steps, guidance 1) at a time, so each row of the table says
what that one knob does.
"""

from pathlib import Path

import numpy as np

from minidiff import world
from minidiff.course.blobs import count_objects
from minidiff.course.measuring import KINDS, failure_rates, failures
from minidiff.course.paths import read_results
from minidiff.course.plotting import bare

DEFAULT = {"sampler": "ddpm", "steps": 20, "guidance_scale": 1.0}
SETTINGS = (
    [DEFAULT]
    + [{**DEFAULT, "steps": s} for s in (1, 2, 4, 8)]
    + [{**DEFAULT, "guidance_scale": g} for g in (0.0, 3.0, 8.0, 15.0)]
    + [{**DEFAULT, "sampler": s} for s in ("ddim", "dpmpp_2m", "euler_ancestral")]
)
# Prompts this world cannot draw: the tokenizer knows "and", so two objects are accepted.
TWO_OBJECT_PROMPTS = (
    "a red circle and a blue square",
    ("a large yellow star and a small green circle"),
    "a purple triangle on the left and an orange square on the right",
)


def read_census() -> dict:
    """The full census (benchmarks/failure_census.py), 432 pictures under each of SETTINGS, in
    the shape `census` returns without the pictures: {setting name: {"rates", "counts"}}."""
    stored = read_results("failure_census.json", "python benchmarks/failure_census.py")
    return {
        name: {"rates": rates, "counts": stored["counts"][name]}
        for name, rates in stored["rates"].items()
    }


def name(setting: dict) -> str:
    """ "ddpm · 20 steps · guidance 1", say."""
    return (
        f"{setting['sampler']} · {setting['steps']} steps · guidance {setting['guidance_scale']:g}"
    )


def full_prompts() -> list[str]:
    """Every colour, shape, size and position in the world's own words: 432 prompts."""
    return [world.canonical_prompt(vars(a)) for a in world.combinations("test")]


def census(
    pipe,
    judge,
    settings=SETTINGS,
    prompts: list[str] | None = None,
    seed: int = 0,
    chunk: int = 144,
    progress: bool = True,
) -> dict:
    """Draw one picture per prompt under each setting and classify them ->
    {setting name: {"rates": {kind or "any": share}, "kinds": {kind: (N,) bool}, "images",
    "prompts", "setting"}}."""
    from tqdm.auto import tqdm

    prompts = prompts or full_prompts()
    out = {}
    for setting in tqdm(settings, desc="settings", disable=not progress):
        images = np.concatenate(
            [
                pipe.generate(prompts[i : i + chunk], n=1, seed=1000 * seed + i // chunk, **setting)
                for i in range(0, len(prompts), chunk)
            ]
        )
        kinds = failures(images, prompts, judge)
        out[name(setting)] = {
            "rates": failure_rates(kinds),
            "kinds": kinds,
            "images": images,
            "prompts": prompts,
            "setting": setting,
        }
    return out


def rates_table(census_: dict) -> str:
    """Markdown: one row per setting, the share of pictures of each failure kind."""
    kinds = [*KINDS, "any"]
    lines = ["| setting | " + " | ".join(kinds) + " |", "| --- |" + " --- |" * len(kinds)]
    for setting, result in census_.items():
        lines.append(
            f"| {setting} | " + " | ".join(f"{100 * result['rates'][k]:.1f}%" for k in kinds) + " |"
        )
    return "\n".join(lines)


def examples(census_: dict, per_kind: int = 6) -> dict[str, list[tuple[np.ndarray, str, str]]]:
    """Up to per_kind failed pictures of each kind, (picture, prompt, setting), taken in turn
    from every setting that produced that kind."""
    found: dict[str, list] = {k: [] for k in KINDS}
    for kind in KINDS:
        pools = [
            [(r["images"][i], r["prompts"][i], s) for i in np.nonzero(r["kinds"][kind])[0]]
            for s, r in census_.items()
        ]
        while len(found[kind]) < per_kind and any(pools):
            for pool in pools:
                if pool and len(found[kind]) < per_kind:
                    found[kind].append(pool.pop(0))
    return found


def gallery_figure(census_: dict, path, per_kind: int = 6):
    """A row of example pictures per failure kind, each under its prompt and setting."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    found = examples(census_, per_kind)
    total = sum(len(r["prompts"]) for r in census_.values())
    fig = Figure(figsize=(1.9 * per_kind + 1.2, 1.75 * len(KINDS)), layout="constrained")
    axes = fig.subplots(len(KINDS), per_kind, squeeze=False)
    for row, kind in zip(axes, KINDS):
        count = sum(int(r["kinds"][kind].sum()) for r in census_.values())
        for ax in row:
            bare(ax)
        for ax, (picture, prompt, setting) in zip(row, found[kind]):
            ax.imshow(picture, interpolation="nearest")
            ax.set_title(_wrap(prompt) + "\n" + setting, fontsize=5.5)
        row[0].set_ylabel(
            f"{kind}\n{count} of {total}", rotation=0, ha="right", va="center", fontsize=8
        )
    fig.suptitle(
        f"failures the pixels and the judge find in {total} pictures ({len(census_)} settings)",
        fontsize=10,
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=120, facecolor="white")
    return path


def _wrap(text: str, width: int = 30) -> str:
    words, lines = text.split(), [""]
    for w in words:
        if len(lines[-1]) + len(w) + 1 > width:
            lines.append(w)
        else:
            lines[-1] = (lines[-1] + " " + w).strip()
    return "\n".join(lines)


def two_object_prompts(pipe, judge, prompts=TWO_OBJECT_PROMPTS, n: int = 16, seed: int = 0):
    """What the model draws for prompts naming two objects: {prompt: {"objects": (n,) objects
    per picture, "first": share drawn as the first object's colour, "second": as the second's,
    "colours", "shapes": {value: pictures} as the judge reads them, "images"}}."""
    from collections import Counter

    out = {}
    for prompt in prompts:
        images = pipe.generate(prompt, n=n, seed=seed)
        colours = [w for w in prompt.replace(",", " ").split() if w in world.COLOURS]
        read = judge.predict(images)
        judged = [world.COLOURS[j] for j in read["colour"]]
        out[prompt] = {
            "objects": count_objects(images),
            "images": images,
            "first": float(np.mean([c == colours[0] for c in judged])),
            "second": float(np.mean([c == colours[-1] for c in judged])),
            "colours": dict(Counter(judged).most_common()),
            "shapes": dict(Counter(world.SHAPES[j] for j in read["shape"]).most_common()),
        }
    return out
