"""Teaching a new word (minidiff.finetune) and taking it on and off (Pipeline.load_adapter)."""

import json

import numpy as np
import pytest
import torch

import minidiff
from minidiff import adapters, concepts
from minidiff.checkpoint import CheckpointError
from minidiff.cli import main
from minidiff.finetune import FinetuneConfig, finetune
from minidiff.scaffold import Watch
from minidiff.tokenizer import UnknownWordError

QUIET = Watch(progress=False)
PROMPTS = ["a large red circle in the top left", "a small blue star", "a green triangle"]


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    return concepts.export_examples("object", tmp_path_factory.mktemp("examples") / "cross", n=8)


@pytest.fixture(scope="module")
def taught(tmp_path_factory, examples):
    """One short run of each method on the cross, and the base model's state before."""
    base = minidiff.load_pretrained("pixel")
    before = {k: v.clone() for k, v in base.model.state_dict().items()}
    runs = {}
    for method in adapters.METHODS:
        out = tmp_path_factory.mktemp(method)
        cfg = FinetuneConfig(method=method, word="cross", steps=4, prior_pictures=8,
                             prior_batch=4)  # fmt: skip
        finetune(examples, out, cfg, watch=QUIET)
        runs[method] = out
    return runs, before


def _same_pictures(pipe, prompts=PROMPTS):
    return pipe.generate(prompts, n=2, seed=3)


def test_each_method_writes_its_files(taught):
    runs, _ = taught
    for method, files in {
        "textual-inversion": ["learned_embeds.safetensors"],
        "lora": ["learned_embeds.safetensors", "adapter_model.safetensors", "adapter_config.json"],
        "full": ["model.safetensors"],
    }.items():
        info = json.loads((runs[method] / adapters.INFO_FILE).read_text())
        assert info["method"] == method and info["word"] == "cross"
        assert sorted(info["files"]) == sorted(files)
        assert all((runs[method] / f).stat().st_size == n for f, n in info["files"].items())
    info = {m: json.loads((runs[m] / adapters.INFO_FILE).read_text()) for m in runs}
    assert info["textual-inversion"]["trainable_parameters"] == 128  # one row of width 128
    full = sum(p.numel() for p in minidiff.load_pretrained("pixel").model.parameters()) + 128
    assert info["full"]["trainable_parameters"] == full
    assert 0 < info["lora"]["trainable_parameters"] < full / 50


def test_textual_inversion_learns_one_row_and_leaves_every_other_prompt_alone(taught):
    runs, before = taught
    pipe = minidiff.load_pretrained("pixel")
    plain = _same_pictures(pipe)
    pipe.load_adapter(runs["textual-inversion"])
    state = pipe.model.state_dict()
    table = state["text_encoder.token_embedding.weight"]
    assert torch.equal(table[:-1], before["text_encoder.token_embedding.weight"])
    shape_row = before["text_encoder.token_embedding.weight"][pipe.tokenizer.ids["shape"]]
    assert not torch.equal(table[-1], shape_row)  # it moved from its start, "shape"
    for name, value in before.items():
        if name != "text_encoder.token_embedding.weight":
            assert torch.equal(state[name], value), name
    assert np.array_equal(_same_pictures(pipe), plain)  # not one pixel changed
    assert pipe.generate("a red cross", n=2, seed=0).shape == (2, 32, 32, 3)


def test_load_and_unload_give_the_base_model_back_exactly(taught):
    runs, before = taught
    pipe = minidiff.load_pretrained("pixel")
    plain = _same_pictures(pipe)
    for method, path in runs.items():
        pipe.load_adapter(path)
        assert "cross" in pipe.tokenizer.vocab
        pipe.generate("a red cross on the left", n=1, seed=0)
        pipe.unload_adapter()
        assert "cross" not in pipe.tokenizer.vocab, method
        after = pipe.model.state_dict()
        assert after.keys() == before.keys(), method
        assert all(torch.equal(after[k], v) for k, v in before.items()), method
        assert np.array_equal(_same_pictures(pipe), plain), method
        with pytest.raises(UnknownWordError, match="unknown word 'cross'"):
            pipe.generate("a red cross", n=1)


def test_lora_strength_zero_is_the_base_model_and_one_is_not(taught):
    runs, _ = taught
    pipe = minidiff.load_pretrained("pixel")
    plain = _same_pictures(pipe)
    pipe.load_adapter(runs["lora"], scale=0.0)
    assert np.array_equal(_same_pictures(pipe), plain)
    pipe.set_adapter_scale(1.0)
    assert not np.array_equal(_same_pictures(pipe), plain)  # LoRA changes every prompt
    for bad in (float("nan"), float("inf"), -1.0, "1"):
        with pytest.raises(ValueError, match="LoRA scale must be a number from 0 to 4"):
            pipe.set_adapter_scale(bad)


def test_peft_loads_the_lora_adapter_as_minidiff_does(taught):
    """What minidiff finetune writes is peft's own format: PeftModel.from_pretrained loads it onto
    a fresh base model, with the same weights and the same outputs as Pipeline.load_adapter."""
    from peft import PeftModel

    runs, _ = taught
    path = runs["lora"]
    pipe = minidiff.load_pretrained("pixel")
    pipe.load_adapter(path)
    fresh = minidiff.load_pretrained("pixel").model
    vector = adapters.read_adapter(path).vector()
    adapters.extend_vocabulary(fresh, vector)
    peft_model = PeftModel.from_pretrained(fresh, path)
    ours = dict(pipe.model.named_parameters())
    theirs = dict(peft_model.base_model.model.named_parameters())
    lora = [n for n in theirs if "lora_" in n]
    assert lora and all(torch.equal(ours[n], theirs[n]) for n in lora)
    assert any(theirs[n].abs().sum() > 0 for n in lora if "lora_B" in n)  # it was trained
    g = torch.Generator().manual_seed(0)
    x_t, t = torch.randn(2, 3, 32, 32, generator=g), torch.tensor([100, 700])
    ids = pipe.tokenizer.encode(["a red cross", "a blue cross at the top"])
    with torch.no_grad():
        assert torch.allclose(peft_model(x_t, t, ids), pipe.model(x_t, t, ids), atol=1e-6)


