"""Timestep lists, DDPM/DDIM steps and the sample loop as executable math."""

import ast
from pathlib import Path

import pytest
import torch

import minidiff
from minidiff.diffusion import eps_from_x0
from minidiff.editing import img2img, inpaint
from minidiff.samplers import (
    SPACINGS,
    SampleOptions,
    Step,
    ddim_step,
    ddpm_step,
    dpmpp_2m_step,
    euler_ancestral_step,
    make_timesteps,
    sample,
)
from minidiff.schedules import make_alpha_bar

ALPHA_BAR = make_alpha_bar("cosine", 1000)
SHAPE = (2, 3, 8, 8)
TEN_STEPS = make_timesteps(10, 1000)


def _randn(*shape, seed=0, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def gaussian_eps_fn(x_t, t, s=0.5):
    """The exact denoiser for pictures drawn from N(0, s² I): x0_hat = E[x_0 | x_t]."""
    ab_t = ALPHA_BAR[t].item()
    x0_hat = ab_t**0.5 * s**2 / (ab_t * s**2 + 1 - ab_t) * x_t
    return eps_from_x0(x_t, x0_hat, ab_t)


# -- timestep lists ---------------------------------------------------------------------------


@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("n_steps", [1, 2, 7, 10, 61, 999, 1000])
def test_timesteps_are_a_decreasing_chain_ending_at_minus_1(spacing, n_steps):
    pairs = make_timesteps(n_steps, 1000, spacing)
    ts = [t for t, _ in pairs]
    assert len(pairs) == n_steps and all(0 <= t <= 999 for t in ts)
    assert ts == sorted(set(ts), reverse=True)  # strictly decreasing
    assert [t_prev for _, t_prev in pairs] == ts[1:] + [-1]


def test_where_each_spacing_starts_and_ends():
    assert make_timesteps(10, 1000, "trailing")[0] == (999, 899)  # starts from pure noise
    assert make_timesteps(10, 1000, "leading")[0] == (900, 800)  # never visits t = 999
    assert make_timesteps(10, 1000, "leading")[-1] == (0, -1)
    assert make_timesteps(10, 1000, "linspace")[0] == (999, 888)
    assert make_timesteps(1000, 1000) == [(t, t - 1) for t in range(999, -1, -1)]


@pytest.mark.parametrize("n_steps", [0, 1001, 2.5, True])
def test_number_of_steps_is_checked(n_steps):
    with pytest.raises(ValueError, match=f"steps must be between 1 and 1000, got {n_steps}"):
        make_timesteps(n_steps, 1000)
    with pytest.raises(ValueError, match="^steps must be between 1 and 1000, got 0.$"):
        make_timesteps(0)


def test_unknown_spacing_names_the_allowed_ones():
    with pytest.raises(ValueError, match="trailing.*leading.*linspace"):
        make_timesteps(10, 1000, "even")


# -- single steps -----------------------------------------------------------------------------


@pytest.mark.parametrize("t, t_prev", [(1, 0), (500, 499), (999, 998), (999, 899), (640, 80)])
def test_ddim_with_eta_1_is_the_ddpm_posterior(t, t_prev):
    x_t, eps_hat = (
        _randn(*SHAPE, seed=1, dtype=torch.float64),
        _randn(*SHAPE, seed=2, dtype=torch.float64),
    )
    ab_t, ab_prev = ALPHA_BAR[t], ALPHA_BAR[t_prev]
    zeros, ones = torch.zeros_like(x_t), torch.ones_like(x_t)
    ddim_mean, _ = ddim_step(x_t, eps_hat, ab_t, ab_prev, eta=1.0, noise=zeros)
    ddpm_mean, _ = ddpm_step(x_t, eps_hat, ab_t, ab_prev, noise=zeros)
    assert torch.allclose(ddim_mean, ddpm_mean, atol=1e-10)  # same mean
    ddim_std = ddim_step(x_t, eps_hat, ab_t, ab_prev, eta=1.0, noise=ones)[0] - ddim_mean
    ddpm_std = ddpm_step(x_t, eps_hat, ab_t, ab_prev, noise=ones)[0] - ddpm_mean
    assert torch.allclose(ddim_std, ddpm_std, atol=1e-10)  # same standard deviation
    beta = 1 - ab_t / ab_prev
    expected_std = ((1 - ab_prev) / (1 - ab_t) * beta).sqrt().item()  # β̃ [DDPM eq. 7]
    assert torch.allclose(ddpm_std, torch.full_like(ddpm_std, expected_std), atol=1e-10)


def test_ddim_with_eta_0_and_the_true_noise_recovers_the_forward_process():
    # if eps_hat is the noise that made x_t, DDIM lands exactly on q_sample's x_prev
    x0, eps = (
        _randn(*SHAPE, seed=3, dtype=torch.float64),
        _randn(*SHAPE, seed=4, dtype=torch.float64),
    )
    ab_t, ab_prev = ALPHA_BAR[700], ALPHA_BAR[300]
    x_t = ab_t.sqrt() * x0 + (1 - ab_t).sqrt() * eps
    x_prev, x0_hat = ddim_step(x_t, eps, ab_t, ab_prev)
    assert torch.allclose(x0_hat, x0, atol=1e-9)
    assert torch.allclose(x_prev, ab_prev.sqrt() * x0 + (1 - ab_prev).sqrt() * eps, atol=1e-9)


@pytest.mark.parametrize("step", ["ddim", "ddpm"])
def test_the_last_step_returns_x0_hat(step):
    x_t, eps_hat = _randn(*SHAPE, seed=5), _randn(*SHAPE, seed=6)
    if step == "ddim":
        x_prev, x0_hat = ddim_step(x_t, eps_hat, ALPHA_BAR[40], 1.0, eta=1.0)
    else:
        x_prev, x0_hat = ddpm_step(x_t, eps_hat, ALPHA_BAR[40], 1.0)  # no noise needed
    assert torch.equal(x_prev, x0_hat)


def test_steps_that_add_noise_ask_for_it():
    x_t = torch.zeros(SHAPE)
    with pytest.raises(ValueError, match="pass noise"):
        ddpm_step(x_t, x_t, ALPHA_BAR[500], ALPHA_BAR[400])
    with pytest.raises(ValueError, match="pass noise"):
        ddim_step(x_t, x_t, ALPHA_BAR[500], ALPHA_BAR[400], eta=0.5)
    with pytest.raises(ValueError, match="eta must be between 0 and 1"):
        ddim_step(x_t, x_t, ALPHA_BAR[500], ALPHA_BAR[400], eta=1.5, noise=x_t)


# -- the loop ---------------------------------------------------------------------------------


@pytest.mark.parametrize("sampler, eta", [("ddim", 0.0), ("ddim", 1.0), ("ddpm", 0.0)])
@pytest.mark.parametrize("clip_x0", [True, False])
def test_sample_returns_the_last_x0_hat_and_every_step(sampler, eta, clip_x0):
    seen = []
    timesteps = make_timesteps(10, 1000)
    x0, trajectory = sample(
        gaussian_eps_fn,
        _randn(*SHAPE),
        ALPHA_BAR,
        timesteps,
        SampleOptions(
            sampler=sampler,
            eta=eta,
            generator=torch.Generator().manual_seed(0),
            callback=seen.append,
            keep_trajectory=True,
            clip_x0=clip_x0,
        ),
    )
    assert [s.t for s in trajectory] == [t for t, _ in timesteps] == [s.t for s in seen]
    assert all(isinstance(s, Step) and s.x_t.shape == SHAPE for s in trajectory)
    assert torch.equal(x0, trajectory[-1].x0_hat)
    assert not any(s.x_t.requires_grad for s in trajectory)


def test_clip_x0_keeps_the_guess_inside_the_picture_range():
    def wild(x_t, t):
        return -50 * torch.ones_like(x_t)  # its x0_hat is far above 1

    x0, trajectory = sample(
        wild,
        _randn(*SHAPE),
        ALPHA_BAR,
        make_timesteps(5, 1000),
        SampleOptions(keep_trajectory=True),
    )
    assert all(bool(s.x0_hat.abs().max() <= 1) for s in trajectory)
    assert bool(x0.abs().max() <= 1)
    unclipped, _ = sample(
        wild, _randn(*SHAPE), ALPHA_BAR, make_timesteps(5, 1000), SampleOptions(clip_x0=False)
    )
    assert bool(unclipped.abs().max() > 1)


def test_trajectory_is_empty_unless_asked_for():
    _, trajectory = sample(gaussian_eps_fn, _randn(*SHAPE), ALPHA_BAR, make_timesteps(3, 1000))
    assert trajectory == []


@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_the_same_seed_gives_the_same_picture(sampler):
    def run(seed):
        g = torch.Generator().manual_seed(seed)
        x_T = torch.randn(SHAPE, generator=g)
        return sample(
            gaussian_eps_fn,
            x_T,
            ALPHA_BAR,
            make_timesteps(8, 1000),
            SampleOptions(sampler=sampler, eta=1.0, generator=g),
        )[0]

    assert torch.equal(run(0), run(0))
    assert not torch.allclose(run(0), run(1))


def test_sample_follows_the_dtype_of_its_input():
    x0, _ = sample(
        gaussian_eps_fn,
        _randn(*SHAPE, dtype=torch.float64),
        ALPHA_BAR,
        make_timesteps(3, 1000),
        SampleOptions(sampler="ddpm", generator=torch.Generator().manual_seed(0)),
    )
    assert x0.dtype == torch.float64


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"sampler": "heun"}, "sampler must be one of"),
        ({"sampler": "euler"}, "does not fit this diffusion model"),
        ({"eta": -0.1}, "eta must be a number between 0 and 1"),
        ({"eta": float("nan")}, "eta must be a number between 0 and 1"),
        ({"timesteps": []}, "timesteps is empty"),
        ({"timesteps": [(1000, 500), (500, -1)]}, "0 <= t < 1000"),
        ({"timesteps": [(900, 500), (400, -1)]}, "does not start where"),
    ],
)
def test_sample_rejects_bad_settings(kwargs, message):
    timesteps = kwargs.pop("timesteps", make_timesteps(2, 1000))
    with pytest.raises(ValueError, match=message):
        sample(gaussian_eps_fn, torch.zeros(SHAPE), ALPHA_BAR, timesteps, SampleOptions(**kwargs))


