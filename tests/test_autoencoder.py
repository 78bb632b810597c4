"""The autoencoder of the latent model: shapes, the loss's math, scaling, files, training and
resuming, and the shipped one's quality."""

import json

import numpy as np
import pytest
import torch

from minidiff import world
from minidiff.autoencoder import Autoencoder, AutoencoderConfig
from minidiff.checkpoint import (
    DEFAULT_AUTOENCODER,
    SCENE_AUTOENCODER,
    CheckpointError,
    load_autoencoder,
    read_file,
    save_autoencoder,
    save_model,
)
from minidiff.scaffold import QUIET, Watch
from minidiff.train_autoencoder import AutoencoderTraining, measure_scale_factor, train_autoencoder

TINY = AutoencoderConfig(channels=(8, 8, 16))
QUICK = AutoencoderTraining(steps=4, batch_size=4, warmup=2, checkpoint_every=2)


def test_pictures_go_to_8x8x4_latents_and_back():
    ae = Autoencoder(TINY)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    z = ae.encode(x)
    assert z.shape == (2, 4, 8, 8) and TINY.factor == 4
    assert ae.decode(z).shape == (2, 3, 32, 32)


def test_encode_scales_the_mean_and_decode_undoes_it():
    ae = Autoencoder(AutoencoderConfig(channels=(8, 8, 16), scale_factor=0.25))
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    mean, _ = ae.posterior(x)
    torch.testing.assert_close(ae.encode(x), 0.25 * mean)
    torch.testing.assert_close(ae.decode(ae.encode(x)), ae.decoder(mean))


def test_the_kl_term_is_the_closed_form_kl_to_a_standard_normal():
    ae = Autoencoder(AutoencoderConfig(channels=(8, 8, 16), kl_weight=1.0))
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    g = torch.Generator().manual_seed(0)
    x_hat, loss = ae(x, g)
    mean, logvar = ae.posterior(x)
    q = torch.distributions.Normal(mean, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros_like(mean), torch.ones_like(mean))
    expected = (
        torch.nn.functional.mse_loss(x_hat, x) + torch.distributions.kl_divergence(q, p).mean()
    )
    torch.testing.assert_close(loss, expected)


def test_the_default_config_is_not_shared_between_models():
    a, b = Autoencoder(), Autoencoder()
    a.config.scale_factor = 3.0
    assert b.config.scale_factor == 1.0 and AutoencoderConfig().scale_factor == 1.0


def test_a_file_round_trips_and_the_wrong_kind_is_refused(tmp_path, tiny_model_file):
    ae = Autoencoder(AutoencoderConfig(channels=(8, 8, 16), scale_factor=0.5))
    save_autoencoder(ae, tmp_path / "ae.safetensors", info={"note": "test"})
    back = load_autoencoder(tmp_path / "ae.safetensors")
    assert back.config == ae.config and back.info == {"note": "test"}
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    torch.testing.assert_close(back.encode(x), ae.encode(x), atol=2e-2, rtol=2e-2)  # fp16 file
    with pytest.raises(CheckpointError, match="not an autoencoder"):
        load_autoencoder(tiny_model_file)
    (tmp_path / "broken.safetensors").write_bytes(b"\0" * 20)
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_autoencoder(tmp_path / "broken.safetensors")


def test_training_writes_a_scaled_autoencoder(tmp_path):
    model = train_autoencoder(tmp_path / "run", QUICK, TINY, watch=QUIET)
    stored = load_autoencoder(tmp_path / "run" / "autoencoder.safetensors")
    assert stored.config.scale_factor == pytest.approx(model.config.scale_factor)
    assert stored.config.scale_factor == pytest.approx(measure_scale_factor(model), rel=1e-5)
    assert stored.info["steps"] == 4 and np.isfinite(stored.info["final_loss"])
    with pytest.raises(FileExistsError, match="already holds a run"):
        train_autoencoder(tmp_path / "run", QUICK, TINY, watch=QUIET)


def test_an_interrupted_run_resumes_to_the_same_weights(tmp_path):
    whole = train_autoencoder(tmp_path / "whole", QUICK, TINY, watch=QUIET)
    from dataclasses import replace

    train_autoencoder(tmp_path / "half", QUICK, TINY, watch=Watch(progress=False, stop_at=2))
    assert not (tmp_path / "half" / "autoencoder.safetensors").exists()
    resumed = train_autoencoder(tmp_path / "half", QUICK, TINY, resume=True, watch=QUIET)
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)
    with pytest.raises(ValueError, match="other training settings"):
        train_autoencoder(
            tmp_path / "half", replace(QUICK, lr=1e-4), TINY, resume=True, watch=QUIET
        )
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train_autoencoder(tmp_path / "none", QUICK, TINY, resume=True, watch=QUIET)


