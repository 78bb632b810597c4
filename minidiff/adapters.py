"""What `minidiff finetune` writes, and how a model takes it on and off again.

A fine-tuning run teaches a trained model one new word (minidiff.finetune). Its folder holds
`minidiff-adapter.json` (the method, the word, the base model's fingerprint, what it cost) and:

- textual-inversion: learned_embeds.safetensors, {word: vector}: one new row of the token embedding;
- lora: adapter_model.safetensors and adapter_config.json, in peft's own format (so that
  `peft.PeftModel.from_pretrained` loads them), and learned_embeds.safetensors: low-rank updates
  W + s B A of the U-Net's attention projections;
- full: model.safetensors, the whole fine-tuned model: every weight.

The new word gets the next token id: the vocabulary grows by one and so does the token
embedding. The word's vector of a LoRA run is a fixed random vector (DreamBooth's rare token):
the adapters learn what it means.

`Pipeline.load_adapter` / `unload_adapter` use `attach` and `detach` here; only the LoRA path
imports peft.
"""

import hashlib
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from .checkpoint import CheckpointError, load_model, read_file
from .model import TextToImage
from .tokenizer import Tokenizer

METHODS = ("textual-inversion", "lora", "full")
# What benchmarks/bench_finetune.py taught the shipped pixel model, small enough to ship:
# "<kind>-<method>" folders, kind "object" (the cross) or "style" (sketched)
SHIPPED = Path(__file__).parent / "weights" / "concepts"
INFO_FILE = "minidiff-adapter.json"
EMBEDS_FILE = "learned_embeds.safetensors"  # diffusers' name for a textual inversion's vectors
LORA_FILE = "adapter_model.safetensors"  # peft's names
LORA_CONFIG = "adapter_config.json"
MODEL_FILE = "model.safetensors"


def fingerprint(model: nn.Module) -> str:
    """A short hash of a model's weights (in float32), to tell which model an adapter was made
    for. Rows the vocabulary gained from an adapter are left out, so it names the base model."""
    h = hashlib.sha256()
    base = getattr(model, "base_vocab_size", None)
    for name, tensor in sorted(model.state_dict().items()):
        if "lora_" in name or ".base_layer." in name:
            name = name.replace(".base_layer", "")
            if "lora_" in name:
                continue
        t = tensor.detach().float().cpu()
        if name.endswith("token_embedding.weight") and base is not None:
            t = t[:base]
        h.update(name.encode())
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def check_word(word: str, tokenizer: Tokenizer) -> str:
    """A new word must be one lower-case word the tokenizer does not know yet."""
    plain = isinstance(word, str) and word.isalpha() and word.isascii()
    if not plain or word != word.lower():
        raise ValueError(f"the new word must be one lower-case word of letters a-z, got {word!r}")
    if word in tokenizer.vocab:
        raise ValueError(
            f"{word!r} is already a word of the model's vocabulary; teach a word it does not know"
        )
    return word


def extend_vocabulary(model: TextToImage, word_vector: torch.Tensor) -> nn.Embedding:
    """Give the model's token embedding one more row, `word_vector` (D,), in place; the config's
    vocab_size grows with it. Returns the old embedding, to put back with `shrink_vocabulary`."""
    old = model.text_encoder.token_embedding
    rows, width = old.weight.shape
    if word_vector.shape != (width,):
        raise CheckpointError(
            f"the new word's vector has shape {tuple(word_vector.shape)}, but this model's "
            f"token vectors have {width} numbers"
        )
    new = nn.Embedding(rows + 1, width).to(old.weight.device, old.weight.dtype)
    with torch.no_grad():
        new.weight[:rows] = old.weight
        new.weight[rows] = word_vector.to(old.weight)
    model.text_encoder.token_embedding = new
    model.base_vocab_size = getattr(model, "base_vocab_size", rows)
    text = replace(model.config.text, vocab_size=rows + 1)
    model.config = replace(model.config, text=text)
    model.text_encoder.config = text
    return old


def shrink_vocabulary(model: TextToImage, old: nn.Embedding) -> None:
    """Undo extend_vocabulary: the old embedding and vocab_size back."""
    model.text_encoder.token_embedding = old
    text = replace(model.config.text, vocab_size=old.weight.shape[0])
    model.config = replace(model.config, text=text)
    model.text_encoder.config = text
    del model.base_vocab_size


