"""Notebook 13, "teach it a new word": the examples, the three methods' pictures and table, the
LoRA strength explorer and a button that trains one live.

The table and the pictures of every method come from benchmarks/bench_finetune.py (finetune.json
and finetune.npz under benchmarks/results); the textual inversion and LoRA results it made (with
and without prior preservation) ship in the package (minidiff.adapters.shipped), so the notebook
loads them in a second.
"""

from __future__ import annotations

import html
import threading

import numpy as np

from minidiff import adapters, concepts
from minidiff.course import paths
from minidiff.course.explorer import (
    SCALE,
    STATIC_NOTE,
    Explorer,
    W,
    png,
    selection_slider,
    static_page,
)
from minidiff.grid import make_grid

RESULTS = "finetune.json"
COMMAND = "python benchmarks/bench_finetune.py --ship minidiff/weights/concepts"
METHOD_NAMES = {
    "textual-inversion": "textual inversion",
    "lora": "LoRA (attention)",
    "lora+conv": "LoRA (attention + conv)",
    "lora, prior": "LoRA, prior preservation",
    "full": "full, prior preservation",
    "full, no prior": "full, no prior",
}
KIND_NAMES = {"object": "cross (object)", "style": "sketched (style)"}
STRENGTHS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5)


def read_results() -> dict:
    """What bench_finetune.py measured (finetune.json)."""
    return paths.read_results(RESULTS, COMMAND)


def read_pictures() -> dict[str, np.ndarray]:
    """The pictures bench_finetune.py kept of every run (finetune.npz): "<kind>/<method>/concept"
    and ".../prompt", 8 each, and "<kind>/examples"."""
    path = paths.RESULTS_DIR / "finetune.npz"
    if not path.exists():
        raise FileNotFoundError(f"no pictures at '{path}'; run {COMMAND}")
    with np.load(path) as stored:
        return {k: stored[k] for k in stored.files}


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB" if n >= 1e3 else f"{n} B"


