"""`minidiff figures` and the notebooks' helpers in minidiff.course, on the untrained tiny model."""

import json
import re

import numpy as np
import pytest
from PIL import Image

from minidiff import course
from minidiff.cli import main
from minidiff.course import paths, registry, widgets


@pytest.mark.slow
def test_figures_and_their_explorers_twins_are_written(tiny_pipe, tmp_path):
    written = registry.make_figures(tmp_path, pipe=tiny_pipe, only=["hero", "schedules"])
    assert [p.name for p in written] == [
        "hero.png",
        "01_schedule_x_t.png",
        "01_schedules.png",
        "01_schedule_explorer.gif",
    ]
    with Image.open(tmp_path / "hero.png") as image:
        hero = np.asarray(image.convert("RGB"), dtype=float)
    # seven prompts by eight seeds of pictures: far from a blank page, and taller than wide / 2
    assert hero.std() > 20 and hero.shape[0] > hero.shape[1] / 2
    with Image.open(tmp_path / "01_schedule_explorer.gif") as gif:
        frames = []
        for k in range(gif.n_frames):
            gif.seek(k)
            frames.append(np.asarray(gif.convert("RGB"), dtype=float))
    # the slider's walk from t = 0 to t = 999: the picture drowns in noise frame by frame
    assert len(frames) >= 8 and np.abs(frames[0] - frames[-1]).mean() > 10


def test_every_explorer_a_notebook_calls_is_registered_once():
    """The registry is the one list: the site finds explorer cells by it, and the figures
    command writes the twins it names."""
    called = {}
    for path in sorted(paths.NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        code = "\n".join(
            "".join(c["source"])
            for c in json.loads(path.read_text())["cells"]
            if c["cell_type"] == "code"
        )
        calls = r"\b(\w+_explorer|step_scrubber|prompt_box|live_training|live_finetune)\("
        for name in re.findall(calls, code):
            called.setdefault(name, set()).add(path.stem)
    names = [entry.name for entry in registry.EXPLORERS]
    assert len(names) == len(set(names))
    assert set(called) == set(names), "register each explorer in minidiff.course.registry"
    for entry in registry.EXPLORERS:
        assert entry.notebook in called[entry.name]
        assert entry.figure is None or entry.figure in registry.FIGURES


def test_an_unknown_figure_is_refused_in_one_sentence(capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        main(["figures", "--out", str(tmp_path), "--only", "heros"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "unknown figure 'heros'" in err and "hero" in err


def test_snapshot_paths_read_the_folder_in_the_environment(tmp_path, monkeypatch):
    for step in (300, 100, 1000):
        (tmp_path / f"step-{step:06d}.safetensors").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not a snapshot")
    monkeypatch.setenv("MINIDIFF_SNAPSHOTS", str(tmp_path))
    assert list(course.snapshot_paths()) == [100, 300, 1000]
    monkeypatch.setenv("MINIDIFF_SNAPSHOTS", str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="no training snapshots"):
        course.snapshot_paths()


def test_pipe_follows_minidiff_weights(tiny_model_file, monkeypatch):
    monkeypatch.setenv("MINIDIFF_WEIGHTS", str(tiny_model_file))
    pipe = course.pipe(device="cpu")
    assert pipe.generate("a red circle", n=1, steps=2).shape == (1, 32, 32, 3)


def test_show_checks_its_labels():
    pictures = np.zeros((4, 32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match="3 titles for 4 pictures"):
        course.show(pictures, titles=["a", "b", "c"])


def test_snapshot_explorer_picks_a_grid_per_step():
    pictures = {
        100: np.zeros((4, 32, 32, 3), np.uint8),
        300: np.full((4, 32, 32, 3), 255, np.uint8),
    }
    explorer = widgets.snapshot_explorer(pictures, ncol=4)
    explorer.slider.value = 100
    first = explorer.image.value
    explorer.slider.value = 300
    assert explorer.image.value != first and "300" in explorer.label.value
