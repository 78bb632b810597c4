"""The conditional GAN (minidiff.gan): its networks, its training in the scaffold, its files."""

import tempfile
from pathlib import Path

import pytest
import torch

import minidiff
from minidiff import gan
from minidiff.checkpoint import CheckpointError, load_model
from minidiff.cli import main
from minidiff.scaffold import Watch
from minidiff.tokenizer import Tokenizer

SMALL = gan.GanConfig(z_dim=8, g_channels=(32, 16, 8, 8), d_channels=(8, 16, 16))
QUIET = Watch(progress=False)


def test_the_networks_have_the_shapes_and_the_constraints_of_the_recipe():
    model = gan.ConditionalGAN(gan.GanConfig())
    ids = Tokenizer().encode(["a red circle", "a large blue star in the top left"])
    pictures = model.generator(torch.randn(2, 64), ids)
    assert pictures.shape == (2, 3, 32, 32) and pictures.abs().max() <= 1
    assert model.discriminator(pictures, model.discriminator.condition(ids)).shape == (2,)
    layers = [m for m in model.discriminator.modules() if isinstance(m, (torch.nn.Conv2d,
              torch.nn.Linear)) and m not in set(model.discriminator.text.modules())]  # fmt: skip
    assert layers and all(hasattr(m, "parametrizations") for m in layers)  # spectral norm
    unet = sum(p.numel() for p in minidiff.load_pretrained().model.unet.parameters())
    for net in (model.generator, model.discriminator):
        assert 0.5 * unet < sum(p.numel() for p in net.parameters()) < 2 * unet


def test_the_hinge_loss_is_zero_only_past_the_margins():
    assert gan.d_hinge_loss(torch.tensor([2.0]), torch.tensor([-3.0])) == 0
    assert gan.d_hinge_loss(torch.tensor([0.0]), torch.tensor([0.0])) == 2


def test_a_resumed_run_equals_a_straight_one_and_writes_a_generator(tmp_path):
    cfg = gan.GanTraining(steps=4, batch_size=4, checkpoint_every=2)
    gan.train_gan(tmp_path / "straight", cfg, SMALL, watch=QUIET)
    gan.train_gan(tmp_path / "halves", cfg, SMALL, watch=Watch(progress=False, stop_at=2))
    assert not (tmp_path / "halves" / "gan.safetensors").exists()
    gan.train_gan(tmp_path / "halves", cfg, SMALL, watch=QUIET, resume=True)
    a, _ = gan.load_gan(tmp_path / "straight" / "gan.safetensors")
    b, info = gan.load_gan(tmp_path / "halves" / "gan.safetensors")
    assert info["step"] == 4
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), name
    pictures = gan.generate(a, ["a red circle", "a blue star"], seed=0)
    assert pictures.shape == (2, 32, 32, 3)
    assert (pictures == gan.generate(a, ["a red circle", "a blue star"], seed=0)).all()


def test_a_gan_and_a_diffusion_model_refuse_each_others_files(tmp_path):
    gan.train_gan(tmp_path, gan.GanTraining(steps=1, batch_size=2), SMALL, watch=QUIET)
    with pytest.raises(CheckpointError, match="holds gan weights, not a text-to-image model"):
        load_model(tmp_path / "gan.safetensors")
    with pytest.raises(CheckpointError, match="holds gan weights, not a text-to-image model"):
        minidiff.pipeline.load_pretrained(tmp_path / "gan.safetensors")
    with pytest.raises(CheckpointError, match="holds model weights, not a GAN generator"):
        gan.load_gan(minidiff.pipeline.DEFAULT_WEIGHTS)