def results_table(results: dict) -> str:
    """Markdown: per concept and method, concept and prompt fidelity, drift, cost."""
    lines = [
        "| taught | method | concept fidelity | prompt fidelity | adherence, before → after "
        "| pixels moved | numbers learned | seconds | file |",
        "| --- | --- | ---: | ---: | :---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results["rows"]:
        lines.append(
            f"| {KIND_NAMES[r['concept']]} | {METHOD_NAMES.get(r['method'], r['method'])} "
            f"| {r['concept_fidelity']:.2f} | {r['prompt_fidelity']:.2f} "
            f"| {r['adherence_before']:.3f} → {r['adherence_after']:.3f} "
            f"| {r['pixels_moved']:.1f} | {r['trainable_parameters']:,} | {r['seconds']:.0f} "
            f"| {_size(r['file_bytes'])} |"
        )
    return "\n".join(lines)


def row(results: dict, kind: str, method: str) -> dict:
    """One measured row of the table."""
    for r in results["rows"]:
        if r["concept"] == kind and r["method"] == method:
            return r
    raise KeyError(f"no measured row for {kind!r} by {method!r}; run {COMMAND}")


def gallery(pictures: dict, kind: str, methods=tuple(METHOD_NAMES)) -> tuple[np.ndarray, list]:
    """Rows of stored pictures for the methods of one concept: the first four familiar prompts'
    pictures, then the first four novel ones; (rows (R, 8, 32, 32, 3), labels)."""
    rows, labels = [], []
    for m in methods:
        key = f"{kind}/{m}"
        if f"{key}/concept" in pictures:
            four = [pictures[f"{key}/{part}"][:4] for part in ("concept", "prompt")]
            rows.append(np.concatenate(four))
            labels.append(METHOD_NAMES[m].replace(", ", ",\n").replace(" (", "\n("))
    return np.stack(rows), labels


class StrengthExplorer(Explorer):
    """A LoRA adapter's pictures at strengths 0 to 1.5: the same prompts and noise at each."""

    static_figure = "figures/13_strength_explorer.gif"

    def __init__(self, pipe, prompts: dict[str, list[str]], seed: int = 0):
        self.pipe, self.seed = pipe, seed
        self.choice = W.Dropdown(
            options=list(prompts), description="adapter", layout=W.Layout(width="460px")
        )
        super().__init__(
            selection_slider(list(STRENGTHS), 1.0, "strength"),
            caption="a shipped LoRA adapter (trained with prior preservation) on the pixel model, "
            "at strength 0 (the base model: the word means nothing yet) to 1.5 · the same prompts "
            "and starting noise at each",
            controls=[self.choice],
            outer=self.choice,
        )
        frames = {}
        for name, listed in prompts.items():
            kind = name.split(":")[0]
            pipe.load_adapter(adapters.shipped(kind, "lora-prior"))
            try:
                for s in STRENGTHS:
                    pipe.set_adapter_scale(s)
                    images = pipe.generate(listed, n=1, seed=seed)
                    label = f"{html.escape(name)} · LoRA strength {s:g}"
                    grid = make_grid(images, ncol=len(listed), scale=SCALE // 2)
                    frames[(name, s)] = (grid, label)
            finally:
                pipe.unload_adapter()
        self._set_frames(frames)


def strength_prompts() -> dict[str, list[str]]:
    """Eight prompts a concept: four like the examples, four with colours and corners no example
    shows."""
    out = {}
    for kind in concepts.KINDS:
        familiar = [p for p, _ in concepts.familiar_prompts(kind)][::8][:4]
        novel = [p for p, _ in concepts.novel_prompts(kind)][::6][:4]
        out[f"{kind}: {concepts.WORDS[kind]}"] = familiar + novel
    return out


def strength_explorer(pipe, seed: int = 0) -> StrengthExplorer:
    """The LoRA strength explorer over the shipped object and style adapters (with prior)."""
    return StrengthExplorer(pipe, strength_prompts(), seed)


class FinetuneButton(W.VBox):
    """Pick a concept and a method, press Train: minidiff.finetune on the concept's examples
    (one to three minutes by the laptop; its progress bar shows), then eight pictures of the
    taught word in colours and corners the examples never showed."""

    def __init__(self, pipe, out_dir="runs/notebook13", steps: dict | None = None):
        self.pipe, self.out_dir = pipe, out_dir
        self.steps = steps or {"textual-inversion": 1000, "lora": 800, "full": 400}
        self.kind = W.Dropdown(options=list(concepts.KINDS), description="teach")
        self.method = W.Dropdown(options=list(adapters.METHODS), value="lora", description="method")
        self.button = W.Button(description="Train (1-3 minutes)", button_style="primary")
        self.status = W.HTML("Press <b>Train</b>: it runs <code>minidiff finetune</code> here.")
        if static_page():  # a page built by minidiff site: nothing can train here
            self.button.disabled = True
            self.status.value = STATIC_NOTE
        self.output = W.Output()
        self.button.on_click(lambda _: self.train())
        self.pictures: np.ndarray | None = None
        super().__init__([W.HBox([self.kind, self.method, self.button]), self.status, self.output])

    def train(self) -> np.ndarray:
        """Train the chosen method on the chosen concept, then draw its novel prompts."""
        import tempfile
        from pathlib import Path

        from IPython.display import display

        from minidiff.finetune import FinetuneConfig, finetune

        kind, method = self.kind.value, self.method.value
        word = concepts.WORDS[kind]
        self.button.disabled = True
        self.status.value = f"teaching {word!r} by {method}..."
        try:
            with self.output:
                self.output.clear_output()
                examples = concepts.export_examples(kind, Path(tempfile.mkdtemp()) / "examples")
                out = Path(self.out_dir) / f"{kind}-{method}-{threading.get_ident()}"
                cfg = FinetuneConfig(method=method, word=word, steps=self.steps[method])
                finetune(examples, out, cfg, device=str(self.pipe.device))
                if self.pipe.attached is not None:
                    self.pipe.unload_adapter()
                self.pipe.load_adapter(out)
                try:
                    prompts = [p for p, _ in concepts.novel_prompts(kind)][::3]
                    self.pictures = self.pipe.generate(prompts, n=1, seed=0)
                finally:
                    self.pipe.unload_adapter()
                grid = make_grid(self.pictures, ncol=len(prompts), scale=SCALE // 2)
                display(W.Image(value=png(grid)))
            self.status.value = (
                f"taught {word!r} by {method} in '{out}'; below, new colours and corners. "
                f"Load it with <code>pipe.load_adapter('{out}')</code>."
            )
        finally:
            self.button.disabled = False
        return self.pictures


def live_finetune(pipe, **kwargs) -> FinetuneButton:
    """The notebook's Train button (see FinetuneButton)."""
    return FinetuneButton(pipe, **kwargs)
