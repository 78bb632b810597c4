"""Flow matching (rectified flow) as executable math, its Euler sampler against diffusers'
FlowMatchEulerDiscreteScheduler, and a flow model end to end (train, load, draw, refuse)."""

import pytest
import torch

from minidiff import diffusion
from minidiff.diffusion import (
    flow_sample,
    flow_velocity_from_v,
    q_sample,
    split_prediction,
    training_loss,
    v_from,
)
from minidiff.editing import img2img, inpaint
from minidiff.samplers import SampleOptions, flow_euler_step, make_timesteps, sample
from minidiff.schedules import flow_alpha_bar, flow_sigmas, sigma_from_alpha_bar

T = 1000
FLOW = flow_alpha_bar(T)
SHAPE = (2, 3, 8, 8)


def _randn(seed, shape=SHAPE):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_sigma_is_t_plus_1_over_T_and_alpha_bar_inverts_to_it():
    sigma = flow_sigmas(T)
    assert sigma[0].item() == pytest.approx(1 / T) and sigma[-1].item() == 1.0
    assert torch.allclose(sigma_from_alpha_bar(FLOW), sigma, rtol=0, atol=1e-12)
    assert sigma_from_alpha_bar(1.0).item() == 0.0  # t = -1, the clean picture


def test_the_straight_path_divided_by_its_length_is_the_variance_preserving_one():
    x0, eps = _randn(0), _randn(1)
    for t in (0, 250, 700, 998):
        s = t / T + 1 / T
        expected = q_sample(x0, t, FLOW, eps)  # sqrt(ᾱ) x0 + sqrt(1-ᾱ) ε with the flow ᾱ
        scale = ((1 - s) ** 2 + s**2) ** 0.5
        assert torch.allclose(flow_sample(x0, t, FLOW, eps) / scale, expected, atol=1e-12)


@pytest.mark.parametrize("schedule_t", [(0.9, 3), (0.5, 500), (0.01, 990)])
def test_the_velocity_is_v_and_x_t_recombined(schedule_t):
    """u = ε - x0 = (sqrt(ᾱ) + sqrt(1-ᾱ)) v + (sqrt(1-ᾱ) - sqrt(ᾱ)) x_t, at any ᾱ."""
    ab, _ = schedule_t
    x0, eps = _randn(2), _randn(3)
    ab = torch.tensor(ab, dtype=torch.float64)
    x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    v = v_from(x0, eps, ab)
    assert torch.allclose(flow_velocity_from_v(v, x_t, ab), eps - x0, atol=1e-12)


def test_split_prediction_reads_the_true_velocity_as_the_true_picture_and_noise():
    x0, eps = _randn(4), _randn(5)
    for t in (0, 400, T - 1):  # also at pure noise, where eps and x0 guesses of ᾱ = 0 break
        x_t = flow_sample(x0, t, FLOW, eps)
        eps_hat, x0_hat = split_prediction(eps - x0, x_t, FLOW[t], "flow")
        assert torch.allclose(x0_hat, x0, atol=1e-10) and torch.allclose(eps_hat, eps, atol=1e-10)


def test_the_flow_loss_is_the_mse_to_the_velocity_on_the_straight_path():
    x0, ids, null = torch.randn(4, 3, 8, 8), torch.randint(1, 9, (4, 5)), torch.zeros(5).long()
    seen = {}

    def denoiser(x_t, t, ids):
        seen["x_t"], seen["t"] = x_t, t
        return torch.zeros_like(x_t)

    g = torch.Generator().manual_seed(0)
    loss = training_loss(denoiser, x0, ids, null, FLOW, "flow", p_uncond=0.0, generator=g)
    g = torch.Generator().manual_seed(0)  # the same draws, in the same order, by hand
    t = diffusion.sample_t(4, T, "uniform", g, x0.device)
    eps = torch.randn(x0.shape, generator=g)
    sigma = ((t + 1) / T).float()[:, None, None, None]
    assert torch.equal(seen["t"], t)
    assert torch.allclose(seen["x_t"], (1 - sigma) * x0 + sigma * eps, atol=1e-6)
    assert loss.item() == pytest.approx(((eps - x0) ** 2).mean().item(), rel=1e-5)


