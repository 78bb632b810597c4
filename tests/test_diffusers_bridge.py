"""diffusers' schedulers driving a minidiff model give minidiff's own pictures."""

import copy

import numpy as np
import pytest
import torch

from minidiff.diffusers_bridge import KINDS, diffusers_scheduler, sample_with_diffusers
from minidiff.model import ModelConfig
from minidiff.pipeline import Pipeline
from minidiff.schedules import make_alpha_bar
from minidiff.train import preset

pytest.importorskip("diffusers")

PROMPT = "a large red star in the top left"


@pytest.fixture(scope="module")
def busy_pipe(tiny_pipe):
    """The tiny test model with its zero-initialised layers filled in, so that its output (and the
    prompt's effect on it) is not exactly zero, as it is in an untrained minidiff U-Net."""
    model = copy.deepcopy(tiny_pipe.model)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if not p.any():
                p.copy_(0.05 * torch.randn(p.shape, generator=generator))
    return Pipeline(model, torch.device("cpu"))


@pytest.mark.parametrize("schedule", ["cosine", "linear"])
def test_scheduler_alphas_cumprod_is_alpha_bar(schedule):
    config = ModelConfig(text=preset("tiny")[0].text, schedule=schedule)
    scheduler = diffusers_scheduler(config)
    assert torch.allclose(scheduler.alphas_cumprod.double(), make_alpha_bar(schedule, config.T),
                          rtol=1e-6, atol=0)


def test_scheduler_reads_the_model_config(tiny_pipe):
    scheduler = diffusers_scheduler(tiny_pipe.config)
    assert scheduler.config.num_train_timesteps == tiny_pipe.config.T
    assert scheduler.config.prediction_type == "v_prediction"
    assert scheduler.config.timestep_spacing == "trailing"
    torch.testing.assert_close(scheduler.alphas_cumprod.double(), tiny_pipe.alpha_bar,
                               rtol=1e-6, atol=0)


@pytest.mark.parametrize("kind", ["ddim", "ddpm"])
def test_diffusers_loop_draws_the_pipelines_pictures(busy_pipe, kind):
    ours = busy_pipe.generate(PROMPT, n=3, steps=10, guidance_scale=3.0, seed=7, sampler=kind)
    theirs = sample_with_diffusers(busy_pipe, PROMPT, n=3, steps=10, guidance_scale=3.0, seed=7,
                                   kind=kind)
    assert theirs.shape == ours.shape == (3, 32, 32, 3) and theirs.dtype == np.uint8
    assert np.abs(theirs.astype(int) - ours.astype(int)).max() <= 2
    other_seed = busy_pipe.generate(PROMPT, n=3, steps=10, guidance_scale=3.0, seed=8, sampler=kind)
    assert np.abs(other_seed.astype(int) - ours.astype(int)).max() > 20  # the check has teeth


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_makes_pictures(busy_pipe, kind):
    pictures = sample_with_diffusers(busy_pipe, PROMPT, n=2, steps=4, seed=0, kind=kind)
    assert pictures.shape == (2, 32, 32, 3) and pictures.dtype == np.uint8


def test_unknown_kind_fails_in_one_sentence(tiny_pipe):
    with pytest.raises(ValueError, match="unknown scheduler kind 'heun'"):
        diffusers_scheduler(tiny_pipe.config, kind="heun")
