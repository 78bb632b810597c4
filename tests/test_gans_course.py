"""Notebook 14's course code (minidiff.course.gans): the family explorer, the coverage maps and the
table of measured results."""

import numpy as np
import pytest

import minidiff
from minidiff import gan
from minidiff.course import explorer as base
from minidiff.course import gans
from minidiff.scaffold import Watch


@pytest.fixture(scope="module")
def pipes(tmp_path_factory):
    """The shipped pixel model and a GAN of a few steps (the explorer does not care how good)."""
    out = tmp_path_factory.mktemp("gan")
    small = gan.GanConfig(z_dim=8, g_channels=(32, 16, 8, 8), d_channels=(8, 16, 16))
    gan.train_gan(out, gan.GanTraining(steps=2, batch_size=4), small, watch=Watch(progress=False))
    return minidiff.load_pretrained("pixel"), minidiff.load_pretrained(out / "gan.safetensors")


def test_the_family_explorer_shows_both_families_from_stored_frames(pipes, monkeypatch):
    diffusion, gan_pipe = pipes
    explorer = gans.FamilyExplorer(diffusion, gan_pipe, prompts=gans.PROMPTS[:2], seeds=(0, 1))
    assert len(explorer.frames) == 4
    calls = []
    for pipe in pipes:
        monkeypatch.setattr(pipe, "generate", lambda *a, **k: calls.append(a))
    seen = {}
    for prompt in explorer.choice.options:
        explorer.choice.value = prompt
        for seed in base.slider_values(explorer.slider):
            explorer.slider.value = seed
            seen[prompt, seed] = bytes(explorer.image.value)
            assert f"seed {seed}" in explorer.label.value and prompt in explorer.label.value
    assert calls == []  # a slider move only picks a stored frame
    assert len(set(seen.values())) == 4  # each prompt and seed its own pictures
    picture, _ = explorer.frames[gans.PROMPTS[0], 0]
    half = picture.shape[0] // 2  # diffusion above, the GAN below: two different rows
    assert not np.array_equal(picture[:half], picture[half : 2 * half])


def test_coverage_maps_count_every_picture_of_every_model(pipes):
    diffusion, gan_pipe = pipes
    maps = gans.coverage_maps({"diffusion": diffusion, "GAN": gan_pipe}, "a red circle", n=24)
    assert list(maps) == ["real renders", "diffusion", "GAN"]
    for counts in maps.values():
        assert counts.shape == (2, 9) and counts.sum() == 24
    assert (maps["real renders"] > 0).sum() > 10  # the world spreads "a red circle" over cells
    fig = gans.show_coverage(maps, "a red circle")
    assert len(fig.axes) == 3 and "coverage" in fig.axes[0].get_title()


def test_the_results_table_has_every_run_and_each_familys_spread():
    row = {
        "run": "gan 5 min, seed 0",
        "family": "gan",
        "seed": 0,
        "steps": 474,
        "adherence": {"seen": 0.5, "held_out": 0.25, "paraphrase": 0.125},
        "coverage": 0.75,
        "kl_to_uniform": 0.5,
        "fd": 30.0,
        "ms_for_8": 2.5,
    }
    names = ("seen", "held_out", "paraphrase", "coverage", "kl_to_uniform", "fd", "ms_for_8")
    spread = {k: {"mean": 0.5, "min": 0.25, "max": 0.75} for k in names}
    even = {"coverage": 0.99, "kl_to_uniform": 0.09}
    table = gans.results_table({"rows": [row], "spread": {"gan": spread}, "uniform_sampler": even})
    lines = table.splitlines()
    assert len(lines) == 5  # header, rule, the run, the spread, the even sampler
    assert "| gan 5 min, seed 0 | 474 | 0.50 | 0.25 | 0.12 | 0.75 | 0.50 | 30.0 | 2.5 |" in table
    assert "GAN, 3 seeds" in lines[3] and "0.50 (0.25–0.75)" in lines[3]
    assert "0.99" in lines[4]
