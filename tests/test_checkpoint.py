from dataclasses import replace

import pytest
import torch

from minidiff.checkpoint import CheckpointError, load_model, save_model
from minidiff.model import TextToImage
from minidiff.train import preset


@pytest.fixture()
def model():
    torch.manual_seed(1)
    return TextToImage(preset("tiny")[0])


def test_model_file_round_trip(model, tmp_path):
    path = tmp_path / "m.safetensors"
    save_model(model, path, info={"step": 7})
    loaded, info = load_model(path)
    assert info == {"step": 7}
    assert loaded.config == model.config
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k


def test_fp16_model_file_loads_as_fp32(model, tmp_path):
    path = tmp_path / "half.safetensors"
    save_model(model, path, dtype=torch.float16)
    loaded, _ = load_model(path)
    p = next(loaded.parameters())
    assert p.dtype == torch.float32


def test_truncated_file_is_one_clear_error(model, tmp_path):
    path = tmp_path / "m.safetensors"
    save_model(model, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_model(path)


def test_missing_file_and_foreign_file(tmp_path):
    with pytest.raises(CheckpointError, match="no weights file"):
        load_model(tmp_path / "nothing.safetensors")
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, tmp_path / "other.safetensors")
    with pytest.raises(CheckpointError, match="not a minidiff checkpoint"):
        load_model(tmp_path / "other.safetensors")


def test_config_mismatch_is_refused(model, tmp_path):
    path = tmp_path / "m.safetensors"
    save_model(model, path)
    other = replace(model.config, unet=replace(model.config.unet, channels=(16, 32, 48)))
    with pytest.raises(CheckpointError, match="different model config .*channels"):
        load_model(path, config=other)


def test_a_failed_write_leaves_the_old_file_intact(model, tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    save_model(model, path, info={"version": 1})
    before = path.read_bytes()
    import minidiff.checkpoint as ckpt

    def broken_save(tensors, filename, metadata):
        with open(filename, "wb") as f:
            f.write(b"half a fi")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt, "save_file", broken_save)
    with pytest.raises(OSError):
        save_model(model, path, info={"version": 2})
    assert path.read_bytes() == before
    assert list(tmp_path.iterdir()) == [path]  # no partial file left behind
