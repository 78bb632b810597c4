"""The explorer the course's widgets are made of: a slider over frames computed beforehand.

Every explorer computes all its frames when it is built, so moving a slider only picks a frame;
anything that runs the model again waits for a button. The frames live in the page: each is a page
of an ipywidgets Stack (a label above a PNG picture), and the slider's position is joined to the
Stack's in the browser by `jslink`. So the slider and Play keep working where no Python runs: in a
page exported by `minidiff site`, in slides, on a USB stick.

Each explorer is an ipywidgets.VBox with the same parts, so it can be driven from Python as well as
by hand: `.slider` (the main control), `.image` (the frame shown now, PNG, pictures enlarged with
crisp pixels), `.label` (what the frame shows, e.g. "step 7 of 20 · t = 649") and `.static_figure`
(its static twin under figures/, written by `save_static`, for GitHub and PDFs). What an explorer
shows below its pictures (`.below`: a second slider, a table) is displayed as a second output, so
that a slide deck can give it a slide of its own. The explorers themselves are in
minidiff.course.widgets.

While `minidiff site` builds the pages, MINIDIFF_STATIC=1 is set: the buttons that run the model
are then disabled and say that they need a running kernel.
"""

import html
import io
import os
import re
from pathlib import Path

import numpy as np

try:
    import ipywidgets as W
except ImportError:  # pragma: no cover - depends on the environment
    raise ImportError(
        "minidiff's explorers need ipywidgets: pip install 'minidiff[course]'"
    ) from None

SCALE = 6  # screen pixels per picture pixel: 32 x 32 pictures show as 192 x 192
STATIC_NOTE = (
    "<small><i>On this page the buttons do nothing: they run the model, which needs "
    "a running Python kernel (open the notebook in JupyterLab). The sliders and Play "
    "work: their pictures were computed when the page was built.</i></small>"
)


def static_page() -> bool:
    """Whether the explorers are being built for a page without a kernel (minidiff site)."""
    return os.environ.get("MINIDIFF_STATIC") == "1"


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
    return W.SelectionSlider(
        options=[(f"{v:g}", v) for v in values],
        value=value,
        description=description,
        layout=W.Layout(width="600px"),
    )


def text_box(value: str, description: str, placeholder: str = "") -> W.Text:
    """A wide one-line text box, for prompts."""
    return W.Text(
        value=value,
        description=description,
        placeholder=placeholder,
        layout=W.Layout(width="520px"),
    )


class FrameStack(W.Stack):
    """One page per frame, a label above a picture; `selected_index` says which one shows.
    pages[i] = (W.HTML label, W.Image picture). Pages are reused when the frames change, so the
    links to the controls stay."""

    def __init__(self):
        super().__init__()
        self.pages: list[tuple[W.HTML, W.Image]] = []
        self._boxes: list[W.VBox] = []  # one per page, made once
        self.control = None  # set by follow()

    @property
    def image(self) -> W.Image:
        """The picture shown now."""
        return self.pages[self.selected_index][1]

    @property
    def label(self) -> W.HTML:
        """What the picture shown now is."""
        return self.pages[self.selected_index][0]

    def show(self, frames: list[tuple[bytes, str]], width: str) -> None:
        """frames: (PNG bytes, label) in the order of the control's values."""
        while len(self.pages) < len(frames):
            self.pages.append((W.HTML(), W.Image(format="png")))
            self._boxes.append(W.VBox(self.pages[-1]))
        for (label, image), (picture, text) in zip(self.pages, frames):
            label.value, image.value, image.layout.width = text, picture, width
        self.children = self._boxes[: len(frames)]
        _select(self, self.control.index)


def follow(control, stack: W.Stack) -> None:
    """Show the stack's page at the control's index: in the browser (jslink, works without a
    kernel) and in Python (so `.image` is right when a script moves the control)."""
    W.jslink((control, "index"), (stack, "selected_index"))
    control.observe(lambda change: _select(stack, change["new"]), names="index")
    stack.control = control
    _select(stack, control.index)


