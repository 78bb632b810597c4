"""The course's check functions: minidiff's own answer passes, the common slips get their hint."""

import pytest
import torch

from minidiff import diffusion, samplers, world
from minidiff.course import exercises
from minidiff.tokenizer import Tokenizer


def _shaped(alpha_bar, t):
    return alpha_bar[t].float().reshape(-1, 1, 1, 1)


RIGHT = {
    exercises.check_q_sample: diffusion.q_sample,
    exercises.check_x0_from_eps: diffusion.x0_from_eps,
    exercises.check_v_from: diffusion.v_from,
    exercises.check_ddim_step: lambda x_t, e, a, p: samplers.ddim_step(x_t, e, a, p)[0],
    exercises.check_guidance: diffusion.guided_eps,
    exercises.check_tokenize: lambda p: Tokenizer().encode(p)[0].tolist(),
    exercises.check_describe: lambda c, s, z, p: f"a {z} {c} {s} {world.PHRASES[p]}",
}


@pytest.mark.parametrize("check", list(RIGHT), ids=lambda c: c.__name__)
def test_the_package_answer_passes(check, capsys):
    assert check(RIGHT[check]) is True
    assert "✓" in capsys.readouterr().out


@pytest.mark.parametrize("check, wrong, hint", [
    (exercises.check_q_sample,
     lambda x0, t, ab, eps: _shaped(ab, t) * x0 + (1 - _shaped(ab, t)) * eps, "square root"),
    (exercises.check_q_sample, lambda x0, t, ab, eps: ab[t] * x0, "(B, 1, 1, 1)"),
    (exercises.check_x0_from_eps, lambda x_t, e, a: x_t - (1 - a) ** 0.5 * e, "Divide"),
    (exercises.check_v_from, lambda x0, e, a: (1 - a) ** 0.5 * x0 - a ** 0.5 * e, "signs"),
    (exercises.check_ddim_step, lambda x_t, e, a, p: samplers.ddim_step(x_t, e, a, p)[1],
     "x0_hat itself"),
    (exercises.check_guidance, lambda c, u, s: c + s * (u - c), "unconditional"),
    (exercises.check_tokenize, lambda p: [Tokenizer().ids[w] for w in p.split()], "<start>"),
    (exercises.check_describe, lambda c, s, z, p: f"a {z} {c} {s}", "reads as"),
    (exercises.check_describe, lambda c, s, z, p: 1 / 0, "ZeroDivisionError"),
])
def test_a_wrong_answer_fails_with_a_hint(check, wrong, hint, capsys):
    assert check(wrong) is False
    out = capsys.readouterr().out
    assert "✗" in out and hint in out


def test_a_wrong_shape_is_named(capsys):
    assert exercises.check_guidance(lambda c, u, s: torch.zeros(3)) is False
    assert "shape" in capsys.readouterr().out
