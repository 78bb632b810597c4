"""The course's check functions: minidiff's own answer passes, the common slips get their hint."""

import ast
import builtins
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from minidiff import diffusion, samplers, world
from minidiff.course import exercises
from minidiff.evaluate import normalised_entropy
from minidiff.tokenizer import Tokenizer


def _shaped(alpha_bar, t):
    return alpha_bar[t].float().reshape(-1, 1, 1, 1)


RIGHT = {
    exercises.check_q_sample: diffusion.q_sample,
    exercises.check_x0_from_eps: diffusion.x0_from_eps,
    exercises.check_v_from: diffusion.v_from,
    exercises.check_ddim_step: lambda x_t, e, a, p: samplers.ddim_step(x_t, e, a, p)[0],
    exercises.check_guidance: diffusion.guided_eps,
    exercises.check_tokenize: lambda p: Tokenizer().encode(p)[0].tolist(),
    exercises.check_describe: lambda c, s, z, p: f"a {z} {c} {s} {world.PHRASES[p]}",
    exercises.check_scale_factor: lambda z: 1 / z.std(),
    exercises.check_paste_known: lambda x, known, keep: keep * known + (1 - keep) * x,
    exercises.check_normalised_entropy: normalised_entropy,
    exercises.check_compose: lambda null, parts, w: null + w * sum(e - null for e in parts),
    exercises.check_flow_euler: lambda x, u, s, p: x + (p - s) * u,
    exercises.check_lora_forward: lambda x, w, b, A, B, s: x @ w.T + b + s * (x @ A.T) @ B.T,
    exercises.check_hinge_loss: lambda r, f: F.relu(1 - r).mean() + F.relu(1 + f).mean(),
    exercises.check_roc_auc: lambda r, f: (np.sign(f[:, None] - r[None, :]) + 1).mean() / 2,
}


@pytest.mark.parametrize("check", list(RIGHT), ids=lambda c: c.__name__)
def test_the_package_answer_passes(check, capsys):
    assert check(RIGHT[check]) is True
    assert "✓" in capsys.readouterr().out


@pytest.mark.parametrize(
    "check, wrong, hint",
    [
        (
            exercises.check_q_sample,
            lambda x0, t, ab, eps: _shaped(ab, t) * x0 + (1 - _shaped(ab, t)) * eps,
            "square root",
        ),
        (exercises.check_q_sample, lambda x0, t, ab, eps: ab[t] * x0, "(B, 1, 1, 1)"),
        (exercises.check_x0_from_eps, lambda x_t, e, a: x_t - (1 - a) ** 0.5 * e, "Divide"),
        (exercises.check_v_from, lambda x0, e, a: (1 - a) ** 0.5 * x0 - a**0.5 * e, "signs"),
        (
            exercises.check_ddim_step,
            lambda x_t, e, a, p: samplers.ddim_step(x_t, e, a, p)[1],
            "x0_hat itself",
        ),
        (exercises.check_guidance, lambda c, u, s: c + s * (u - c), "unconditional"),
        (exercises.check_tokenize, lambda p: [Tokenizer().ids[w] for w in p.split()], "<start>"),
        (exercises.check_describe, lambda c, s, z, p: f"a {z} {c} {s}", "reads as"),
        (exercises.check_describe, lambda c, s, z, p: 1 / 0, "ZeroDivisionError"),
        (exercises.check_scale_factor, lambda z: z.std(), "standard deviation itself"),
        (exercises.check_scale_factor, lambda z: 1 / z.var(), "square root"),
        (
            exercises.check_paste_known,
            lambda x, known, keep: keep * x + (1 - keep) * known,
            "wrong way round",
        ),
        (
            exercises.check_normalised_entropy,
            lambda v, k: normalised_entropy(v, k) * np.log(k),
            "Divide by log k",
        ),
        (exercises.check_compose, lambda null, parts, w: null + w * sum(parts), "differences"),
        (exercises.check_compose, lambda null, parts, w: w * sum(e - null for e in parts), "Start"),
        (exercises.check_flow_euler, lambda x, u, s, p: x + (s - p) * u, "towards the picture"),
        (exercises.check_flow_euler, lambda x, u, s, p: x - u, "length of the step"),
        (exercises.check_lora_forward, lambda x, w, b, A, B, s: x @ w.T + b, "A maps the input"),
        (
            exercises.check_lora_forward,
            lambda x, w, b, A, B, s: x @ w.T + b + (x @ A.T) @ B.T,
            "Multiply the low-rank part by `scale`",
        ),
        (
            exercises.check_lora_forward,
            lambda x, w, b, A, B, s: s * (x @ A.T) @ B.T,
            "Keep the frozen layer",
        ),
        (exercises.check_hinge_loss, lambda r, f: (1 - r).mean() + (1 + f).mean(), "Clip"),
        (
            exercises.check_hinge_loss,
            lambda r, f: F.relu(1 + r).mean() + F.relu(1 - f).mean(),
            "Real pictures should score high",
        ),
        (exercises.check_roc_auc, lambda r, f: (f[:, None] > r[None, :]).mean(), "tie as half"),
        (
            exercises.check_roc_auc,
            lambda r, f: (np.sign(r[None, :] - f[:, None]) + 1).mean() / 2,
            "Generated pictures should score above",
        ),
    ],
)
def test_a_wrong_answer_fails_with_a_hint(check, wrong, hint, capsys):
    assert check(wrong) is False
    out = capsys.readouterr().out
    assert "✗" in out and hint in out


