"""The judge: a small classifier that reads colour, shape, size and position from a picture.

It is what turns "did the model draw what I asked?" into a number (see `minidiff.evaluate`):

    judge = load_judge()
    judge.predict(pictures)        # uint8 (N, 32, 32, 3) -> {"colour": (N,) ints, "shape": ...}

Four convolutions and three max-pools take a picture down to a 4 x 4 map, which is flattened rather
than averaged: position is *where* the object is, and global average pooling would throw that away.
A linear layer makes a 128-number feature vector (`features`, also what the Frechet distance
compares) and four linear heads read the attributes from it, value indices in the order of
`world.COLOURS`, `world.SHAPES`, `world.SIZES` and `world.POSITIONS`.

It is trained on the *validation* split, which holds the held-out colour-shape pairs (the judge must
recognise a purple star, even though the generator never saw one), with a little pixel noise and
blur so that it stays right on slightly imperfect generated pictures. Its accuracy is measured on
the test split.
"""

import json
import os
import shlex
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import pixels, scaffold, world
from .checkpoint import CheckpointError, load_state, read_file, save_weights
from .scaffold import LoopConfig, Watch, learning_rate, step_generator

DEFAULT_JUDGE = Path(__file__).parent / "weights" / "judge.safetensors"
KIND = "judge"


@dataclass
class JudgeConfig:
    channels: tuple[int, ...] = (32, 64, 64, 64)  # one 3x3 convolution each, pools between
    features: int = 128

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "JudgeConfig":
        try:
            return cls(channels=tuple(d["channels"]), features=int(d["features"]))
        except (KeyError, TypeError) as e:
            raise ValueError(f"this is not a judge config ({e})") from None


def _as_model_input(x) -> torch.Tensor:
    """uint8 (N, 32, 32, 3) pictures or a float (N, 3, 32, 32) tensor in [-1, 1] -> the latter."""
    if isinstance(x, torch.Tensor) and x.is_floating_point():
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"a float input must be (N, 3, H, W) in [-1, 1], got {tuple(x.shape)}")
        return x
    if isinstance(x, torch.Tensor):
        x = x.cpu().numpy()
    return pixels.to_tensor(np.asarray(x))  # checks uint8 (N, H, W, 3)


class Judge(nn.Module):
    def __init__(self, config: JudgeConfig | None = None):
        super().__init__()
        self.config = config = config or JudgeConfig()
        self.info: dict = {}  # how it was trained and its test accuracy, from the weights file
        layers, c_in = [], 3
        for i, c in enumerate(config.channels):
            layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU()]
            if i < len(config.channels) - 1:
                layers.append(nn.MaxPool2d(2))  # 32 -> 16 -> 8 -> 4
            c_in = c
        self.body = nn.Sequential(*layers)
        side = world.IMAGE_SIZE // 2 ** (len(config.channels) - 1)
        self.embed = nn.Linear(c_in * side * side, config.features)
        self.heads = nn.ModuleDict(
            {
                name: nn.Linear(config.features, len(values))
                for name, values in world.ATTRIBUTES.items()
            }
        )

    def features(self, x) -> torch.Tensor:
        """Pictures -> feature vectors (N, D), D = config.features."""
        x = _as_model_input(x).to(self.embed.weight.device)  # (N, 3, 32, 32)
        h = self.body(x)  # (N, C, 4, 4)
        return F.relu(self.embed(h.flatten(1)))  # (N, D)

    def forward(self, x) -> dict[str, torch.Tensor]:
        """Pictures -> {attribute: logits (N, number of values)}."""
        f = self.features(x)
        return {name: head(f) for name, head in self.heads.items()}

    @torch.no_grad()
    def predict(self, images, batch_size: int = 500) -> dict[str, np.ndarray]:
        """uint8 (N, 32, 32, 3) pictures -> {attribute: (N,) value indices}, in eval mode."""
        was_training = self.training
        self.eval()
        out: dict[str, list] = {name: [] for name in world.ATTRIBUTES}
        for start in range(0, len(images), batch_size):
            logits = self(images[start : start + batch_size])
            for name, parts in out.items():
                parts.append(logits[name].argmax(1).cpu().numpy())
        self.train(was_training)
        return {
            name: np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
            for name, parts in out.items()
        }

    @torch.no_grad()
    def embed_pictures(self, images, batch_size: int = 500) -> np.ndarray:
        """uint8 (N, 32, 32, 3) -> float64 features (N, D), in eval mode (for Frechet distance)."""
        was_training = self.training
        self.eval()
        parts = [
            self.features(images[s : s + batch_size]).cpu().double().numpy()
            for s in range(0, len(images), batch_size)
        ]
        self.train(was_training)
        return np.concatenate(parts)


def targets(attrs: list[world.Attributes]) -> dict[str, np.ndarray]:
    """The true value index of every attribute: {attribute: (N,) ints}."""
    return {
        name: np.array([values.index(getattr(a, name)) for a in attrs])
        for name, values in world.ATTRIBUTES.items()
    }


# -- saving and loading --------------------------------------------------------------------------
def save_judge(judge: Judge, path: str | os.PathLike, info: dict | None = None) -> None:
    """Weights in fp16 (half the size; the judge reads the same) and the config in the metadata."""
    save_weights(judge, path, KIND, info, dtype=torch.float16)


