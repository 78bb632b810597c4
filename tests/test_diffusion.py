"""Forward noising, conversions, training loss and guidance as executable math."""

import pytest
import torch
from torch import nn

from minidiff.diffusion import (
    alpha_bar_at,
    eps_from_x0,
    guided_eps,
    per_image,
    q_sample,
    split_prediction,
    training_loss,
    v_from,
    x0_from_eps,
)
from minidiff.schedules import make_alpha_bar

ALPHA_BAR = make_alpha_bar("cosine", 1000)


def _randn(*shape, seed=0, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def test_per_image_broadcasts_numbers_over_pictures():
    x = torch.zeros(4, 3, 2, 2)
    assert per_image(0.5, x).shape == (1, 1, 1, 1)
    c = per_image(torch.arange(4, dtype=torch.float64), x)
    assert c.shape == (4, 1, 1, 1) and c.dtype == torch.float32


@pytest.mark.parametrize("t", [10, 500, 990])
def test_q_sample_moments_match_ddpm_eq_4(t):
    n = 20_000
    x0 = _randn(1, 3, 2, 2, seed=1).clamp(-1, 1).expand(n, -1, -1, -1)  # one picture, n times
    x_t = q_sample(x0, t, ALPHA_BAR, _randn(n, 3, 2, 2, seed=2))
    ab_t = ALPHA_BAR[t].item()
    assert torch.allclose(x_t.mean(0), ab_t**0.5 * x0[0], atol=0.04)  # 4.5 std errors
    assert torch.allclose(x_t.var(0), torch.full_like(x0[0], 1 - ab_t), atol=0.06)


def test_q_sample_takes_one_timestep_per_image():
    x0, eps = _randn(3, 3, 4, 4, seed=1), _randn(3, 3, 4, 4, seed=2)
    t = torch.tensor([0, 400, 999])
    together = q_sample(x0, t, ALPHA_BAR, eps)
    for i in range(3):
        alone = q_sample(x0[i : i + 1], int(t[i]), ALPHA_BAR, eps[i : i + 1])
        assert torch.allclose(together[i : i + 1], alone)


@pytest.mark.parametrize("bad_t", [-2, 1000, torch.tensor([3, 1000]), torch.tensor([0.5, 2])])
def test_q_sample_rejects_timesteps_outside_the_schedule(bad_t):
    with pytest.raises(ValueError, match="0..999"):
        q_sample(torch.zeros(2, 3, 2, 2), bad_t, ALPHA_BAR, torch.zeros(2, 3, 2, 2))


def test_t_minus_one_is_the_clean_picture():
    """t = -1, "before a sampler's first step", has ᾱ = 1: x_t is x0 itself."""
    assert alpha_bar_at(ALPHA_BAR, -1).item() == 1.0
    both = alpha_bar_at(ALPHA_BAR, torch.tensor([-1, 0]))
    assert both.dtype == torch.float64 and both.tolist() == [1.0, ALPHA_BAR[0].item()]
    x0, eps = _randn(2, 3, 2, 2, seed=1), _randn(2, 3, 2, 2, seed=2)
    assert torch.equal(q_sample(x0, -1, ALPHA_BAR, eps), x0)


def _noised_batch():
    """x0, eps, x_t and ᾱ_t with one timestep per image spread over the whole schedule (float64)."""
    t = torch.linspace(0, 999, 16).long()
    x0 = _randn(16, 3, 4, 4, seed=3, dtype=torch.float64).clamp(-1, 1)
    eps = _randn(16, 3, 4, 4, seed=4, dtype=torch.float64)
    return x0, eps, q_sample(x0, t, ALPHA_BAR, eps), ALPHA_BAR[t]


def test_eps_and_x0_round_trip():
    x0, eps, x_t, ab_t = _noised_batch()
    assert torch.allclose(x0_from_eps(x_t, eps, ab_t), x0, atol=1e-6)
    assert torch.allclose(eps_from_x0(x_t, x0, ab_t), eps, atol=1e-6)


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_split_prediction_recovers_eps_and_x0(prediction):
    x0, eps, x_t, ab_t = _noised_batch()
    out = {"eps": eps, "x0": x0, "v": v_from(x0, eps, ab_t)}[prediction]
    eps_hat, x0_hat = split_prediction(out, x_t, ab_t, prediction)
    assert torch.allclose(eps_hat, eps, atol=1e-6)
    assert torch.allclose(x0_hat, x0, atol=1e-6)


def test_x_t_and_v_are_x0_and_eps_rotated():
    # (x_t, v) is (x0, eps) rotated by the angle φ with cos φ = sqrt(ᾱ): lengths are kept [v]
    x0, eps, x_t, ab_t = _noised_batch()
    v = v_from(x0, eps, ab_t)
    assert torch.allclose(x_t**2 + v**2, x0**2 + eps**2, atol=1e-9)


def test_conversions_keep_the_pictures_dtype():
    x_t = _randn(2, 3, 4, 4)  # float32 pictures, float64 schedule
    assert x0_from_eps(x_t, x_t, ALPHA_BAR[[5, 7]]).dtype == torch.float32


def test_split_prediction_names_the_allowed_values():
    with pytest.raises(ValueError, match="eps.*x0.*v"):
        split_prediction(torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 2, 2), 0.5, "epsilon")


