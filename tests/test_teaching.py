"""Notebook 13's course code (minidiff.course.teaching): the strength explorer, the Train button,
the table of measured results."""

import numpy as np
import pytest

import minidiff
from minidiff import adapters
from minidiff.course import explorer as base
from minidiff.course import teaching


@pytest.fixture(scope="module")
def pipe():
    return minidiff.load_pretrained("pixel")


def test_the_strength_explorer_shows_stored_frames_and_leaves_the_model_alone(pipe, monkeypatch):
    before = adapters.fingerprint(pipe.model), len(pipe.tokenizer)
    explorer = teaching.strength_explorer(pipe)
    assert (adapters.fingerprint(pipe.model), len(pipe.tokenizer)) == before
    assert pipe.attached is None
    assert len(explorer.frames) == len(teaching.STRENGTHS) * 2
    calls = []
    monkeypatch.setattr(pipe, "generate", lambda *a, **k: calls.append(a))
    seen = {}
    for name in explorer.choice.options:
        explorer.choice.value = name
        for value in base.slider_values(explorer.slider):
            explorer.slider.value = value
            seen[(name, value)] = bytes(explorer.image.value)
            assert f"LoRA strength {value:g}" in explorer.label.value
    assert calls == []  # a slider move only picks a stored frame
    for name in explorer.choice.options:
        assert seen[(name, 0.0)] != seen[(name, 1.0)]  # the adapter changes the pictures


def test_the_train_button_teaches_and_gives_the_model_back(pipe, tmp_path):
    before = adapters.fingerprint(pipe.model)
    button = teaching.live_finetune(pipe, out_dir=tmp_path, steps={"lora": 2})
    button.kind.value, button.method.value = "style", "lora"
    pictures = button.train()
    assert pictures.shape == (8, 32, 32, 3) and pictures.dtype == np.uint8
    assert adapters.fingerprint(pipe.model) == before and pipe.attached is None
    assert len(list(tmp_path.glob("style-lora-*/" + adapters.INFO_FILE))) == 1
    assert not button.button.disabled


def test_the_results_table_has_a_row_per_concept_and_method():
    results = teaching.read_results()
    table = teaching.results_table(results)
    assert table.count("\n") == 1 + len(results["rows"])
    for kind in ("object", "style"):
        for method in ("textual-inversion", "lora", "full"):
            row = teaching.row(results, kind, method)
            assert 0 <= row["concept_fidelity"] <= 1 and 0 <= row["prompt_fidelity"] <= 1
    pictures = teaching.read_pictures()
    rows, labels = teaching.gallery(pictures, "object")
    assert rows.shape[1:] == (8, 32, 32, 3) and len(labels) == len(rows)


def test_on_a_static_page_the_train_button_says_it_needs_a_kernel(pipe, monkeypatch):
    monkeypatch.setenv("MINIDIFF_STATIC", "1")
    button = teaching.live_finetune(pipe)
    assert button.button.disabled and "needs a running Python kernel" in button.status.value
