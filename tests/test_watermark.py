"""The Tree-Ring watermark and the signed PNG chunk as executable math, on the shipped model."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image, PngImagePlugin

import minidiff
from minidiff import provenance, watermark, world
from minidiff.evaluate import prompt_set
from minidiff.samplers import ddim_step
from minidiff.schedules import make_alpha_bar
from minidiff.watermark import WatermarkKey

KEY = WatermarkKey(seed=3)
SIDE = 32


@pytest.fixture(scope="module")
def pipe():
    return minidiff.load_pretrained("pixel", device="cpu")


def noise(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(seed))


# -- the key in the starting noise -----------------------------------------------------------------
def test_the_key_is_written_on_its_rings_and_nowhere_else():
    x_T = noise(4)
    marked = watermark.watermark_noise(x_T, KEY)
    mask, pattern = watermark.key_mask(KEY, SIDE), watermark.key_pattern(KEY, SIDE)
    before, after = (watermark.centred_spectrum(x[:, KEY.channel]) for x in (x_T, marked))
    # the rings hold the key and nothing of the noise; everything else is the noise's
    assert torch.allclose(after[:, mask], pattern[mask].expand(4, -1), atol=1e-3)
    assert torch.allclose(after[:, ~mask], before[:, ~mask], atol=1e-3)
    others = [c for c in range(3) if c != KEY.channel]
    assert torch.equal(marked[:, others], x_T[:, others])
    # one real value per ring: rotating the spectrum by 90 degrees leaves the key as it is
    assert torch.equal(pattern.imag, torch.zeros_like(pattern.imag))
    assert torch.equal(pattern[1:, 1:], pattern[1:, 1:].rot90(1, (0, 1)))
    assert int(mask.sum()) == 112 and not bool(mask[SIDE // 2, SIDE // 2])  # frequency 0 is kept


def test_watermarked_noise_stays_standard_normal():
    """Parseval: the key's values have the spread of a noise coefficient (std = side), so each
    channel keeps mean 0 and variance 1; with values of std 1 the marked channel would lose the
    rings' share of its variance (112 of 1024 coefficients: 0.89)."""
    marked = watermark.watermark_noise(noise(512), KEY)  # (512, 3, 32, 32)
    mean, var = marked.mean(dim=(0, 2, 3)), marked.var(dim=(0, 2, 3))
    assert mean.abs().max() < 0.01
    assert (var - 1).abs().max() < 0.04, var
    c = marked[:, KEY.channel].flatten()
    kurtosis = float(((c - c.mean()) ** 4).mean() / c.var() ** 2)
    assert abs(kurtosis - 3) < 0.1  # Gaussian tails, not a spike or a flat block


# -- DDIM inversion --------------------------------------------------------------------------------
def test_the_inversion_step_undoes_a_ddim_step():
    alpha_bar = make_alpha_bar("cosine", 1000)
    x_t, eps_hat = noise(2, 1).double(), noise(2, 2).double()
    for t, t_prev in ((999, 949), (500, 450), (49, -1)):
        ab_t = alpha_bar[t]
        ab_prev = alpha_bar[t_prev] if t_prev >= 0 else torch.tensor(1.0, dtype=torch.float64)
        x_prev, x0_hat = ddim_step(x_t, eps_hat, ab_t, ab_prev, eta=0.0)
        back, x0_again = watermark.ddim_inversion_step(x_prev, eps_hat, ab_prev, ab_t)
        assert torch.allclose(back, x_t, atol=1e-9) and torch.allclose(x0_again, x0_hat)


def test_inversion_recovers_the_starting_noise(pipe):
    """A DDIM picture walked back gives noise correlated with the noise it was drawn from (about
    0.3 here; the model draws flat pictures and forgets most of the noise), while another seed's
    noise is uncorrelated."""
    prompts = prompt_set()["seen"][::24]  # 8 prompts
    pictures = watermark.generate(pipe, prompts, key=None, seed=5)
    x_T = pipe.prepare(prompts, 1, sampler="ddim", seed=5).x_T
    seen = []
    x_T_hat = watermark.invert(pipe, pictures, callback=lambda s: seen.append(s.t))
    assert seen == sorted(seen) and len(seen) == 20 and seen[-1] == 999

    def correlation(a, b):
        return float(torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1])

    assert correlation(x_T_hat, x_T) > 0.2
    assert abs(correlation(x_T_hat, pipe.prepare(prompts, 1, seed=6).x_T)) < 0.03


def test_watermarked_pictures_score_below_clean_ones(pipe):
    prompts = prompt_set()["seen"][1::12]  # 16 prompts
    marked = watermark.generate(pipe, prompts, key=KEY, seed=11)
    clean = watermark.generate(pipe, prompts, key=None, seed=11)
    assert 0 < np.abs(marked.astype(int) - clean).mean() < 10  # changed, but a little
    s_marked, s_clean = watermark.scores(pipe, marked, KEY), watermark.scores(pipe, clean, KEY)
    assert (s_marked < s_clean).mean() >= 0.85  # same prompt and seed, with and without the key
    # below every clean score (measured: 10 of the 16)
    assert (s_marked < watermark.threshold_at(s_clean, fpr=0.05)).mean() >= 0.4


