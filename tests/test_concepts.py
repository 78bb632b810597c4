"""The new things to teach (minidiff.concepts) and the reader that sees them (concept_reader)."""

import json

import numpy as np
import pytest

from minidiff import concepts, world
from minidiff.concept_reader import agreement, read_concepts
from minidiff.scene_judge import blur_and_noise


def _random_drawings(n: int, seed: int, shapes=concepts.SHAPES) -> list[concepts.Drawing]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        shape = shapes[rng.integers(len(shapes))]
        style = "flat" if shape == "cross" else concepts.STYLES[rng.integers(2)]
        out.append(
            concepts.Drawing(
                world.COLOURS[rng.integers(6)],
                shape,
                world.SIZES[rng.integers(2)],
                world.POSITIONS[rng.integers(9)],
                style,
            )
        )
    return out


def test_a_flat_world_shape_is_drawn_as_the_world_draws_it():
    attrs = world.Attributes("red", "star", "large", "top left")
    d = concepts.Drawing("red", "star", "large", "top left")
    ours = concepts.draw([d], np.random.default_rng(3))
    theirs = world.render(attrs, np.random.default_rng(3))
    assert np.array_equal(ours[0], theirs)


def test_the_cross_is_a_plus_sign_and_the_outline_is_hollow():
    cross = concepts.coverage(["cross"], [16.0], [16.0], [20.0])[0]
    assert cross[16, 16] == 1 and cross[16, 7] == 1 and cross[7, 16] == 1  # centre and arms
    assert cross[8, 8] == 0 and cross[24, 24] == 0  # not the corners of its box
    assert np.allclose(cross, cross.T) and np.allclose(cross, cross[::-1, ::-1])
    flat = concepts.coverage(["square"], [16.0], [16.0], [20.0])[0]
    ring = concepts.coverage(["square"], [16.0], [16.0], [20.0], outline=concepts.OUTLINE)[0]
    assert ring[16, 16] == 0 and flat[16, 16] == 1  # the middle is empty
    assert ring[16, 6] == 1  # the edge is drawn
    assert 0.3 < ring.sum() / flat.sum() < 0.5  # a band 2 px wide of a 20 px square: 36 %


def test_the_examples_are_deterministic_and_their_captions_use_the_word():
    for kind in concepts.KINDS:
        a, captions, drawings = concepts.examples(kind)
        b, again, _ = concepts.examples(kind)
        assert np.array_equal(a, b) and captions == again
        assert a.shape == (concepts.EXAMPLES, 32, 32, 3) and a.dtype == np.uint8
        word = concepts.WORDS[kind]
        assert all(word in c.replace(",", " ").split() for c in captions)
        assert all(d.colour in c and (d.colour in concepts.EXAMPLE_COLOURS) for d, c in
                   zip(drawings, captions))  # fmt: skip
        assert {d.size for d in drawings} == ({"large"} if kind == "style" else set(world.SIZES))
    _, captions, _ = concepts.examples("object", word="plus")
    assert all("plus" in c and "cross" not in c for c in captions)


def test_novel_prompts_show_what_no_example_shows():
    for kind in concepts.KINDS:
        shown = {(d.colour, d.position) for d in concepts.example_drawings(kind)}
        novel = concepts.novel_prompts(kind)
        assert len(novel) == 24
        for prompt, d in novel:
            assert d.colour not in concepts.EXAMPLE_COLOURS
            assert d.position not in {p for _, p in shown}
            assert concepts.WORDS[kind] in prompt.split()
            assert d.colour in prompt and d.position in prompt and d.size in prompt


def test_the_reader_reads_rendered_pictures():
    truth = _random_drawings(400, seed=1)
    pictures = concepts.draw(truth, np.random.default_rng(2))
    sharp = agreement(truth, read_concepts(pictures))
    assert sharp["all"] >= 0.99, sharp
    blurred = agreement(truth, read_concepts(blur_and_noise(pictures, np.random.default_rng(3))))
    # blur and noise may close a small outline (a 1-pixel line): it reads as flat
    assert blurred["colour"] >= 0.99 and blurred["size"] >= 0.99 and blurred["position"] >= 0.99
    assert blurred["all"] >= 0.95, blurred


def test_the_reader_finds_nothing_in_an_empty_picture():
    empty = np.full((1, 32, 32, 3), world.BACKGROUND, dtype=np.uint8)
    assert read_concepts(empty) == [None]
    with pytest.raises(ValueError, match=r"\(N, 32, 32, 3\)"):
        read_concepts(np.zeros((2, 48, 48, 3), dtype=np.uint8))


def test_an_example_folder_round_trips(tmp_path):
    out = concepts.export_examples("style", tmp_path / "ex")
    images, captions = concepts.read_examples(out)
    expected, expected_captions, _ = concepts.examples("style")
    assert np.array_equal(images, expected) and captions == expected_captions


def test_bad_example_folders_are_refused_in_one_sentence(tmp_path):
    from PIL import Image

    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no PNG pictures"):
        concepts.read_examples(tmp_path / "empty")
    folder = concepts.export_examples("object", tmp_path / "ex", n=3)
    (folder / "captions.jsonl").rename(folder / "other.jsonl")
    with pytest.raises(ValueError, match="has no captions.jsonl"):
        concepts.read_examples(folder)
    (folder / "other.jsonl").rename(folder / "captions.jsonl")
    with open(folder / "captions.jsonl", "a") as f:
        f.write(json.dumps({"file": "gone.png", "caption": "a red cross"}) + "\n")
    with pytest.raises(ValueError, match="names 'gone.png', which is not in"):
        concepts.read_examples(folder)
    big = tmp_path / "big"
    big.mkdir()
    Image.new("RGB", (64, 64), "white").save(big / "a.png")
    (big / "captions.jsonl").write_text(json.dumps({"file": "a.png", "caption": "a cross"}))
    with pytest.raises(ValueError, match="64 x 64 pixels; the model draws 32 x 32"):
        concepts.read_examples(big)
    (big / "captions.jsonl").write_text("not json\n")
    with pytest.raises(ValueError, match="line 1 .* is not a JSON object"):
        concepts.read_examples(big)
