import json
from itertools import product

import numpy as np
import pytest
import torch
from PIL import Image

from minidiff import pixels, world
from minidiff.world import Attributes

ALL = [Attributes(*c) for c in product(world.COLOURS, world.SHAPES, world.SIZES, world.POSITIONS)]


def describe(split, n, seed=0):
    """(attrs, caption, mentioned) of pictures 0 .. n - 1 without drawing them (fast)."""
    return [(a, c, m) for a, _, c, m in (world._describe(split, i, seed) for i in range(n))]


class FixedDraws:
    """Stands in for a Generator: every rng.random(k) returns the same value k times."""

    def __init__(self, u: float):
        self.u = u

    def random(self, k):
        return np.full(k, self.u)


def coverage(image: np.ndarray) -> np.ndarray:
    """uint8 (32, 32, 3) -> (32, 32) in [0, 1]: how far each pixel moved from the background."""
    diff = np.abs(image.astype(float) - world.BACKGROUND).max(axis=-1)
    return diff / diff.max()


# -- determinism ---------------------------------------------------------------------------------
def test_same_seed_same_pictures_and_captions():
    a, b = world.batch("train", 10, 20), world.batch("train", 10, 20)
    assert np.array_equal(a[0], b[0]) and a[1] == b[1] and a[2] == b[2]
    c = world.batch("train", 10, 20, seed=1)
    assert not np.array_equal(a[0], c[0])


def test_example_is_the_same_picture_in_any_batch():
    images, captions, attrs = world.batch("val", 5, 8)
    for i in (5, 9, 12):
        ex = world.example("val", i)
        assert np.array_equal(ex.image, images[i - 5])
        assert (ex.caption, ex.attrs) == (captions[i - 5], attrs[i - 5])
    assert np.array_equal(world.batch("val", 0, 13)[0][5:], images)


def test_splits_use_different_streams():
    train, val, test = (world.batch(s, 0, 16)[0] for s in world.SPLITS)
    assert not np.array_equal(train, val) and not np.array_equal(val, test)


def test_same_caption_gives_different_pictures():
    rng = np.random.default_rng(0)
    attrs = Attributes("red", "star", "small", "center")
    assert not np.array_equal(world.render(attrs, rng), world.render(attrs, rng))


# -- splits --------------------------------------------------------------------------------------
def test_held_out_pairs_never_in_train():
    attrs = {a for a, _, _ in describe("train", 20_000)}
    assert not {(a.colour, a.shape) for a in attrs} & set(world.HELD_OUT)
    assert len(attrs) == 378 == len(world.combinations("train"))  # all the others do appear


@pytest.mark.parametrize("split", ["val", "test"])
def test_held_out_pairs_in_val_and_test(split):
    pairs = {(a.colour, a.shape) for a, _, _ in describe(split, 3000)}
    assert set(world.HELD_OUT) <= pairs
    assert len(world.combinations(split)) == 432


# -- pictures ------------------------------------------------------------------------------------
@pytest.mark.parametrize("u", [0.0, 1 - 1e-9])  # jitter at both extremes: left/up/smaller, ...
def test_object_stays_inside_the_canvas(u):
    images = np.stack([world.render(a, FixedDraws(u)) for a in ALL])  # (432, 32, 32, 3)
    border = np.concatenate([images[:, 0], images[:, -1], images[:, :, 0], images[:, :, -1]], 1)
    assert (border == world.BACKGROUND).all()
    assert images.dtype == np.uint8 and images.shape == (432, 32, 32, 3)


def test_large_is_about_twice_as_wide_as_small():
    rng = np.random.default_rng(0)
    for shape in world.SHAPES:
        width = {
            size: coverage(world.render(Attributes("blue", shape, size, "center"), rng))
            .max(axis=0)
            .sum()
            for size in world.SIZES
        }
        assert 1.7 < width["large"] / width["small"] < 2.2, (shape, width)
        assert 9 <= width["small"] <= 11, (shape, width)


def test_positions_follow_the_grid():
    """Centres of mass of neighbouring cells never overlap: even large objects (19 px in a 32 px
    canvas) keep 4 px between cell centres, so about 2 px after +-1 px jitter."""
    centres = {}  # (shape, size, axis, cell) -> list of centres
    for u, attrs in product((0.0, 0.5, 1 - 1e-9), ALL):
        cov = coverage(world.render(attrs, FixedDraws(u)))
        rows, cols = np.indices(cov.shape)
        row, col = divmod(world.POSITIONS.index(attrs.position), 3)
        for axis, cell, index in (("y", row, rows), ("x", col, cols)):
            key = (attrs.shape, attrs.size, axis, cell)
            centres.setdefault(key, []).append((index * cov).sum() / cov.sum())
    for (shape, size, axis, cell), values in centres.items():
        if cell < 2:
            following = centres[shape, size, axis, cell + 1]
            assert max(values) + 1.9 <= min(following), (shape, size, axis, cell)