def test_the_threshold_lets_through_at_most_the_chosen_share_of_clean_pictures():
    clean = np.random.default_rng(0).normal(size=297)
    for fpr in (0.01, 0.05, 0.5):
        threshold = watermark.threshold_at(clean, fpr)
        assert (clean < threshold).mean() <= fpr
        assert (clean <= threshold).mean() > fpr  # the highest such threshold
    assert watermark.threshold_at(np.arange(100.0), 0.05) == 5.0


# -- bad input -------------------------------------------------------------------------------------
PICTURE = np.zeros((2, SIDE, SIDE, 3), np.uint8)


@pytest.mark.parametrize(
    "call, says",
    [
        (lambda p: watermark.invert(p, np.zeros((2, 28, 28, 3), np.uint8)), r"\(N, 32, 32, 3\)"),
        (lambda p: watermark.invert(p, np.zeros((2, SIDE, SIDE, 4), np.uint8)), r"shape \(N, 32"),
        (lambda p: watermark.invert(p, PICTURE.astype(np.int64)), "got int64"),
        (lambda p: watermark.invert(p, np.full((1, 3, SIDE, SIDE), 1.5)), r"in \[-1, 1\]"),
        (lambda p: watermark.invert(p, np.full((1, 3, SIDE, SIDE), np.nan)), "must be finite"),
        (lambda p: watermark.invert(p, np.zeros((1, SIDE, SIDE, 3))), r"\(N, 3, 32, 32\)"),
        (lambda p: watermark.invert(p, PICTURE, steps=float("inf")), "steps must be"),
        (lambda p: watermark.scores(p, PICTURE, KEY, batch_size=0), "batch_size must"),
        (lambda p: watermark.generate(p, "a red circle", key=KEY, sampler="ddpm"), "DDIM at eta 0"),
        (lambda p: watermark.generate(p, "a red circle", key=KEY, eta=0.5), "DDIM at eta 0"),
        (lambda p: watermark.key_mask(WatermarkKey(radius=16), SIDE), "does not fit a 32 x 32"),
        (lambda p: WatermarkKey(radius=0), "radius >= 1"),
        (lambda p: WatermarkKey(seed=float("nan")), "seed must be a whole number"),
        (lambda p: WatermarkKey(radius=float("inf")), "radius must be a whole number"),
        (lambda p: watermark.watermark_noise(noise(1), WatermarkKey(channel=3)), "channels"),
        (lambda p: watermark.watermark_noise(noise(1) * np.inf, KEY), "finite"),
        (lambda p: watermark.threshold_at([0.1, float("nan")]), "finite numbers"),
        (lambda p: watermark.threshold_at([0.1, 0.2], fpr=float("nan")), "fpr must"),
        (lambda p: watermark.check_pipe(SimpleNamespace(latent=True, flow=False)), "pixel model"),
    ],
)
def test_bad_input_is_refused_in_one_sentence(pipe, call, says):
    with pytest.raises(ValueError, match=says) as e:
        call(pipe)
    assert "\n" not in str(e.value)


# -- the signed PNG chunk --------------------------------------------------------------------------
SECRET = b"the maker's key"


def test_the_signature_verifies_and_is_gone_after_saving_again(tmp_path):
    picture = world.example("test", 0).image
    signed = provenance.save_signed(picture, tmp_path / "signed.png", SECRET)
    assert provenance.verify(signed, SECRET) == "signed"
    assert provenance.verify(signed, b"another key") == "tampered"
    with Image.open(signed) as f:  # the same pixels, saved again without the chunk, or as JPEG
        f.save(tmp_path / "again.png")
        f.convert("RGB").save(tmp_path / "again.jpg", quality=95)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "again.png")), picture)
    assert provenance.verify(tmp_path / "again.png", SECRET) == "unsigned"
    assert provenance.verify(tmp_path / "again.jpg", SECRET) == "unsigned"
    # the chunk kept but one pixel changed
    changed = picture.copy()
    changed[0, 0, 0] ^= 1
    info = Image.open(signed).info
    kept = PngImagePlugin.PngInfo()
    kept.add_text(provenance.CHUNK, info[provenance.CHUNK])
    Image.fromarray(changed).save(tmp_path / "changed.png", pnginfo=kept)
    assert provenance.verify(tmp_path / "changed.png", SECRET) == "tampered"


@pytest.mark.parametrize(
    "call, says",
    [
        (lambda d: provenance.signature(np.zeros((4, 4, 3), np.float32), SECRET), "uint8 array"),
        (lambda d: provenance.signature(np.zeros((4, 4), np.uint8), SECRET), r"\(H, W, 3\)"),
        (lambda d: provenance.signature(np.zeros((4, 4, 3), np.uint8), b""), "non-empty bytes"),
        (lambda d: provenance.verify(d / "missing.png", SECRET), "not a picture file"),
    ],
)
def test_bad_provenance_input_is_refused_in_one_sentence(tmp_path, call, says):
    with pytest.raises(ValueError, match=says) as e:
        call(tmp_path)
    assert "\n" not in str(e.value)
