"""Noise schedules as executable math (the diffusers comparison is in test_diffusers_parity.py)."""

import math

import pytest
import torch

from minidiff.schedules import SCHEDULES, cosine_alpha_bar, linear_alpha_bar, make_alpha_bar, snr


@pytest.mark.parametrize("name", sorted(SCHEDULES))
@pytest.mark.parametrize("T", [10, 1000])
def test_alpha_bar_is_float64_decreasing_and_inside_0_1(name, T):
    alpha_bar = make_alpha_bar(name, T)
    assert alpha_bar.dtype == torch.float64 and alpha_bar.shape == (T,)
    assert bool((alpha_bar[:-1] > 0).all()) and bool((alpha_bar < 1).all())
    assert bool((alpha_bar[1:] < alpha_bar[:-1]).all())
    # only the flow schedule reaches pure noise (its velocity is defined there; ε and x0 guesses
    # of the diffusion schedules are not)
    assert (alpha_bar[-1].item() == 0.0) == (name == "flow")


def test_linear_betas_are_the_ddpm_ones():
    alpha_bar = linear_alpha_bar(1000)
    betas = 1 - alpha_bar[1:] / alpha_bar[:-1]  # β_1 .. β_999, undoing the running product
    expected = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)  # β_0 .. β_999
    assert alpha_bar[0].item() == pytest.approx(1 - 1e-4, rel=1e-6)
    assert torch.allclose(betas, expected[1:], rtol=0, atol=1e-6)  # float32 products: ~1e-7


def test_cosine_follows_iddpm_eq_17_until_the_beta_cap():
    T, s = 1000, 0.008

    def f(u):
        return math.cos((u + s) / (1 + s) * math.pi / 2) ** 2

    alpha_bar = cosine_alpha_bar(T)
    expected = torch.tensor([f((t + 1) / T) / f(0) for t in range(T)], dtype=torch.float64)
    # the betas only hit max_beta = 0.999 in the very last steps
    assert torch.allclose(alpha_bar[:990], expected[:990], rtol=1e-5)
    betas = 1 - alpha_bar[1:] / alpha_bar[:-1]
    assert betas.max().item() <= 0.999 + 1e-6


def test_snr_is_signal_over_noise_and_decreasing():
    alpha_bar = make_alpha_bar("cosine", 1000)
    ratio = snr(alpha_bar)
    assert torch.allclose(ratio * (1 - alpha_bar), alpha_bar)
    assert bool((ratio[1:] < ratio[:-1]).all()) and bool((ratio > 0).all())
    assert snr(torch.tensor([0.5], dtype=torch.float64)).item() == 1.0


def test_cosine_keeps_more_signal_in_the_middle_than_linear():
    # the reason [iDDPM] introduced it: linear destroys the picture too early
    assert make_alpha_bar("cosine", 1000)[500] > make_alpha_bar("linear", 1000)[500]


def test_unknown_schedule_names_the_allowed_ones():
    with pytest.raises(ValueError, match="cosine.*linear"):
        make_alpha_bar("quadratic", 1000)


@pytest.mark.parametrize("T", [0, -5, 2.5, True, "1000"])
def test_T_must_be_a_positive_int(T):
    with pytest.raises(ValueError, match="positive int"):
        make_alpha_bar("linear", T)
