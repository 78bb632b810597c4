"""The explorers of minidiff.course.widgets and the probes behind them (minidiff.course.probe).

All on an untrained tiny model, so nothing here depends on the shipped weights.
"""

from contextlib import contextmanager

import numpy as np
import pytest
import torch

from minidiff import world
from minidiff.course import explorer as base
from minidiff.course import probe, widgets
from minidiff.judge import Judge
from minidiff.pipeline import load_pretrained
from minidiff.samplers import make_timesteps

PROMPT = "a large red circle in the center"
OTHER = "a small blue square in the center"  # as many tokens as PROMPT


@pytest.fixture(scope="module")
def pipe(tiny_model_file):
    """The tiny untrained model with its zero-initialised layers made random: an untrained
    network outputs zeros, which would make every frame the same."""
    pipe = load_pretrained(tiny_model_file, device="cpu")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in pipe.model.parameters():
            if not p.any():
                p.copy_(0.2 * torch.randn(p.shape, generator=generator))
    return pipe


@pytest.fixture(scope="module")
def picture():
    return world.render(
        world.Attributes("red", "circle", "large", "center"), np.random.default_rng(0)
    )


# -- probe ---------------------------------------------------------------------------------------
def test_noised_pictures_start_at_the_picture_and_end_in_noise(picture):
    x = probe.noised_pictures(picture, "cosine", [0, 999])
    assert x.shape == (2, 32, 32, 3) and x.dtype == np.uint8
    assert np.abs(x[0].astype(int) - picture).max() <= 8  # ᾱ_0 is almost 1
    assert np.abs(x[1].astype(int) - picture).mean() > 40


def test_denoiser_predictions_shapes_and_truth(pipe, picture):
    out = probe.denoiser_predictions(pipe, picture, PROMPT, [10, 500, 990])
    for key in ("x_t", "eps", "eps_hat", "x0_hat"):
        assert out[key].shape == (3, 32, 32, 3) and out[key].dtype == np.uint8
    assert list(out["t"]) == [10, 500, 990] and out["eps_error"].shape == (3,)
    assert (out["eps"] == out["eps"][0]).all()  # the same noise at every t
    assert np.array_equal(
        out["x_t"], probe.noised_pictures(picture, pipe.config.schedule, [10, 500, 990])
    )
    with pytest.raises(ValueError, match="timesteps must be"):
        probe.denoiser_predictions(pipe, picture, PROMPT, [1000])


def test_attention_weights_sum_to_one_over_the_prompt(pipe):
    ids = pipe.tokenizer.encode(["a red circle"])
    context, mask = pipe.model.encode_text(ids)
    layers = [layer for _, layer in pipe.model.unet.attention_layers()]
    for layer in layers:
        layer.record = True
    try:
        with torch.no_grad():
            pipe.model.unet(torch.randn(1, 3, 32, 32), torch.tensor([500]), context, mask)
        for layer in layers:  # (B, heads, H*W, L): every pixel spreads 1 over the real tokens
            w = layer.last_weights
            assert torch.allclose(w.sum(-1), torch.ones(()), atol=1e-5)
            assert (w[..., ~mask[0]] == 0).all()
    finally:
        for layer in layers:
            layer.record, layer.last_weights = False, None


def test_attention_maps_every_step_and_token(pipe):
    tokens, image, maps = probe.attention_maps(pipe, PROMPT, steps=4, seed=1)
    assert tokens == ["<start>", *PROMPT.split()]
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8
    assert maps.shape == (4, len(tokens), 32, 32)
    np.testing.assert_allclose(maps.sum(1), 1.0, atol=1e-5)  # averages keep the sum at 1
    same = pipe.generate(PROMPT, n=1, steps=4, seed=1)[0]  # recording computes softmax itself
    assert np.abs(image.astype(int) - same).max() <= 1, np.abs(image.astype(int) - same).max()
    for _, layer in pipe.model.unet.attention_layers():  # recording switched off again
        assert layer.record is False and layer.last_weights is None


def test_interpolation_ends_are_the_two_prompts(pipe):
    mixed = probe.interpolate_prompts(pipe, PROMPT, OTHER, [0, 0.5, 1], seed=2, steps=4)
    assert mixed.shape == (3, 32, 32, 3) and mixed.dtype == np.uint8
    a = pipe.generate(PROMPT, n=1, steps=4, seed=2, sampler="ddim")[0]
    b = pipe.generate(OTHER, n=1, steps=4, seed=2, sampler="ddim")[0]
    assert np.abs(mixed[0].astype(int) - a).max() <= 1  # equal up to batched float rounding
    assert np.abs(mixed[2].astype(int) - b).max() <= 1
    assert not np.array_equal(mixed[1], mixed[0])
    mixed = probe.interpolate_prompts(pipe, "a red circle", OTHER, [0.3], steps=2)  # lengths differ
    assert mixed.shape == (1, 32, 32, 3)
    with pytest.raises(ValueError, match="weights must be"):
        probe.interpolate_prompts(pipe, PROMPT, OTHER, [1.5])


