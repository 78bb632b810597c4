from collections import Counter
from itertools import product

import numpy as np
import pytest

from minidiff import scenes, world
from minidiff.scene_prompts import draw_scene, layouts, parse_scene_prompt, satisfies
from minidiff.scenes import ObjectRequest, SceneRequest
from minidiff.tokenizer import VOCAB

N = 1500  # scenes described per split (no pixels: fast)


@pytest.fixture(scope="module")
def described():
    """{split: [(scene, caption, named request)] for scenes 0 .. N - 1}."""
    return {split: [scenes.describe(split, i) for i in range(N)] for split in scenes.SPLITS}


# -- determinism ---------------------------------------------------------------------------------
def test_same_index_same_scene_in_any_batch():
    images, captions, drawn = scenes.batch("val", 3, 6)
    assert images.shape == (6, scenes.CANVAS, scenes.CANVAS, 3) and images.dtype == np.uint8
    again = scenes.batch("val", 0, 9)
    assert np.array_equal(again[0][3:], images) and again[1][3:] == captions
    assert again[2][3:] == drawn
    assert scenes.describe("val", 5)[:2] == (drawn[2], captions[2])
    other = scenes.batch("val", 3, 6, seed=1)
    assert not np.array_equal(other[0], images)


def test_splits_use_different_streams(described):
    captions = {s: [c for _, c, _ in described[s][:50]] for s in scenes.SPLITS}
    assert captions["train"] != captions["val"] != captions["test"]


def test_bad_arguments_are_refused_in_one_sentence():
    for call in (
        lambda: scenes.describe("training", 0),
        lambda: scenes.batch("val", -1, 4),
        lambda: scenes.holds("near", "top", "left"),
    ):
        with pytest.raises(ValueError) as e:
            call()
        assert "\n" not in str(e.value)


# -- the pictures ----------------------------------------------------------------------------------
def test_one_object_per_cell_and_each_inside_its_cell(described):
    drawn = [s for split in scenes.SPLITS for s, _, _ in described[split][:300]]
    assert all(len({o.position for o in s}) == len(s) for s in drawn)
    assert Counter(len(s) for s in drawn).keys() == {1, 2, 3, 4}
    u = np.random.default_rng(0).random((sum(len(s) for s in drawn), 6))
    cx, cy, width, _ = scenes._layout(tuple(o for s in drawn for o in s), u)
    alpha = world.coverage([o.shape for s in drawn for o in s], cx, cy, width, scenes.CANVAS)
    cell = int(scenes.CELL)
    for a, obj in zip(alpha, (o for s in drawn for o in s)):
        row, col = divmod(world.POSITIONS.index(obj.position), 3)
        inside = a[row * cell : (row + 1) * cell, col * cell : (col + 1) * cell].sum()
        assert inside == pytest.approx(a.sum()) and a.sum() > 10  # nothing crosses a cell edge


def test_pictures_show_the_objects_in_their_cells():
    images, _, drawn = scenes.batch("test", 0, 40)
    background = np.array(world.BACKGROUND)
    cell = int(scenes.CELL)
    for image, scene in zip(images, drawn):
        for position in world.POSITIONS:
            row, col = divmod(world.POSITIONS.index(position), 3)
            pixels = image[row * cell : (row + 1) * cell, col * cell : (col + 1) * cell].reshape(
                -1, 3
            )
            objects = [o for o in scene if o.position == position]
            changed = np.abs(pixels.astype(int) - background).max(axis=1) > 60
            assert changed.any() == bool(objects)
            if objects:  # the most changed pixel is the object's colour, within the jitter
                far = pixels[np.abs(pixels.astype(int) - background).sum(axis=1).argmax()]
                assert np.abs(far - np.array(world.PALETTE[objects[0].colour])).max() <= 8


# -- captions ------------------------------------------------------------------------------------
def test_captions_never_contradict_their_scene(described):
    for split in scenes.SPLITS:
        for scene, caption, named in described[split]:
            request = parse_scene_prompt(caption)
            assert request == named, caption
            assert satisfies(scene, request), (caption, scene)


def _fits(obj, want: ObjectRequest) -> bool:
    return all(getattr(want, k) in (None, getattr(obj, k)) for k in world.ATTRIBUTES)


def _named_pair(scene, request):
    """The scene's (A, B) for a caption "A <relation> B", found without the relation rule; None
    when both orders fit."""
    orders = [
        o
        for o in (scene, scene[::-1])
        if _fits(o[0], request.objects[0]) and _fits(o[1], request.objects[1])
    ]
    return orders[0] if len(orders) == 1 else None


