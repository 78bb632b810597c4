"""Notebook 12: fewer steps. How straight a sampler's path is, the steps explorer over a teacher and
its few-step student, and the cost of a picture in steps, network calls and milliseconds.

A sampler's path is straight when every step's guess of the finished picture (x0_hat) is
already the picture the run ends at: then one step along the first guess lands where twenty do.
How far the guesses miss, and how late they settle, is what makes few steps fail. The σ of a
step is read from any model's schedule in the flow's terms (minidiff.schedules' glossary).
"""

from __future__ import annotations

import html
import statistics
import time

import numpy as np
import torch

from minidiff import schedules
from minidiff.course import paths
from minidiff.course.explorer import SCALE, Explorer, selection_slider
from minidiff.grid import make_grid
from minidiff.pipeline import SAMPLE_PROMPTS

STEP_COUNTS = (1, 2, 4, 8, 20)
RESULTS = "fewsteps.json"
COMMAND = "python benchmarks/bench_fewsteps.py"


def read_results() -> dict:
    """What benchmarks/bench_fewsteps.py measured: flow against v at equal budget, the students
    at 1, 2 and 4 steps over three seeds beside their teacher, and their latency."""
    return paths.read_results(RESULTS, COMMAND)


@torch.no_grad()
def path_of(pipe, prompt: str, seed: int = 0, steps: int = 20, n: int = 8, **settings) -> dict:
    """One sampling run, read as a path: at every step its σ, and how far that step's guess of
    the picture (x0_hat) is from the picture the run ends at, as a share of the distance from the
    starting noise to that picture (0: the guess is already the end; on a straight path every
    guess is). {"sigma" (S,), "miss" (S, n), "x0_hat" (S, n, H, W, 3) uint8}."""
    trace = pipe.trace(prompt, n=n, seed=seed, steps=steps, **settings)
    sigma = [float(schedules.sigma_from_alpha_bar(pipe.alpha_bar[t])) for t in trace.timesteps]
    end = trace.steps[-1].x0_hat.double()  # where the last step lands
    length = (trace.steps[0].x_t.double() - end).flatten(1).norm(dim=1)
    miss = [(s.x0_hat.double() - end).flatten(1).norm(dim=1) / length for s in trace.steps]
    miss = torch.stack(miss).numpy()
    return {"sigma": np.array(sigma), "miss": miss, "x0_hat": trace.frames("x0_hat")}