def test_a_wrong_shape_is_named(capsys):
    assert exercises.check_guidance(lambda c, u, s: torch.zeros(3)) is False
    assert "shape" in capsys.readouterr().out


# -- an exercise starts unsolved -----------------------------------------------------------------
NOT_WRITTEN = "not written yet"


def _stub(*args):
    raise NotImplementedError("your turn")


def _empty(*args):  # a body of `...` or `pass`
    ...


@pytest.mark.parametrize("check", list(RIGHT), ids=lambda c: c.__name__)
@pytest.mark.parametrize(
    "stub, says",
    [(_stub, "replace `raise NotImplementedError`"), (_empty, "returned None")],
    ids=["raises", "returns-None"],
)
def test_an_unwritten_function_is_named_not_an_error(check, stub, says, capsys):
    assert check(stub) is False  # and it does not raise: the notebook runs on
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("✗ ")
    assert NOT_WRITTEN in out and says in out and "raised" not in out


@pytest.mark.parametrize(
    "check, wrong, hint",
    [
        (
            exercises.check_x0_from_eps,
            lambda x_t, e, a: (x_t + (1 - a) ** 0.5 * e) / a**0.5,
            "Subtract",
        ),
        (exercises.check_v_from, lambda x0, e, a: a * e - (1 - a) * x0, "square root"),
        (
            exercises.check_ddim_step,
            lambda x_t, e, a, p: p**0.5 * samplers.ddim_step(x_t, e, a, p)[1] + (1 - a) ** 0.5 * e,
            "new* noise level",
        ),
        (exercises.check_guidance, lambda c, u, s: u + s * c, "difference"),
        (exercises.check_tokenize, lambda p: Tokenizer().encode(p)[0].tolist()[:8], "<pad>"),
        (exercises.check_tokenize, lambda p: 16, "list of 16 ints"),
        (exercises.check_describe, lambda c, s, z, p: f"a {c} {s} {world.PHRASES[p]}", "reads as"),
    ],
)
def test_more_slips_get_their_hint(check, wrong, hint, capsys):
    assert check(wrong) is False
    out = capsys.readouterr().out
    assert "✗" in out and hint in out and NOT_WRITTEN not in out


# -- the notebooks' exercises: a stub the learner completes, and a hidden solution ---------------
NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))

# what each exercise asks the learner to write, as the package names it: neither the stub nor the
# solution may use it (as `diffusion.q_sample`, or a `q_sample` imported from the package).
REFERENCE = {
    "check_describe": "canonical_prompt",
    "check_q_sample": "q_sample",
    "check_x0_from_eps": "x0_from_eps",
    "check_v_from": "v_from",
    "check_ddim_step": "ddim_step",
    "check_tokenize": "encode",
    "check_guidance": "guided_eps",
    "check_scale_factor": "measure_scale_factor",
    "check_paste_known": "inpaint",
    "check_normalised_entropy": "normalised_entropy",
    "check_diffusers_loop": "diffusers_loop",
    "check_compose": "composed_eps",
    "check_flow_euler": "flow_euler_step",
    "check_lora_forward": "get_peft_model",
    "check_hinge_loss": "d_hinge_loss",
    "check_roc_auc": "roc_auc",
}


def _uses(source: str, name: str) -> bool:
    """Whether source refers to `name`, as an attribute (module.name) or a bare name."""
    return any(
        isinstance(n, ast.Attribute) and n.attr == name or isinstance(n, ast.Name) and n.id == name
        for n in ast.walk(ast.parse(source))
    )


def _source(cell) -> str:
    return "".join(cell["source"])