def test_colours_are_distinct_and_jitter_is_small():
    palette = np.array([world.PALETTE[c] for c in world.COLOURS] + [world.BACKGROUND], float)
    distances = np.linalg.norm(palette[:, None] - palette[None], axis=-1)
    assert distances[~np.eye(len(palette), dtype=bool)].min() > 70
    rng = np.random.default_rng(0)
    for colour in world.COLOURS:
        image = world.render(Attributes(colour, "square", "large", "center"), rng)
        assert np.abs(image[16, 16].astype(int) - world.PALETTE[colour]).max() <= 6


def test_one_background_in_every_picture():
    images = world.batch("test", 0, 64)[0]
    assert (images[:, 0, 0] == world.BACKGROUND).all()


# -- captions ------------------------------------------------------------------------------------
def test_captions_parse_back_to_what_they_mention():
    for attrs, caption, mentioned in describe("train", 5000):
        assert mentioned and caption == caption.lower().strip()
        assert world.parse_prompt(caption) == {k: getattr(attrs, k) for k in mentioned}, caption


def test_every_template_and_synonym_is_used():
    rng = np.random.default_rng(0)
    attrs = Attributes("orange", "triangle", "large", "top left")
    captions = {world.caption(attrs, rng, mention=tuple(world.ATTRIBUTES)) for _ in range(400)}
    expected = {
        "a {z} orange triangle in the top left",
        "orange triangle, top left, {z}",
        "a triangle that is orange and {z} in the top left",
        "in the top left, a {z} orange triangle",
        "{z} orange triangle, top left",
        "the {z} orange triangle is in the top left",
        "a triangle, orange and {z}, in the top left",
        "top left, a {z} orange triangle",
    }
    assert captions == {c.format(z=z) for c in expected for z in ("large", "big")}
    assert len(captions) == 2 * len(world.TEMPLATES)
    assert world.caption(attrs, rng, mention=("position",)) in {
        "a shape in the top left",
        "shape, top left",
        "in the top left, a shape",
        "the shape is in the top left",
        "a shape, in the top left",
        "top left, a shape",
    }
    assert world.caption(attrs, rng, mention=()) == ""
    with pytest.raises(ValueError, match="no template number 8; there are 8"):
        world.caption_in(attrs, ("colour",), 8, 0)


def test_attributes_are_sometimes_left_out():
    mentioned = [m for _, _, m in describe("val", 3000)]
    for name, p in world.OMIT_PROBABILITY.items():
        left_out = np.mean([name not in m for m in mentioned])
        assert abs(left_out - p) < 0.05, (name, left_out)


def test_parse_prompt():
    assert world.parse_prompt("A Big red star, top") == {
        "colour": "red",
        "shape": "star",
        "size": "large",
        "position": "top",
    }
    assert world.parse_prompt("a tiny shape in the center") == {
        "size": "small",
        "position": "center",
    }
    assert world.parse_prompt("") == {}
    for bad, match in [
        ("a red blue circle", "both red and blue"),
        ("a pruple star", "pruple"),
        ("top bottom", "both top and bottom"),
        ("center left", "center"),
        ("a tiny big star", "both small and large"),
    ]:
        with pytest.raises(ValueError, match=match):
            world.parse_prompt(bad)


# -- bad input -----------------------------------------------------------------------------------
def test_bad_attributes_name_the_value_and_the_allowed_values():
    with pytest.raises(ValueError, match="unknown colour 'pink'; allowed: red, orange"):
        Attributes("pink", "star", "small", "top")
    with pytest.raises(ValueError, match="position 'middle'.*center"):
        Attributes("red", "star", "small", "middle")
    with pytest.raises(ValueError, match="unknown attributes"):
        world.caption(ALL[0], np.random.default_rng(0), mention=("hue",))


def test_bad_split_and_counts():
    with pytest.raises(ValueError, match="unknown split 'training'; allowed splits: train, val"):
        world.batch("training", 0, 4)
    with pytest.raises(ValueError, match="n >= 1"):
        world.batch("train", 0, 0)
    with pytest.raises(ValueError, match="unknown split"):
        world.example("validation", 0)