def test_relations_agree_with_the_pixels():
    """Where the ink is, not the relation rule, decides: A left of B has A's ink further left."""
    images, captions, drawn = scenes.batch("train", 0, 300)
    background = np.array(world.BACKGROUND)
    ys, xs = np.indices(images.shape[1:3])
    cell = int(scenes.CELL)
    checked = 0
    for image, caption, scene in zip(images, captions, drawn):
        request = parse_scene_prompt(caption)
        pair = request.relation and _named_pair(scene, request)
        if not pair:
            continue
        centres = []
        for obj in pair:
            row, col = divmod(world.POSITIONS.index(obj.position), 3)
            ink = np.zeros(image.shape[:2])
            box = np.s_[row * cell : (row + 1) * cell, col * cell : (col + 1) * cell]
            ink[box] = np.abs(image[box].astype(int) - background).sum(axis=2)
            centres.append(((ink * xs).sum() / ink.sum(), (ink * ys).sum() / ink.sum()))
        (xa, ya), (xb, yb) = centres
        expected = {
            "left of": xa < xb - 8,
            "right of": xa > xb + 8,
            "above": ya < yb - 8,
            "below": ya > yb + 8,
        }
        assert expected[request.relation], (caption, scene)
        checked += 1
    assert checked > 50


def test_holds_reads_columns_and_rows():
    assert scenes.holds("left of", "top left", "bottom")
    assert scenes.holds("right of", "bottom right", "center")
    assert scenes.holds("above", "top right", "left")
    assert scenes.holds("below", "bottom left", "center")
    assert not scenes.holds("left of", "top", "bottom")  # same column
    assert not scenes.holds("above", "left", "right")  # same row


def test_every_kind_and_word_order_appears(described):
    captions = [c for _, c, _ in described["train"]]
    starts = Counter(c.split()[0] for c in captions)
    assert {"two", "three", "four", "one", "to", "above", "below", "the", "a"} <= set(starts)
    assert any(" with " in c for c in captions) and any(" left of " in c for c in captions)
    kinds = Counter(
        "relation"
        if n.relation
        else "count"
        if set(c.split()) & set(scenes.NUMBERS)
        else "two"
        if len(n.objects) == 2
        else "one"
        for _, c, n in described["train"]
    )
    assert all(kinds[k] > 0.1 * N for k in scenes.KINDS), kinds


def test_order_of_mention_does_not_give_the_layout_away(described):
    """In relation captions the object named first is left of (or above) the other about as often
    as right of (or below) it."""
    first_is_left_or_above = []
    for scene, caption, named in described["train"]:
        pair = named.relation and _named_pair(scene, named)
        if not pair:
            continue
        b_first = caption.split()[0] in ("to", "above", "below") or " with " in caption
        first, other = pair[::-1] if b_first else pair
        (r1, c1), (r2, c2) = (divmod(world.POSITIONS.index(o.position), 3) for o in (first, other))
        first_is_left_or_above += [c1 < c2] * (c1 != c2) + [r1 < r2] * (r1 != r2)
    assert len(first_is_left_or_above) > 300
    assert 0.4 < np.mean(first_is_left_or_above) < 0.6


def test_every_one_object_caption_still_reads():
    rng = np.random.default_rng(0)
    for i in range(400):
        attrs = world.example("train", i).attrs
        caption = world.caption(attrs, rng)
        request = parse_scene_prompt(caption)
        assert request == SceneRequest((ObjectRequest(**world.parse_prompt(caption)),))


def test_words_extend_the_vocabulary_without_moving_a_word(described):
    assert scenes.WORDS[: len(world.WORDS)] == world.WORDS
    assert len(set(scenes.WORDS)) == len(scenes.WORDS)
    assert VOCAB[2:] == world.WORDS  # today's tokenizer keeps today's words
    for split in scenes.SPLITS:
        for _, caption, _ in described[split]:
            words = caption.replace(",", " , ").split()
            assert set(words) <= set(scenes.WORDS) and len(words) <= scenes.MAX_WORDS, caption