def test_the_scenes_world_trains_its_own_autoencoder(tmp_path):
    from dataclasses import replace

    from minidiff import scenes

    model = train_autoencoder(tmp_path / "run", replace(QUICK, world="scenes"), TINY, watch=QUIET)
    images, _, _ = scenes.batch("train", 0, 2)
    latents = model.encode(torch.as_tensor(images).permute(0, 3, 1, 2).float() / 127.5 - 1)
    assert latents.shape == (2, 4, 12, 12)  # 48 x 48 scenes
    # the scale is measured on the world it was trained on
    scale = measure_scale_factor(model, world_name="scenes")
    assert model.config.scale_factor == pytest.approx(scale, rel=1e-5)
    assert scale != pytest.approx(measure_scale_factor(model, n=256), rel=1e-3)
    with pytest.raises(ValueError, match="unknown world 'moon'; choose one of shapes, scenes"):
        train_autoencoder(tmp_path / "r", replace(QUICK, world="moon"), TINY, watch=QUIET)


def test_bad_training_settings_are_refused(tmp_path):
    from dataclasses import replace

    with pytest.raises(ValueError, match="steps must be a whole number of at least 1, got 0"):
        train_autoencoder(tmp_path / "r", replace(QUICK, steps=0), TINY, watch=QUIET)
    with pytest.raises(ValueError, match="lr must be a positive number, got nan"):
        train_autoencoder(tmp_path / "r", replace(QUICK, lr=float("nan")), TINY, watch=QUIET)


def test_a_latent_model_file_carries_its_autoencoder(tmp_path):
    from dataclasses import replace

    from minidiff.checkpoint import load_model
    from minidiff.model import TextToImage, trainable_parameters
    from minidiff.train import preset

    tiny, _ = preset("tiny")
    config = replace(
        tiny,
        autoencoder=TINY.to_dict(),
        unet=replace(tiny.unet, image_channels=4, image_size=8, patch=1),
    )
    model = TextToImage(config)
    assert not any(
        p is q for p in trainable_parameters(model) for q in model.autoencoder.parameters()
    )
    save_model(model, tmp_path / "latent.safetensors")
    back, _ = load_model(tmp_path / "latent.safetensors")
    torch.testing.assert_close(
        back.autoencoder.decoder[0].weight, model.autoencoder.decoder[0].weight
    )
    with pytest.raises(ValueError, match="latent U-Net must take 4 channels of 8 x 8"):
        TextToImage(replace(config, unet=tiny.unet))


@pytest.mark.skipif(not DEFAULT_AUTOENCODER.exists(), reason="the autoencoder is not shipped yet")
def test_the_shipped_autoencoder_keeps_what_the_judge_reads():
    from minidiff.evaluate_autoencoder import evaluate_autoencoder

    ae = load_autoencoder()
    report = evaluate_autoencoder(ae, n=1000)
    assert report.agreement["all"] >= 0.99, report.table()
    assert report.psnr > 25, report.table()
    # the scale factor gives the latents unit variance (over all channels together)
    assert 0.8 < 1.0 / report.measured_scale_factor * report.scale_factor < 1.25
    _, metadata = read_file(DEFAULT_AUTOENCODER)
    assert json.loads(metadata["info"])["steps"] > 0
    assert world.IMAGE_SIZE // ae.config.factor == 8


@pytest.mark.skipif(not SCENE_AUTOENCODER.exists(), reason="the scene autoencoder is not shipped")
def test_the_shipped_scene_autoencoder_keeps_every_object():
    from minidiff.evaluate_autoencoder import evaluate_autoencoder

    ae = load_autoencoder(SCENE_AUTOENCODER)
    report = evaluate_autoencoder(ae, n=300, world_name="scenes")
    agree = report.agreement  # per object
    assert min(agree["cell"], agree["colour"], agree["size"]) >= 0.999, report.table()
    assert agree["shape"] >= 0.97, report.table()  # its card: small stars may read as circles
    assert agree["extra"] == 0, report.table()
    assert 0.8 < 1.0 / report.measured_scale_factor * report.scale_factor < 1.25