class Recorder(nn.Module):
    """A 1x1 conv that ignores t and ids but writes down what it was given."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.calls = []

    def forward(self, x_t, t, ids):
        self.calls.append((t.clone(), ids.clone()))
        return self.conv(x_t)


def _ids(B, L=6):
    ids = torch.arange(2, 2 + L).repeat(B, 1)  # every row a non-empty "prompt"
    null_ids = torch.tensor([1] + [0] * (L - 1))  # <start> then padding
    return ids, null_ids


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
@pytest.mark.parametrize("t_sampling", ["uniform", "logit_normal"])
def test_training_loss_is_a_scalar_that_backpropagates(prediction, t_sampling):
    net, (ids, null_ids) = Recorder(), _ids(8)
    loss = training_loss(
        net,
        _randn(8, 3, 4, 4),
        ids,
        null_ids,
        ALPHA_BAR,
        prediction,
        t_sampling=t_sampling,
        generator=torch.Generator().manual_seed(0),
    )
    assert loss.shape == () and torch.isfinite(loss)
    loss.backward()
    assert net.conv.weight.grad is not None and net.conv.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_training_loss_targets_are_eps_x0_or_v(prediction):
    # an oracle that knows x0 predicts the target exactly, so its loss is zero
    x0 = _randn(8, 3, 4, 4, seed=5, dtype=torch.float64).clamp(-1, 1)

    def oracle(x_t, t, ids):
        ab_t = ALPHA_BAR[t]
        eps = eps_from_x0(x_t, x0, ab_t)
        return {"eps": eps, "x0": x0, "v": v_from(x0, eps, ab_t)}[prediction]

    ids, null_ids = _ids(8)
    loss = training_loss(oracle, x0, ids, null_ids, ALPHA_BAR, prediction)
    assert loss.item() < 1e-12
    zero = training_loss(
        lambda x_t, t, ids: torch.zeros_like(x_t), x0, ids, null_ids, ALPHA_BAR, "x0"
    )
    assert zero.item() == pytest.approx((x0**2).mean().item())


@pytest.mark.parametrize("p_uncond", [0.0, 0.25, 1.0])
def test_condition_dropout_rate(p_uncond):
    B = 4000
    net, (ids, null_ids) = Recorder(), _ids(B)
    training_loss(
        net,
        torch.zeros(B, 3, 1, 1),
        ids,
        null_ids[None],
        ALPHA_BAR,
        "eps",
        p_uncond,
        generator=torch.Generator().manual_seed(1),
    )
    seen = net.calls[0][1]  # (B, L)
    dropped = (seen == null_ids).all(dim=1)
    assert bool(((seen == ids).all(dim=1) | dropped).all())  # a row is kept whole or dropped
    assert dropped.float().mean().item() == pytest.approx(p_uncond, abs=0.025)  # ~3.5 std errors


def test_timestep_sampling_uniform_and_logit_normal():
    B = 4000
    middle = {}
    for t_sampling in ("uniform", "logit_normal"):
        net, (ids, null_ids) = Recorder(), _ids(B)
        training_loss(
            net,
            torch.zeros(B, 3, 1, 1),
            ids,
            null_ids,
            ALPHA_BAR,
            t_sampling=t_sampling,
            generator=torch.Generator().manual_seed(2),
        )
        t = net.calls[0][0]
        assert t.dtype == torch.long and int(t.min()) >= 0 and int(t.max()) <= 999
        middle[t_sampling] = ((t >= 250) & (t < 750)).float().mean().item()
    # P(250 <= t < 750): 0.5 for uniform; P(|u| < logit(0.75)) = 0.73 for logit-normal [SD3]
    assert middle["uniform"] == pytest.approx(0.5, abs=0.03)
    assert middle["logit_normal"] == pytest.approx(0.73, abs=0.03)


def test_training_loss_is_reproducible_with_a_generator():
    net, (ids, null_ids) = Recorder(), _ids(8)
    x0 = _randn(8, 3, 4, 4)

    def loss(seed):
        return training_loss(
            net, x0, ids, null_ids, ALPHA_BAR, generator=torch.Generator().manual_seed(seed)
        ).item()

    assert loss(3) == loss(3) and loss(3) != loss(4)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"prediction": "epsilon"}, "prediction must be one of"),
        ({"t_sampling": "cosine"}, "t_sampling must be one of"),
        ({"p_uncond": 1.5}, "p_uncond"),
        ({"null_ids": torch.zeros(5, dtype=torch.long)}, r"null_ids must have shape \(6,\)"),
        ({"ids": torch.zeros(6, dtype=torch.long)}, r"ids must have shape \(B, L\)"),
    ],
)
def test_training_loss_rejects_bad_settings(change, message):
    ids, null_ids = _ids(2)
    kwargs = {
        "ids": ids,
        "null_ids": null_ids,
        "prediction": "v",
        "t_sampling": "uniform",
        "p_uncond": 0.1,
    } | change
    with pytest.raises(ValueError, match=message):
        training_loss(Recorder(), torch.zeros(2, 3, 2, 2), alpha_bar=ALPHA_BAR, **kwargs)


def test_training_loss_rejects_a_wrongly_shaped_network_output():
    ids, null_ids = _ids(2)
    with pytest.raises(ValueError, match="denoiser returned shape"):
        training_loss(
            lambda x_t, t, ids: x_t[:, :1], torch.zeros(2, 3, 2, 2), ids, null_ids, ALPHA_BAR
        )


def test_guidance_scale_0_is_unconditional_and_1_is_conditional():
    eps_cond, eps_uncond = _randn(2, 3, 4, 4, seed=6), _randn(2, 3, 4, 4, seed=7)
    assert torch.equal(guided_eps(eps_cond, eps_uncond, 1.0), eps_cond)
    assert torch.equal(guided_eps(eps_cond, eps_uncond, 0.0), eps_uncond)
    expected = eps_uncond + 7.5 * (eps_cond - eps_uncond)  # [CFG eq. 6]
    assert torch.allclose(guided_eps(eps_cond, eps_uncond, 7.5), expected, atol=1e-5)


def test_negative_guidance_scale_is_rejected():
    with pytest.raises(ValueError, match="guidance_scale"):
        guided_eps(torch.zeros(1), torch.zeros(1), -1.0)
