"""minidiff's schedules, timesteps, steps and loop against diffusers' schedulers on the same inputs.

diffusers' DDIMScheduler finds the previous timestep as t - T // n inside step(); minidiff reads
it from its list. Both agree when n divides T, which is what the loop comparisons use; the
single-step comparisons hand minidiff diffusers' own (t, t_prev) pair.
"""

import pytest
import torch

from minidiff.samplers import (
    SPACINGS,
    SampleOptions,
    ddim_step,
    ddpm_step,
    dpmpp_2m_step,
    euler_ancestral_step,
    make_timesteps,
    sample,
)
from minidiff.schedules import make_alpha_bar

diffusers = pytest.importorskip("diffusers")

T = 1000
SCHEDULES = {"linear": "linear", "cosine": "squaredcos_cap_v2"}  # minidiff name -> diffusers
SHAPE = (2, 3, 8, 8)
TOL = {"rtol": 1e-5, "atol": 1e-5}


def _randn(seed):
    return torch.randn(SHAPE, generator=torch.Generator().manual_seed(seed))


def ddim(schedule, spacing="trailing", n_steps=None, clip=False):
    scheduler = diffusers.DDIMScheduler(
        num_train_timesteps=T,
        beta_schedule=SCHEDULES[schedule],
        clip_sample=clip,
        set_alpha_to_one=True,
        timestep_spacing=spacing,
    )
    if n_steps is not None:
        scheduler.set_timesteps(n_steps)
    return scheduler


def ddpm(schedule, spacing="leading", n_steps=None):
    scheduler = diffusers.DDPMScheduler(
        num_train_timesteps=T,
        beta_schedule=SCHEDULES[schedule],
        clip_sample=False,
        variance_type="fixed_small",
        timestep_spacing=spacing,
    )
    if n_steps is not None:
        scheduler.set_timesteps(n_steps)
    return scheduler


def _ab(alpha_bar, t):
    return 1.0 if t < 0 else alpha_bar[t]


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_alpha_bar_is_diffusers_alphas_cumprod(schedule):
    expected = ddpm(schedule).alphas_cumprod.double()
    assert torch.allclose(make_alpha_bar(schedule, T), expected, rtol=1e-6, atol=0)


