"""Saving and loading weights: safetensors only, written atomically, checked on the way in.

Two kinds of file, both a single `.safetensors` file with the config in its metadata:
- a *model file* (`kind: model`): the weights of one TextToImage network and its ModelConfig; this
is
  what ships in the package and what `load_pretrained` and `minidiff evaluate` read;
- a *training checkpoint* (`kind: training`): the networks (for a text-to-image model: the network
  and its EMA copy), the optimizers' state, the step, the seconds spent and the training config,
  so an interrupted run resumes exactly where it stopped (minidiff.scaffold writes and reads it).

A file is written to a temporary name beside its target and renamed over it (os.replace is atomic),
so a run killed mid-write leaves the previous file intact, never half a file.
"""

import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .autoencoder import Autoencoder, AutoencoderConfig
from .model import ModelConfig, TextToImage

FORMAT = "minidiff"
DEFAULT_AUTOENCODER = Path(__file__).parent / "weights" / "autoencoder.safetensors"
SCENE_WEIGHTS = Path(__file__).parent / "weights" / "minidiff-scenes.safetensors"
# the scene model's autoencoder: 48 x 48 scenes to 12 x 12 x 4 latents (train-autoencoder --world)
SCENE_AUTOENCODER = Path(__file__).parent / "weights" / "scene-autoencoder.safetensors"


class CheckpointError(ValueError):
    """A weights file that cannot be used: missing, corrupt, of the wrong kind, or made for
    another model."""


def write_file(
    tensors: dict[str, torch.Tensor], metadata: dict[str, str], path: str | os.PathLike
) -> None:
    """Write tensors and string metadata as one safetensors file, atomically: to a temporary name
    beside `path`, then renamed over it, so an interrupted write leaves the old file intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".partial", dir=path.parent)
    os.close(fd)
    try:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp, metadata)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes owner-only files; weights are ordinary files
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def read_file(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of a minidiff safetensors file; CheckpointError if it is missing,
    unreadable or not minidiff's. Only safetensors is read: no pickle, no code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no weights file at '{path}'")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise CheckpointError(
            f"'{path}' is not a readable safetensors file (truncated or corrupt: {e})"
        ) from None
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"'{path}' is a safetensors file but not a minidiff checkpoint")
    return tensors, metadata


def save_weights(
    module: torch.nn.Module,
    path: str | os.PathLike,
    kind: str,
    info: dict | None = None,
    dtype: torch.dtype | None = None,
) -> None:
    """Write a network with a `.config` (a dataclass with to_dict) as a file of the given kind,
    its weights optionally cast (e.g. to fp16), its config and `info` in the metadata."""
    state = {
        k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v)
        for k, v in module.state_dict().items()
    }
    metadata = {
        "format": FORMAT,
        "kind": kind,
        "config": json.dumps(module.config.to_dict()),
        "info": json.dumps(info or {}),
    }
    write_file(state, metadata, path)


def save_model(
    model: TextToImage,
    path: str | os.PathLike,
    info: dict | None = None,
    dtype: torch.dtype | None = None,
) -> None:
    """Write one network's weights and config as a model file (optionally cast, e.g. to fp16)."""
    save_weights(model, path, "model", info, dtype)


