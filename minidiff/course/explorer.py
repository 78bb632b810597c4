"""The explorer the course's widgets are made of: a slider over frames computed beforehand.

Every explorer computes all its frames when it is built, so moving a slider only picks a frame;
anything that runs the model again waits for a button. Each is an ipywidgets.VBox with the same
parts, so it can be driven from Python as well as by hand: `.slider` (the main control), `.image`
(the current frame, PNG, pictures enlarged with crisp pixels), `.label` (what the frame shows, e.g.
"step 7 of 20 · t = 649") and `.static_figure` (its static twin under figures/, written by
`save_static`, for GitHub, PDFs and a dead kernel). The explorers themselves are in
minidiff.course.widgets.
"""


import html
import io
import re
from pathlib import Path

import numpy as np

try:
    import ipywidgets as W
except ImportError:  # pragma: no cover - depends on the environment
    raise ImportError("minidiff's explorers need ipywidgets: pip install 'minidiff[course]'") from None

SCALE = 6  # screen pixels per picture pixel: 32 x 32 pictures show as 192 x 192


def png(picture: np.ndarray) -> bytes:
    """uint8 (H, W, 3) -> PNG bytes."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="png", compress_level=1)
    return buffer.getvalue()


def slider_values(slider) -> list:
    """Every value a slider can take, in order."""
    if isinstance(slider, W.SelectionSlider):
        return [value for _, value in slider.options]
    return list(range(slider.min, slider.max + 1, slider.step))


def t_values(T: int = 1000, n: int = 51) -> list[int]:
    """The n timesteps a t slider offers, 0 to T-1 evenly spaced (0, 20, 40, ..., 999)."""
    return [int(t) for t in np.linspace(0, T - 1, n).round()]


def selection_slider(values: list, value, description: str) -> W.SelectionSlider:
    """A wide slider over the given values, labelled with each value."""
    return W.SelectionSlider(options=[(f"{v:g}", v) for v in values], value=value,
                             description=description, layout=W.Layout(width="600px"))


def text_box(value: str, description: str, placeholder: str = "") -> W.Text:
    """A wide one-line text box, for prompts."""
    return W.Text(value=value, description=description, placeholder=placeholder,
                  layout=W.Layout(width="520px"))


class Explorer(W.VBox):
    """A slider over precomputed frames: self.frames[key] = (picture uint8 (H, W, 3), label)."""

    static_figure = ""  # set by each explorer

    def __init__(self, slider, caption: str, controls=(), below=(), slider_box=None):
        self.slider = slider
        self.image = W.Image(format="png")
        self.label = W.HTML()
        self.caption = W.HTML(caption)
        self.frames: dict = {}
        self._png: dict = {}
        super().__init__([*controls, self.caption, slider_box or slider, self.label, self.image,
                          *below])
        slider.observe(lambda change: self._show(), names="value")

    def key(self):
        """Which frame the controls point at: the slider's value (or more, see PromptExplorer)."""
        return self.slider.value

    def compute(self) -> None:
        """Run the model and make every frame (explorers with a Generate button)."""
        raise NotImplementedError

    def _set_frames(self, frames: dict) -> None:
        """Keep new frames, each encoded as PNG once, and show the one the controls point at."""
        self._png = {k: png(picture) for k, (picture, _) in frames.items()}
        self.frames = frames
        width = next(iter(frames.values()))[0].shape[1]
        self.image.layout.width = f"{width}px"  # as drawn: a notebook would stretch it to fit
        if self.key() in frames:  # a prompt explorer points at its new words only after this
            self._show()

    def _show(self) -> None:
        key = self.key()
        self.image.value = self._png[key]
        self.label.value = self.frames[key][1]

    def _generate_button(self) -> W.Button:
        """A button that runs compute(); a mistake in a prompt is shown in the label."""
        button = W.Button(description="Generate", button_style="primary")

        def click(_):
            button.disabled, button.description = True, "computing..."
            try:
                self.compute()
            except ValueError as e:  # an unknown word, a wrong setting: say so where one looks
                self.label.value = f"<span style='color:#b00020'>{html.escape(str(e), quote=False)}</span>"
            finally:
                button.disabled, button.description = False, "Generate"

        button.on_click(click)
        return button

    def save_static(self, path=None, max_frames: int = 12) -> Path:
        """Write up to max_frames frames along the main slider, each under its label, as an
        animated GIF at `path` (default: static_figure, relative to the current folder)."""
        from matplotlib import font_manager
        from PIL import Image, ImageDraw, ImageFont

        font = ImageFont.truetype(font_manager.findfont("DejaVu Sans"), 13)
        keep, values = self.slider.value, slider_values(self.slider)
        picks = np.linspace(0, len(values) - 1, min(max_frames, len(values))).round()
        pages = []
        for i in dict.fromkeys(int(i) for i in picks):
            self.slider.value = values[i]
            picture, label = self.frames[self.key()]
            page = Image.new("RGB", (picture.shape[1], picture.shape[0] + 22), "white")
            page.paste(Image.fromarray(picture), (0, 22))
            text = html.unescape(re.sub("<[^>]+>", "", label))
            ImageDraw.Draw(page).text((4, 3), text, fill="black", font=font)
            pages.append(page)
        self.slider.value = keep
        path = Path(path or self.static_figure)
        path.parent.mkdir(parents=True, exist_ok=True)
        pages[0].save(path, save_all=True, append_images=pages[1:], duration=500, loop=0)
        return path


def side_by_side(left: np.ndarray, right: np.ndarray, gap: int = 8) -> np.ndarray:
    """Two uint8 pictures next to each other on white, tops aligned."""
    height = max(left.shape[0], right.shape[0])
    out = np.full((height, left.shape[1] + gap + right.shape[1], 3), 255, np.uint8)
    out[:left.shape[0], :left.shape[1]] = left
    out[:right.shape[0], left.shape[1] + gap:] = right
    return out