def test_a_full_fine_tune_is_a_model_file_that_knows_its_word(taught):
    runs, _ = taught
    pipe = minidiff.load_pretrained(runs["full"] / "model.safetensors")
    assert pipe.tokenizer.vocab[-1] == "cross"
    assert pipe.generate("a red cross", n=1, seed=0).shape == (1, 32, 32, 3)


def test_bad_adapters_are_refused_and_the_model_is_left_unchanged(taught, tmp_path):
    runs, _ = taught
    pipe = minidiff.load_pretrained("skewed")  # another pixel model, same design
    before = adapters.fingerprint(pipe.model)
    for path in runs.values():
        with pytest.raises(CheckpointError, match="was made for the model 'pixel'"):
            pipe.load_adapter(path)
        assert adapters.fingerprint(pipe.model) == before and pipe.attached is None
        assert "cross" not in pipe.tokenizer.vocab
    pipe = minidiff.load_pretrained("pixel")
    with pytest.raises(CheckpointError, match="not a minidiff finetune output folder"):
        pipe.load_adapter(tmp_path)
    (tmp_path / adapters.INFO_FILE).write_text("{broken")
    with pytest.raises(CheckpointError, match="is damaged"):
        pipe.load_adapter(tmp_path)
    pipe.load_adapter(runs["textual-inversion"])
    with pytest.raises(ValueError, match="is loaded; call unload_adapter"):
        pipe.load_adapter(runs["lora"])
    with pytest.raises(ValueError, match="no LoRA adapter is loaded"):
        pipe.set_adapter_scale(0.5)
    pipe.unload_adapter()
    with pytest.raises(ValueError, match="only LoRA has a scale"):
        pipe.load_adapter(runs["full"], scale=0.5)
    with pytest.raises(ValueError, match="no adapter is loaded"):
        pipe.unload_adapter()


def test_bad_teaching_is_refused_in_one_sentence(examples, tmp_path):
    def teach(**settings):
        cfg = FinetuneConfig(**{"method": "lora", "word": "cross", "steps": 1, **settings})
        finetune(examples, tmp_path / "out", cfg, watch=QUIET)

    with pytest.raises(ValueError, match="'circle' is already a word of the model's vocabulary"):
        teach(word="circle")
    with pytest.raises(ValueError, match="one lower-case word of letters"):
        teach(word="two words")
    with pytest.raises(ValueError, match="does not use the new word 'plus'"):
        teach(word="plus")
    with pytest.raises(ValueError, match="unknown method"):
        teach(method="dreambooth")
    with pytest.raises(ValueError, match="prior_weight must be a number >= 0"):
        teach(method="full", prior_weight=float("nan"))
    with pytest.raises(ValueError, match="lr must be a positive number"):
        teach(lr=float("inf"))
    with pytest.raises(ValueError, match="holds no PNG pictures"):
        finetune(tmp_path, tmp_path / "out2", FinetuneConfig(steps=1), watch=QUIET)
    assert not (tmp_path / "out" / adapters.INFO_FILE).exists()


def test_an_interrupted_run_resumes_to_the_same_word(examples, tmp_path):
    cfg = FinetuneConfig(method="textual-inversion", word="cross", steps=6, checkpoint_every=3)
    finetune(examples, tmp_path / "straight", cfg, watch=QUIET)
    finetune(examples, tmp_path / "halves", cfg, watch=Watch(progress=False, stop_at=3))
    assert not (tmp_path / "halves" / adapters.INFO_FILE).exists()
    finetune(examples, tmp_path / "halves", cfg, watch=QUIET, resume=True)
    a = adapters.read_adapter(tmp_path / "straight").vector()
    b = adapters.read_adapter(tmp_path / "halves").vector()
    assert torch.equal(a, b)


def test_the_command_line_teaches_and_draws(tmp_path, capsys):
    main(["dataset", "--concept", "style", "--out", str(tmp_path / "ex"), "--n", "6"])
    assert len(list((tmp_path / "ex").glob("*.png"))) == 6
    args = ["finetune", "--method", "textual-inversion", "--word", "sketched"]
    args += ["--images", str(tmp_path / "ex"), "--out", str(tmp_path / "run"), "--steps", "2"]
    main(args)
    assert "taught 'sketched' by textual-inversion in 2 steps" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(args)  # the folder holds a result already
    assert "already holds a finetune result" in capsys.readouterr().err
    main(["generate", "a red sketched star", "--adapter", str(tmp_path / "run"), "--n", "2",
          "--out", str(tmp_path / "grid.png")])  # fmt: skip
    assert (tmp_path / "grid.png").exists()


def test_the_shipped_results_load():
    pipe = minidiff.load_pretrained("pixel")
    for kind in concepts.KINDS:
        for method in ("textual-inversion", "lora", "lora-prior"):
            path = adapters.shipped(kind, method)
            assert "command" in (path / "card.md").read_text()
            pipe.load_adapter(path)
            assert pipe.tokenizer.vocab[-1] == concepts.WORDS[kind]
            pipe.unload_adapter()
    with pytest.raises(ValueError, match="no shipped result for 'object' by 'full'"):
        adapters.shipped("object", "full")