def load_state(model: torch.nn.Module, state: dict[str, torch.Tensor], path) -> None:
    """Load `state` into `model`, or say in one sentence how the file at `path` does not fit."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        detail = (
            f"missing {missing[:3]}"
            if missing
            else f"unexpected {unexpected[:3]}"
            if unexpected
            else f"shape of {wrong[0]} is {tuple(state[wrong[0]].shape)}, "
            f"expected {tuple(expected[wrong[0]].shape)}"
        )
        raise CheckpointError(f"'{path}' does not match this model's config ({detail})")
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()})


def load_model(
    path: str | os.PathLike, config: ModelConfig | None = None, device: str | torch.device = "cpu"
) -> tuple[TextToImage, dict]:
    """Build the network a model file (or a training checkpoint's EMA weights) describes.

    If `config` is given, the file must have been saved for exactly that config.
    Returns (model in eval mode, info dict).
    """
    tensors, metadata = read_file(path)
    if metadata.get("kind") not in ("model", "training"):
        raise CheckpointError(
            f"'{path}' holds {metadata.get('kind', 'unknown')} weights, not a text-to-image model"
        )
    stored = ModelConfig.from_dict(json.loads(metadata["config"]))
    if config is not None and config != stored:
        raise CheckpointError(
            f"'{path}' was saved for a different model config than the one "
            f"given ({_first_difference(stored.to_dict(), config.to_dict())})"
        )
    if metadata.get("kind") == "training":  # use the EMA weights, as a model file would
        tensors = {k[4:]: v for k, v in tensors.items() if k.startswith("ema.")}
    model = TextToImage(stored)
    load_state(model, tensors, path)
    return model.to(device).eval(), json.loads(metadata.get("info", "{}"))


def _first_difference(a: dict, b: dict, where: str = "") -> str:
    """The first setting in which two configs (as dicts, nested) differ, in words."""
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict) and x != y:
            return _first_difference(x, y, f"{where}{key}.")
        if x != y:
            return f"{where}{key}: file has {x}, given {y}"
    return "no difference found"


def save_autoencoder(model: Autoencoder, path: str | os.PathLike, info: dict | None = None) -> None:
    """Write an autoencoder's weights (fp16) and config (with its scale_factor)."""
    save_weights(model, path, "autoencoder", info, dtype=torch.float16)


def load_autoencoder(
    path: str | os.PathLike | None = None, device: str | torch.device = "cpu"
) -> Autoencoder:
    """The autoencoder at `path` (default: the shipped one) in eval mode, its info in `.info`."""
    path = Path(path or DEFAULT_AUTOENCODER)
    tensors, metadata = read_file(path)
    if metadata.get("kind") != "autoencoder":
        raise CheckpointError(f"'{path}' holds a {metadata.get('kind')} file, not an autoencoder")
    model = Autoencoder(AutoencoderConfig.from_dict(json.loads(metadata["config"])))
    load_state(model, tensors, path)
    model.info = json.loads(metadata.get("info", "{}"))
    return model.to(device).eval()


def run_checkpoint(out: Path, resume: bool) -> Path:
    """The training checkpoint of the run folder `out`, after checking that a new run does not
    overwrite one (resume=False) and that a resumed run has one to resume (resume=True)."""
    ckpt = Path(out) / "checkpoint.safetensors"
    if ckpt.exists() and not resume:
        raise FileExistsError(
            f"'{out}' already holds a run; pass resume=True (--resume) to "
            "continue it, or choose another output folder"
        )
    if resume and not ckpt.exists():
        raise FileNotFoundError(f"there is no checkpoint to resume in '{out}'")
    return ckpt


def save_training(
    path: str | os.PathLike,
    modules: dict[str, torch.nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    config: dict,
    train_config: dict,
    step: int,
    elapsed: float,
) -> None:
    """A training checkpoint: every module's weights under its name ("model.", "ema."), every
    optimizer's state ("opt.<param>.<name>"), the networks' config, the training config, the
    step and the seconds spent (minidiff.scaffold writes it)."""
    tensors = {
        f"{name}.{k}": v for name, module in modules.items() for k, v in module.state_dict().items()
    }
    param_groups = {}
    for name, optimizer in optimizers.items():
        opt_tensors, param_groups[name] = optimizer_state(optimizer, name)
        tensors.update(opt_tensors)
    metadata = {
        "format": FORMAT,
        "kind": "training",
        "config": json.dumps(config),
        "train_config": json.dumps(train_config),
        "step": str(step),
        "elapsed": str(round(elapsed, 3)),
        "param_groups": json.dumps(param_groups),
        "info": json.dumps({"step": step}),
    }
    write_file(tensors, metadata, path)


def load_training(
    path: str | os.PathLike,
    modules: dict[str, torch.nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    config: dict,
) -> dict[str, str]:
    """Restore a training checkpoint into live modules and optimizers, after checking that it was
    made for networks of this `config`; returns its metadata (step, elapsed, train_config)."""
    tensors, metadata = read_file(path)
    if metadata.get("kind") != "training":
        raise CheckpointError(f"'{path}' holds model weights only, not a training state to resume")
    stored = json.loads(metadata["config"])
    if stored != json.loads(json.dumps(config)):
        raise CheckpointError(
            f"'{path}' was saved by a run with another model config "
            f"({_first_difference(stored, config)})"
        )
    for name, module in modules.items():
        prefix = name + "."
        load_state(
            module, {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}, path
        )
    param_groups = json.loads(metadata["param_groups"])
    for name, optimizer in optimizers.items():
        restore_optimizer(optimizer, tensors, param_groups[name], name)
    return metadata


def optimizer_state(
    optimizer: torch.optim.Optimizer, prefix: str = "opt"
) -> tuple[dict[str, torch.Tensor], list]:
    """An optimizer's state as safetensors entries ("<prefix>.<param>.<name>") and its param
    groups, for a training checkpoint."""
    opt = optimizer.state_dict()
    tensors = {
        f"{prefix}.{idx}.{name}": torch.as_tensor(value)
        for idx, state in opt["state"].items()
        for name, value in state.items()
    }
    return tensors, opt["param_groups"]


def restore_optimizer(
    optimizer: torch.optim.Optimizer,
    tensors: dict[str, torch.Tensor],
    param_groups: list,
    prefix: str = "opt",
) -> None:
    """The inverse of optimizer_state: load its entries of a checkpoint's tensors."""
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith(prefix + "."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": param_groups})