def load_judge(path: str | os.PathLike | None = None, device: str = "cpu") -> Judge:
    """The shipped judge (or the judge file at `path`), in eval mode; `.info` holds its record."""
    path = Path(path) if path is not None else DEFAULT_JUDGE
    if not path.exists() and path == DEFAULT_JUDGE:
        raise CheckpointError(
            f"the shipped judge weights are missing from the package ({path}); "
            "reinstall minidiff or train one with 'minidiff train-judge'"
        )
    tensors, metadata = read_file(path)
    if metadata.get("kind") != KIND:
        raise CheckpointError(
            f"'{path}' holds {metadata.get('kind', 'unknown')} weights, not a judge"
        )
    judge = Judge(JudgeConfig.from_dict(json.loads(metadata["config"])))
    load_state(judge, tensors, path)
    judge.info = json.loads(metadata.get("info", "{}"))
    return judge.to(device).eval()


# -- training ------------------------------------------------------------------------------------
def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Slight blur and pixel noise, random per picture: (N, 3, H, W) -> (N, 3, H, W).

    The blur mixes each picture with its 3x3 binomial blur by a random weight in [0, 1]; the noise
    is
    Gaussian with a random standard deviation in [0, 0.1] (up to ~13 of 255 levels).
    """
    n = x.shape[0]
    k = torch.tensor([1.0, 2.0, 1.0]) / 4
    kernel = (k[:, None] * k[None, :]).expand(3, 1, 3, 3)  # one 3x3 blur per channel
    blurred = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel, groups=3)
    w = torch.rand(n, 1, 1, 1, generator=generator)
    sigma = 0.1 * torch.rand(n, 1, 1, 1, generator=generator)
    noise = torch.randn(x.shape, generator=generator)
    return ((1 - w) * x + w * blurred + sigma * noise).clamp(-1, 1)


@dataclass
class JudgeTraining(LoopConfig):
    steps: int = 600
    lr: float = 2e-3
    warmup: int = 0  # no warm-up: a cosine from lr down to zero
    final_lr: float = 0.0
    checkpoint_every: int = 100
    log_every: int = 20
    batch_size: int = 128

    def positive_counts(self) -> tuple[str, ...]:
        return ("batch_size",)


class JudgeTask:
    """The scaffold's view of the judge's training: step k reads validation pictures
    k * batch_size ... (k + 1) * batch_size - 1, so every picture is new, augmented with the
    step's generator; the loss is the sum of the four attributes' cross-entropies."""

    def __init__(self, judge: "Judge", cfg: JudgeTraining):
        self.judge, self.cfg = judge, cfg
        self.modules = {"model": judge}
        self.optimizers = {
            "opt": torch.optim.AdamW(judge.parameters(), lr=cfg.lr, weight_decay=0.01)
        }

    def step(self, step: int, progress: float | None) -> float:
        cfg, optimizer = self.cfg, self.optimizers["opt"]
        images, _, attrs = world.batch("val", step * cfg.batch_size, cfg.batch_size)
        x = augment(pixels.to_tensor(images), step_generator(cfg.seed, step))  # (B, 3, 32, 32)
        scaffold.set_learning_rate(optimizer, learning_rate(step, cfg, progress))
        logits = self.judge(x)
        loss = sum(
            F.cross_entropy(logits[name], torch.from_numpy(y)) for name, y in targets(attrs).items()
        )
        return scaffold.optimizer_step(optimizer, loss, step)


def train_judge(
    out: str | os.PathLike,
    cfg: JudgeTraining | None = None,
    config: JudgeConfig | None = None,
    resume: bool = False,
    watch: Watch | None = None,
    accuracy_pictures: int = 5000,
) -> "Judge":
    """Train (or resume) a judge from scratch on validation-split pictures in the run folder
    `out`, in the training scaffold (scaffold.run); at the end it is written to
    out/judge.safetensors with the command and its accuracy on the first `accuracy_pictures` test
    pictures. Returns it in eval mode."""
    cfg = cfg or JudgeTraining()
    cfg.check()
    torch.manual_seed(cfg.seed)
    task = JudgeTask(Judge(config).train(), cfg)
    result = scaffold.run(
        task,
        cfg,
        out,
        task.judge.config.to_dict(),
        resume=resume,
        watch=watch,
        desc="training the judge",
    )
    judge = task.judge.eval()
    if result.finished:
        accuracy = judge_accuracy(judge, n=accuracy_pictures)
        command = [
            "minidiff",
            "train-judge",
            "--out",
            str(out),
            "--steps",
            str(cfg.steps),
            "--seed",
            str(cfg.seed),
            "--batch-size",
            str(cfg.batch_size),
        ]
        info = {
            "command": shlex.join(command),
            "steps": cfg.steps,
            "batch_size": cfg.batch_size,
            "seed": cfg.seed,
            "lr": cfg.lr,
            "train_split": "val",
            "train_seconds": round(result.history[-1]["elapsed"]),
            "test_pictures": accuracy_pictures,
            "test_accuracy": {k: round(v, 4) for k, v in accuracy.items()},
        }
        save_judge(judge, Path(out) / "judge.safetensors", info)
        judge.info = info
    return judge


def judge_accuracy(
    judge: Judge, n: int = 5000, split: str = "test", seed: int = 0
) -> dict[str, float]:
    """Fraction of rendered pictures 0 .. n-1 of a split whose attribute the judge reads right."""
    correct = {name: 0 for name in world.ATTRIBUTES}
    for start in range(0, n, 1000):
        images, _, attrs = world.batch(split, start, min(1000, n - start), seed=seed)
        predicted = judge.predict(images)
        for name, y in targets(attrs).items():
            correct[name] += int((predicted[name] == y).sum())
    return {name: c / n for name, c in correct.items()}