@pytest.mark.parametrize("layer", ["embedding", "output"])
def test_word_similarity_is_a_cosine_matrix(pipe, layer):
    words, matrix = probe.word_similarity(pipe, layer)
    assert "big" in words and "large" in words and "<pad>" not in words
    assert matrix.shape == (len(words), len(words))
    np.testing.assert_allclose(np.diag(matrix), 1.0, atol=1e-9)
    np.testing.assert_allclose(matrix, matrix.T, atol=1e-12)
    assert np.abs(matrix).max() <= 1 + 1e-9


def test_word_similarity_names_its_layers(pipe):
    with pytest.raises(ValueError, match="'embedding' or 'output'"):
        probe.word_similarity(pipe, "middle")


def test_guidance_sweep_rows_are_generate_at_each_scale(pipe):
    sweep = probe.guidance_sweep(
        pipe, "a red star", [0, 1, 4], n=2, seed=3, steps=3, negative_prompt="a small shape"
    )
    assert sweep.shape == (3, 2, 32, 32, 3)
    for row, scale in zip(sweep, [0, 1, 4]):
        same = pipe.generate(
            "a red star",
            n=2,
            steps=3,
            guidance_scale=scale,
            seed=3,
            negative_prompt="a small shape",
            sampler="ddim",
        )
        assert np.abs(row.astype(int) - same).max() <= 1


class FixedJudge:
    """Reads every picture as a small red circle in the top left."""

    def predict(self, images):
        n = len(images)
        return {
            "colour": np.zeros(n, int),
            "shape": np.zeros(n, int),
            "size": np.zeros(n, int),
            "position": np.zeros(n, int),
        }


def test_adherence_and_diversity_use_the_judge():
    pictures = np.zeros((4, 32, 32, 3), np.uint8)
    score = probe.adherence_and_diversity(FixedJudge(), "a red circle", pictures)
    assert score == {"adherence": 1.0, "diversity": 0.0}  # always the same size and position
    assert probe.adherence_and_diversity(FixedJudge(), "a blue circle", pictures)["adherence"] == 0
    every = probe.adherence_and_diversity(
        FixedJudge(), "a small red circle in the top left", pictures
    )
    assert every["adherence"] == 1.0 and np.isnan(every["diversity"])


# -- widgets -------------------------------------------------------------------------------------
EXPLORERS = {
    "schedule": lambda pipe: widgets.schedule_explorer(),
    "denoiser": lambda pipe: widgets.denoiser_explorer(pipe, PROMPT),
    "scrubber": lambda pipe: widgets.step_scrubber(pipe, PROMPT, steps=5),
    "prompt": lambda pipe: widgets.prompt_explorer(pipe, PROMPT, OTHER, steps=4),
    "guidance": lambda pipe: widgets.guidance_explorer(
        pipe, "a red star", scales=(0, 1, 3), n=4, steps=3, judge=Judge()
    ),
}


@contextmanager
def counting_network_calls(pipe):
    """A list that grows by one at every call of the model's U-Net or text encoder."""
    calls = []
    hooks = [
        m.register_forward_hook(lambda *args: calls.append(1))
        for m in (pipe.model.unet, pipe.model.text_encoder)
    ]
    try:
        yield calls
    finally:
        for hook in hooks:
            hook.remove()


@pytest.mark.parametrize("name", EXPLORERS)
def test_moving_the_slider_picks_a_frame_at_once(pipe, name):
    import ipywidgets

    explorer = EXPLORERS[name](pipe)
    assert isinstance(explorer, ipywidgets.VBox)
    assert isinstance(explorer.image, ipywidgets.Image) and explorer.image.format == "png"
    assert explorer.static_figure.startswith("figures/")
    values = base.slider_values(explorer.slider)
    assert len(values) >= 3
    seen = set()
    with counting_network_calls(pipe) as calls:
        for value in values[::-1] + values:
            explorer.slider.value = value
            picture = bytes(explorer.image.value)  # ipywidgets hands back a memoryview
            assert picture.startswith(b"\x89PNG")
            seen.add((picture, explorer.label.value))
    assert calls == []  # a slider move only picks a stored frame (its speed: bench_explorers.py)
    assert len({png for png, _ in seen}) == len(values)  # every frame its own picture
    assert len({label for _, label in seen}) == len(values)  # ... and its own label