def test_sample_rejects_a_wrongly_shaped_eps():
    with pytest.raises(ValueError, match="eps_fn returned shape"):
        sample(lambda x_t, t: x_t[:, :1], torch.zeros(SHAPE), ALPHA_BAR, make_timesteps(2, 1000))


# -- img2img and inpainting -------------------------------------------------------------------


def test_img2img_with_small_strength_changes_the_picture_little():
    x_init = (0.5 * _randn(*SHAPE, seed=7)).clamp(-1, 1)

    def change(strength):
        g = torch.Generator().manual_seed(0)
        x0, _ = img2img(
            gaussian_eps_fn, x_init, strength, ALPHA_BAR, TEN_STEPS, SampleOptions(generator=g)
        )
        return (x0 - x_init).abs().mean().item()

    # strength 1 ends in an unrelated picture from N(0, 0.5² I): mean |difference| about 0.5
    assert change(0.1) < 0.15 and change(1.0) > 0.4
    assert change(0.1) < change(0.5) < change(1.0)


def test_img2img_runs_the_last_share_of_the_steps():
    seen = []
    img2img(
        gaussian_eps_fn,
        torch.zeros(SHAPE),
        0.3,
        ALPHA_BAR,
        TEN_STEPS,
        SampleOptions(callback=seen.append),
    )
    assert [s.t for s in seen] == [t for t, _ in make_timesteps(10, 1000)[-3:]]


