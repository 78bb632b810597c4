"""Teach a trained model a new word from a dozen pictures, three ways (notebook 13).

    minidiff finetune --method lora --word cross --images examples/ --out runs/cross-lora

- **textual-inversion** (Gal et al. 2022): the word gets one new row of the token embedding,
  started from the vector of `init_word`; only that row learns, everything else stays frozen, so
  every other prompt draws exactly what it drew before.
- **lora** (Hu et al. 2021), through the peft library: low-rank updates W + (alpha / r) B A on the
  U-Net's attention projections (`lora_targets="attention+conv"` adds its convolutions); the word's
  row is a fixed random vector, as DreamBooth uses a rare token, and the adapters learn what it
  means. Saved in peft's own format.
- **full** fine-tuning with prior preservation (DreamBooth, Ruiz et al. 2022): every weight learns;
  each step also takes the diffusion loss on pictures the base model drew of ordinary prompts
  (weight `prior_weight`), so that it keeps drawing those. LoRA can take the same loss
  (`prior_weight` > 0; its default is none, as in most LoRA recipes).

Each step is the training loss of minidiff.train (diffusion.training_loss) on all the examples,
in the training scaffold (minidiff.scaffold: learning-rate schedule, resumable atomic checkpoints,
progress bar, Ctrl-C). The result is a folder that `Pipeline.load_adapter` reads
(minidiff.adapters).
"""

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from . import adapters, pixels, scaffold, world
from .checkpoint import FORMAT, CheckpointError, save_model, write_file
from .concepts import read_examples
from .diffusion import training_loss
from .pipeline import Pipeline, load_pretrained
from .scaffold import LoopConfig, RunResult, Watch, learning_rate, step_generator
from .schedules import make_alpha_bar

METHODS = adapters.METHODS
LORA_TARGETS = {
    "attention": ["to_q", "to_k", "to_v", "to_out"],
    "attention+conv": ["to_q", "to_k", "to_v", "to_out", "conv1", "conv2"],
}
# Measured on the cross and the sketched style (benchmarks/bench_finetune.py)
DEFAULT_LR = {"textual-inversion": 2e-2, "lora": 3e-3, "full": 2e-4}