def test_step_scrubber_labels_and_same_starting_noise(pipe):
    scrubber = widgets.step_scrubber(pipe, PROMPT, steps=5, seed=4)
    scrubber.slider.value = 2
    t = make_timesteps(5, pipe.config.T)[1][0]
    assert scrubber.label.value == f"step 2 of 5 · t = {t}"
    first, _ = scrubber.frames[1]  # 2 x 2 cells: DDPM above DDIM, x_t left
    cell = 32 * base.SCALE
    top_left, bottom_left = (
        first[2 : 2 + cell, 2 : 2 + cell],
        first[4 + cell : 4 + 2 * cell, 2 : 2 + cell],
    )
    assert np.array_equal(top_left, bottom_left)
    ddim = pipe.trace(PROMPT, n=1, steps=5, seed=4, sampler="ddim")
    last, _ = scrubber.frames[5]
    final = last[4 + cell : 4 + 2 * cell, 4 + cell : 4 + 2 * cell][:: base.SCALE, :: base.SCALE]
    assert np.array_equal(final, ddim.images[0])  # DDIM's last x0_hat is its picture


def test_generate_button_recomputes_and_reports_a_bad_word(pipe):
    scrubber = widgets.step_scrubber(pipe, PROMPT, steps=3)
    before = bytes(scrubber.image.value)
    scrubber.prompt.value = "a small green square at the top"
    scrubber.button.click()
    assert bytes(scrubber.image.value) != before and scrubber.button.description == "Generate"
    scrubber.prompt.value = "a gren square"
    scrubber.button.click()
    assert "unknown word 'gren'" in scrubber.label.value and "green" in scrubber.label.value
    assert not scrubber.button.disabled


def test_prompt_explorer_words_and_mix(pipe):
    explorer = widgets.prompt_explorer(pipe, PROMPT, OTHER, steps=3)
    assert "<td>circle</td>" in explorer.tokens.value
    assert explorer.word.label == "red"
    explorer.word.value = 4  # "circle"
    assert "'circle'" in explorer.label.value
    pictures = set()
    for w in widgets.MIX_WEIGHTS:
        explorer.mix_slider.value = w
        pictures.add(bytes(explorer.mix_image.value))
    assert len(pictures) > 1 and "mix 1" in explorer.mix_label.value


def test_guidance_explorer_measures_every_scale(pipe):
    explorer = widgets.guidance_explorer(
        pipe, "a red circle", scales=(0, 2), n=2, steps=2, judge=FixedJudge()
    )
    assert explorer.table.value.count("<tr>") == 3
    assert "adherence 100% (2 of 2 pictures" in explorer.label.value
    explorer.negative.value = "a large shape"
    explorer.button.click()
    assert "adherence" in explorer.label.value


def test_what_an_explorer_shows_below_its_pictures_is_an_output_of_its_own(monkeypatch):
    import ipywidgets as W
    from IPython import display

    shown = []
    monkeypatch.setattr(display, "display", lambda obj, **kwargs: shown.append(obj))
    table = W.HTML("<table></table>")
    explorer = base.Explorer(base.selection_slider([1, 2], 1, "x"), "caption", below=[table])
    explorer._ipython_display_()
    assert [type(obj) for obj in shown] == [dict, W.VBox]  # the explorer, then its table
    assert shown[1] is explorer.below and table not in explorer.children
    assert "minidiff-explorer" in explorer.below._dom_classes  # found around a slider as well
    shown.clear()
    base.Explorer(base.selection_slider([1, 2], 1, "x"), "caption")._ipython_display_()
    assert len(shown) == 1


def test_save_static_writes_an_animation(pipe, tmp_path):
    from PIL import Image

    scrubber = widgets.step_scrubber(pipe, PROMPT, steps=4)
    scrubber.slider.value = 2
    path = scrubber.save_static(tmp_path / "scrub.gif")
    assert Image.open(path).n_frames == 4 and scrubber.slider.value == 2


def test_import_minidiff_does_not_import_the_widget_libraries():
    import subprocess
    import sys

    code = (
        "import sys, minidiff; minidiff.load_pretrained; "
        "print(any(m in sys.modules for m in ('ipywidgets', 'matplotlib')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
