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
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import world
from .checkpoint import CheckpointError, load_state, read_file, save_weights

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
    return world.to_tensor(np.asarray(x))  # checks uint8 (N, H, W, 3)


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
        self.heads = nn.ModuleDict({name: nn.Linear(config.features, len(values))
                                    for name, values in world.ATTRIBUTES.items()})

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
            logits = self(images[start:start + batch_size])
            for name, parts in out.items():
                parts.append(logits[name].argmax(1).cpu().numpy())
        self.train(was_training)
        return {name: np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
                for name, parts in out.items()}

    @torch.no_grad()
    def embed_pictures(self, images, batch_size: int = 500) -> np.ndarray:
        """uint8 (N, 32, 32, 3) -> float64 features (N, D), in eval mode (for Frechet distance)."""
        was_training = self.training
        self.eval()
        parts = [self.features(images[s:s + batch_size]).cpu().double().numpy()
                 for s in range(0, len(images), batch_size)]
        self.train(was_training)
        return np.concatenate(parts)


def targets(attrs: list[world.Attributes]) -> dict[str, np.ndarray]:
    """The true value index of every attribute: {attribute: (N,) ints}."""
    return {name: np.array([values.index(getattr(a, name)) for a in attrs])
            for name, values in world.ATTRIBUTES.items()}


# -- saving and loading --------------------------------------------------------------------------
def save_judge(judge: Judge, path: str | os.PathLike, info: dict | None = None) -> None:
    """Weights in fp16 (half the size; the judge reads the same) and the config in the metadata."""
    save_weights(judge, path, KIND, info, dtype=torch.float16)


def load_judge(path: str | os.PathLike | None = None, device: str = "cpu") -> Judge:
    """The shipped judge (or the judge file at `path`), in eval mode; `.info` holds its record."""
    path = Path(path) if path is not None else DEFAULT_JUDGE
    if not path.exists() and path == DEFAULT_JUDGE:
        raise CheckpointError(f"the shipped judge weights are missing from the package ({path}); "
                              "reinstall minidiff or train one with 'minidiff train-judge'")
    tensors, metadata = read_file(path)
    if metadata.get("kind") != KIND:
        raise CheckpointError(f"'{path}' holds {metadata.get('kind', 'unknown')} weights, "
                              "not a judge")
    judge = Judge(JudgeConfig.from_dict(json.loads(metadata["config"])))
    load_state(judge, tensors, path)
    judge.info = json.loads(metadata.get("info", "{}"))
    return judge.to(device).eval()


# -- training ------------------------------------------------------------------------------------
def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Slight blur and pixel noise, random per picture: (N, 3, H, W) -> (N, 3, H, W).

    The blur mixes each picture with its 3x3 binomial blur by a random weight in [0, 1]; the noise is
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


def train_judge(steps: int = 600, batch_size: int = 128, seed: int = 0,
                out_path: str | os.PathLike | None = None, progress: bool = True,
                lr: float = 2e-3, config: JudgeConfig | None = None,
                accuracy_pictures: int = 5000) -> Judge:
    """Train a judge from scratch on validation-split pictures; save it to out_path if given.

    Step k uses validation pictures k * batch_size ... (k + 1) * batch_size - 1, so every picture is
    new. AdamW, learning rate decayed along a cosine to zero; the loss is the sum of the four
    attributes' cross-entropies. The saved file records the command and the accuracy on the first
    `accuracy_pictures` test pictures.
    """
    from tqdm.auto import tqdm

    if not (isinstance(steps, int) and steps >= 1 and isinstance(batch_size, int)
            and batch_size >= 1):
        raise ValueError(f"steps and batch_size must be positive integers, got {steps!r}, "
                         f"{batch_size!r}")
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    judge = Judge(config).train()
    optimizer = torch.optim.AdamW(judge.parameters(), lr=lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    start_time = time.time()
    bar = tqdm(range(steps), desc="training the judge", disable=not progress)
    for step in bar:
        images, _, attrs = world.batch("val", step * batch_size, batch_size)
        x = augment(world.to_tensor(images), generator)  # (B, 3, 32, 32)
        logits = judge(x)
        loss = sum(F.cross_entropy(logits[name], torch.from_numpy(y))
                   for name, y in targets(attrs).items())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 20 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}")
    judge.eval()
    seconds = time.time() - start_time
    if out_path is not None:
        accuracy = judge_accuracy(judge, n=accuracy_pictures)
        command = ["minidiff", "train-judge", "--out", str(out_path), "--steps", str(steps),
                   "--seed", str(seed), "--batch-size", str(batch_size)]
        info = {"command": shlex.join(command), "steps": steps, "batch_size": batch_size,
                "seed": seed, "lr": lr, "train_split": "val", "train_seconds": round(seconds),
                "test_pictures": accuracy_pictures,
                "test_accuracy": {k: round(v, 4) for k, v in accuracy.items()}}
        save_judge(judge, out_path, info)
        judge.info = info
    return judge


def judge_accuracy(judge: Judge, n: int = 5000, split: str = "test",
                   seed: int = 0) -> dict[str, float]:
    """Fraction of rendered pictures 0 .. n-1 of a split whose attribute the judge reads right."""
    correct = {name: 0 for name in world.ATTRIBUTES}
    for start in range(0, n, 1000):
        images, _, attrs = world.batch(split, start, min(1000, n - start), seed=seed)
        predicted = judge.predict(images)
        for name, y in targets(attrs).items():
            correct[name] += int((predicted[name] == y).sum())
    return {name: c / n for name, c in correct.items()}
