"""Coverage and KL to uniform (minidiff.coverage): mode collapse as a number."""

import math

import numpy as np
import pytest

from minidiff import coverage


def test_cells_count_each_size_and_position_pair_once():
    judged = {"size": np.array([0, 0, 1, 1, 1]), "position": np.array([0, 8, 0, 0, 4])}
    counts = coverage.histogram(judged)
    assert counts.shape == (2, 9) and counts.sum() == 5
    assert counts[1, 0] == 2 and counts[0, 8] == 1 and counts[1, 4] == 1
    assert coverage.coverage(counts) == pytest.approx(4 / 18)


def test_kl_to_uniform_is_zero_for_an_even_model_and_log_k_for_a_collapsed_one():
    assert coverage.kl_to_uniform(np.full(18, 5)) == pytest.approx(0, abs=1e-12)
    one_cell = np.zeros(18)
    one_cell[3] = 40
    assert coverage.kl_to_uniform(one_cell) == pytest.approx(math.log(18))
    half = np.r_[np.full(9, 2), np.zeros(9)]  # two equal halves: KL = log 2
    assert coverage.kl_to_uniform(half) == pytest.approx(math.log(2))
    with pytest.raises(ValueError, match="the histogram is empty"):
        coverage.kl_to_uniform(np.zeros(18))


def test_a_finite_even_sample_lies_between_the_two_ends():
    ref = coverage.uniform_reference(96, draws=300)
    assert 0.9 < ref["coverage"] < 1.0  # 18 (1 - (17/18)^96) / 18 = 0.996 expected
    assert ref["coverage"] == pytest.approx(1 - (17 / 18) ** 96, abs=0.01)
    assert 0 < ref["kl_to_uniform"] < 0.2