def test_the_flow_loss_needs_the_flow_schedule():
    from minidiff.schedules import cosine_alpha_bar

    x0, ids = torch.randn(2, 3, 8, 8), torch.ones(2, 5).long()
    with pytest.raises(ValueError, match="needs the 'flow' schedule"):
        training_loss(lambda x, t, i: x, x0, ids, ids[0], cosine_alpha_bar(T), "flow")


@pytest.mark.parametrize("n_steps", [1, 2, 4, 20])
def test_euler_on_the_exact_velocity_of_one_picture_lands_on_it(n_steps):
    """If the data is one picture x*, the true velocity at x_t is (x_t - x*) / σ: every Euler
    step shrinks x_t - x* by σ_prev / σ_t, and the last (σ_prev = 0) lands exactly on x*."""
    target = _randn(6)

    def exact_velocity(x_t, t):
        return (x_t - target) / sigma_from_alpha_bar(FLOW[t]).item()

    x0, steps = sample(
        exact_velocity,
        _randn(7),
        FLOW,
        make_timesteps(n_steps, T),
        SampleOptions(sampler="euler", clip_x0=False, keep_trajectory=True),
    )
    assert torch.allclose(x0, target, atol=1e-10)
    for step in steps:  # every step's guess of the picture is already right
        assert torch.allclose(step.x0_hat, target, atol=1e-10)


def test_an_euler_step_renoises_its_guess_as_ddim_does():
    x_t, u = _randn(8), _randn(9)
    x_prev, x0_hat, eps_hat = flow_euler_step(x_t, u, FLOW[600], FLOW[300])
    s_prev = sigma_from_alpha_bar(FLOW[300]).item()
    assert torch.allclose(x_prev, (1 - s_prev) * x0_hat + s_prev * eps_hat, atol=1e-12)


def test_the_trailing_steps_of_a_flow_model_are_evenly_spaced_in_sigma():
    sigmas = [sigma_from_alpha_bar(FLOW[t]).item() for t, _ in make_timesteps(4, T)]
    assert sigmas == pytest.approx([1.0, 0.75, 0.5, 0.25])


def test_img2img_and_inpaint_noise_along_the_straight_path():
    """With the exact velocity of one picture, img2img returns it and inpainting keeps the known
    part exactly and fills the rest with it: both noise their start with flow_sample."""
    target = _randn(10)[:1]

    def exact_velocity(x_t, t):
        return (x_t - target) / sigma_from_alpha_bar(FLOW[t]).item()

    options = SampleOptions(sampler="euler", clip_x0=False, generator=torch.Generator())
    out, _ = img2img(exact_velocity, target, 0.5, FLOW, make_timesteps(10, T), options)
    assert torch.allclose(out, target, atol=1e-10)
    keep = torch.zeros(1, 1, 8, 8, dtype=torch.float64)
    keep[..., :4] = 1
    out, _ = inpaint(exact_velocity, target, keep, FLOW, make_timesteps(10, T), options)
    assert torch.allclose(out, target, atol=1e-10)


def test_the_diffusion_samplers_refuse_a_flow_schedule():
    with pytest.raises(ValueError, match="does not fit a flow model"):
        sample(lambda x, t: x, _randn(0), FLOW, make_timesteps(2, T), SampleOptions("ddim"))


# -- parity with diffusers ------------------------------------------------------------------------


