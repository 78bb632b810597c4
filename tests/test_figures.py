"""`minidiff figures` and the notebooks' helpers in minidiff.course, on the untrained tiny model."""

import numpy as np
import pytest
from PIL import Image

from minidiff import course
from minidiff.cli import main
from minidiff.course import figures, widgets


@pytest.mark.slow
def test_figures_are_written_as_images(tiny_pipe, tmp_path):
    written = figures.make_figures(tmp_path, pipe=tiny_pipe, only=["hero", "schedules"])
    names = {p.name for p in written}
    assert {"hero.png", "01_schedule_x_t.png", "01_schedules.png",
            "01_schedule_explorer.gif"} <= names
    for path in written:
        with Image.open(path) as image:
            assert image.size[0] > 100 and image.size[1] > 50


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
    pictures = {100: np.zeros((4, 32, 32, 3), np.uint8), 300: np.full((4, 32, 32, 3), 255,
                                                                        np.uint8)}
    explorer = widgets.snapshot_explorer(pictures, ncol=4)
    explorer.slider.value = 100
    first = explorer.image.value
    explorer.slider.value = 300
    assert explorer.image.value != first and "300" in explorer.label.value
