import json
import math
from itertools import combinations

import numpy as np
import pytest

from minidiff import world
from minidiff.evaluate import (
    PARAPHRASES,
    EvalReport,
    evaluate,
    frechet_distance,
    normalised_entropy,
    paraphrase,
    prompt_set,
    uniform_entropy_ceiling,
)
from minidiff.judge import load_judge
from minidiff.tokenizer import Tokenizer
from minidiff.world import canonical_prompt, render_prompts


@pytest.fixture(scope="module")
def judge():
    return load_judge()


class PerfectPipe:
    """A 'generator' that draws real world pictures of what each prompt names, the rest at
    random."""

    def generate(self, prompt, n=1, steps=20, guidance_scale=3.0, seed=0, **unused):
        prompts = [prompt] if isinstance(prompt, str) else prompt
        rng = np.random.default_rng(seed)
        pictures = []
        for p in prompts:
            named = world.parse_prompt(p)
            for _ in range(n):
                attrs = {
                    k: named.get(k, rng.choice(values)) for k, values in world.ATTRIBUTES.items()
                }
                pictures.append(world.render(world.Attributes(**attrs), rng))
        return np.stack(pictures)


def test_normalised_entropy():
    assert normalised_entropy(np.arange(9), 9) == pytest.approx(1.0)
    assert normalised_entropy(np.repeat(np.arange(4), 5), 4) == pytest.approx(1.0)
    assert normalised_entropy(np.full(20, 3), 9) == 0.0
    assert normalised_entropy(np.array([0, 1, 0, 1]), 4) == pytest.approx(
        0.5
    )  # 2 of 4: log 2/log 4
    with pytest.raises(ValueError):
        normalised_entropy(np.array([]), 4)
    ceiling = uniform_entropy_ceiling(24, 9)
    assert 0.8 < ceiling < 1.0  # small samples of a uniform distribution look less than uniform


def test_frechet_distance_math():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, 8)) @ rng.normal(size=(8, 8))
    assert abs(frechet_distance(a, a)) < 1e-6
    shift = rng.normal(size=8)
    assert frechet_distance(a, a + shift) == pytest.approx((shift**2).sum(), rel=1e-6)
    # Two Gaussians with diagonal covariances: sum (sigma_a - sigma_b)^2 for the covariance part.
    z = rng.normal(size=(400, 3))
    z = (z - z.mean(0)) / z.std(0, ddof=1)
    assert frechet_distance(z, 2 * z) == pytest.approx(3.0, rel=1e-6)
    with pytest.raises(ValueError):
        frechet_distance(a, a[:, :4])


def test_frechet_distance_in_judge_features_separates_real_from_wrong(judge):
    images, _, _ = world.batch("test", 0, 400)
    other, _, _ = world.batch("test", 400, 400)
    real = judge.embed_pictures(images)
    floor = frechet_distance(judge.embed_pictures(other), real)
    shuffled = judge.embed_pictures(np.ascontiguousarray(other[..., ::-1]))  # RGB -> BGR
    blank = judge.embed_pictures(np.full_like(other, 235))
    assert abs(frechet_distance(real, real)) < 1e-3 * floor
    assert frechet_distance(shuffled, real) > 3 * floor  # red and blue swapped: about 4.5x
    assert frechet_distance(blank, real) > 5 * floor


def test_prompt_set_is_fixed_and_in_the_vocabulary():
    full, quick = prompt_set(), prompt_set(quick=True)
    assert {k: len(v) for k, v in full.items()} == {
        "seen": 189,
        "held_out": 108,
        "paraphrase": 144,
        "diversity": 384,
    }
    assert {k: len(v) for k, v in quick.items()} == {
        "seen": 24,
        "held_out": 12,
        "paraphrase": 12,
        "diversity": 24,
    }
    assert prompt_set() == full
    tokenizer = Tokenizer()
    for group in (full, quick):
        for prompts in group.values():
            tokenizer.encode(prompts)  # raises on an unknown word, warns on a too long prompt
    held_out = {
        (world.parse_prompt(p)["colour"], world.parse_prompt(p)["shape"]) for p in full["held_out"]
    }
    assert held_out == set(world.HELD_OUT)
    assert not any(
        (world.parse_prompt(p)["colour"], world.parse_prompt(p)["shape"]) in world.HELD_OUT
        for p in full["seen"]
    )
    assert all(
        len(world.parse_prompt(p)) == 4
        for p in full["seen"] + full["held_out"] + full["paraphrase"]
    )
    named = [world.parse_prompt(p) for p in full["paraphrase"]]
    assert {(n["colour"], n["shape"]) for n in named} >= set(world.HELD_OUT)  # both kinds of pair
    assert len({(n["colour"], n["shape"], n["size"], n["position"]) for n in named}) == 144
    assert canonical_prompt({"colour": "orange", "shape": "circle"}) == "an orange circle"
    assert (
        canonical_prompt(
            {"size": "large", "colour": "red", "shape": "circle", "position": "top left"}
        )
        == "a large red circle in the top left"
    )