def _exercise(path):
    """(the notebook's cells, the index of its hidden solution cell, the check's name).

    The exercise is three cells: the "## Exercise" markdown, the stub the learner completes (the
    "your turn" cell) and the collapsed solution; both code cells call the same check.
    """
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    hidden = [
        i
        for i, c in enumerate(cells)
        if c["cell_type"] == "code"
        and c["metadata"].get("jupyter", {}).get("source_hidden")
        and "exercises.check_" in _source(c)
    ]
    assert len(hidden) == 1, f"{path.name}: one hidden solution cell calling exercises.check_"
    i = hidden[0]
    assert "## Exercise" in _source(cells[i - 2]), f"{path.name}: the exercise's markdown"
    check = re.findall(r"exercises\.(check_\w+)\(", _source(cells[i]))
    assert len(check) == 1
    return cells, i, check[0]


def _names_bound(tree) -> set[str]:
    """The names a statement (or a cell) binds anywhere: assigned, imported, defined, parameters."""
    bound = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del)):
            bound.add(n.id)
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(n.name)
        elif isinstance(n, ast.arg):
            bound.add(n.arg)
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            bound |= {(a.asname or a.name).split(".")[0] for a in n.names}
    return bound


def _names_free(tree) -> set[str]:
    """The names a statement (or a cell) reads without binding them itself, builtins aside."""
    loaded = {
        n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
    }
    return loaded - _names_bound(tree) - set(dir(builtins))


def _namespace(cells, i, sources) -> dict:
    """A namespace as the notebook has it at cell i, for running `sources` (the exercise's cells).

    It runs every import statement of the cells before i, and of their other statements only
    those that define a name the sources use, with what those need in turn (notebook 05's
    `tokenizer = pipe.tokenizer` brings `pipe = course.pipe()`), not the pictures and plots.
    """
    stmts = [s for c in cells[:i] if c["cell_type"] == "code" for s in ast.parse(_source(c)).body]
    needed = set().union(*(_names_free(ast.parse(s)) for s in sources))
    keep = []
    for stmt in reversed(stmts):
        if isinstance(stmt, (ast.Import, ast.ImportFrom)) or _names_bound(stmt) & needed:
            keep.append(stmt)
            needed = (needed - _names_bound(stmt)) | _names_free(stmt)
    namespace: dict = {}
    code = compile(ast.Module(body=keep[::-1], type_ignores=[]), "<notebook>", "exec")
    exec(code, namespace)  # noqa: S102 -- the notebook's own cells
    return namespace


@pytest.fixture(scope="module", params=NOTEBOOKS, ids=lambda p: p.stem)
def exercise(request):
    return request.param, *_exercise(request.param)


def test_each_notebook_has_its_exercise():
    assert [_exercise(p)[2] for p in NOTEBOOKS] == [
        "check_describe",
        "check_q_sample",
        "check_x0_from_eps",
        "check_v_from",
        "check_ddim_step",
        "check_tokenize",
        "check_guidance",
        "check_scale_factor",
        "check_paste_known",
        "check_normalised_entropy",
        "check_diffusers_loop",
        "check_compose",
        "check_flow_euler",
        "check_lora_forward",
        "check_hinge_loss",
        "check_roc_auc",
    ]


def test_the_exercise_starts_unsolved(exercise, capsys):
    path, cells, i, check = exercise
    stub, solution = _source(cells[i - 1]), _source(cells[i])
    assert "NotImplementedError" in stub and "Your turn" in stub, (
        f"{path.name}: the 'your turn' cell should be a stub that raises NotImplementedError"
    )
    assert f"exercises.{check}(" in stub
    assert not _uses(stub, REFERENCE[check]), f"{path.name}: the stub uses minidiff's own answer"
    namespace = _namespace(cells, i, [stub, solution])
    capsys.readouterr()
    exec(compile(stub, f"{path.name} stub", "exec"), namespace)  # noqa: S102
    out = capsys.readouterr().out
    assert out.startswith("✗ ") and NOT_WRITTEN in out, out
    assert "replace `raise NotImplementedError` with your code" in out


def test_the_hidden_solution_passes(exercise, capsys):
    path, cells, i, check = exercise
    solution = _source(cells[i])
    assert solution.startswith("# Solution")
    assert not _uses(solution, REFERENCE[check]), f"{path.name}: the solution uses minidiff's"
    namespace = _namespace(cells, i, [_source(cells[i - 1]), solution])
    capsys.readouterr()
    exec(compile(solution, f"{path.name} solution", "exec"), namespace)  # noqa: S102
    out = capsys.readouterr().out
    assert out.startswith("✓ ") and "Well done!" in out, out


def test_the_exercise_cells_store_no_outputs(exercise):
    _, cells, i, _ = exercise
    for cell in cells[i - 1 : i + 1]:
        assert cell["outputs"] == [] and cell["execution_count"] is None
