"""Notebook 09, bias: a model trained on skewed data, beside one trained without the skew.

    from minidiff.course import bias
    bias.bias_explorer({"skewed": skewed_pipe, "unskewed": plain_pipe})

The skew (minidiff.world.Skew()) is a documented option of the training stream: of the stars
whose caption names no colour, 80% are yellow, where 20% would be without it. The explorer shows
what each model draws for "a star", from the same noises, at each guidance scale, with the share
of yellow stars the judge counts.
"""

import numpy as np

from minidiff import world
from minidiff.course import paths
from minidiff.course.explorer import SCALE, Explorer, selection_slider
from minidiff.course.measuring import wilson
from minidiff.grid import make_grid

SCALES = (1, 1.5, 2, 3, 5)


def skew_prompts(skew: "world.Skew") -> list[str]:
    """Prompts that name the skew's given value (star) and leave its attribute (colour) out: every
    size (or none) at every position (or none), in the world's own words."""
    others = [a for a in world.ATTRIBUTES if a not in (skew.attribute, skew.given)]
    prompts = []
    options = [[None, *world.ATTRIBUTES[a]] for a in others]
    for values in np.array(np.meshgrid(*[range(len(o)) for o in options])).T.reshape(-1, 2):
        named = {skew.given: skew.given_value}
        named.update({a: o[i] for a, o, i in zip(others, options, values) if o[i] is not None})
        prompts.append(world.canonical_prompt(named))
    return sorted(set(prompts))


def skew_share(
    pipe,
    skew: "world.Skew",
    judge,
    n: int = 8,
    seed: int = 0,
    guidance_scale: float = 1.0,
    prompts: list[str] | None = None,
) -> dict:
    """Generate n pictures for each of `prompts` (default skew_prompts) and measure the share the
    judge reads as the skew's value: {"share", "low", "high" (95% Wilson interval), "pictures",
    "counts" (value -> pictures), "images"}."""
    prompts = prompts or skew_prompts(skew)
    images = pipe.generate(prompts, n=n, seed=seed, guidance_scale=guidance_scale)
    values = world.ATTRIBUTES[skew.attribute]
    judged = [values[i] for i in judge.predict(images)[skew.attribute]]
    hits = sum(v == skew.value for v in judged)
    low, high = wilson(hits, len(judged))
    counts = {v: judged.count(v) for v in values}
    return {
        "share": hits / len(judged),
        "low": low,
        "high": high,
        "pictures": len(judged),
        "counts": counts,
        "images": images,
    }


def read_results() -> dict:
    """The full bias measurement (benchmarks/bias_skew.py): 480 pictures per model and scale."""
    return paths.read_results("bias_skew.json", "python benchmarks/bias_skew.py")


class BiasExplorer(Explorer):
    static_figure = "figures/09_bias_explorer.gif"

    def __init__(
        self,
        pipes: dict,
        prompt: str = "a star",
        scales=SCALES,
        n: int = 16,
        seed: int = 0,
        judge=None,
        skew=None,
    ):
        from minidiff.judge import load_judge

        judge = judge if judge is not None else load_judge()
        skew = skew or world.Skew()
        names = list(pipes)
        super().__init__(
            selection_slider(list(scales), scales[0], "guidance"),
            caption=(
                f'"{prompt}", {n} pictures from the same {n} noises · '
                + " · ".join(f"row {i + 1}: the {name} model" for i, name in enumerate(names))
            ),
        )
        self.measured, frames = {}, {}
        for s in scales:
            rows, parts = [], []
            for name in names:
                m = skew_share(
                    pipes[name], skew, judge, n=n, seed=seed, guidance_scale=s, prompts=[prompt]
                )
                self.measured[name, s] = m
                rows.append(make_grid(m["images"], ncol=n, scale=SCALE // 2))
                parts.append(f"{name}: {m['share']:.0%} {skew.value}")
            gap = np.full((8, rows[0].shape[1], 3), 255, np.uint8)
            frames[s] = (
                np.concatenate([rows[0], gap, *rows[1:]]),
                f"guidance {s:g} · " + " · ".join(parts),
            )
        self._set_frames(frames)


def bias_explorer(
    pipes: dict, prompt: str = "a star", scales=SCALES, n: int = 16, seed: int = 0, judge=None
):
    """A guidance slider over two (or more) models' pictures of one prompt, with the measured
    share of the skewed value in each row."""
    return BiasExplorer(pipes, prompt, scales, n, seed, judge)


def share_plot(results: dict, training_share: tuple[float, float, float], ax=None):
    """Bar chart of measured shares with 95% intervals: results {label: {"share", "low",
    "high"}}; training_share (share, low, high) of the skewed training data, drawn as a band."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 3))
    labels = list(results)
    shares = np.array([results[k]["share"] for k in labels])
    errors = np.array(
        [
            [results[k]["share"] - results[k]["low"], results[k]["high"] - results[k]["share"]]
            for k in labels
        ]
    ).T
    ax.bar(
        range(len(labels)),
        shares,
        yerr=errors,
        capsize=4,
        color=["#e0b000" if "skewed" in k and "unskewed" not in k else "#8899aa" for k in labels],
    )
    share, low, high = training_share
    ax.axhspan(low, high, color="#e0b000", alpha=0.25, lw=0)
    ax.axhline(share, color="#b08800", ls="--", lw=1, label=f"skewed training data {share:.0%}")
    ax.axhline(0.2, color="#556677", ls=":", lw=1, label="unskewed training data 20%")
    ax.set_xticks(range(len(labels)), [k.replace(", ", ",\n") for k in labels], fontsize=8)
    ax.set(ylim=(0, 1), ylabel="share of yellow stars")
    ax.legend(fontsize=8, loc="upper right")
    return ax