def test_no_paraphrase_is_a_training_caption():
    """Every caption the world can write, for every combination, attribute subset, template and
    size word, against every paraphrase of every combination."""
    training = {
        world.caption_in(a, mention, t, z)
        for a in world.combinations("val")
        for r in range(1, 5)
        for mention in combinations(world.ATTRIBUTES, r)
        for t in range(len(world.TEMPLATES))
        for z in (0, 1)
    }
    paraphrases = {
        paraphrase(vars(a), t, z)
        for a in world.combinations("val")
        for t in range(len(PARAPHRASES))
        for z in (0, 1)
    }
    assert len(paraphrases) == 432 * len(PARAPHRASES) * 2
    assert not training & paraphrases, sorted(training & paraphrases)[:5]
    assert (
        paraphrase(
            {"colour": "blue", "shape": "square", "size": "small", "position": "top right"}, 1
        )
        == "a square, blue and small, top right"
    )
    for p in paraphrases:
        assert world.parse_prompt(p)  # in the vocabulary, no contradiction
    with pytest.raises(ValueError, match="no paraphrase template 6"):
        paraphrase({"colour": "red", "shape": "star", "size": "large", "position": "top"}, 6)


def test_a_perfect_generator_scores_near_the_top(judge):
    report = evaluate(PerfectPipe(), judge=judge, progress=False)
    assert report.pictures == {"seen": 189, "held_out": 108, "paraphrase": 144, "diversity": 384}
    for group in ("seen", "held_out", "paraphrase"):
        assert report.adherence[group]["all"] >= 0.98, report.table()
    assert min(report.held_out_pairs.values()) >= 0.98
    for name, value in report.diversity.items():
        assert value > report.diversity_ceiling[name] - 0.05, report.table()
    assert report.frechet_distance < 3 * report.frechet_floor


def test_evaluate_quick_runs_on_an_untrained_pipeline(tiny_pipe, judge):
    report = evaluate(tiny_pipe, quick=True, steps=1, judge=judge, progress=False)
    assert isinstance(report, EvalReport)
    assert sum(report.pictures.values()) == 72
    numbers = [v for row in report.adherence.values() for v in row.values()]
    numbers += list(report.held_out_pairs.values()) + list(report.diversity.values())
    assert all(0 <= v <= 1 for v in numbers)
    assert math.isfinite(report.frechet_distance) and report.frechet_distance >= 0
    table = report.table()
    assert "held-out pairs" in table and "Frechet distance" in table
    assert json.loads(json.dumps(report.to_dict()))["settings"]["steps"] == 1


def test_evaluate_is_deterministic(judge):
    a = evaluate(PerfectPipe(), quick=True, judge=judge, progress=False).to_dict()
    b = evaluate(PerfectPipe(), quick=True, judge=judge, progress=False).to_dict()
    a["settings"].pop("seconds"), b["settings"].pop("seconds")
    assert a == b


def test_real_pictures_of_prompts_show_what_they_name():
    prompts = ["a large purple star in the top left", "a red circle"]
    images = render_prompts(prompts, seed=0)
    assert images.shape == (2, 32, 32, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, render_prompts(prompts, seed=0))


def test_cli_evaluate_prints_the_table_and_writes_json(
    tiny_model_file, tmp_path, capsys, monkeypatch
):
    import minidiff.evaluate
    from minidiff.cli import main

    few = {
        "seen": ["a large red circle in the top left"],
        "paraphrase": ["small blue square at top right"],
        "held_out": [
            canonical_prompt({"colour": c, "shape": s, "size": "small", "position": "center"})
            for c, s in world.HELD_OUT
        ],
        "diversity": ["a red circle"] * 3,
    }
    monkeypatch.setattr(minidiff.evaluate, "prompt_set", lambda quick=False: few)
    out = tmp_path / "report.json"
    main(
        [
            "evaluate",
            "--weights",
            str(tiny_model_file),
            "--quick",
            "--steps",
            "1",
            "--guidance",
            "2",
            "--json",
            str(out),
            "--device",
            "cpu",
        ]
    )
    assert "prompt adherence" in capsys.readouterr().out
    saved = json.loads(out.read_text())
    assert saved["pictures"] == {"seen": 1, "held_out": 3, "paraphrase": 1, "diversity": 3}
    assert saved["settings"]["guidance_scale"] == 2.0