def _select(stack: W.Stack, index) -> None:
    if index is not None and index < len(stack.children):
        stack.selected_index = index


class Explorer(W.VBox):
    """A slider over precomputed frames: self.frames[key] = (picture uint8 (H, W, 3), label).

    slider: a SelectionSlider, whose index picks the frame. outer: an optional second selection
    control (a Dropdown, say); then keys are (outer value, slider value), and the frames are a
    stack of stacks: the outer control picks a stack, the slider a page in it."""

    static_figure = ""  # set by each explorer

    def __init__(self, slider, caption: str, controls=(), below=(), slider_box=None, outer=None):
        self.slider, self.outer = slider, outer
        self.caption = W.HTML(caption)
        self.frames: dict = {}
        self.view = W.Stack() if outer is not None else FrameStack()
        self._inner: list[FrameStack] = []
        follow(outer if outer is not None else slider, self.view)
        note = [W.HTML(STATIC_NOTE)] if controls and static_page() else []
        super().__init__([*controls, *note, self.caption, slider_box or slider, self.view])
        self.add_class("minidiff-explorer")  # how a browser test finds the explorer around a slider
        self.below = W.VBox(list(below))  # shown under the explorer, as an output of its own
        self.below.add_class("minidiff-explorer")

    def _ipython_display_(self) -> None:
        """The explorer, then what it shows below its pictures (a second slider, a table) as a
        second output, which a slide deck can put on a slide of its own (minidiff.course.site)."""
        from IPython.display import display

        display(self._repr_mimebundle_(), raw=True)
        if self.below.children:
            display(self.below)

    def key(self):
        """Which frame the controls point at: the slider's value, or (outer value, slider value)."""
        if self.outer is not None:
            return (self.outer.value, self.slider.value)
        return self.slider.value

    @property
    def _stack(self) -> FrameStack:
        """The stack of frames the controls point at now."""
        return self._inner[self.outer.index] if self.outer is not None else self.view

    @property
    def image(self) -> W.Image:
        """The picture shown now."""
        return self._stack.image

    @property
    def label(self) -> W.HTML:
        """What the picture shown now is."""
        return self._stack.label

    def compute(self) -> None:
        """Run the model and make every frame (explorers with a Generate button)."""
        raise NotImplementedError

    def _set_frames(self, frames: dict) -> None:
        """Keep new frames, each encoded as PNG once, in the order of the controls' values."""
        self.frames = frames
        width = f"{next(iter(frames.values()))[0].shape[1]}px"  # as drawn, not stretched
        values = slider_values(self.slider)
        if self.outer is None:
            self.view.show([(png(frames[v][0]), frames[v][1]) for v in values], width)
            return
        outer_values = list(dict.fromkeys(k[0] for k in frames))
        while len(self._inner) < len(outer_values):
            self._inner.append(FrameStack())
            follow(self.slider, self._inner[-1])
        for stack, o in zip(self._inner, outer_values):
            stack.show([(png(frames[o, v][0]), frames[o, v][1]) for v in values], width)
        self.view.children = self._inner[: len(outer_values)]
        _select(self.view, self.outer.index)

    def _generate_button(self) -> W.Button:
        """A button that runs compute(); a mistake in a prompt is shown in the label."""
        button = W.Button(description="Generate", button_style="primary")
        if static_page():
            button.disabled, button.tooltip = True, "needs a running Python kernel"

        def click(_):
            button.disabled, button.description = True, "computing..."
            try:
                self.compute()
            except ValueError as e:  # an unknown word, a wrong setting: say so where one looks
                self.label.value = (
                    f"<span style='color:#b00020'>{html.escape(str(e), quote=False)}</span>"
                )
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
    out[: left.shape[0], : left.shape[1]] = left
    out[: right.shape[0], left.shape[1] + gap :] = right
    return out
