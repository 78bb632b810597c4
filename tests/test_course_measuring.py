"""The course's measurements of notebooks 07-09: blobs and failures, skew shares, editing
measurements, the latent and bias explorers, the failure census and the size ladder."""

import itertools

import numpy as np
import pytest

from minidiff import world
from minidiff.course import bias, blobs, edits, gallery, latent, measuring, paths, scaling
from minidiff.evaluate import evaluate
from minidiff.judge import load_judge


@pytest.fixture(scope="module")
def judge():
    return load_judge()


@pytest.fixture(scope="module")
def pipe():
    from minidiff import load_pretrained

    return load_pretrained(device="cpu")


def _two_objects() -> np.ndarray:
    """Two rendered pictures laid over each other: a red circle on the left, a blue square on
    the right."""
    a, b = world.render_prompts(
        ["a small red circle on the left", "a small blue square on the right"], 0
    )
    background = (a == world.BACKGROUND).all(axis=-1, keepdims=True)
    return np.where(background, b, a)


# -- blobs and failures ----------------------------------------------------------------------------
def test_blobs_are_counted_with_diagonal_neighbours_joined():
    mask = np.zeros((1, 8, 8), bool)
    mask[0, 1, 1] = mask[0, 2, 2] = True  # diagonal: one blob
    mask[0, 5:7, 5:7] = True  # another
    labels = blobs.label_blobs(mask)
    assert len(np.unique(labels[labels > 0])) == 2
    assert labels[0, 1, 1] == labels[0, 2, 2] != labels[0, 5, 5]


def test_every_world_picture_holds_one_object_and_a_blank_holds_none():
    pictures, _, _ = world.batch("test", 0, 200)
    assert (blobs.count_objects(pictures) == 1).all()
    blank = np.full((1, 32, 32, 3), world.BACKGROUND, np.uint8)
    assert blobs.count_objects(blank).tolist() == [0]
    assert blobs.count_objects(_two_objects()[None]).tolist() == [2]


def test_failures_find_what_is_wrong_and_nothing_in_real_pictures(judge):
    prompts = [world.canonical_prompt(vars(a)) for a in world.combinations("test")[::9]]
    real = world.render_prompts(prompts, 0)
    kinds = measuring.failures(real, prompts, judge)
    assert set(kinds) == set(measuring.KINDS)
    assert measuring.failure_rates(kinds)["any"] <= 0.03  # the judge's own errors
    blank = np.full((1, 32, 32, 3), world.BACKGROUND, np.uint8)
    flagged = measuring.failures(
        np.concatenate([blank, _two_objects()[None], real[:1]]),
        ["a red circle", "a red circle", "a large green star"],
        judge,
    )
    assert flagged["blank"].tolist() == [True, False, False]
    assert flagged["two objects"].tolist() == [False, True, False]
    assert flagged["wrong shape"][2] or flagged["wrong colour"][2]  # real[0] is no green star


def test_the_wilson_interval_holds_the_share_and_narrows_with_more_pictures():
    low, high = measuring.wilson(8, 10)
    assert low < 0.8 < high
    low2, high2 = measuring.wilson(800, 1000)
    assert low < low2 < 0.8 < high2 < high
    assert measuring.wilson(0, 10)[0] == 0 and measuring.wilson(0, 10)[1] == pytest.approx(
        0.2775, abs=1e-3
    )


def test_skew_prompts_name_the_shape_and_never_the_colour():
    prompts = bias.skew_prompts(world.Skew())
    assert len(prompts) == 30 and "a star" in prompts
    for p in prompts:
        named = world.parse_prompt(p)
        assert named["shape"] == "star" and "colour" not in named


def test_the_perfect_generator_scores_what_the_judge_can(judge):
    report = evaluate(measuring.PerfectGenerator(), quick=True, judge=judge, progress=False)
    assert report.adherence["seen"]["all"] >= 0.98
    assert report.frechet_distance < 2 * report.frechet_floor + 5


# -- editing -------------------------------------------------------------------------------------
def test_a_square_mask_covers_side_squared_pixels():
    assert edits.square_mask((16, 16), 8).sum() == 64
    assert edits.square_mask((2, 2), 8).sum() == 36  # cut by the edge
    with pytest.raises(ValueError, match="must name colour, shape, size and position"):
        edits.source_picture("a red circle")


