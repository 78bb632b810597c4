"""Train a real model from the notebook: minidiff.train in the background, watched as it learns.

    from minidiff.course import training
    run = training.live_training("runs/mine")   # shows Start and Stop; nothing runs until Start

Start runs `minidiff.train.train` with the `fast` preset (a 5-minute budget on a laptop) in a
background thread, so the notebook stays usable: its progress, loss curve and a grid of pictures
drawn by the EMA weights (every 250 steps at most) refresh while it learns, and Stop ends it early,
still writing a model
that can be drawn from. The pieces can be driven from Python as well (`start`, `stop`, `wait`,
`.result`), which is how the tests use it.
"""

import html
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np

from minidiff.course.explorer import STATIC_NOTE, W, png, static_page
from minidiff.pipeline import sample_grid
from minidiff.train import Watch, preset, train


def loss_plot(steps: list[int], losses: list[float]) -> np.ndarray:
    """The loss against training steps as a uint8 (H, W, 3) picture."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.2, 2.4), dpi=90)
    ax = fig.add_subplot()
    ax.plot(steps, losses, color="#1f77b4", lw=1)
    ax.set(xlabel="training step", ylabel="loss", yscale="log", title="the loss, as it falls")
    fig.tight_layout()
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


class LiveTraining(W.VBox):
    """Start and Stop buttons, a progress line, the loss curve and the latest sample grid."""

    def __init__(self, out_dir, preset_name: str = "fast", device: str | None = None, **settings):
        self.out_dir = Path(out_dir)
        self.model_config, train_config = preset(preset_name)
        settings.setdefault("sample_every", min(train_config.sample_every, 250))  # pictures soon
        self.train_config = replace(train_config, **settings)  # e.g. minutes=2
        self.device = device
        self.result = None
        self.error: Exception | None = None
        self.thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._steps: list[int] = []
        self._losses: list[float] = []
        self.start_button = W.Button(description="Start training", button_style="primary")
        self.stop_button = W.Button(description="Stop", disabled=True)
        self.status = W.HTML("Press <b>Start training</b>: the notebook stays usable meanwhile.")
        if static_page():  # a page built by minidiff site: nothing can train here
            self.start_button.disabled = True
            self.status.value = STATIC_NOTE
        self.progress = W.FloatProgress(min=0, max=1, layout=W.Layout(width="420px"))
        self.curve = W.Image(format="png", layout=W.Layout(width="378px"))  # as drawn
        self.samples = W.Image(format="png", layout=W.Layout(display="none"))  # until drawn
        self.start_button.on_click(lambda _: self.start())
        self.stop_button.on_click(lambda _: self.stop())
        super().__init__(
            [
                W.HBox([self.start_button, self.stop_button]),
                self.progress,
                self.status,
                self.curve,
                self.samples,
            ]
        )

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def start(self) -> None:
        """Start training in a background thread (once)."""
        if self.thread is not None:
            raise RuntimeError("this run has already been started; make a new one to train again")
        self.start_button.disabled, self.stop_button.disabled = True, False
        self.status.value = "starting..."
        self.thread = threading.Thread(target=self._train, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Ask the run to end after its current step; it still writes its model."""
        self._stop.set()
        self.stop_button.disabled = True
        self.status.value = "stopping after this step..."

    def wait(self, timeout: float | None = None) -> None:
        if self.thread is not None:
            self.thread.join(timeout)

    def _train(self) -> None:
        try:
            watch = Watch(progress=False, stop=self._stop, on_log=self._on_log)
            self.result = train(
                self.model_config,
                self.train_config,
                self.out_dir,
                device=self.device,
                watch=watch,
                on_sample=self._on_sample,
            )
            model = self.out_dir / "model.safetensors"
            self.status.value = (
                f"done: {self.result.step:,} steps; the model is in "
                f"<code>{html.escape(str(model))}</code>"
            )
        except Exception as e:  # noqa: BLE001 -- shown to the learner, kept for the caller
            self.error = e
            self.status.value = f"<span style='color:#b00020'>{html.escape(str(e))}</span>"
        finally:
            self.start_button.disabled, self.stop_button.disabled = True, True

    def _on_log(self, record: dict) -> None:
        self._steps.append(record["step"])
        self._losses.append(record["loss"])
        cfg = self.train_config
        if cfg.minutes is not None:
            done = min(1.0, record["elapsed"] / (60 * cfg.minutes))
            left = f"{max(0.0, 60 * cfg.minutes - record['elapsed']):.0f} s left"
        else:
            done, left = record["step"] / cfg.steps, f"of {cfg.steps:,} steps"
        self.progress.value = done
        self.status.value = (
            f"step {record['step']:,} · loss {record['loss']:.4f} · "
            f"{record['elapsed']:.0f} s in, {left}"
        )
        if len(self._steps) % 10 == 1:  # redraw the curve now and then: it costs a few ms
            self.curve.value = png(loss_plot(self._steps, self._losses))

    def _on_sample(self, ema, step: int) -> None:
        grid = sample_grid(ema, scale=3)
        self.samples.value = png(grid)
        self.samples.layout.width, self.samples.layout.display = f"{grid.shape[1]}px", None
        self.curve.value = png(loss_plot(self._steps, self._losses))


def live_training(
    out_dir, preset_name: str = "fast", device: str | None = None, **settings
) -> LiveTraining:
    """A LiveTraining for the run folder out_dir; settings change the preset's TrainConfig
    (minutes=2, say). See the module docstring."""
    return LiveTraining(out_dir, preset_name, device, **settings)
