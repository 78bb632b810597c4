from dataclasses import replace

import pytest
import torch

from minidiff.checkpoint import CheckpointError, load_model
from minidiff.scaffold import QUIET, Watch
from minidiff.train import TrainingDiverged, learning_rate, preset, train


@pytest.fixture(scope="module")
def configs():
    model_config, train_config = preset("tiny")
    return model_config, replace(
        train_config,
        steps=20,
        checkpoint_every=5,
        sample_every=20,
        log_every=1,
        snapshot_steps=(10,),
    )


@pytest.fixture(scope="module")
def sampled():
    return []


@pytest.fixture(scope="module")
def full_run(configs, tmp_path_factory, sampled):
    out = tmp_path_factory.mktemp("full")
    return train(
        *configs, out, device="cpu", watch=QUIET, on_sample=lambda ema, step: sampled.append(step)
    )


def test_a_run_writes_model_checkpoint_and_snapshots_and_shows_samples(full_run, sampled):
    out = full_run.out_dir
    assert full_run.step == 20
    assert (out / "model.safetensors").exists()
    assert (out / "checkpoint.safetensors").exists()
    assert sampled == [20]  # every sample_every steps, and at the end
    assert (out / "snapshots" / "step-000010.safetensors").exists()
    _, info = load_model(out / "model.safetensors")
    assert info["step"] == 20
    assert [r["step"] for r in full_run.history] == list(range(1, 21))


def test_an_interrupted_run_resumes_on_the_same_loss_curve(configs, full_run, tmp_path):
    first = train(*configs, tmp_path, device="cpu", watch=Watch(progress=False, stop_at=12))
    assert first.step == 12
    resumed = train(*configs, tmp_path, resume=True, device="cpu", watch=QUIET)
    assert resumed.step == 20
    expected = [r["loss"] for r in full_run.history]
    got = [r["loss"] for r in resumed.history]
    assert got == pytest.approx(expected, rel=1e-5, abs=1e-7)
    a, _ = load_model(full_run.out_dir / "model.safetensors")
    b, _ = load_model(tmp_path / "model.safetensors")
    for (k, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=k)


def test_starting_over_an_existing_run_is_refused(configs, full_run):
    with pytest.raises(FileExistsError, match="already holds a run"):
        train(*configs, full_run.out_dir, device="cpu", watch=QUIET)


def test_resume_needs_a_checkpoint_and_the_same_settings(configs, full_run, tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint to resume"):
        train(*configs, tmp_path, resume=True, device="cpu", watch=QUIET)
    model_config, train_config = configs
    with pytest.raises(ValueError, match="other training settings"):
        train(
            model_config,
            replace(train_config, lr=5e-3),
            full_run.out_dir,
            resume=True,
            device="cpu",
            watch=QUIET,
        )
    bigger = replace(model_config, unet=replace(model_config.unet, channels=(16, 32, 64)))
    with pytest.raises(CheckpointError, match="another model config"):
        train(bigger, train_config, full_run.out_dir, resume=True, device="cpu", watch=QUIET)


def test_a_diverging_run_stops_with_a_clear_message(configs, tmp_path, monkeypatch):
    import minidiff.train as training

    real_loss, calls = training.training_loss, []

    def loss_that_blows_up(*args, **kwargs):
        calls.append(1)
        loss = real_loss(*args, **kwargs)
        return loss * float("nan") if len(calls) > 3 else loss

    monkeypatch.setattr(training, "training_loss", loss_that_blows_up)
    with pytest.raises(TrainingDiverged, match="loss became nan at step 3; the last good"):
        train(*configs, tmp_path, device="cpu", watch=QUIET)


def test_bad_settings_are_refused(configs, tmp_path):
    model_config, train_config = configs
    with pytest.raises(ValueError, match="batch_size must be a whole number of at least 1, got 0"):
        train(model_config, replace(train_config, batch_size=0), tmp_path, watch=QUIET)
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        preset("huge")


def test_learning_rate_warms_up_then_decays():
    _, cfg = preset("small")
    lrs = [learning_rate(s, cfg) for s in range(cfg.steps)]
    assert lrs[0] < lrs[cfg.warmup - 1] == pytest.approx(cfg.lr)
    assert all(a >= b for a, b in zip(lrs[cfg.warmup :], lrs[cfg.warmup + 1 :]))
    assert lrs[-1] == pytest.approx(cfg.lr / 10, rel=1e-3)


@pytest.mark.slow
def test_a_killed_training_process_saves_and_resumes(tmp_path):
    """`kill` (SIGTERM) on a real `minidiff train` process: checkpoint saved, --resume finishes."""
    import json
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "minidiff.cli",
        "train",
        "--preset",
        "tiny",
        "--out",
        str(out),
        "--steps",
        "300",
        "--device",
        "cpu",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = out / "log.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if log.exists() and len(log.read_text().splitlines()) >= 4:  # 20 steps logged
            break
        time.sleep(0.05)
    assert proc.poll() is None, "training finished before it could be interrupted"
    proc.send_signal(signal.SIGTERM)
    stdout, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "checkpoint saved, continue with --resume" in stdout
    stopped = int(stdout.split("stopped at step ")[1].split(";")[0])
    assert 0 < stopped < 300
    done = subprocess.run(
        cmd + ["--resume"], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    steps = [json.loads(line)["step"] for line in log.read_text().splitlines()]
    assert steps == list(range(5, 301, 5))  # every logged step exactly once, none lost
    assert (out / "model.safetensors").exists()
    assert (out / "samples" / "step-000300.png").exists()  # the command line draws what it learnt


def test_a_run_on_a_time_budget_stops_there_and_writes_its_model(configs, tmp_path):
    model_config, train_config = configs
    cfg = replace(
        train_config,
        steps=100_000,
        minutes=0.06,
        warmup=1,  # 3.6 seconds
        checkpoint_every=1000,
    )
    result = train(model_config, cfg, tmp_path, device="cpu", watch=QUIET)
    assert 3 <= result.step < 100_000
    assert 3.6 <= result.history[-1]["elapsed"] < 60
    _, info = load_model(tmp_path / "model.safetensors")
    assert info["step"] == result.step
    lrs = [r["lr"] for r in result.history]
    assert lrs[-1] < 0.5 * cfg.lr < max(lrs)  # the schedule decays over the budget, not the steps


@pytest.mark.parametrize("minutes", [0.0, -1.0, float("nan"), float("inf")])
def test_a_time_budget_must_be_a_positive_number(configs, tmp_path, minutes):
    model_config, train_config = configs
    with pytest.raises(ValueError, match="minutes must be a positive number"):
        train(model_config, replace(train_config, minutes=minutes), tmp_path, watch=QUIET)