@pytest.mark.parametrize("spacing", SPACINGS)
def test_timesteps_are_diffusers_timesteps(spacing):
    checked = 0
    for n_steps in [*range(1, 201), 250, 333, 400, 500, 999, 1000]:
        expected = ddim("linear", spacing, n_steps).timesteps.tolist()
        if len(expected) != n_steps:
            continue  # diffusers' float stride gives n_steps + 1 "trailing" steps for a few n
        assert [t for t, _ in make_timesteps(n_steps, T, spacing)] == expected, n_steps
        checked += 1
    assert checked > 190


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("spacing", ["trailing", "leading"])
@pytest.mark.parametrize("n_steps", [10, 7])
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_step_is_diffusers_ddim_step(schedule, spacing, n_steps, eta):
    scheduler, alpha_bar = ddim(schedule, spacing, n_steps), make_alpha_bar(schedule, T)
    x_t, eps_hat, noise = _randn(1), _randn(2), _randn(3)
    for t in scheduler.timesteps.tolist()[:: max(1, n_steps // 3)] + [scheduler.timesteps[-1]]:
        t = int(t)
        t_prev = t - T // n_steps  # diffusers' own previous timestep
        out = scheduler.step(eps_hat, t, x_t, eta=eta, variance_noise=noise)
        x_prev, x0_hat = ddim_step(
            x_t,
            eps_hat,
            alpha_bar[t],
            _ab(alpha_bar, t_prev),
            eta,
            noise if eta > 0 and t_prev >= 0 else None,
        )
        torch.testing.assert_close(x0_hat, out.pred_original_sample, **TOL)
        torch.testing.assert_close(x_prev, out.prev_sample, **TOL)


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_clipped_ddim_step_is_diffusers_clip_sample(schedule):
    scheduler, alpha_bar = ddim(schedule, "trailing", 10, clip=True), make_alpha_bar(schedule, T)
    x_t, eps_hat = _randn(1), 3 * _randn(2)  # large guesses, so x0_hat is clipped
    for t in (999, 499, 99):
        out = scheduler.step(eps_hat, t, x_t, eta=0.0, use_clipped_model_output=True)
        x_prev, x0_hat = ddim_step(
            x_t, eps_hat, alpha_bar[t], _ab(alpha_bar, t - 100), clip_x0=True
        )
        torch.testing.assert_close(x0_hat, out.pred_original_sample, **TOL)
        torch.testing.assert_close(x_prev, out.prev_sample, **TOL)


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize(
    "n_steps, spacing",
    [(None, "leading"), (10, "leading"), (50, "leading"), (10, "trailing"), (7, "trailing")],
)
def test_ddpm_step_is_diffusers_ddpm_step(schedule, n_steps, spacing):
    scheduler, alpha_bar = ddpm(schedule, spacing, n_steps), make_alpha_bar(schedule, T)
    if n_steps is None:
        # for consecutive steps, β = 1 - ᾱ_t / ᾱ_{t-1} ≈ 1e-4 keeps only ~3 digits in float32
        # (diffusers' t = 1 step is off by ~2e-4); give diffusers the same ᾱ in float64
        scheduler.alphas_cumprod = scheduler.alphas_cumprod.double()
        scheduler.one = torch.tensor(1.0, dtype=torch.float64)
    timesteps = make_timesteps(n_steps or T, T, spacing)
    assert [t for t, _ in timesteps] == scheduler.timesteps.tolist()
    x_t, eps_hat = _randn(1), _randn(2)
    for t, t_prev in timesteps[:: max(1, len(timesteps) // 4)] + timesteps[-2:]:
        out = scheduler.step(eps_hat, t, x_t, generator=torch.Generator().manual_seed(t))
        noise = torch.randn(SHAPE, generator=torch.Generator().manual_seed(t))  # the same draw
        x_prev, x0_hat = ddpm_step(
            x_t, eps_hat, alpha_bar[t], _ab(alpha_bar, t_prev), noise if t_prev >= 0 else None
        )
        torch.testing.assert_close(x0_hat, out.pred_original_sample, **TOL)
        torch.testing.assert_close(x_prev, out.prev_sample, **TOL)


def eps_fn(x_t, t):
    """A fixed, deterministic stand-in for a trained network."""
    return torch.tanh(x_t) * (0.5 + t / 2000) + 0.1 * torch.sin(3 * x_t)


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("spacing", ["trailing", "leading"])
@pytest.mark.parametrize("clip", [False, True])
def test_ten_step_ddim_loop_is_the_diffusers_loop(schedule, spacing, clip):
    scheduler = ddim(schedule, spacing, 10, clip=clip)
    x = x_T = _randn(4)
    for t in scheduler.timesteps:
        x = scheduler.step(eps_fn(x, int(t)), t, x, use_clipped_model_output=clip).prev_sample
    ours, _ = sample(
        eps_fn,
        x_T,
        make_alpha_bar(schedule, T),
        make_timesteps(10, T, spacing),
        SampleOptions(sampler="ddim", clip_x0=clip),
    )
    torch.testing.assert_close(ours, x, **TOL)


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("spacing", ["trailing", "leading"])
def test_ten_step_ddpm_loop_with_the_same_seed_is_the_diffusers_loop(schedule, spacing):
    # both draw one noise picture per step from the generator, in the same order
    scheduler, generator = ddpm(schedule, spacing, 10), torch.Generator().manual_seed(0)
    x = x_T = _randn(4)
    for t in scheduler.timesteps:
        x = scheduler.step(eps_fn(x, int(t)), t, x, generator=generator).prev_sample
    ours, _ = sample(
        eps_fn,
        x_T,
        make_alpha_bar(schedule, T),
        make_timesteps(10, T, spacing),
        SampleOptions(sampler="ddpm", generator=torch.Generator().manual_seed(0), clip_x0=False),
    )
    torch.testing.assert_close(ours, x, **TOL)


# -- DPM-Solver++ (2M) and Euler ancestral: every step, with the history the solver keeps --------
# Both diffusers schedulers keep their sigmas in float32. Near the end of the cosine schedule
# (sqrt(ᾱ_999) is about 1e-4) float32 alone cannot get x0_hat to 1e-5, so these comparisons run
# the scheduler in float64: its sigmas (taken from its own float32 alphas_cumprod) and the inputs.
def _f64(scheduler):
    scheduler.sigmas = scheduler.sigmas.double()
    return scheduler


def _randn64(seed):
    return _randn(seed).double()


def dpmpp(schedule, n_steps):
    scheduler = diffusers.DPMSolverMultistepScheduler(
        num_train_timesteps=T,
        beta_schedule=SCHEDULES[schedule],
        algorithm_type="dpmsolver++",
        solver_order=2,
        prediction_type="epsilon",
        timestep_spacing="trailing",
    )
    scheduler.set_timesteps(n_steps)
    return _f64(scheduler)


def euler_ancestral(schedule, n_steps):
    scheduler = diffusers.EulerAncestralDiscreteScheduler(
        num_train_timesteps=T,
        beta_schedule=SCHEDULES[schedule],
        prediction_type="epsilon",
        timestep_spacing="trailing",
    )
    scheduler.set_timesteps(n_steps)
    return _f64(scheduler)


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("n_steps", [5, 10, 20])
def test_every_dpmpp_2m_step_is_diffusers_step(schedule, n_steps):
    """Same x_t, eps_hat and solver history at every step: the same x_prev."""
    alpha_bar, scheduler = make_alpha_bar(schedule, T), dpmpp(schedule, n_steps)
    pairs = make_timesteps(n_steps, T)
    assert scheduler.timesteps.tolist() == [t for t, _ in pairs]
    last = None
    for i, (t, t_prev) in enumerate(pairs):
        x_t, eps = _randn64(2 * i), _randn64(2 * i + 1)
        theirs = scheduler.step(eps, scheduler.timesteps[i], x_t).prev_sample
        ours, x0_hat = dpmpp_2m_step(
            x_t, eps, _ab(alpha_bar, t), _ab(alpha_bar, t_prev), last if t_prev >= 0 else None
        )
        torch.testing.assert_close(ours, theirs, **TOL)
        last = (x0_hat, _ab(alpha_bar, t))


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("n_steps", [5, 10, 20])
def test_every_euler_ancestral_step_is_diffusers_step(schedule, n_steps):
    """diffusers keeps x in the "variance exploding" scale x / sqrt(ᾱ_t); minidiff keeps x_t.
    Both draw their fresh noise from the same generator. The comparison is in diffusers' scale,
    where its step always computes in float32 (it casts the sample down): at the start of the
    cosine schedule x / sqrt(ᾱ) is about 1e4, so 1e-5 is relative to the largest value."""
    alpha_bar, scheduler = make_alpha_bar(schedule, T), euler_ancestral(schedule, n_steps)
    pairs = make_timesteps(n_steps, T)
    assert scheduler.timesteps.tolist() == [t for t, _ in pairs]
    for i, (t, t_prev) in enumerate(pairs):
        x_t, eps = _randn64(2 * i), _randn64(2 * i + 1)
        ab_t, ab_prev = _ab(alpha_bar, t), _ab(alpha_bar, t_prev)
        ours_generator, their_generator = (torch.Generator().manual_seed(i) for _ in range(2))
        theirs = scheduler.step(
            eps, scheduler.timesteps[i], x_t / float(ab_t) ** 0.5, generator=their_generator
        ).prev_sample.double()
        noise = (
            torch.randn(SHAPE, generator=ours_generator, dtype=torch.float64)
            if t_prev >= 0
            else None
        )  # diffusers draws it in the dtype of eps
        ours, _ = euler_ancestral_step(x_t, eps, ab_t, ab_prev, noise)
        scale = float(theirs.abs().max())
        torch.testing.assert_close(
            ours / float(ab_prev) ** 0.5, theirs, rtol=1e-5, atol=1e-5 * scale
        )


# diffusers' Euler step casts to float32; its first step, at x / sqrt(ᾱ) ~ 1e4 on the cosine
# schedule, is only good to ~1e-3 absolute, and that carries to the end of the loop.
@pytest.mark.parametrize(
    "sampler, make, tol", [("dpmpp_2m", dpmpp, 1e-5), ("euler_ancestral", euler_ancestral, 1e-3)]
)
def test_ten_step_loops_of_the_new_samplers_are_the_diffusers_loops(sampler, make, tol):
    alpha_bar, scheduler = make_alpha_bar("cosine", T), make("cosine", 10)
    generator = torch.Generator().manual_seed(0)
    x_T = _randn64(4)
    x = x_T * scheduler.init_noise_sigma if sampler == "euler_ancestral" else x_T
    for t in scheduler.timesteps:
        x_in = scheduler.scale_model_input(x, t)  # back to x_t for the network
        x = scheduler.step(eps_fn(x_in, int(t)), t, x, generator=generator).prev_sample
    ours, _ = sample(
        eps_fn,
        x_T,
        alpha_bar,
        make_timesteps(10, T),
        SampleOptions(sampler=sampler, generator=torch.Generator().manual_seed(0), clip_x0=False),
    )
    torch.testing.assert_close(ours, x.double(), rtol=tol, atol=tol)