@pytest.mark.parametrize("n_steps", [1, 4, 20, 50])
def test_every_euler_step_is_diffusers_flow_match_euler_step(n_steps):
    diffusers = pytest.importorskip("diffusers")
    timesteps = make_timesteps(n_steps, T)
    sigmas = [sigma_from_alpha_bar(FLOW[t]).item() for t, _ in timesteps]
    scheduler = diffusers.FlowMatchEulerDiscreteScheduler(num_train_timesteps=T, shift=1.0)
    scheduler.set_timesteps(sigmas=sigmas)
    assert scheduler.timesteps.tolist() == pytest.approx([(t + 1) for t, _ in timesteps])
    x = _randn(11).float()
    for i, (t, t_prev) in enumerate(timesteps):
        u = torch.randn(SHAPE, generator=torch.Generator().manual_seed(100 + i))
        expected = scheduler.step(u, scheduler.timesteps[i], x).prev_sample
        ours, _, _ = flow_euler_step(x, u, FLOW[t], 1.0 if t_prev < 0 else FLOW[t_prev])
        assert torch.allclose(ours, expected, rtol=1e-5, atol=1e-5), (i, t)
        x = expected


def test_the_euler_loop_is_the_diffusers_loop():
    diffusers = pytest.importorskip("diffusers")
    timesteps = make_timesteps(10, T)
    scheduler = diffusers.FlowMatchEulerDiscreteScheduler(num_train_timesteps=T)
    scheduler.set_timesteps(sigmas=[sigma_from_alpha_bar(FLOW[t]).item() for t, _ in timesteps])

    def velocity(x_t, t):  # any smooth function of (x_t, t) stands in for the network
        return torch.tanh(x_t) * (t + 1) / T - 0.3 * x_t

    x_T = _randn(12).float()
    ours, _ = sample(velocity, x_T, FLOW, timesteps, SampleOptions("euler", clip_x0=False))
    x = x_T
    for t_float in scheduler.timesteps:  # diffusers' timestep is σ · T = t + 1
        x = scheduler.step(velocity(x, round(t_float.item()) - 1), t_float, x).prev_sample
    assert torch.allclose(ours, x, rtol=1e-5, atol=1e-5)


# -- a flow model end to end ----------------------------------------------------------------------


def test_train_objective_flow_writes_a_flow_model_that_draws_with_euler(tmp_path, capsys):
    from minidiff.cli import main
    from minidiff.pipeline import load_pretrained

    main(
        ["train", "--preset", "tiny", "--objective", "flow", "--steps", "4", "--out", str(tmp_path)]
    )
    pipe = load_pretrained(tmp_path / "model.safetensors", device="cpu")
    assert (pipe.config.prediction, pipe.config.schedule) == ("flow", "flow")
    assert pipe.flow and pipe.default_settings.sampler == "euler"
    trace = pipe.trace("a red circle", n=2, steps=4, seed=0)
    assert trace.images.shape == (2, 32, 32, 3) and trace.timesteps == [999, 749, 499, 249]
    assert torch.equal(
        torch.as_tensor(trace.images),
        torch.as_tensor(pipe.generate("a red circle", n=2, steps=4, seed=0)),
    )
    with pytest.raises(ValueError, match="the sampler 'ddim' does not fit a flow model"):
        pipe.generate("a red circle", n=1, sampler="ddim")
    # resuming with another objective is another model: refused, the run left as it was
    with pytest.raises(SystemExit):
        main(["train", "--preset", "tiny", "--steps", "6", "--out", str(tmp_path), "--resume"])
    assert "minidiff train: error:" in capsys.readouterr().err


def test_a_diffusion_model_refuses_the_flow_sampler(tiny_pipe):
    with pytest.raises(ValueError, match="does not fit this diffusion model; choose one of ddim"):
        tiny_pipe.generate("a red circle", n=1, sampler="euler")


def test_unknown_objectives_and_mismatched_flow_configs_are_refused():
    from dataclasses import replace

    from minidiff.model import TextToImage
    from minidiff.train import preset, with_objective

    model, _ = preset("tiny")
    with pytest.raises(ValueError, match="unknown objective 'rectified'; choose one of"):
        with_objective(model, "rectified")
    with pytest.raises(ValueError, match="a flow model pairs prediction 'flow' with schedule"):
        TextToImage(replace(model, prediction="flow"))
    back = with_objective(with_objective(model, "flow"), "v")
    assert (back.prediction, back.schedule) == ("v", "cosine")
