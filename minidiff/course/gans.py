"""Notebook 14, "GANs against diffusion": the two families side by side, their coverage, the
measured table and an explorer over prompts and seeds.

The table comes from benchmarks/bench_gan.py (gan.json under benchmarks/results): three training
seeds of each family on the same wall-clock budget. The notebook draws live with the two shipped
models of that budget: the GAN (`minidiff.load_pretrained("gan")`) and the diffusion model of
the 5-minute preset (`"fast"`).
"""

from __future__ import annotations

import html

import numpy as np

from minidiff import coverage, world
from minidiff.course import paths
from minidiff.course.explorer import SCALE, Explorer, W
from minidiff.grid import make_grid

RESULTS = "gan.json"
COMMAND = "python benchmarks/bench_gan.py --evaluate --json benchmarks/results/gan.json"
PROMPTS = (
    "a large red circle in the top left",
    "a small blue square at the bottom",
    "a large yellow triangle on the right",
    "a green star in the center",
    "a purple star",
    "a red circle",
)
SEEDS = tuple(range(6))
FAMILY_NAMES = {"diffusion": "diffusion (5-minute preset)", "gan": "GAN"}  # the seeded families


def read_results() -> dict:
    """What bench_gan.py measured (gan.json)."""
    return paths.read_results(RESULTS, COMMAND)


def results_table(results: dict) -> str:
    """Markdown: every run's adherence, coverage, KL to uniform, FD and speed, then the mean and
    range over the seeds of each family."""
    lines = [
        "| run | steps | seen | held-out | paraphrase | coverage | KL to uniform | FD | ms for 8 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results["rows"]:
        a = r["adherence"]
        lines.append(
            f"| {html.escape(r['run'])} | {r['steps'] or ''} | {a['seen']:.2f} "
            f"| {a['held_out']:.2f} | {a['paraphrase']:.2f} | {r['coverage']:.2f} "
            f"| {r['kl_to_uniform']:.2f} | {r['fd']:.1f} | {r['ms_for_8']:.1f} |"
        )
    for family, s in results["spread"].items():
        cells = [
            f"{s[k]['mean']:.2f} ({s[k]['min']:.2f}–{s[k]['max']:.2f})"
            for k in ("seen", "held_out", "paraphrase", "coverage", "kl_to_uniform")
        ]
        lines.append(
            f"| **{FAMILY_NAMES[family]}, 3 seeds** | | "
            + " | ".join(cells)
            + f" | {s['fd']['mean']:.1f} ({s['fd']['min']:.1f}–{s['fd']['max']:.1f}) "
            + f"| {s['ms_for_8']['mean']:.1f} |"
        )
    u = results["uniform_sampler"]
    lines.append(
        f"| *an even sampler, for scale* | | | | | {u['coverage']:.2f} "
        f"| {u['kl_to_uniform']:.2f} | | |"
    )
    return "\n".join(lines)


def coverage_maps(pipes: dict, prompt: str, n: int = 96, seed: int = 0, judge=None) -> dict:
    """For each named pipeline, where its n pictures of `prompt` land: (2, 9) counts over
    (size, position), read by the judge; "real renders" first, drawn by the world."""
    from minidiff.judge import load_judge

    judge = judge or load_judge()
    real = world.render_prompts([prompt] * n, seed=[seed, 1])  # size and place drawn evenly
    maps = {"real renders": coverage.histogram(judge.predict(real))}
    for name, pipe in pipes.items():
        maps[name] = coverage.histogram(judge.predict(pipe.generate(prompt, n=n, seed=seed)))
    return maps


def show_coverage(maps: dict, prompt: str):
    """Each map as a 2 x 9 grid of counts (rows small, large; columns the nine places), with its
    coverage and KL to uniform in the title."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3.3 * len(maps), 1.9), layout="constrained")
    axes = fig.subplots(1, len(maps))
    top = max(int(m.max()) for m in maps.values())
    for ax, (name, counts) in zip(np.atleast_1d(axes), maps.items()):
        ax.imshow(counts, cmap="Blues", vmin=0, vmax=top)
        for (i, j), c in np.ndenumerate(counts):
            ax.text(j, i, str(c), ha="center", va="center", fontsize=7,
                    color="white" if c > top / 2 else "black")  # fmt: skip
        ax.set_title(
            f"{name}\ncoverage {coverage.coverage(counts):.2f} · "
            f"KL {coverage.kl_to_uniform(counts):.2f}",
            fontsize=9,
        )
        ax.set_yticks([0, 1], world.ATTRIBUTES["size"], fontsize=7)
        ax.set_xticks(range(9), ["TL", "T", "TR", "L", "C", "R", "BL", "B", "BR"], fontsize=7)
    fig.suptitle(f'"{prompt}": where {sum(maps[next(iter(maps))].ravel())} pictures each land',
                 fontsize=10)  # fmt: skip
    return fig


class FamilyExplorer(Explorer):
    """Eight pictures of one prompt from each family at each seed: the diffusion model above
    (its sampler's network calls), the GAN below (one call)."""

    static_figure = "figures/14_family_explorer.gif"

    def __init__(self, diffusion, gan, prompts=PROMPTS, seeds=SEEDS):
        self.choice = W.Dropdown(
            options=list(prompts), description="prompt", layout=W.Layout(width="460px")
        )
        steps = diffusion.default_settings.steps
        super().__init__(
            W.SelectionSlider(
                options=[(str(s), s) for s in seeds],
                value=seeds[0],
                description="seed",
                layout=W.Layout(width="600px"),
            ),  # fmt: skip
            caption=f"top row: the diffusion model ({steps} network calls a picture) · bottom "
            "row: the GAN (one call) · the same prompt, eight pictures each, at every seed",
            controls=[self.choice],
            outer=self.choice,
        )
        frames = {}
        for seed in seeds:
            drawn = {name: pipe.generate(list(prompts), n=8, seed=seed)
                     for name, pipe in (("diffusion", diffusion), ("gan", gan))}  # fmt: skip
            for k, prompt in enumerate(prompts):
                rows = [drawn[name][8 * k : 8 * k + 8] for name in ("diffusion", "gan")]
                grid = make_grid(np.concatenate(rows), ncol=8, scale=SCALE // 2)
                frames[(prompt, seed)] = (grid, f"{html.escape(prompt)} · seed {seed}")
        self._set_frames(frames)


def family_explorer(diffusion, gan) -> FamilyExplorer:
    """The explorer over PROMPTS and SEEDS for the two shipped 5-minute models."""
    return FamilyExplorer(diffusion, gan)