def straightness_figure(runs: dict):
    """runs: name -> path_of(...). How far each step's guess of the picture is from where the run
    ends, against σ (1: pure noise, left; 0: the picture, right)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 3))
    for name, run in runs.items():
        mean = run["miss"].mean(axis=1)
        ax.plot(run["sigma"], mean, "o-", ms=3, label=f"{name} (first guess {mean[0]:.2f})")
    ax.set(
        xlim=(1.02, -0.02),
        ylim=(0, None),
        xlabel="σ, the share of noise at the step (the sampler runs left to right)",
        ylabel="its guess's distance\nfrom the final picture",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# -- the steps explorer ---------------------------------------------------------------------------
class StepsExplorer(Explorer):
    """The same eight prompts from the same noise, by each model at 1, 2, 4, 8 and 20 steps."""

    static_figure = "figures/12_steps_explorer.gif"

    def __init__(
        self, pipes: dict, results: dict | None = None, seed: int = 0, samplers: dict | None = None
    ):
        import ipywidgets as W

        self.pipes, self.seed = pipes, seed
        self.results = results or {}
        self.samplers = samplers or {}
        names = list(pipes)
        self.choice = W.Dropdown(options=names, description="model", layout=W.Layout(width="460px"))
        super().__init__(
            selection_slider(list(STEP_COUNTS), 4, "steps"),
            caption="the eight prompts of the course's grid, seed 0, the same starting noise for "
            "every model · the label gives what benchmarks/bench_fewsteps.py measured there",
            controls=[self.choice],
            outer=self.choice,
        )
        self._set_frames({(m, s): self._frame(m, s) for m in names for s in STEP_COUNTS})

    def _frame(self, name: str, steps: int) -> tuple[np.ndarray, str]:
        pipe = self.pipes[name]
        made_for = (pipe.student or {}).get("steps")
        if made_for is not None and steps not in made_for:
            blank = np.full((32, 32 * len(SAMPLE_PROMPTS), 3), 235, np.uint8)
            label = f"{html.escape(name)} · was made for {', '.join(map(str, made_for))} steps"
            return make_grid(blank[None], ncol=1, scale=SCALE // 2), label
        settings = {"sampler": self.samplers[name]} if name in self.samplers else {}
        images = pipe.generate(list(SAMPLE_PROMPTS), n=1, seed=self.seed, steps=steps, **settings)
        label = f"{html.escape(name)} · {steps} step{'s' * (steps > 1)}"
        measured = self.results.get(name, {}).get(str(steps))
        if measured:
            label += (
                f" · measured: seen {measured['seen']:.2f}, held-out {measured['held_out']:.2f}, "
                f"FD {measured['fd']:.0f}"
            )
        return make_grid(images, ncol=len(SAMPLE_PROMPTS), scale=SCALE // 2), label


def steps_explorer(
    pipes: dict, results: dict | None = None, seed: int = 0, samplers: dict | None = None
) -> StepsExplorer:
    """pipes: name -> Pipeline. results: name -> {"steps": {"seen", "held_out", "fd"}} (as
    quality_by_steps gives it from the measured results), shown in the labels. samplers: name ->
    the sampler to draw that model with (default: its own)."""
    return StepsExplorer(pipes, results, seed, samplers)


def explorer_models(device=None) -> dict:
    """The steps explorer's arguments for the shipped models, as notebook 12 shows them: the
    flow model (first: its animation is the explorer's static twin), the few-step student, and
    the latent (v) model with DDIM (its deterministic few-step sampler), with what the benchmark
    measured for each."""
    from minidiff import load_pretrained

    pipes = {
        "flow": load_pretrained("flow", device=device),
        "turbo (student)": load_pretrained("turbo", device=device),
        "latent (v), DDIM": load_pretrained("latent", device=device),
    }
    results = quality_by_steps(read_results())
    return {"pipes": pipes, "results": results, "samplers": {"latent (v), DDIM": "ddim"}}


def quality_by_steps(results: dict) -> dict:
    """The measured results as the explorer labels them: model name -> steps -> seed-0 quality."""
    out = {}
    for name, model in results["models"].items():
        out[name] = {str(r["steps"]): r for r in model["by_steps"] if r["seed"] == 0}
    return out


# -- the cost of a picture ------------------------------------------------------------------------
def latency(pipe, steps: int, n: int = 8, runs: int = 5) -> float:
    """Median seconds for n pictures at `steps` (and the model's other defaults), after one
    warm-up run."""
    prompts = list(SAMPLE_PROMPTS[:n])
    pipe.generate(prompts, n=1, steps=steps)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        pipe.generate(prompts, n=1, steps=steps)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def network_calls(pipe, steps: int) -> int:
    """U-Net calls for a batch at `steps` with the model's default guidance: one per step, on a
    doubled batch when guided (counted here as the two calls it replaces)."""
    guided = float(pipe.default_settings.guidance_scale) != 1.0
    return steps * (2 if guided else 1)


# -- the measured tables --------------------------------------------------------------------------
def _spread(values: list[float], digits: int = 2) -> str:
    """Mean, with the range over seeds when there are several."""
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def flow_table(results: dict) -> str:
    """Flow against v-prediction at equal training steps (bench_flow.py), as markdown: every
    run's final model at 20, 4 and 1 sampling steps, seed 0."""
    lines = [
        "| objective | training steps | sampler | 20 steps: seen / held-out / paraphrase "
        "| FD at 20 | at 4 | at 2 |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    runs = sorted(results["flow_against_v"].values(), key=lambda r: r["training_steps"])
    for run in runs:
        by = {r["steps"]: r for r in run["by_steps"]}
        twenty = by[20]
        lines.append(
            f"| {run['objective']} | {run['training_steps']:,} | {run['sampler']} | "
            f"{twenty['seen']:.2f} / {twenty['held_out']:.2f} / {twenty['paraphrase']:.2f} | "
            f"{twenty['fd']:.1f} | {by[4]['fd']:.1f} | {by[2]['fd']:.0f} |"
        )
    return "\n".join(lines)


def student_table(results: dict, rows: list[tuple[str, int]] | None = None) -> str:
    """The measured models at their step counts (or the (name, steps) rows given): adherence and
    FD as the mean over seeds with their range, and the latency of 8 pictures, as markdown."""
    lines = [
        "| model | steps | seen | held-out | paraphrase | FD | ms for 8 pictures |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    if rows is None:
        rows = [
            (name, n)
            for name, model in results["models"].items()
            for n in sorted({r["steps"] for r in model["by_steps"]})
        ]
    for name, n in rows:
        model = results["models"][name]
        seeds = [r for r in model["by_steps"] if r["steps"] == n]
        cols = [_spread([r[k] for r in seeds]) for k in ("seen", "held_out", "paraphrase")]
        fd = _spread([r["fd"] for r in seeds], 1)
        ms = model["latency_s"][str(n)] * 1000
        lines.append(f"| {name} | {n} | {' | '.join(cols)} | {fd} | {ms:.1f} |")
    return "\n".join(lines)


def cost_table(pipes: dict, results: dict, steps_of: dict) -> str:
    """What a picture costs, measured here and now (ms) beside what was measured before (FD):
    pipes name -> Pipeline; steps_of name -> the step counts to time."""
    lines = [
        "| model | steps | network calls | ms for 8 pictures (here, now) | FD (measured, seed 0) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, pipe in pipes.items():
        measured = {r["steps"]: r for r in results["models"][name]["by_steps"] if r["seed"] == 0}
        for n in steps_of[name]:
            ms = latency(pipe, n) * 1000
            fd = f"{measured[n]['fd']:.1f}" if n in measured else "not measured"
            lines.append(f"| {name} | {n} | {network_calls(pipe, n)} | {ms:.1f} | {fd} |")
    return "\n".join(lines)