@pytest.mark.parametrize("strength", [0.0, -0.5, 1.5, float("nan"), float("inf")])
def test_img2img_strength_must_be_in_0_1(strength):
    with pytest.raises(ValueError, match=r"strength must be a number in \(0, 1\]"):
        img2img(gaussian_eps_fn, torch.zeros(SHAPE), strength, ALPHA_BAR, TEN_STEPS)


def test_img2img_names_the_expected_shape():
    with pytest.raises(ValueError, match=r"x_init must have shape \(B, C, H, W\), got \(3, 8, 8\)"):
        img2img(gaussian_eps_fn, torch.zeros(3, 8, 8), 0.5, ALPHA_BAR, TEN_STEPS)


@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_inpaint_keeps_the_known_region_exactly(sampler):
    known = _randn(*SHAPE, seed=8).clamp(-1, 1)
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :4, :] = 1  # keep the top half
    x0, trajectory = inpaint(
        gaussian_eps_fn,
        known,
        mask,
        ALPHA_BAR,
        make_timesteps(10, 1000),
        SampleOptions(
            sampler=sampler, generator=torch.Generator().manual_seed(0), keep_trajectory=True
        ),
    )
    assert torch.equal(x0[..., :4, :], known[..., :4, :])
    assert not torch.allclose(x0[..., 4:, :], known[..., 4:, :], atol=0.1)  # the rest is redrawn
    # at every step the network saw the known half noised to its t, not the raw picture
    assert not torch.allclose(trajectory[0].x_t[..., :4, :], known[..., :4, :], atol=0.1)


