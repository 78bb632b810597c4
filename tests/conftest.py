import pytest
import torch

from minidiff.checkpoint import save_model
from minidiff.model import TextToImage
from minidiff.train import preset


@pytest.fixture(scope="session")
def tiny_model_file(tmp_path_factory):
    """An untrained 'tiny' model file: right shapes, meaningless pictures — for API tests."""
    torch.manual_seed(0)
    model = TextToImage(preset("tiny")[0])
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    save_model(model, path, info={"note": "untrained test model"})
    return path


@pytest.fixture(scope="session")
def tiny_pipe(tiny_model_file):
    from minidiff.pipeline import load_pretrained

    return load_pretrained(tiny_model_file, device="cpu")