@dataclass
class Adapter:
    """A fine-tuning run's folder, read and checked."""

    path: Path
    method: str
    word: str
    base: str  # fingerprint of the model it was made for
    info: dict

    def vector(self) -> torch.Tensor:
        """The new word's token vector (D,) (textual inversion and LoRA)."""
        tensors, _ = read_file(self.path / EMBEDS_FILE)
        if self.word not in tensors:
            raise CheckpointError(f"'{self.path / EMBEDS_FILE}' holds no vector for {self.word!r}")
        return tensors[self.word].float()


def read_adapter(path: str | os.PathLike) -> Adapter:
    """The adapter in a `minidiff finetune` output folder, refused in one sentence if it is not
    one or is incomplete."""
    path = Path(path)
    info_file = path / INFO_FILE
    if not info_file.is_file():
        raise CheckpointError(
            f"'{path}' is not a minidiff finetune output folder (it has no {INFO_FILE})"
        )
    try:
        info = json.loads(info_file.read_text())
        method, word, base = info["method"], info["word"], info["base"]
    except (ValueError, KeyError, TypeError):
        raise CheckpointError(f"'{info_file}' is damaged: it does not say method, word and base")
    if method not in METHODS:
        raise CheckpointError(
            f"'{info_file}' names an unknown method {method!r}; known: {', '.join(METHODS)}"
        )
    needs = {
        "textual-inversion": [EMBEDS_FILE],
        "lora": [EMBEDS_FILE, LORA_FILE, LORA_CONFIG],
        "full": [MODEL_FILE],
    }[method]
    missing = [f for f in needs if not (path / f).is_file()]
    if missing:
        raise CheckpointError(f"the {method} adapter in '{path}' is missing {', '.join(missing)}")
    return Adapter(path, method, word, base, info)


@dataclass
class Attached:
    """What `attach` changed, so that `detach` can put it back."""

    adapter: Adapter
    model: TextToImage  # the model to draw with now
    tokenizer: Tokenizer
    old_embedding: nn.Embedding | None = None
    peft_model: object = None  # the peft.PeftModel around model (LoRA)
    scale: float = 1.0


def attach(model: TextToImage, tokenizer: Tokenizer, adapter: Adapter) -> Attached:
    """The model and tokenizer with the adapter's word and weights; `model` itself gains the new
    row (and LoRA layers) in place, except for a full fine-tune, which is a model of its own."""
    if adapter.base != fingerprint(model):
        made_for = adapter.info.get("base_name", "another model")
        raise CheckpointError(
            f"this {adapter.method} adapter was made for {made_for} (fingerprint {adapter.base}), "
            f"not for this model ({fingerprint(model)})"
        )
    check_word(adapter.word, tokenizer)
    words = Tokenizer(tokenizer.vocab + (adapter.word,), tokenizer.max_tokens)
    device = next(model.parameters()).device
    if adapter.method == "full":
        tuned, _ = load_model(adapter.path / MODEL_FILE, device=device)
        if tuned.config.text.vocab_size != len(words):
            raise CheckpointError(f"the model in '{adapter.path}' does not hold the new word")
        return Attached(adapter, tuned.eval(), words)
    old = extend_vocabulary(model, adapter.vector().to(device))
    attached = Attached(adapter, model, words, old_embedding=old)
    if adapter.method == "lora":
        from peft import PeftModel

        try:
            attached.peft_model = PeftModel.from_pretrained(model, adapter.path)
        except Exception as e:  # peft's own errors: a foreign or damaged adapter
            shrink_vocabulary(model, old)
            raise CheckpointError(f"peft could not load the LoRA adapter in '{adapter.path}': {e}")
        model.eval()
    return attached


def set_lora_scale(attached: Attached, scale: float) -> None:
    """How strongly the LoRA update counts: W + scale * (alpha / r) B A; 0 is the base model."""
    from peft.tuners.lora import LoraLayer

    for module in attached.model.modules():
        if isinstance(module, LoraLayer):
            for name in module.lora_A:
                module.set_scale(name, scale)
    attached.scale = scale


def detach(attached: Attached, model: TextToImage) -> None:
    """Undo attach on the base `model`: LoRA layers out, the vocabulary back to its size."""
    if attached.peft_model is not None:
        attached.peft_model.unload()
    if attached.old_embedding is not None:
        shrink_vocabulary(model, attached.old_embedding)


def shipped(kind: str, method: str) -> Path:
    """The folder of a shipped result: shipped("object", "lora") taught the pixel model "cross"."""
    path = SHIPPED / f"{kind}-{method}"
    if not path.is_dir():
        known = sorted(p.name for p in SHIPPED.glob("*-*")) if SHIPPED.is_dir() else []
        raise ValueError(
            f"no shipped result for {kind!r} by {method!r}; shipped: {', '.join(known) or 'none'}"
        )
    return path