def test_the_mode_seeking_term_rewards_pictures_that_differ_with_z():
    torch.manual_seed(0)
    task = gan.GanTask(gan.ConditionalGAN(SMALL), gan.GanTraining(batch_size=8, mode_seeking=1.0))
    ids = Tokenizer().encode(["a red circle"] * 8)
    z = torch.randn(8, SMALL.z_dim)
    fake = task.gan.generator(z, ids)
    loss = task.mode_seeking_loss(z, ids, fake, torch.Generator().manual_seed(1))
    assert loss > 0 and loss.requires_grad
    far = fake.detach().clone()
    far[:4] = -far[:4]  # the same z, pictures further from the second draw's
    spread = task.mode_seeking_loss(z, ids, far, torch.Generator().manual_seed(1))
    assert spread < loss  # pictures further apart for the same z distance: a smaller loss
    cfg = gan.GanTraining(steps=2, batch_size=4, mode_seeking=1.0)
    gan.train_gan(Path(tempfile.mkdtemp()), cfg, SMALL, watch=QUIET)  # it trains with the term


@pytest.mark.parametrize(
    "settings, says",
    [
        ({"lr_d": float("nan")}, "lr_d must be a positive number"),
        ({"lr": float("inf")}, "lr must be a positive number"),
        ({"batch_size": 0}, "batch_size must be a whole number"),
        ({"ema_decay": 1.0}, "ema_decay must lie in"),
        ({"mode_seeking": float("nan")}, "mode_seeking must be a number >= 0"),
    ],
)
def test_bad_settings_are_refused_in_one_sentence(tmp_path, settings, says):
    with pytest.raises(ValueError, match=says):
        gan.train_gan(tmp_path, gan.GanTraining(steps=1, **settings), SMALL, watch=QUIET)
    assert not (tmp_path / "gan.safetensors").exists()


def test_the_command_line_trains_a_gan(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(gan, "GanConfig", lambda: SMALL)  # a small one, for speed
    main(["train-gan", "--out", str(tmp_path), "--steps", "2", "--batch-size", "4"])
    assert "trained to step 2" in capsys.readouterr().out
    assert (tmp_path / "gan.safetensors").exists()
    with pytest.raises(SystemExit):
        main(["train-gan", "--out", str(tmp_path), "--steps", "2", "--lr-d", "-1"])
    assert "lr_d must be a positive number" in capsys.readouterr().err


def test_load_pretrained_gives_a_gan_the_pipelines_generate(tmp_path):
    gan.train_gan(tmp_path, gan.GanTraining(steps=1, batch_size=2), SMALL, watch=QUIET)
    pipe = minidiff.load_pretrained(tmp_path / "gan.safetensors", device="cpu")
    assert isinstance(pipe, gan.GanPipeline)
    pictures = pipe.generate(["a red circle", "a blue star"], n=3, seed=1)
    assert pictures.shape == (6, 32, 32, 3) and pictures.dtype == "uint8"
    one = gan.generate(pipe.generator, ["a red circle"] * 3 + ["a blue star"] * 3, seed=1)
    assert (pictures == one).all()  # each prompt repeated n times, in order, as Pipeline does
    assert (pipe.generate("a red circle", n=2, seed=1, steps=1, sampler="gan") == one[:2]).all()
    assert isinstance(minidiff.load_pretrained(device="cpu"), minidiff.pipeline.Pipeline)


@pytest.mark.parametrize(
    "settings, says",
    [
        ({"steps": 20}, "has no steps to set"),
        ({"guidance_scale": 3.0}, "has no guidance_scale to set"),
        ({"sampler": "ddim"}, "has no sampler to set"),
        ({"n": 0}, "n must be a positive whole number"),
        ({"seed": 1.5}, "seed must be a whole number"),
    ],
)
def test_a_gan_pipeline_refuses_what_a_gan_does_not_have(tmp_path, settings, says):
    gan.train_gan(tmp_path, gan.GanTraining(steps=1, batch_size=2), SMALL, watch=QUIET)
    pipe = minidiff.load_pretrained(tmp_path / "gan.safetensors", device="cpu")
    with pytest.raises(ValueError, match=says) as e:
        pipe.generate("a red circle", **settings)
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="no unconditional mode"):
        pipe.generate(None)