# -- export and tensors --------------------------------------------------------------------------
def test_export_split(tmp_path):
    out = world.export_split("val", 3, tmp_path / "val")
    rows = [json.loads(line) for line in (out / "captions.jsonl").read_text().splitlines()]
    images, captions, attrs = world.batch("val", 0, 3)
    assert [r["file"] for r in rows] == ["00000.png", "00001.png", "00002.png"]
    for row, image, caption, a in zip(rows, images, captions, attrs):
        assert np.array_equal(np.asarray(Image.open(out / row["file"])), image)
        assert row["caption"] == caption and row["colour"] == a.colour
        assert row["position"] == a.position and set(row["mentioned"]) <= set(world.ATTRIBUTES)
    with pytest.raises(ValueError, match="unknown split"):
        world.export_split("dev", 3, tmp_path)
    with pytest.raises(ValueError, match="positive"):
        world.export_split("val", 0, tmp_path)


def test_tensor_round_trip():
    images = world.batch("train", 0, 4)[0]
    x = pixels.to_tensor(images)
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1
    assert np.array_equal(pixels.to_uint8(x), images)
    assert (pixels.to_uint8(torch.full((1, 3, 2, 2), 5.0)) == 255).all()
    with pytest.raises(ValueError, match=r"image\[None\]"):
        pixels.to_tensor(images[0])
    with pytest.raises(ValueError, match="N, 3, H, W"):
        pixels.to_uint8(x[0])


# -- the skewed split ------------------------------------------------------------------------------
def test_a_skew_biases_only_the_pictures_whose_caption_leaves_it_out():
    skew = world.Skew()  # 80% of uncoloured-caption stars are yellow
    plain = [world._describe("train", i, 0) for i in range(3000)]
    skewed = [world._describe("train", i, 0, skew) for i in range(3000)]
    changed = 0
    for (a, _, text, mention), (b, _, text_b, mention_b) in zip(plain, skewed):
        assert text == text_b and mention == mention_b  # the captions are the same
        if not skew.applies(a, mention):
            assert a == b  # pictures the skew does not touch are the same pictures
        else:
            assert b.shape == "star"
            assert vars(a) | {"colour": b.colour} == vars(b)  # only the colour is drawn again
            changed += a != b
    assert changed > 50
    assert all(b.colour != "purple" for b, *_ in skewed if b.shape == "star")  # still held out


def test_the_skewed_share_is_the_one_asked_for():
    hits, total = world.skew_count(world.Skew(), n=20000)
    assert total > 500 and hits / total == pytest.approx(0.8, abs=0.04)
    assert world.skew_count(world.Skew(share=0.0), n=4000)[0] == 0
    hits, total = world.skew_count(world.Skew(share=1.0), n=4000)
    assert hits == total > 0
    # without a skew, yellow is one of the five colours training shows stars in
    unskewed = [
        a.colour == "yellow"
        for i in range(20000)
        for a, _, _, m in [world._describe("train", i, 0)]
        if a.shape == "star" and "colour" not in m
    ]
    assert np.mean(unskewed) == pytest.approx(0.2, abs=0.04)


def test_a_skewed_batch_differs_from_the_plain_one_only_where_the_skew_applies():
    plain, captions, _ = world.batch("train", 0, 400)
    skewed, captions_b, attrs = world.batch("train", 0, 400, skew=world.Skew(share=1.0))
    assert captions == captions_b
    differ = (plain != skewed).any(axis=(1, 2, 3))
    assert differ.any() and all(
        a.shape == "star" and a.colour == "yellow" for a, d in zip(attrs, differ) if d
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"attribute": "mood"}, "unknown attribute 'mood'"),
        ({"value": "pink"}, "'pink' is not a colour"),
        ({"share": 1.5}, "share must be a number from 0 to 1"),
        ({"share": float("nan")}, "share must be a number from 0 to 1"),
        ({"given": "colour", "given_value": "red"}, "must differ"),
    ],
)
def test_a_bad_skew_is_refused_in_one_sentence(kwargs, message):
    with pytest.raises(ValueError, match=message):
        world.Skew(**kwargs)


def test_a_skew_must_be_a_skew():
    with pytest.raises(TypeError, match="minidiff.world.Skew"):
        world.batch("train", 0, 2, skew={"share": 0.8})
