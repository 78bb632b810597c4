"""diffusers' schedulers driving a minidiff model give minidiff's own pictures."""

import copy

import numpy as np
import pytest
import torch

from minidiff.diffusers_bridge import (
    KINDS,
    TWINS,
    diffusers_loop,
    diffusers_scheduler,
    sample_with_diffusers,
)
from minidiff.model import ModelConfig
from minidiff.pipeline import Pipeline
from minidiff.samplers import SampleOptions, make_timesteps, sample
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
    assert torch.allclose(
        scheduler.alphas_cumprod.double(), make_alpha_bar(schedule, config.T), rtol=1e-6, atol=0
    )


def test_scheduler_reads_the_model_config(tiny_pipe):
    scheduler = diffusers_scheduler(tiny_pipe.config)
    assert scheduler.config.num_train_timesteps == tiny_pipe.config.T
    assert scheduler.config.prediction_type == "v_prediction"
    assert scheduler.config.timestep_spacing == "trailing"
    torch.testing.assert_close(
        scheduler.alphas_cumprod.double(), tiny_pipe.alpha_bar, rtol=1e-6, atol=0
    )


@pytest.mark.parametrize("kind", ["ddim", "ddpm"])
def test_diffusers_loop_draws_the_pipelines_pictures(busy_pipe, kind):
    ours = busy_pipe.generate(PROMPT, n=3, steps=10, guidance_scale=3.0, seed=7, sampler=kind)
    theirs = sample_with_diffusers(
        busy_pipe, PROMPT, n=3, steps=10, guidance_scale=3.0, seed=7, kind=kind
    )
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


# -- the schedulers with no minidiff twin, and the twins, on a network whose answer is known ------
SPREAD = 0.2  # the data: pictures whose pixels are N(0, SPREAD²), so x0_hat stays inside [-1, 1]


def gaussian_eps_fn(alpha_bar):
    """The exact eps_hat(x_t, t) for data N(0, SPREAD² I): E[eps | x_t] = sqrt(1 - ᾱ) x_t /
    (ᾱ SPREAD² + 1 - ᾱ). Its probability-flow ODE has a closed-form end point (exact_x0)."""

    def eps_fn(x_t, t):
        ab = alpha_bar[t].float()
        return x_t * (1 - ab).sqrt() / (ab * SPREAD**2 + 1 - ab)

    return eps_fn


def exact_x0(x_T, alpha_bar):
    """Where the ODE takes x_T at t = T-1: along the flow x_t / sqrt(ᾱ SPREAD² + 1 - ᾱ) stays
    constant, so x0 = SPREAD x_T / sqrt(ᾱ_T SPREAD² + 1 - ᾱ_T)."""
    ab = alpha_bar[-1].float()
    return SPREAD * x_T / (ab * SPREAD**2 + 1 - ab).sqrt()


def relative_error(kind, steps, config):
    alpha_bar = make_alpha_bar(config.schedule, config.T)
    x_T = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    scheduler = diffusers_scheduler(config, kind, prediction="eps")
    x0 = diffusers_loop(scheduler, gaussian_eps_fn(alpha_bar), x_T, steps)
    exact = exact_x0(x_T, alpha_bar)
    return float((x0 - exact).abs().max() / exact.abs().max())


@pytest.fixture(scope="module")
def eps_config():
    return ModelConfig(text=preset("tiny")[0].text, prediction="eps")


@pytest.mark.parametrize("kind", ["euler", "dpm", "unipc"])
def test_deterministic_schedulers_reach_the_exact_end_of_the_ode(eps_config, kind):
    errors = [relative_error(kind, steps, eps_config) for steps in (5, 20, 50)]
    assert errors[0] > errors[1] > errors[2]  # more steps, closer
    if kind == "euler":  # first order: the error about halves when the steps double
        assert 0.02 < errors[2] < 0.15
    else:  # second order (DPM-Solver++ 2M, UniPC-bh2): far closer with the same 50 calls
        assert errors[2] < relative_error("euler", 50, eps_config) / 3


@pytest.mark.parametrize("kind", sorted(TWINS))
def test_each_twin_computes_minidiffs_steps(eps_config, kind):
    """Same x_T, same network, same generator: diffusers' scheduler and minidiff's sampler of
    the same name walk to the same picture (the twins' noise is drawn in the same order)."""
    alpha_bar = make_alpha_bar(eps_config.schedule, eps_config.T)
    eps_fn = gaussian_eps_fn(alpha_bar)
    x_T = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    for steps in (5, 20):
        theirs = diffusers_loop(
            diffusers_scheduler(eps_config, kind, prediction="eps"),
            eps_fn,
            x_T,
            steps,
            torch.Generator().manual_seed(2),
        )
        ours, _ = sample(
            eps_fn,
            x_T,
            alpha_bar,
            make_timesteps(steps, eps_config.T),
            SampleOptions(sampler=TWINS[kind], generator=torch.Generator().manual_seed(2)),
        )
        torch.testing.assert_close(theirs, ours, rtol=0, atol=1e-3)
        assert (theirs - x_T).abs().max() > 0.1  # it did move
