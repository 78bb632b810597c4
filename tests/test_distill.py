"""Few-step students (minidiff.distill): both methods run, resume, and write a student that the
pipeline draws at the steps it was made for and refuses at others; the progressive target is
the one that makes one student step land where two teacher steps land."""

from dataclasses import replace

import pytest
import torch

from minidiff.checkpoint import load_model, save_model
from minidiff.distill import DistillConfig, DistillTask, distill, rounds_of
from minidiff.model import TextToImage
from minidiff.pipeline import load_pretrained
from minidiff.scaffold import QUIET, Watch
from minidiff.train import preset, with_objective

FAST = DistillConfig(steps=4, batch_size=8, pairs=16, teacher_steps=4, student_steps=(1, 2))


@pytest.fixture(scope="module")
def teachers(tmp_path_factory):
    """Untrained tiny teachers, one flow and one v: the right shapes, for the machinery."""
    out = tmp_path_factory.mktemp("teachers")
    paths = {}
    for objective in ("flow", "v"):
        torch.manual_seed(0)
        model = TextToImage(with_objective(preset("tiny")[0], objective))
        paths[objective] = out / f"{objective}.safetensors"
        save_model(model, paths[objective])
    return paths


@pytest.mark.parametrize("method", ["reflow", "progressive"])
def test_a_student_draws_at_its_steps_and_refuses_others(teachers, tmp_path, method):
    cfg = replace(FAST, method=method)
    result = distill(teachers["flow"], cfg, tmp_path, device="cpu", watch=QUIET)
    assert result.finished and result.step == 4
    pipe = load_pretrained(tmp_path / "model.safetensors", device="cpu")
    assert pipe.student["method"] == method and pipe.student["steps"] == [1, 2]
    assert pipe.default_settings.steps == (1 if method == "progressive" else 2)
    assert pipe.generate("a red circle", n=2).shape == (2, 32, 32, 3)
    assert pipe.generate("a red circle", n=1, steps=1).shape == (1, 32, 32, 3)
    with pytest.raises(ValueError, match="distilled to draw in 1, 2 steps, not 20"):
        pipe.generate("a red circle", n=1, steps=20)
    with pytest.raises(ValueError, match="cannot be guided"):
        pipe.generate("a red circle", n=1, guidance_scale=3.0)
    with pytest.raises(ValueError, match="already a few-step student"):
        distill(tmp_path / "model.safetensors", cfg, tmp_path / "again", watch=QUIET)


def test_an_interrupted_distillation_resumes_to_the_same_student(teachers, tmp_path):
    cfg = replace(FAST, method="reflow", checkpoint_every=2)
    distill(teachers["flow"], cfg, tmp_path / "a", device="cpu", watch=Watch(False, stop_at=2))
    assert not (tmp_path / "a" / "model.safetensors").exists()
    distill(teachers["flow"], cfg, tmp_path / "a", device="cpu", watch=QUIET, resume=True)
    distill(teachers["flow"], cfg, tmp_path / "b", device="cpu", watch=QUIET)
    a, _ = load_model(tmp_path / "a" / "model.safetensors")
    b, _ = load_model(tmp_path / "b" / "model.safetensors")
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(x, y, atol=1e-6), name


def test_a_used_folder_is_refused_before_the_teacher_draws(teachers, tmp_path, monkeypatch):
    from minidiff import distill as module

    cfg = replace(FAST, method="reflow")
    distill(teachers["flow"], cfg, tmp_path, device="cpu", watch=QUIET)
    monkeypatch.setattr(module, "draw_pairs", lambda *a, **k: pytest.fail("drew pairs"))
    with pytest.raises(FileExistsError, match="already holds a run"):
        distill(teachers["flow"], cfg, tmp_path, device="cpu", watch=QUIET)


def test_reflow_needs_a_flow_teacher_and_progressive_takes_either(teachers, tmp_path):
    with pytest.raises(ValueError, match="reflow straightens a flow model's paths"):
        distill(teachers["v"], replace(FAST, method="reflow"), tmp_path / "r", watch=QUIET)
    cfg = replace(FAST, method="progressive")
    distill(teachers["v"], cfg, tmp_path / "p", device="cpu", watch=QUIET)
    pipe = load_pretrained(tmp_path / "p" / "model.safetensors", device="cpu")
    assert pipe.default_settings.sampler == "ddim" and pipe.default_settings.steps == 1


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"method": "consistency"}, "unknown method 'consistency'"),
        ({"method": "progressive", "teacher_steps": 6}, "halves the steps each round"),
        ({"student_steps": ()}, "student_steps must be whole numbers"),
        ({"pairs": 0}, "pairs must be a whole number of at least 1"),
    ],
)
def test_bad_settings_are_one_sentence_errors(teachers, tmp_path, changes, message):
    with pytest.raises(ValueError, match=message):
        distill(teachers["flow"], replace(FAST, **changes), tmp_path, watch=QUIET)
    assert not (tmp_path / "checkpoint.safetensors").exists()


def test_progressive_rounds_halve_the_steps():
    cfg = DistillConfig(method="progressive", teacher_steps=16, student_steps=(1, 2, 4))
    assert rounds_of(cfg) == [8, 4, 2, 1]
    assert rounds_of(replace(cfg, method="reflow")) == [4]


@pytest.mark.parametrize("objective", ["flow", "v"])
def test_one_student_step_on_the_target_lands_where_two_teacher_steps_land(teachers, objective):
    """The progressive target, fed back through the student's own sampler step, gives the
    teacher's two-step result: the regression target is exactly 'do two steps in one'."""
    from minidiff import samplers
    from minidiff.diffusion import alpha_bar_at, split_prediction

    teacher, _ = load_model(teachers[objective])
    task = DistillTask(teacher, replace(FAST, method="progressive"))
    seen = {}

    def student(x, t, ids):
        seen.update(x=x, t=t, ids=ids)
        return torch.zeros_like(x)

    task.student = student
    _, target = task._progressive(0, 2, torch.Generator().manual_seed(0))
    fine = samplers.make_timesteps(4, teacher.config.T)  # the teacher's grid; the student's: 2
    starts = [pair[0] for pair in fine]
    for i in range(seen["x"].shape[0]):
        k = starts.index(int(seen["t"][i]))
        path = [fine[k][0], fine[k][1], fine[k + 1][1]]  # t, t_mid, t_end
        ab = [alpha_bar_at(task.alpha_bar, s) for s in path]
        x, ids = seen["x"][i : i + 1], seen["ids"][i : i + 1]
        with torch.no_grad():
            mid = task._teacher_step(x, torch.tensor([path[0]]), ids, ab[0], ab[1])
            end = task._teacher_step(mid, torch.tensor([path[1]]), ids, ab[1], ab[2])
        # the check in float64: at t = 999 DDIM divides by sqrt(ᾱ) = 5e-5
        x, out = x.double(), target[i : i + 1].double()
        if objective == "flow":
            landed, _, _ = samplers.flow_euler_step(x, out, ab[0], ab[2])
        else:
            eps, _ = split_prediction(out, x, ab[0], "v")
            landed, _ = samplers.ddim_step(x, eps, ab[0], ab[2])
        assert torch.allclose(landed, end.double(), atol=1e-4), (i, objective)
