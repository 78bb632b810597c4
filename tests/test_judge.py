import numpy as np
import pytest
import torch

from minidiff import pixels, world
from minidiff.checkpoint import CheckpointError
from minidiff.judge import (
    Judge,
    JudgeTraining,
    judge_accuracy,
    load_judge,
    save_judge,
    targets,
    train_judge,
)
from minidiff.scaffold import QUIET, Watch


@pytest.fixture(scope="module")
def judge():
    return load_judge()


def pictures_of_every_value():
    """Three pictures for every value of every attribute (held-out pairs included), the other
    attributes cycling through their values -> (uint8 (N, 32, 32, 3), attrs)."""
    rng = np.random.default_rng(0)
    attrs = []
    for name, values in world.ATTRIBUTES.items():
        for v, value in enumerate(values):
            for r in range(3):
                chosen = {
                    other: vals[(v + 2 * r + j) % len(vals)]
                    for j, (other, vals) in enumerate(world.ATTRIBUTES.items())
                }
                attrs.append(world.Attributes(**{**chosen, name: value}))
    attrs += [world.Attributes(c, s, z, "center") for c, s in world.HELD_OUT for z in world.SIZES]
    return np.stack([world.render(a, rng) for a in attrs]), attrs


def test_judge_reads_every_attribute_value(judge):
    images, attrs = pictures_of_every_value()
    predicted = judge.predict(images)
    for name, y in targets(attrs).items():
        wrong = [str(attrs[i]) for i in np.flatnonzero(predicted[name] != y)]
        assert not wrong, f"judge misreads {name} of {wrong}"


def test_judge_accuracy_on_test_pictures(judge):
    accuracy = judge_accuracy(judge, n=500, split="test")
    assert set(accuracy) == set(world.ATTRIBUTES)
    assert all(a >= 0.99 for a in accuracy.values()), accuracy


def test_shapes_and_both_input_kinds(judge):
    images, _, _ = world.batch("test", 0, 5)
    logits = judge(images)
    assert {k: tuple(v.shape) for k, v in logits.items()} == {
        name: (5, len(values)) for name, values in world.ATTRIBUTES.items()
    }
    with torch.no_grad():
        from_floats = judge(pixels.to_tensor(images))
    for name in logits:
        torch.testing.assert_close(logits[name], from_floats[name])
    assert judge.features(images).shape == (5, judge.config.features)
    assert judge.embed_pictures(images).shape == (5, judge.config.features)
    assert all(v.shape == (5,) for v in judge.predict(images).values())
    with pytest.raises(ValueError, match="uint8"):
        judge(images.astype(np.float32))


def test_shipped_judge_records_how_it_was_made(judge):
    assert judge.info["command"].startswith("minidiff train-judge")
    assert judge.info["train_split"] == "val"
    assert min(judge.info["test_accuracy"].values()) >= 0.995


def test_save_and_load_round_trip(tmp_path):
    torch.manual_seed(0)
    fresh = Judge().eval()
    path = tmp_path / "judge.safetensors"
    save_judge(fresh, path, info={"note": "untrained"})
    loaded = load_judge(path)
    assert loaded.info == {"note": "untrained"}
    for k, v in fresh.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[k], v, atol=1e-3, rtol=1e-3)


def test_load_judge_errors_in_one_sentence(tmp_path, tiny_model_file):
    good = tmp_path / "judge.safetensors"
    save_judge(Judge(), good)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_judge(truncated)
    with pytest.raises(CheckpointError, match="no weights file"):
        load_judge(tmp_path / "missing.safetensors")
    with pytest.raises(CheckpointError, match="not a judge"):
        load_judge(tiny_model_file)


def test_train_judge_writes_a_usable_file_and_resumes(tmp_path):
    cfg = JudgeTraining(steps=4, batch_size=8, checkpoint_every=2)
    whole = train_judge(tmp_path / "whole", cfg, watch=QUIET, accuracy_pictures=50)
    assert whole.info["command"] == (
        f"minidiff train-judge --out {tmp_path / 'whole'} --steps 4 --seed 0 --batch-size 8"
    )
    path = tmp_path / "whole" / "judge.safetensors"
    assert set(load_judge(path).predict(world.batch("test", 0, 3)[0])) == set(world.ATTRIBUTES)
    train_judge(tmp_path / "half", cfg, watch=Watch(progress=False, stop_at=2))
    assert not (tmp_path / "half" / "judge.safetensors").exists()
    resumed = train_judge(tmp_path / "half", cfg, resume=True, watch=QUIET, accuracy_pictures=50)
    for k, v in whole.state_dict().items():  # the same steps, whether interrupted or not
        torch.testing.assert_close(resumed.state_dict()[k], v)