# -- held out ------------------------------------------------------------------------------------
def test_held_out_bindings_follow_their_rule():
    bindings = scenes.HELD_OUT_BINDINGS
    objects = [o for b in bindings for o in b]
    assert len(set(objects)) == 12 and not set(objects) & set(world.HELD_OUT)
    assert set(Counter(c for c, _ in objects).values()) == {2}
    assert set(Counter(s for _, s in objects).values()) == {3}
    for (c1, s1), (c2, s2) in bindings:
        assert c1 != c2 and s1 != s2
        assert {(c1, s2), (c2, s1)}.isdisjoint(world.HELD_OUT)  # the swap is trainable
    assert {frozenset(p) for p in scenes.SEEN_PAIRS}.isdisjoint({frozenset(b) for b in bindings})
    assert all(
        scenes.allowed_in_training(
            tuple(world.Attributes(*o, "small", c) for o, c in zip(p, ("left", "right")))
        )
        for p in scenes.SEEN_PAIRS
    )


def _pairs(scene):
    return {frozenset(((a.colour, a.shape), (b.colour, b.shape))) for a in scene for b in scene}


def test_held_out_never_in_training_and_present_elsewhere(described):
    held = {frozenset(b) for b in scenes.HELD_OUT_BINDINGS}
    train = [s for s, _, _ in described["train"]]
    assert not any(_pairs(s) & held for s in train)
    assert not any((o.colour, o.shape) in world.HELD_OUT for s in train for o in s)
    for split in ("val", "test"):
        drawn = [s for s, _, _ in described[split]]
        assert sum(bool(_pairs(s) & held) for s in drawn) >= 5
        assert sum((o.colour, o.shape) in world.HELD_OUT for s in drawn for o in s) >= 50


def test_evaluation_prompts_are_never_training_captions(described):
    from minidiff.geneval import evaluation_prompts

    prompts = {p.prompt: p for p in evaluation_prompts()}
    for prompt, p in prompts.items():
        if p.category not in ("single_object", "colours"):
            assert scenes.reserved_for_evaluation(parse_scene_prompt(prompt)), prompt
    for _, caption, named in described["train"]:
        assert caption not in prompts or prompts[caption].category in ("single_object", "colours")
        assert not scenes.reserved_for_evaluation(named), caption


# -- prompts the world cannot draw ----------------------------------------------------------------
@pytest.mark.parametrize(
    "prompt, why",
    [
        ("five red circles", "at most 4 objects"),
        (
            "a red circle and a blue square and a green star and a yellow triangle and a "
            "purple circle",
            "at most 4 objects",
        ),
        ("three circles and two squares", "at most 4 objects"),
        ("two red circles in the center", "cannot share one cell"),
        ("a red circle in the center and a blue square in the center", "cannot share one cell"),
        ("a red circle above a blue square at the top", "no layout"),
        ("a red circle to the right of a blue square on the right", "no layout"),
        ("a red blue circle", "both red and blue"),
        ("a red circle left of a blue square left of a star", "one relation"),
        ("two circles left of a square", "two single objects"),
        ("circles", "how many"),
        ("three circle", "disagree"),
        ("a purple frog", "unknown word 'frog'"),
        ("a red circle of a blue square", "'of' belongs in a relation"),
    ],
)
def test_refused_in_one_sentence(prompt, why):
    with pytest.raises(ValueError) as e:
        parse_scene_prompt(prompt)
    assert why in str(e.value) and "\n" not in str(e.value)


def test_what_the_grammar_reads():
    red, blue = ObjectRequest("red", "circle"), ObjectRequest("blue", "square")
    for prompt in (
        "a red circle to the left of a blue square",
        "red circle left of blue square",
        "to the left of a blue square, a red circle",
        "a blue square with a red circle to its left",
        "the red circle is to the left of the blue square",
    ):
        assert parse_scene_prompt(prompt) == SceneRequest((red, blue), "left of"), prompt
    assert parse_scene_prompt("three green triangles") == SceneRequest(
        (ObjectRequest("green", "triangle", count=3),)
    )
    # a cell named after an object belongs to that object only
    assert parse_scene_prompt("a red circle and a blue square in the center").objects[
        1
    ] == ObjectRequest("blue", "square", position="center")
    assert parse_scene_prompt("") == SceneRequest()


def test_drawn_scenes_show_their_request():
    rng = np.random.default_rng(0)
    for prompt in (
        "a red circle below a square",
        "four stars",
        "a circle and a big blue square",
        "a star in the top left and two yellow squares",
        "a circle",
    ):
        request = parse_scene_prompt(prompt)
        for _ in range(20):
            assert satisfies(draw_scene(request, rng), request)
    assert len(layouts(parse_scene_prompt("a circle above a square"))) == 27  # 3 columns x 9


def test_every_cell_and_size_appears(described):
    seen = Counter((o.position, o.size) for s, _, _ in described["val"] for o in s)
    assert set(seen) == set(product(world.POSITIONS, world.SIZES))