def test_inpainting_keeps_every_pixel_outside_the_mask(pipe, judge):
    source, _ = edits.source_picture("a large blue square in the center")
    mask = edits.square_mask((16, 16), 16)
    result = edits.inpaint_measure(
        pipe, source, mask, "a large purple star in the center", n=2, judge=judge
    )
    assert result["outside_max_change"] == 0
    assert (result["images"][:, ~mask] == source[~mask]).all()
    assert result["images"].shape == (2, 32, 32, 3) and result["objects"].shape == (2,)


def test_img2img_at_strength_0_is_the_picture_and_at_1_follows_the_prompt(pipe, judge):
    source, named = edits.source_picture("a large red circle in the top left")
    sweep = edits.img2img_sweep(
        pipe, source, named, "a blue circle", strengths=(0.0, 1.0), n=4, judge=judge
    )
    assert (sweep[0.0]["images"] == source).all() and sweep[0.0]["kept colour"] == 1.0
    assert sweep[1.0]["asked colour"] >= 0.75


# -- explorers -----------------------------------------------------------------------------------
def test_heat_maps_zero_to_white_and_signs_to_red_and_blue():
    colours = latent.heat(np.array([[0.0, 10.0, -10.0]]))[0]
    assert colours[0].tolist() == [255, 255, 255]
    assert colours[1, 0] > colours[1, 2] and colours[2, 2] > colours[2, 0]


def test_the_latent_explorer_has_a_frame_per_picture_and_t():
    from minidiff.checkpoint import DEFAULT_AUTOENCODER, load_autoencoder

    if not DEFAULT_AUTOENCODER.exists():
        pytest.skip("the autoencoder is not shipped yet")
    explorer = latent.LatentExplorer(load_autoencoder(), n_pictures=2, ts=(0, 999))
    assert set(explorer.frames) == {(0, 0), (0, 999), (1, 0), (1, 999)}
    explorer.outer.value, explorer.slider.value = 1, 999
    assert "t = 999" in explorer.label.value
    clean = explorer.frames[0, 0][1]
    assert "off by" in clean and float(clean.split("off by ")[1].split()[0]) < 10


def test_the_bias_explorer_measures_each_model_at_each_scale(pipe, judge):
    explorer = bias.bias_explorer({"a": pipe, "b": pipe}, scales=(1, 3), n=2, judge=judge)
    assert set(explorer.measured) == {("a", 1), ("b", 1), ("a", 3), ("b", 3)}
    assert explorer.measured["a", 1]["share"] == explorer.measured["b", 1]["share"]
    assert "yellow" in explorer.frames[3][1]


def test_the_census_counts_failures_per_setting(pipe, judge):
    prompts = gallery.full_prompts()
    assert len(prompts) == 432 and len(set(prompts)) == 432
    census = gallery.census(
        pipe, judge, settings=[gallery.DEFAULT], prompts=prompts[:6], progress=False
    )
    (result,) = census.values()
    assert result["images"].shape == (6, 32, 32, 3)
    assert set(result["rates"]) == {*measuring.KINDS, "any"}
    assert gallery.rates_table(census).count("\n") == 2
    stored = gallery.read_census()  # the committed census, in the same shape as a live one
    assert all(set(r["rates"]) == {*measuring.KINDS, "any"} for r in stored.values())
    assert gallery.rates_table(stored).count("\n") == len(stored) + 1


def test_the_size_ladder_file_holds_three_sizes_about_4x_apart():
    ladder = scaling.read_ladder()
    sizes = [row["parameters"] for row in ladder["rows"]]
    assert len(sizes) == 3 and all(3 < b / a < 5 for a, b in itertools.pairwise(sizes))
    assert scaling.ladder_table(ladder).count("\n") == 4
    with pytest.raises(FileNotFoundError, match="no results at .*missing.json.*; run make it"):
        paths.read_results("missing.json", "make it")


def test_the_explorers_show_their_dropdowns(pipe, judge):
    from minidiff.checkpoint import load_autoencoder

    inpaint = edits.InpaintExplorer(
        pipe, prompts=("a large purple star in the center",), sides=(8,), n=1, judge=judge
    )
    explorers = [inpaint, latent.LatentExplorer(load_autoencoder(), n_pictures=1, ts=(0,))]
    for explorer in explorers:
        shown, stack = [], list(explorer.children)
        while stack:
            widget = stack.pop()
            shown.append(widget)
            stack += list(getattr(widget, "children", ()))
        assert explorer.outer in shown
