"""Notebook 03's live training: minidiff.course.training drives minidiff.train in a thread."""

import time

import pytest

from minidiff.checkpoint import load_model
from minidiff.course import training

pytest.importorskip("ipywidgets")


def test_a_short_run_shows_its_progress_curve_and_pictures(tmp_path):
    run = training.live_training(tmp_path / "run", "tiny", device="cpu", log_every=2)
    assert run.thread is None and not run.start_button.disabled  # nothing runs before Start
    run.start_button.click()
    run.wait(120)
    assert run.error is None and not run.running
    assert run.result.step == run.train_config.steps == 20
    assert run._steps == list(range(2, 21, 2))
    assert run.progress.value == 1.0
    assert bytes(run.curve.value).startswith(b"\x89PNG")
    assert bytes(run.samples.value).startswith(b"\x89PNG")
    assert "done: 20 steps" in run.status.value
    assert run.start_button.disabled and run.stop_button.disabled
    _, info = load_model(tmp_path / "run" / "model.safetensors")
    assert info["step"] == 20
    with pytest.raises(RuntimeError, match="already been started"):
        run.start()


def test_stop_ends_the_run_early_and_still_writes_a_model(tmp_path):
    run = training.live_training(
        tmp_path / "run",
        "tiny",
        device="cpu",
        steps=100_000,
        log_every=1,
        sample_every=100_000,
        checkpoint_every=100_000,
    )
    assert run.train_config.sample_every == 100_000  # a setting given wins over the default
    run.start()
    deadline = time.time() + 60
    while not run._steps and time.time() < deadline:
        time.sleep(0.05)
    run.stop_button.click()
    run.wait(60)
    assert not run.running and run.error is None
    assert 0 < run.result.step < 1000
    assert (tmp_path / "run" / "model.safetensors").exists()
    assert bytes(run.samples.value).startswith(b"\x89PNG")  # the pictures where it stopped
