"""Notebook 10's module, minidiff.course.real_systems: the scheduler explorer and its static twin,
the component table, the benchmark record, and the notebook's exercise and slides.

On the untrained tiny model (its zero layers filled in), so nothing here depends on the shipped
weights.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from minidiff import diffusers_bridge, world
from minidiff.course import exercises, real_systems
from minidiff.course import explorer as base
from minidiff.model import count_parameters
from minidiff.pipeline import load_pretrained

pytest.importorskip("diffusers")

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "10_the_real_thing.ipynb"
KINDS = ("ddim", "euler_ancestral")
STEPS = (2, 3, 4)


@pytest.fixture(scope="module")
def pipe(tiny_model_file):
    """The tiny untrained model with its zero-initialised layers made random, so that pictures
    differ from scheduler to scheduler and step count to step count."""
    pipe = load_pretrained(tiny_model_file, device="cpu")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in pipe.model.parameters():
            if not p.any():
                p.copy_(0.2 * torch.randn(p.shape, generator=generator))
    return pipe


class RedJudge:
    """Reads every picture as a large red star in the center."""

    def predict(self, pictures):
        read = {"colour": "red", "shape": "star", "size": "large", "position": "center"}
        return {a: np.full(len(pictures), world.ATTRIBUTES[a].index(v)) for a, v in read.items()}


@pytest.fixture(scope="module")
def explorer(pipe):
    return real_systems.scheduler_explorer(
        pipe, "a red star", kinds=KINDS, step_counts=STEPS, n=2, judge=RedJudge()
    )


def test_scheduler_pictures_are_the_bridges(pipe):
    pictures = real_systems.scheduler_pictures(pipe, "a blue circle", KINDS, (2, 3), n=2, seed=3)
    assert list(pictures) == [(k, s) for k in KINDS for s in (2, 3)]
    assert all(p.shape == (2, 32, 32, 3) and p.dtype == np.uint8 for p in pictures.values())
    theirs = diffusers_bridge.sample_with_diffusers(
        pipe, "a blue circle", n=2, steps=3, seed=3, kind="euler_ancestral"
    )
    assert np.array_equal(pictures["euler_ancestral", 3], theirs)
    assert not np.array_equal(pictures["ddim", 3], pictures["euler_ancestral", 3])
    with pytest.raises(ValueError, match="at least one scheduler"):
        real_systems.scheduler_pictures(pipe, "a red star", (), (2,))


def test_network_calls_count_the_schedulers_timesteps(pipe):
    assert real_systems.network_calls(pipe.config, "ddim", 20) == 20
    assert real_systems.network_calls(pipe.config, "unipc", 5) == 5
    assert real_systems.scheduler_class("dpm") == "DPMSolverMultistepScheduler"


def test_every_scheduler_and_step_count_is_its_own_frame(explorer, pipe):
    import ipywidgets

    assert isinstance(explorer, ipywidgets.VBox) and explorer.static_figure.startswith("figures/")
    assert explorer.outer is explorer.scheduler and explorer.slider.description == "steps"
    assert base.slider_values(explorer.slider) == list(STEPS)
    seen, calls = set(), []
    hooks = [
        m.register_forward_hook(lambda *args: calls.append(1))
        for m in (pipe.model.unet, pipe.model.text_encoder)
    ]
    for kind in KINDS:
        explorer.scheduler.value = kind
        for steps in STEPS[::-1] + STEPS:
            explorer.slider.value = steps
            picture, label = bytes(explorer.image.value), explorer.label.value
            assert picture.startswith(b"\x89PNG")
            assert f"{real_systems.NAMES[kind]} (diffusers " in label
            assert f"· {steps} steps · {steps} network calls" in label
            seen.add((picture, label))
    for hook in hooks:
        hook.remove()
    assert len({p for p, _ in seen}) == len({label for _, label in seen}) == len(KINDS) * len(STEPS)
    assert calls == []  # a slider move only picks a frame: the network never runs


def test_the_labels_say_what_the_judge_reads(pipe, explorer):
    assert "the judge reads 2 of 2 as 'a red star'" in explorer.label.value
    other = real_systems.scheduler_explorer(
        pipe, "a blue star", kinds=("ddim",), step_counts=(2, 3, 4), n=2, judge=RedJudge()
    )
    assert "the judge reads 0 of 2 as 'a blue star'" in other.label.value
    plain = real_systems.scheduler_explorer(pipe, kinds=("ddim",), step_counts=(2, 3, 4), n=2)
    assert "judge" not in plain.label.value


def test_generate_recomputes_and_reports_a_bad_word(pipe):
    explorer = real_systems.scheduler_explorer(
        pipe, "a red star", kinds=("ddim",), step_counts=(2, 3, 4), n=2
    )
    before = bytes(explorer.image.value)
    explorer.prompt.value = "a small green square at the top"
    explorer.button.click()
    assert bytes(explorer.image.value) != before and explorer.button.description == "Generate"
    explorer.prompt.value = "a gren square"
    explorer.button.click()
    assert "unknown word 'gren'" in explorer.label.value and not explorer.button.disabled


def test_the_static_twin_is_a_grid_of_schedulers_by_steps(explorer, tmp_path):
    from PIL import Image

    path = explorer.save_static(tmp_path / "twin.png", per_cell=2)
    wide = Image.open(path)
    pictures = {(k, s): explorer.pictures[k, s] for k in KINDS[:1] for s in STEPS}
    narrow = Image.open(real_systems.schedulers_figure(pictures, tmp_path / "one_row.png"))
    assert wide.format == narrow.format == "PNG"
    assert wide.size[1] > narrow.size[1]  # one row per scheduler
    assert explorer.static_figure == "figures/10_schedulers.png"


def test_components_are_counted_from_the_model(pipe):
    parts = {p.name: p for p in real_systems.components(pipe)}
    model = pipe.model
    assert list(parts) == [
        "pictures",
        "tokenizer",
        "text encoder",
        "U-Net",
        "VAE (latent space)",
        "noise schedule",
        "scheduler (sampler)",
        "guidance",
        "all parameters",
    ]
    assert f"{count_parameters(model.text_encoder):,} parameters" in parts["text encoder"].minidiff
    assert f"{count_parameters(model.unet):,} parameters" in parts["U-Net"].minidiff
    assert parts["all parameters"].minidiff == f"{count_parameters(model):,}"
    assert (
        f"{len(pipe.tokenizer)} tokens, {pipe.tokenizer.max_tokens} per prompt"
        in parts["tokenizer"].minidiff
    )
    assert "860M" in parts["U-Net"].sd15 and "2.6B" in parts["U-Net"].sdxl
    assert "64x64x4" in parts["VAE (latent space)"].sd15
    assert parts["all parameters"].sd15.startswith("about 1.1B")
    table = real_systems.component_table(list(parts.values()))
    assert table.count("<tr>") == len(parts) + 1
    assert all(f"[{k}]" in table for k in real_systems.SOURCES)


def test_benchmark_results_by_setting(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(
        json.dumps(
            {
                "columns": ["scheduler", "steps", "all"],
                "rows": [["ddim", 5, 0.9], ["unipc", 5, 1.0]],
            }
        )
    )
    record = real_systems.benchmark_results(path)
    assert record["by_setting"]["unipc", 5] == {"scheduler": "unipc", "steps": 5, "all": 1.0}
    with pytest.raises(FileNotFoundError, match="bench_diffusers_schedulers.py"):
        real_systems.benchmark_results(tmp_path / "missing.json")


def test_the_shipped_benchmark_covers_every_scheduler():
    record = real_systems.benchmark_results()
    settings = set(record["by_setting"])
    assert {kind for kind, _ in settings} == set(diffusers_bridge.KINDS)
    assert {(k, s) for k in diffusers_bridge.KINDS for s in (5, 10, 20, 50)} <= settings
    assert not record["smoke"]


# -- the exercise --------------------------------------------------------------------------------
def test_the_package_loop_passes_and_slips_get_their_hint(capsys):
    assert exercises.check_diffusers_loop(diffusers_bridge.diffusers_loop)
    assert "✓ diffusers_loop" in capsys.readouterr().out

    def no_init_noise_sigma(scheduler, eps_fn, x_T, steps):
        scheduler.set_timesteps(steps)
        x = x_T
        for t in scheduler.timesteps:
            x = scheduler.step(eps_fn(scheduler.scale_model_input(x, t), t), t, x).prev_sample
        return x

    def no_set_timesteps(scheduler, eps_fn, x_T, steps):
        return x_T

    assert not exercises.check_diffusers_loop(no_init_noise_sigma)
    assert "init_noise_sigma" in capsys.readouterr().out
    assert not exercises.check_diffusers_loop(no_set_timesteps)
    assert "set_timesteps" in capsys.readouterr().out


def _cells():
    return json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]


def _source(cell) -> str:
    return "".join(cell["source"])


def test_notebook_exercise_starts_unsolved_and_its_solution_passes(capsys):
    cells = _cells()
    hidden = [
        i for i, c in enumerate(cells) if c["metadata"].get("jupyter", {}).get("source_hidden")
    ]
    assert len(hidden) == 1
    stub, solution = _source(cells[hidden[0] - 1]), _source(cells[hidden[0]])
    assert "## Exercise" in _source(cells[hidden[0] - 2]) and solution.startswith("# Solution")
    written = (stub + solution).replace("exercises.check_diffusers_loop", "")
    assert "Your turn" in stub and "diffusers_loop" not in written  # the learner writes it
    for source, says in ((stub, "not written yet"), (solution, "Well done!")):
        namespace = {}
        exec("from minidiff.course import exercises", namespace)  # noqa: S102
        exec(compile(source, NOTEBOOK.name, "exec"), namespace)  # noqa: S102
        assert says in capsys.readouterr().out
    assert all(c["outputs"] == [] for c in cells[hidden[0] - 1 : hidden[0] + 1])