@dataclass
class FinetuneConfig(LoopConfig):
    method: str = "lora"
    word: str = "cross"
    steps: int = 300
    warmup: int = 20
    lr: float | None = None  # None: DEFAULT_LR of the method
    checkpoint_every: int = 100
    grad_clip: float = 1.0
    init_word: str = "shape"  # textual inversion starts the new row from this word's
    rank: int = 4  # LoRA
    lora_alpha: float = 4.0
    lora_targets: str = "attention"
    # the weight of the prior-preservation loss (0: none); None: 1 for full, 0 for LoRA
    prior_weight: float | None = None
    prior_pictures: int = 128
    prior_batch: int = 16

    def __post_init__(self):
        if self.lr is None and self.method in DEFAULT_LR:
            self.lr = DEFAULT_LR[self.method]
        if self.prior_weight is None:
            self.prior_weight = 1.0 if self.method == "full" else 0.0

    def check(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.lora_targets not in LORA_TARGETS:
            raise ValueError(
                f"unknown lora_targets {self.lora_targets!r}; choose one of "
                f"{', '.join(LORA_TARGETS)}"
            )
        if not (np.isfinite(self.prior_weight) and self.prior_weight >= 0):
            raise ValueError(f"prior_weight must be a number >= 0, got {self.prior_weight}")
        if self.method == "textual-inversion" and self.prior_weight > 0:
            raise ValueError(
                "textual inversion changes no weight the other prompts use, so it has no prior "
                "to preserve; leave prior_weight at 0"
            )
        if not (np.isfinite(self.lora_alpha) and self.lora_alpha > 0):
            raise ValueError(f"lora_alpha must be a positive number, got {self.lora_alpha}")
        super().check()

    def positive_counts(self) -> tuple[str, ...]:
        return ("rank", "prior_pictures", "prior_batch")


def prior_pictures(pipe: Pipeline, n: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """What the base model draws for n ordinary training captions: DreamBooth's class prior."""
    _, captions, _ = world.batch("train", 0, n, seed=seed)
    return pipe.generate(captions, n=1, seed=seed), captions


class FinetuneTask:
    """The scaffold's view of a fine-tuning run: the model (with the new word) and AdamW."""

    def __init__(self, model, config, tokenizer, images, captions, cfg: FinetuneConfig, prior=None):
        self.model, self.cfg, self.prediction = model, cfg, config.prediction
        dev = next(model.parameters()).device
        self.x0 = pixels.to_tensor(images).to(dev)  # (n, 3, 32, 32)
        self.ids = tokenizer.encode(captions).to(dev)  # (n, L)
        self.null_ids = tokenizer.encode("")[0].to(dev)
        self.prior = None
        if prior is not None:
            self.prior = (pixels.to_tensor(prior[0]).to(dev), tokenizer.encode(prior[1]).to(dev))
        self.alpha_bar = make_alpha_bar(config.schedule, config.T)
        params = [p for p in model.parameters() if p.requires_grad]
        self.modules = {"model": model}
        self.optimizers = {"opt": torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)}

    def _loss(self, x0, ids, generator) -> torch.Tensor:
        return training_loss(
            self.model, x0, ids, self.null_ids, self.alpha_bar, self.prediction,
            0.0, "uniform", generator=generator,
        )  # fmt: skip

    def step(self, step: int, progress: float | None) -> float:
        cfg = self.cfg
        opt = self.optimizers["opt"]
        scaffold.set_learning_rate(opt, learning_rate(step, cfg, progress))
        generator = step_generator(cfg.seed, step, self.x0.device)
        loss = self._loss(self.x0, self.ids, generator)
        if self.prior is not None:
            n = len(self.prior[0])
            rows = (torch.arange(cfg.prior_batch) + step * cfg.prior_batch) % n
            x0, ids = self.prior[0][rows], self.prior[1][rows]
            loss = loss + cfg.prior_weight * self._loss(x0, ids, generator)
        return scaffold.optimizer_step(opt, loss, step, cfg.grad_clip)


def check_examples(tokenizer, cfg: FinetuneConfig, captions: list[str]):
    """Refuse, before any work, a word the model knows and captions that cannot teach it: each
    must use the word, and every other word must be known. Returns the tokenizer with the word."""
    adapters.check_word(cfg.word, tokenizer)
    if cfg.method == "textual-inversion" and cfg.init_word not in tokenizer.ids:
        raise ValueError(f"init_word {cfg.init_word!r} is not a word of the vocabulary")
    words = type(tokenizer)(tokenizer.vocab + (cfg.word,), tokenizer.max_tokens)
    for number, caption in enumerate(captions, 1):
        if cfg.word not in words.words(caption):
            raise ValueError(
                f"caption {number} ({caption!r}) does not use the new word {cfg.word!r}; "
                "every example's caption must"
            )
    words.encode(captions)  # an unknown word gets the tokenizer's sentence
    return words


def _prepare(pipe: Pipeline, cfg: FinetuneConfig, words):
    """The base model made ready for the method: the new word's row added, what learns marked."""
    model = pipe.model
    tokenizer = pipe.tokenizer
    generator = torch.Generator().manual_seed(cfg.seed)
    table = model.text_encoder.token_embedding.weight.detach()
    if cfg.method == "textual-inversion":
        vector = table[tokenizer.ids[cfg.init_word]].clone()
    else:  # a rare token: random, as large as the vocabulary's vectors
        vector = torch.randn(table.shape[1], generator=generator).to(table) * table.std()
    adapters.extend_vocabulary(model, vector)
    model.requires_grad_(cfg.method == "full")
    row = len(words) - 1
    if cfg.method == "textual-inversion":
        weight = model.text_encoder.token_embedding.weight
        weight.requires_grad_(True)
        keep = torch.zeros_like(weight)
        keep[row] = 1.0
        weight.register_hook(lambda grad: grad * keep)  # only the new row learns
    elif cfg.method == "lora":
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(
            r=cfg.rank,
            lora_alpha=cfg.lora_alpha,
            target_modules=LORA_TARGETS[cfg.lora_targets],
            init_lora_weights=True,  # B = 0: the adapted model starts as the base model
        )
        torch.manual_seed(cfg.seed)  # peft draws A from torch's global generator
        return get_peft_model(model, lora), vector
    return model, vector


def trainable_count(model: torch.nn.Module, method: str) -> int:
    """The numbers the method learns: one embedding row, the LoRA matrices, or every weight."""
    if method == "textual-inversion":
        return model.text_encoder.token_embedding.weight.shape[1]
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def finetune(
    images_dir,
    out_dir,
    cfg: FinetuneConfig,
    *,
    base: str = "pixel",
    device: str | None = None,
    resume: bool = False,
    watch: Watch | None = None,
) -> RunResult:
    """Teach the model `base` (a shipped name or a model file) the word cfg.word from the pictures
    and captions in images_dir; write what `Pipeline.load_adapter` reads into out_dir."""
    cfg.check()
    pipe = load_pretrained(base, device=device)
    images, captions = read_examples(images_dir, pipe.picture_size)
    if pipe.latent or pipe.flow or pipe.config.world != "shapes":
        raise ValueError("minidiff finetune teaches pixel models of the one-object world")
    words = check_examples(pipe.tokenizer, cfg, captions)
    base_print = adapters.fingerprint(pipe.model)
    prior = None
    t0 = time.perf_counter()
    if cfg.prior_weight > 0:
        prior = prior_pictures(pipe, cfg.prior_pictures, cfg.seed)
    model, vector = _prepare(pipe, cfg, words)
    trainable = trainable_count(model, cfg.method)
    task = FinetuneTask(model, pipe.config, words, images, captions, cfg, prior)
    model.train()
    config = {"base": base_print, "model": pipe.config.to_dict()}
    out = Path(out_dir)
    result = scaffold.run(task, cfg, out, config, resume=resume, watch=watch, desc=cfg.method)
    if result.finished:
        seconds = result.history[-1]["elapsed"] if result.history else 0.0
        _write(out, model, words, cfg, vector, base_print, str(base), trainable, seconds, t0)
    return result


def _write(out: Path, model, words, cfg, vector, base_print, base_name, trainable, seconds, t0):
    """The run's result in the formats of the module docstring, and minidiff-adapter.json."""
    row = len(words) - 1
    if cfg.method == "full":
        info = {"new_words": [cfg.word], "finetune": asdict(cfg)}
        save_model(model, out / adapters.MODEL_FILE, info=info, dtype=torch.float16)
        files = [adapters.MODEL_FILE]
    else:
        if cfg.method == "textual-inversion":
            vector = model.text_encoder.token_embedding.weight[row].detach()
        write_file(
            {cfg.word: vector.float().cpu()},
            {"format": FORMAT, "kind": "word"},
            out / adapters.EMBEDS_FILE,
        )
        files = [adapters.EMBEDS_FILE]
        if cfg.method == "lora":
            model.save_pretrained(out)  # peft: adapter_model.safetensors, adapter_config.json
            files += [adapters.LORA_FILE, adapters.LORA_CONFIG]
    info = {
        "method": cfg.method,
        "word": cfg.word,
        "base": base_print,
        "base_name": f"the model '{base_name}'",
        "settings": json.loads(json.dumps(asdict(cfg))),
        "trainable_parameters": trainable,
        "training_seconds": round(seconds, 1),
        "seconds": round(time.perf_counter() - t0, 1),
        "files": {f: (out / f).stat().st_size for f in files},
    }
    (out / adapters.INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")


def check_folder(out_dir) -> None:
    """Refuse to overwrite a folder that holds another run's result."""
    if (Path(out_dir) / adapters.INFO_FILE).exists():
        raise CheckpointError(f"'{out_dir}' already holds a finetune result; choose another --out")
