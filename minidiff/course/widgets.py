"""The course's explorers, one or two per notebook: sliders over pictures the model already made.

    from minidiff.course import widgets
    widgets.step_scrubber(pipe, "a large red circle in the center")   # shows itself in Jupyter

Each is a minidiff.course.explorer.Explorer: frames are computed with minidiff.course.probe or
pipe.trace when it is built, and a slider only picks one.
"""

import html

import numpy as np

from minidiff import world
from minidiff.course import probe
from minidiff.course.explorer import (
    SCALE,
    STATIC_NOTE,
    Explorer,
    FrameStack,
    W,
    follow,
    png,
    selection_slider,
    side_by_side,
    static_page,
    t_values,
    text_box,
)
from minidiff.grid import make_grid

PROMPT = "a large red circle in the center"


# -- 01: noise ------------------------------------------------------------------------------------
class ScheduleExplorer(Explorer):
    static_figure = "figures/01_schedule_explorer.gif"

    def __init__(self, image=None, schedules=("linear", "cosine"), seed: int = 0):
        from minidiff.schedules import make_alpha_bar, snr

        image = world.render_prompts([PROMPT], seed)[0] if image is None else image
        ts = t_values()
        super().__init__(
            selection_slider(ts, ts[len(ts) // 2], "t"),
            caption=(
                f"the same picture and noise under each schedule (left to right: "
                f"{', '.join(schedules)}), and how much of the picture is left at t"
            ),
        )
        noised = np.stack([probe.noised_pictures(image, s, ts, seed) for s in schedules])
        alpha_bar = {s: make_alpha_bar(s).numpy() for s in schedules}  # (T,) each
        log_snr = {s: np.log(snr(make_alpha_bar(s)).numpy()) for s in schedules}
        plot, marked = _schedule_plot({"ᾱ_t (signal left)": alpha_bar, "log SNR": log_snr})
        frames = {}
        for i, t in enumerate(ts):
            pictures = make_grid(noised[:, i], ncol=len(schedules), scale=SCALE)
            numbers = " · ".join(
                f"{s}: ᾱ_t = {alpha_bar[s][t]:.3f}, log SNR = {log_snr[s][t]:.1f}"
                for s in schedules
            )
            frames[t] = (side_by_side(pictures, marked(plot, t)), f"t = {t} · {numbers}")
        self._set_frames(frames)


def _schedule_plot(curves: dict[str, dict[str, np.ndarray]]):
    """Curves {panel title: {schedule: (T,) values}} drawn once by matplotlib into an RGB array,
    and marked(plot, t), which marks t on a copy by hand: a frame costs no matplotlib call."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import to_rgb
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 2.45), dpi=80, layout="constrained")
    canvas = FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(curves))
    colour = {}
    for ax, (title, series) in zip(axes, curves.items()):
        for name, y in series.items():
            (line,) = ax.plot(np.arange(len(y)), y, label=name)
            colour[name] = (np.array(to_rgb(line.get_color())) * 255).astype(np.uint8)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("t", fontsize=9)
        ax.tick_params(labelsize=8)
    axes[0].legend(fontsize=8)
    canvas.draw()
    plot = np.asarray(canvas.buffer_rgba())[..., :3].copy()  # (H, W, 3)
    height = plot.shape[0]

    def marked(plot: np.ndarray, t: int) -> np.ndarray:
        out = plot.copy()
        for ax, series in zip(axes, curves.values()):
            _, y_bottom, _, y_top = ax.bbox.extents  # display coordinates: origin bottom left
            x = round(ax.transData.transform((t, 0))[0])
            out[height - int(y_top) : height - int(y_bottom), x] = 150  # a grey line at t
            for name, y in series.items():
                px, py = ax.transData.transform((t, y[t]))
                r, c = height - round(py), round(px)
                out[max(r - 3, 0) : r + 4, max(c - 3, 0) : c + 4] = colour[
                    name
                ]  # a dot on the curve
        return out

    return plot, marked


def schedule_explorer(image=None, schedules=("linear", "cosine"), seed: int = 0):
    """Slider over t: one picture noised under each schedule, beside ᾱ_t and log SNR."""
    return ScheduleExplorer(image, schedules, seed)


# -- 02: the denoiser ------------------------------------------------------------------------------
class DenoiserExplorer(Explorer):
    static_figure = "figures/02_denoiser_explorer.gif"

    def __init__(self, pipe, prompt: str = PROMPT, seed: int = 0, image=None):
        self.pipe, self.seed, self.picture = pipe, seed, image
        self.prompt = text_box(prompt, "prompt")
        self.button = self._generate_button()
        self.ts = t_values(pipe.config.T)
        super().__init__(
            selection_slider(self.ts, self.ts[len(self.ts) // 2], "t"),
            controls=[W.HBox([self.prompt, self.button])],
            caption="left to right: x_t (what the network is shown) · ε (the noise "
            "that was added) · ε̂ (the network's guess of it) · x̂0 (the clean "
            "picture that guess implies)",
        )
        self.compute()

    def compute(self) -> None:
        prompt = self.prompt.value
        image = (
            world.render_prompts([prompt], self.seed)[0] if self.picture is None else self.picture
        )
        d = probe.denoiser_predictions(self.pipe, image, prompt, self.ts, self.seed)
        alpha_bar = self.pipe.alpha_bar.numpy()
        frames = {}
        for i, t in enumerate(self.ts):
            row = np.stack([d["x_t"][i], d["eps"][i], d["eps_hat"][i], d["x0_hat"][i]])
            label = (
                f"t = {t} · ᾱ_t = {alpha_bar[t]:.3f} · error of the noise guess (mean "
                f"squared) = {d['eps_error'][i]:.3f}"
            )
            frames[t] = (make_grid(row, ncol=4, scale=SCALE), label)
        self._set_frames(frames)


def denoiser_explorer(pipe, prompt: str = PROMPT, seed: int = 0, image=None):
    """Slider over t: x_t, the true noise, the predicted noise and the predicted clean picture
    (image: the clean picture, uint8 (32, 32, 3); default: a rendered picture of the prompt)."""
    return DenoiserExplorer(pipe, prompt, seed, image)


# -- 04: sampling ----------------------------------------------------------------------------------
class StepScrubber(Explorer):
    static_figure = "figures/04_step_scrubber.gif"

    def __init__(self, pipe, prompt: str = PROMPT, steps: int = 20, seed: int = 0):
        self.pipe, self.steps, self.seed = pipe, steps, seed
        self.prompt = text_box(prompt, "prompt")
        self.button = self._generate_button()
        slider = selection_slider(list(range(1, steps + 1)), 1, "step")
        slider.layout.width = "540px"
        self.play = W.Play(value=0, min=0, max=steps - 1, interval=300, description="play")
        W.jslink((self.play, "value"), (slider, "index"))  # playing moves the slider in the page
        super().__init__(
            slider,
            controls=[W.HBox([self.prompt, self.button])],
            slider_box=W.HBox([self.play, slider]),
            caption="top row DDPM, bottom row DDIM, from the same starting noise · "
            "left: x_t, the picture the sampler holds · right: x̂0, its guess of the "
            "finished picture (at the last step, the finished picture)",
        )
        self.compute()

    def compute(self) -> None:
        runs = [
            self.pipe.trace(
                self.prompt.value, n=1, steps=self.steps, seed=self.seed, sampler=sampler
            )
            for sampler in ("ddpm", "ddim")
        ]
        x_t = [run.frames("x_t")[:, 0] for run in runs]  # (S, 32, 32, 3) each
        x0_hat = [run.frames("x0_hat")[:, 0] for run in runs]
        frames = {}
        for k, t in enumerate(runs[0].timesteps):
            cells = np.stack([x_t[0][k], x0_hat[0][k], x_t[1][k], x0_hat[1][k]])
            frames[k + 1] = (
                make_grid(cells, ncol=2, scale=SCALE),
                f"step {k + 1} of {self.steps} · t = {t}",
            )
        self._set_frames(frames)


def step_scrubber(pipe, prompt: str = PROMPT, steps: int = 20, seed: int = 0):
    """Slider and Play over a real sampling run: x_t and x̂0, DDPM above DDIM, same noise."""
    return StepScrubber(pipe, prompt, steps, seed)


# -- 05: words to vectors --------------------------------------------------------------------------
OTHER_PROMPT = "a small blue square in the center"  # as many tokens as PROMPT: exact mix ends
MIX_WEIGHTS = [float(w) for w in np.linspace(0, 1, 9)]


def _heat(values: np.ndarray) -> np.ndarray:
    """(H, W) numbers in [0, 1] -> uint8 (H, W, 3) colours of matplotlib's 'magma' map."""
    from matplotlib import colormaps

    return (colormaps["magma"](values)[..., :3] * 255).astype(np.uint8)


class PromptExplorer(Explorer):
    static_figure = "figures/05_prompt_explorer.gif"

    def __init__(
        self,
        pipe,
        prompt: str = PROMPT,
        other_prompt: str = OTHER_PROMPT,
        seed: int = 0,
        steps: int = 20,
    ):
        self.pipe, self.seed, self.steps = pipe, seed, steps
        self.prompt, self.other_prompt = text_box(prompt, "prompt"), text_box(other_prompt, "other")
        self.button = self._generate_button()
        self.tokens, self.word = W.HTML(), W.Dropdown(description="word")
        slider = selection_slider(list(range(1, steps + 1)), steps, "step")
        self.mix_slider = selection_slider(MIX_WEIGHTS, 0.5, "mix")
        self.mix_view = FrameStack()
        follow(self.mix_slider, self.mix_view)
        mix_caption = W.HTML(
            "<b>Mixing the two prompts' vectors</b>, from the same noise: "
            "mix 0 is the first prompt, 1 the other"
        )
        super().__init__(
            slider,
            controls=[self.prompt, self.other_prompt, self.button, self.tokens, self.word],
            caption="<b>Cross-attention</b>: the picture · how strongly each of its "
            "pixels looks at the word (bright: strongly) · both together",
            below=[mix_caption, self.mix_slider, self.mix_view],
            outer=self.word,
        )
        self.compute()

    @property
    def mix_image(self) -> W.Image:
        return self.mix_view.image

    @property
    def mix_label(self) -> W.HTML:
        return self.mix_view.label

    def compute(self) -> None:
        prompt, other = self.prompt.value, self.other_prompt.value
        tokens, ids = probe.prompt_tokens(self.pipe, prompt)
        self.tokens.value = (
            "<table><tr><th>token</th>"
            + "".join(f"<td>{html.escape(tok)}</td>" for tok in tokens)
            + "</tr><tr><th>id</th>"
            + "".join(f"<td>{i}</td>" for i in ids)
            + "</tr></table>"
        )
        tokens, picture, maps = probe.attention_maps(self.pipe, prompt, self.steps, self.seed)
        frames = {}
        for w, token in enumerate(tokens):
            for s in range(self.steps):
                m = maps[s, w]  # (32, 32), attention weights in [0, 1]
                heat = _heat(m / max(m.max(), 1e-12))
                cells = np.stack([picture, heat, (0.4 * picture + 0.6 * heat).astype(np.uint8)])
                label = (
                    f"step {s + 1} of {self.steps} · '{html.escape(token)}' gets "
                    f"{m.mean():.0%} of the attention, on average over pixels"
                )
                frames[(w, s + 1)] = (make_grid(cells, ncol=3, scale=SCALE), label)
        mixed = probe.interpolate_prompts(
            self.pipe, prompt, other, MIX_WEIGHTS, self.seed, self.steps
        )
        width = f"{self.pipe.picture_size * SCALE}px"
        labels = [
            f"mix {w:g}: {1 - w:.0%} '{html.escape(prompt)}' + {w:.0%} '{html.escape(other)}'"
            for w in MIX_WEIGHTS
        ]
        self.mix_view.show(
            [
                (png(mixed[i].repeat(SCALE, 0).repeat(SCALE, 1)), labels[i])
                for i in range(len(MIX_WEIGHTS))
            ],
            width,
        )
        self._set_frames(frames)
        colour = [i for i, tok in enumerate(tokens) if tok in world.COLOURS]
        self.word.options = [(tok, i) for i, tok in enumerate(tokens)]
        self.word.value = colour[0] if colour else 0


def prompt_explorer(
    pipe, prompt: str = PROMPT, other_prompt: str = OTHER_PROMPT, seed: int = 0, steps: int = 20
):
    """Tokens and ids; each word's cross-attention map at every step; a mix of two prompts."""
    return PromptExplorer(pipe, prompt, other_prompt, seed, steps)


# -- 06: guidance ----------------------------------------------------------------------------------
class GuidanceExplorer(Explorer):
    static_figure = "figures/06_guidance_explorer.gif"

    def __init__(
        self,
        pipe,
        prompt: str = "a red star",
        scales=(0, 1, 2, 3, 5, 8),
        negative_prompt: str | None = None,
        n: int = 8,
        seed: int = 0,
        steps: int = 20,
        judge=None,
    ):
        from minidiff.judge import load_judge

        self.pipe, self.scales, self.n, self.seed, self.steps = pipe, scales, n, seed, steps
        self.judge = judge if judge is not None else load_judge()
        self.prompt = text_box(prompt, "prompt")
        self.negative = text_box(negative_prompt or "", "negative", "e.g. a large shape")
        self.button = self._generate_button()
        self.table = W.HTML()
        super().__init__(
            selection_slider(list(scales), scales[0], "guidance"),
            controls=[self.prompt, self.negative, self.button],
            below=[self.table],
            caption=f"{n} pictures from the same {n} noises at each guidance scale",
        )
        self.compute()

    def compute(self) -> None:
        prompt, negative = self.prompt.value, self.negative.value.strip() or None
        pictures = probe.guidance_sweep(
            self.pipe, prompt, self.scales, self.n, self.seed, self.steps, negative
        )  # (K, n, 32, 32, 3)
        frames, rows = {}, []
        for s, group in zip(self.scales, pictures):
            score = probe.adherence_and_diversity(self.judge, prompt, group)
            hits = round(score["adherence"] * self.n)
            diversity = "n/a" if np.isnan(score["diversity"]) else f"{score['diversity']:.2f}"
            label = (
                f"guidance scale {s:g} · adherence {score['adherence']:.0%} ({hits} of "
                f"{self.n} pictures judged as asked) · diversity {diversity}"
            )
            frames[s] = (make_grid(group, ncol=min(self.n, 4), scale=SCALE), label)
            rows.append(
                f"<tr><td>{s:g}</td><td>{score['adherence']:.0%}</td><td>{diversity}</td></tr>"
            )
        self.table.value = (
            "<table><tr><th>guidance scale</th><th>adherence</th><th>diversity</th></tr>"
            + "".join(rows)
            + "</table><small>adherence: share of pictures in which the judge "
            "reads every attribute the prompt names as asked · diversity: normalised entropy of "
            "the attributes the prompt leaves out (1: all values equally common)</small>"
        )
        self._set_frames(frames)


def guidance_explorer(
    pipe,
    prompt: str = "a red star",
    scales=(0, 1, 2, 3, 5, 8),
    negative_prompt: str | None = None,
    n: int = 8,
    seed: int = 0,
    steps: int = 20,
    judge=None,
):
    """Slider over guidance scales: n pictures from the same noises, with measured adherence and
    diversity (judge: default the shipped one); Generate recomputes with a negative prompt."""
    return GuidanceExplorer(pipe, prompt, scales, negative_prompt, n, seed, steps, judge)


# -- 00: the prompt box; 03: training snapshots ------------------------------------------------
def prompt_box(pipe, prompt: str = "a small blue circle on the left", n: int = 8, seed: int = 0):
    """A prompt, a Generate button and the grid of pictures it draws (notebook 00).

    Nothing runs until the button is pressed, except one grid for the starting prompt. Errors
    (an unknown word, a too long prompt) are shown under the box in the learner's words.
    """
    import warnings

    text = W.Text(value=prompt, description="prompt", layout=W.Layout(width="460px"))
    count = W.IntSlider(value=n, min=1, max=16, description="pictures")
    seed_box = W.IntText(value=seed, description="seed", layout=W.Layout(width="160px"))
    button = W.Button(description="Generate", button_style="primary")
    message = W.HTML()
    image = W.Image(format="png")

    def draw(_=None):
        button.disabled, button.description = True, "drawing..."
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                pictures = pipe.generate(text.value, n=count.value, seed=int(seed_box.value))
            image.value = png(make_grid(pictures, ncol=min(8, count.value), scale=5))
            message.value = "<br>".join(f"⚠ {w.message}" for w in caught)
        except ValueError as e:  # unknown words, empty prompt: say so, keep the last grid
            message.value = f"<b>✗</b> {e}"
        finally:
            button.disabled, button.description = False, "Generate"

    button.on_click(draw)
    draw()
    note = []
    if static_page():  # a page built by minidiff site: the grid above is all there is
        button.disabled, note = True, [W.HTML(STATIC_NOTE)]
    box = W.VBox([W.HBox([text, button]), *note, W.HBox([count, seed_box]), message, image])
    box.static_figure = "figures/00_prompt_box.png"
    return box


def snapshot_explorer(pictures: dict, ncol: int = 8):
    """Slider over training steps, showing the pictures each snapshot drew (notebook 03).

    pictures: {training step: uint8 (N, 32, 32, 3)}, the same prompts and seed for every step,
    drawn beforehand, so that moving the slider only picks a grid.
    """

    class SnapshotExplorer(Explorer):
        static_figure = "figures/03_training_snapshots.gif"

        def __init__(self):
            options = [(f"{step:,}", step) for step in pictures]
            slider = W.SelectionSlider(
                options=options,
                value=options[-1][1],
                description="step",
                layout=W.Layout(width="600px"),
            )
            super().__init__(
                slider,
                caption="the same prompts and the same noise, drawn by the "
                "model after each number of training steps",
            )
            self._set_frames(
                {
                    step: (
                        make_grid(images, ncol=ncol, scale=SCALE // 2),
                        f"after {step:,} training steps",
                    )
                    for step, images in pictures.items()
                }
            )

    return SnapshotExplorer()