def test_inpaint_names_the_expected_mask_shape():
    known = torch.zeros(SHAPE)
    message = r"mask must have shape \(2, 1, 8, 8\) or \(1, 1, 8, 8\), got \(1, 8, 8\)"
    with pytest.raises(ValueError, match=message):
        inpaint(gaussian_eps_fn, known, torch.ones(1, 8, 8), ALPHA_BAR, make_timesteps(2, 1000))
    with pytest.raises(ValueError, match=r"mask values must lie in \[0, 1\]"):
        inpaint(
            gaussian_eps_fn, known, 2 * torch.ones(1, 1, 8, 8), ALPHA_BAR, make_timesteps(2, 1000)
        )


def test_the_diffusion_files_import_only_torch_numpy_and_each_other():
    # dependencies point one way: schedules <- diffusion <- samplers <- editing; no diffusers
    allowed = {
        "__future__",
        "collections",
        "dataclasses",
        "math",
        "typing",
        "numpy",
        "torch",
        "minidiff.schedules",
        "minidiff.diffusion",
        "minidiff.samplers",
    }
    package = Path(minidiff.__file__).parent
    for name in ("schedules", "diffusion", "samplers", "editing"):
        tree = ast.parse((package / f"{name}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            else:
                continue
            for module in modules:
                assert module in allowed or module.split(".")[0] in allowed, (name, module)


def test_euler_ancestral_is_the_ddpm_step_in_other_coordinates():
    """k-diffusion's Euler ancestral step, written in σ = sqrt((1 - ᾱ) / ᾱ), is the DDPM posterior
    step: same mean, same noise scale (σ_up sqrt(ᾱ_prev) = sqrt(β̃)), so with the same noise z
    the two land on the same picture. notebook 04 measures the consequence."""
    x_t, eps, z = _randn(*SHAPE, seed=1), _randn(*SHAPE, seed=2), _randn(*SHAPE, seed=3)
    for t, t_prev in make_timesteps(10, 1000):
        ab_t, ab_prev = ALPHA_BAR[t], 1.0 if t_prev < 0 else ALPHA_BAR[t_prev]
        noise = z if t_prev >= 0 else None
        euler, _ = euler_ancestral_step(x_t, eps, ab_t, ab_prev, noise)
        ddpm, _ = ddpm_step(x_t, eps, ab_t, ab_prev, noise)
        torch.testing.assert_close(euler, ddpm, rtol=1e-5, atol=1e-5)


def test_dpmpp_2m_first_order_is_ddim():
    x_t, eps = _randn(*SHAPE, seed=1), _randn(*SHAPE, seed=2)
    for t, t_prev in make_timesteps(10, 1000):
        ab_t, ab_prev = ALPHA_BAR[t], 1.0 if t_prev < 0 else ALPHA_BAR[t_prev]
        torch.testing.assert_close(
            dpmpp_2m_step(x_t, eps, ab_t, ab_prev)[0],
            ddim_step(x_t, eps, ab_t, ab_prev)[0],
            rtol=1e-5,
            atol=1e-5,
        )
