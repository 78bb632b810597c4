"""The latent model: trained on an autoencoder's latents, sampled in latent space, decoded."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from minidiff import pipeline
from minidiff.autoencoder import Autoencoder, AutoencoderConfig
from minidiff.checkpoint import CheckpointError, save_autoencoder
from minidiff.pipeline import MODELS, Pipeline, load_pretrained, weights_path
from minidiff.scaffold import QUIET, Watch
from minidiff.train import preset, train

TINY_AE = AutoencoderConfig(channels=(8, 8, 16), scale_factor=0.7)


@pytest.fixture(scope="module")
def latent_run(tmp_path_factory):
    """A tiny latent model trained for a few steps on a tiny (untrained) autoencoder."""
    root = tmp_path_factory.mktemp("latent")
    torch.manual_seed(0)
    save_autoencoder(Autoencoder(TINY_AE), root / "ae.safetensors")
    model, cfg = preset("tiny")
    model = replace(
        model,
        autoencoder=TINY_AE.to_dict(),
        unet=replace(model.unet, image_channels=4, image_size=8, patch=1),
    )
    cfg = replace(cfg, steps=4, autoencoder=str(root / "ae.safetensors"))
    result = train(model, cfg, root / "run", watch=QUIET)
    return root, result


@pytest.fixture(scope="module")
def latent_pipe(latent_run):
    return load_pretrained(latent_run[0] / "run" / "model.safetensors", device="cpu")


def test_training_copies_the_autoencoder_in_and_leaves_it_alone(latent_run, latent_pipe):
    from minidiff.checkpoint import load_autoencoder

    root, _ = latent_run
    ae = load_autoencoder(root / "ae.safetensors")
    for (name, a), b in zip(ae.state_dict().items(), latent_pipe.autoencoder.state_dict().values()):
        torch.testing.assert_close(a, b.to(a.dtype), msg=name)


def test_a_latent_pipeline_samples_latents_and_returns_pictures(latent_pipe):
    assert latent_pipe.latent
    images = latent_pipe.generate(["a red circle", "a blue star"], n=2, steps=3)
    assert images.shape == (4, 32, 32, 3) and images.dtype == np.uint8
    run = latent_pipe.trace("a red circle", n=2, steps=3)
    assert run.latents("x_t").shape == (3, 2, 4, 8, 8)
    assert run.frames("x0_hat").shape == (3, 2, 32, 32, 3)
    # the last x0_hat, decoded, is the picture generate returns
    np.testing.assert_array_equal(run.frames("x0_hat")[-1], run.images)
    np.testing.assert_array_equal(latent_pipe.generate("a red circle", n=2, steps=3), run.images)


def test_img2img_and_inpainting_work_in_latent_space(latent_pipe):
    from minidiff import world

    image = world.example("test", 0).image
    out = latent_pipe.img2img(image, "a blue circle", strength=0.5, n=2, steps=4)
    assert out.shape == (2, 32, 32, 3)
    mask = np.zeros((32, 32), bool)
    mask[5:14, 18:27] = True  # not on the 4-pixel latent grid: its latent elements cover more
    drawn = latent_pipe.inpaint(image, mask, "a blue circle", n=2, steps=4)
    assert drawn.shape == (2, 32, 32, 3)
    np.testing.assert_array_equal(
        drawn[:, ~mask], np.broadcast_to(image[~mask], drawn[:, ~mask].shape)
    )
    assert (drawn[:, mask] != image[mask]).any()  # the masked part was redrawn
    with pytest.raises(ValueError, match=r"mask must have shape \(32, 32\)"):
        latent_pipe.inpaint(image, np.ones((8, 8), bool), "a blue circle", steps=4)


def test_a_latent_run_needs_its_autoencoder(tmp_path):
    model, cfg = preset("tiny")
    model = replace(
        model,
        autoencoder=TINY_AE.to_dict(),
        unet=replace(model.unet, image_channels=4, image_size=8, patch=1),
    )
    with pytest.raises(ValueError, match="needs TrainConfig.autoencoder"):
        train(model, replace(cfg, steps=1), tmp_path / "a", watch=QUIET)
    other = tmp_path / "other.safetensors"
    save_autoencoder(Autoencoder(replace(TINY_AE, scale_factor=0.3)), other)
    with pytest.raises(CheckpointError, match="not the one this model config names"):
        train(model, replace(cfg, steps=1, autoencoder=str(other)), tmp_path / "b", watch=QUIET)


def test_shipped_models_are_found_by_name(monkeypatch):
    assert weights_path("latent") == MODELS["latent"]
    assert weights_path() == pipeline.DEFAULT_WEIGHTS == MODELS["pixel"]
    monkeypatch.setitem(MODELS, "latent", MODELS["latent"].with_name("missing.safetensors"))
    with pytest.raises(CheckpointError, match="missing from the package"):
        load_pretrained("latent")


def test_the_pixel_pipeline_is_no_latent_one(tiny_pipe):
    assert not tiny_pipe.latent
    x = torch.zeros(1, 3, 32, 32)
    assert tiny_pipe.decode(x) is x and tiny_pipe.encode_pictures(x) is x
    assert isinstance(tiny_pipe, Pipeline)


@pytest.mark.skipif(not MODELS["latent"].exists(), reason="the latent model is not shipped yet")
def test_the_shipped_latent_model_draws_what_it_is_asked():
    from minidiff.evaluate import evaluate

    pipe = load_pretrained("latent", device="cpu")
    assert pipe.config.unet.image_size == 8 and pipe.latent
    report = evaluate(pipe, quick=True, progress=False)
    assert report.adherence["seen"]["all"] >= 0.9, report.table()


@pytest.mark.skipif(
    not pipeline.WEIGHTS_DIR.joinpath("autoencoder.safetensors").exists(),
    reason="the autoencoder is not shipped yet",
)
def test_the_latent_preset_trains_and_resumes_on_the_shipped_autoencoder(tmp_path):
    model, cfg = preset("latent")
    assert model.unet.image_size == 8 and model.autoencoder["latent_channels"] == 4
    cfg = replace(cfg, minutes=None, steps=2, checkpoint_every=1, snapshot_steps=())
    train(model, cfg, tmp_path / "run", watch=Watch(progress=False, stop_at=1))
    result = train(model, cfg, tmp_path / "run", resume=True, watch=QUIET)
    assert result.step == 2 and load_pretrained(tmp_path / "run" / "model.safetensors").latent


def test_the_pixel_probes_refuse_a_latent_model_in_one_sentence(latent_pipe):
    from minidiff.course import probe

    with pytest.raises(ValueError, match="works on a pixel model"):
        probe.guidance_sweep(latent_pipe, "a red circle", [1, 3], n=1, steps=2)
