"""The detector: a small CNN that tells generated pictures from real renders (notebook 15).

    detector = load_detector()
    scores = detector.score(pictures)     # uint8 (N, 32, 32, 3) -> (N,) logits, high = generated
    roc_auc(detector.score(real), detector.score(generated))   # 1 = every pair ranked right

After Wang et al. 2020, "CNN-generated images are surprisingly easy to spot... for now"
(CNNDetection): a plain binary classifier, trained on real pictures against the pictures of ONE
generator, is then tested on generators it never saw, and after blur and JPEG; training with those
as augmentations (each with probability 1/2) is what made theirs robust. Here the real pictures
are the world's renders of the train split and the generated ones a pool that the training
generator (the shipped pixel model at its defaults: DDPM, 20 steps, guidance 1) draws once per run
for the same captions, kept in the run folder (pool.npz) so that a resumed run reads it back.

The network takes its first convolution at full resolution and only then halves the picture:
the traces a generator leaves are in the finest pixels, which early downsampling would blur
away. Global average pooling then reads the same trace anywhere in the picture.
The trace here is faint (the pixel model's backgrounds wander by about 3 of 255 levels where a
render's are exactly flat): without batch normalisation the same network stayed at chance for
400 steps; with it, it separates them within 300.

`roc_auc` is the threshold-free figure, `at_threshold` what a deployed detector does with one
threshold, chosen on validation pictures (`best_threshold`). Real renders are perfectly flat, so
`snap_to_palette` also makes a generated picture flat: the hard case for a detector that has
learned to read the generator's noise.
"""

import io
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from . import pixels, scaffold, world
from .checkpoint import CheckpointError, load_state, read_file, save_weights
from .pipeline import Pipeline, load_pretrained
from .scaffold import LoopConfig, Watch, learning_rate, step_generator

KIND = "detector"
DEFAULT_DETECTOR = Path(__file__).parent / "weights" / "detector.safetensors"
POOL_SEED = 100_000  # the training pool's batch i is drawn from seed POOL_SEED * (seed + 1) + i
# Augmentation strengths, uniform in these ranges, each applied with probability 1/2: Wang et
# al.'s blur sigma in [0, 3] px and JPEG quality in [30, 100] were for 256 px pictures;
# at 32 px a sigma of 1.5 already smears a small shape into its background.
BLUR_SIGMA = (0.25, 1.5)  # pixels
RESIZE_SCALE = (0.5, 1.0)  # down to this share of the side, then back up
JPEG_QUALITY = (30, 95)


@dataclass
class DetectorConfig:
    channels: tuple[int, ...] = (16, 32, 32, 64)  # 3x3 convolutions; all but the first halve

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "DetectorConfig":
        try:
            return cls(channels=tuple(int(c) for c in d["channels"]))
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"this is not a detector config ({e})") from None


def check_pictures(images, name: str = "pictures") -> np.ndarray:
    """`images` if they are uint8 (N, 32, 32, 3) with N >= 1, else one sentence saying how not."""
    shape = (world.IMAGE_SIZE, world.IMAGE_SIZE, 3)
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
        got = images.dtype if isinstance(images, np.ndarray) else type(images).__name__
        raise ValueError(f"{name} must be a uint8 numpy array of shape (N, 32, 32, 3), got {got}")
    if images.ndim != 4 or images.shape[1:] != shape or len(images) == 0:
        raise ValueError(f"{name} must have shape (N, 32, 32, 3) with N >= 1, got {images.shape}")
    return images


class Detector(nn.Module):
    """Pictures (N, 3, 32, 32) in [-1, 1] -> logits (N,): above 0 says generated."""

    def __init__(self, config: DetectorConfig | None = None):
        super().__init__()
        self.config = config = config or DetectorConfig()
        self.info: dict = {}  # how it was trained, from the weights file
        layers, c_in = [], 3
        for i, c in enumerate(config.channels):  # 32 px, then 16, 8, 4
            conv = nn.Conv2d(c_in, c, 3, stride=1 if i == 0 else 2, padding=1)
            layers += [conv, nn.BatchNorm2d(c), nn.ReLU()]
            c_in = c
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(x)  # (N, C, 4, 4)
        return self.head(h.mean((2, 3)))[:, 0]  # (N,)

    @torch.no_grad()
    def score(self, images: np.ndarray, batch_size: int = 500) -> np.ndarray:
        """uint8 (N, 32, 32, 3) pictures -> float64 (N,) logits, high = generated; sigmoid(score)
        is the detector's probability that a picture was generated. In eval mode."""
        check_pictures(images)
        was_training, device = self.training, self.head.weight.device
        self.eval()
        parts = [
            self(pixels.to_tensor(images[s : s + batch_size]).to(device)).double().cpu().numpy()
            for s in range(0, len(images), batch_size)
        ]
        self.train(was_training)
        return np.concatenate(parts)


# -- what a picture goes through: blur, resizing, JPEG ---------------------------------------------
def _finite(name: str, value, low: float, high: float) -> float:
    """`value` as a float in (low, high], or one sentence."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not (ok and low < value <= high):
        raise ValueError(f"{name} must be a number in ({low}, {high}], got {value!r}")
    return float(value)


def blur(images: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of standard deviation `sigma` pixels (kernel radius ceil(3 sigma), edge
    pixels repeated): uint8 (N, 32, 32, 3) -> the same. In numpy: a few small pictures at a
    time, as augmentation takes them, are slower through torch's threads."""
    sigma = _finite("sigma", sigma, 0, 10)
    r = math.ceil(3 * sigma)
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k = k / k.sum()
    x = check_pictures(images).astype(np.float64)  # (N, H, W, 3)
    for axis in (1, 2):  # rows, then columns: the 2D Gaussian is separable
        padded = np.pad(x, [(r, r) if a == axis else (0, 0) for a in range(4)], mode="edge")
        side = x.shape[axis]
        x = sum(w * padded.take(range(j, j + side), axis=axis) for j, w in enumerate(k))
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def resize(images: np.ndarray, scale: float) -> np.ndarray:
    """Down to round(32 * scale) pixels a side and back up, bilinear both ways (PIL)."""
    side = max(1, round(world.IMAGE_SIZE * _finite("scale", scale, 0, 1)))
    down, up = (side, side), (world.IMAGE_SIZE, world.IMAGE_SIZE)
    small = [Image.fromarray(p).resize(down, Image.BILINEAR) for p in check_pictures(images)]
    return np.stack([np.asarray(p.resize(up, Image.BILINEAR)) for p in small])


def jpeg(images: np.ndarray, quality: int) -> np.ndarray:
    """Each picture saved as a JPEG of `quality` (1-100, PIL's encoder) and read back."""
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise ValueError(f"quality must be a whole number from 1 to 100, got {quality!r}")
    out = []
    for p in check_pictures(images):
        buffer = io.BytesIO()
        Image.fromarray(p).save(buffer, format="JPEG", quality=quality)
        out.append(np.asarray(Image.open(buffer).convert("RGB")))
    return np.stack(out)


def augment(images: np.ndarray, generator: torch.Generator) -> np.ndarray:
    """Each picture on its own: blur, then resizing, then JPEG, each with probability 1/2 at a
    strength uniform in BLUR_SIGMA, RESIZE_SCALE and JPEG_QUALITY   [Wang et al., Blur+JPEG]."""
    out = check_pictures(images).copy()
    u = torch.rand(len(out), 6, generator=generator, dtype=torch.float64).numpy()  # (N, 6)

    def between(low_high: tuple, v: float) -> float:
        return low_high[0] + v * (low_high[1] - low_high[0])

    for i, (use_blur, s, use_resize, r, use_jpeg, q) in enumerate(u):
        x = out[i : i + 1]
        if use_blur < 0.5:
            x = blur(x, between(BLUR_SIGMA, s))
        if use_resize < 0.5:
            x = resize(x, between(RESIZE_SCALE, r))
        if use_jpeg < 0.5:
            x = jpeg(x, round(between(JPEG_QUALITY, q)))
        out[i] = x[0]
    return out


def snap_to_palette(images: np.ndarray) -> np.ndarray:
    """Each pixel to its nearest colour of the world (world.BACKGROUND or a world.PALETTE colour),
    in this picture's own shade of it: the median of its pixels that already lie within the
    world's colour jitter of it (world.COLOUR_JITTER per channel; the background has none), or
    the exact colour if none do. A real render's background and interior are kept as drawn;
    anti-aliased edges become hard ones (a half red, half grey pixel is nearest orange, so a red
    shape gets an orange fringe), and a generated picture's noise becomes flat colour."""
    palette = np.array([world.BACKGROUND, *world.PALETTE.values()], dtype=np.float64)  # (7, 3)
    reach = np.array([0] + [world.COLOUR_JITTER] * len(world.PALETTE))[:, None]  # (7, 1)
    x = check_pictures(images).reshape(len(images), -1, 3).astype(np.float64)  # (N, P, 3)
    nearest = ((x[:, :, None, :] - palette) ** 2).sum(-1).argmin(-1)  # (N, P)
    out = np.empty_like(x)
    for n in range(len(x)):
        for k in np.unique(nearest[n]):
            mine = x[n, nearest[n] == k]  # (M, 3)
            near = mine[(np.abs(mine - palette[k]) <= reach[k]).all(1)]
            shade = np.round(np.median(near, 0)) if len(near) else palette[k]
            out[n, nearest[n] == k] = shade
    return out.reshape(images.shape).astype(np.uint8)


# -- how well it tells them apart ------------------------------------------------------------------
def _scores(values, name: str) -> np.ndarray:
    s = np.asarray(values, dtype=np.float64).reshape(-1)
    if len(s) == 0 or not np.isfinite(s).all():
        raise ValueError(f"{name} must be a non-empty list of finite numbers")
    return s


def roc_auc(real_scores, fake_scores) -> float:
    """The area under the ROC curve: P(a generated picture scores above a real one), ties
    counting half. By ranks, tied scores sharing their mean rank   [Mann-Whitney U]:
        AUC = (R_fake - n_fake (n_fake + 1) / 2) / (n_fake n_real)
    with R_fake the sum of the generated pictures' ranks (1 = lowest) among all the scores."""
    real, fake = _scores(real_scores, "real_scores"), _scores(fake_scores, "fake_scores")
    _, where, counts = np.unique(
        np.concatenate([real, fake]), return_inverse=True, return_counts=True
    )
    mean_rank = np.cumsum(counts) - (counts - 1) / 2  # of each distinct score
    r_fake = mean_rank[where[len(real) :]].sum()
    return float((r_fake - len(fake) * (len(fake) + 1) / 2) / (len(fake) * len(real)))


def at_threshold(real_scores, fake_scores, threshold: float) -> dict[str, float]:
    """What one threshold does (a score >= threshold is called generated): the share of generated
    pictures caught, of real ones falsely flagged, and the accuracy over both classes weighted
    equally, (caught + 1 - false_alarms) / 2."""
    real, fake = _scores(real_scores, "real_scores"), _scores(fake_scores, "fake_scores")
    rates = {"caught": float((fake >= threshold).mean())}
    rates["false_alarms"] = float((real >= threshold).mean())
    return {"accuracy": (rates["caught"] + 1 - rates["false_alarms"]) / 2, **rates}


def best_threshold(real_scores, fake_scores) -> float:
    """The threshold of highest accuracy (as at_threshold) on these scores: a midpoint between
    two neighbouring distinct scores, or just outside them all; the lowest of equals."""
    real, fake = _scores(real_scores, "real_scores"), _scores(fake_scores, "fake_scores")
    v = np.unique(np.concatenate([real, fake]))
    candidates = np.concatenate([[v[0] - 1], (v[:-1] + v[1:]) / 2, [v[-1] + 1]])
    caught = 1 - np.searchsorted(np.sort(fake), candidates) / len(fake)
    false_alarms = 1 - np.searchsorted(np.sort(real), candidates) / len(real)
    return float(candidates[np.argmax(caught - false_alarms)])


# -- training --------------------------------------------------------------------------------------
@dataclass
class DetectorTraining(LoopConfig):
    steps: int = 1000
    lr: float = 2e-3
    warmup: int = 0  # a cosine from lr down to zero
    final_lr: float = 0.0
    checkpoint_every: int = 250
    log_every: int = 25
    batch_size: int = 64  # real pictures a step, and as many generated ones
    pool: int = 2000  # training pictures: their renders and the generator's pictures of them
    generator: str = "pixel"  # a shipped model's name or a model file, drawn at its defaults
    augment: bool = False  # blur, resizing and JPEG on both classes (`augment`)

    def positive_counts(self) -> tuple[str, ...]:
        return ("batch_size", "pool")

    def check(self) -> None:
        super().check()
        if not isinstance(self.generator, str) or not self.generator:
            raise ValueError(
                f"generator must name a shipped model or a file, got {self.generator!r}"
            )


def draw(
    pipe: Pipeline, captions: list[str], seed: int, batch: int = 100, **settings
) -> np.ndarray:
    """One picture per caption, `batch` captions a call, call i from seed `seed + i`, with the
    pipeline's settings (sampler, steps, ...) -> uint8 (N, 32, 32, 3)."""
    parts = []
    for i, s in enumerate(range(0, len(captions), batch)):
        parts.append(pipe.generate(captions[s : s + batch], n=1, seed=seed + i, **settings))
    return np.concatenate(parts)


def training_pool(
    out: str | os.PathLike, cfg: DetectorTraining
) -> tuple[np.ndarray, np.ndarray, float]:
    """(real, generated, seconds): train pictures 0 .. pool - 1 as rendered and as the training
    generator draws their captions (uint8 (pool, 32, 32, 3) each), and the seconds the drawing
    took. Drawn once per run and kept in out/pool.npz (written atomically)."""
    real, captions, _ = world.batch("train", 0, cfg.pool, cfg.seed)
    path = Path(out) / "pool.npz"
    key = json.dumps({"generator": cfg.generator, "pool": cfg.pool, "seed": cfg.seed})
    if path.exists():
        with np.load(path) as f:
            if str(f["key"]) == key:
                return real, f["fake"], float(f["seconds"])
    start = time.perf_counter()
    fake = draw(load_pretrained(cfg.generator), captions, seed=POOL_SEED * (cfg.seed + 1))
    seconds = time.perf_counter() - start
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.npz")
    np.savez(partial, fake=fake, seconds=seconds, key=key)
    partial.replace(path)
    return real, fake, seconds


class DetectorTask:
    """The scaffold's view of the detector's training: step k takes batch_size real and as many
    generated pictures from the pool, drawn with the step's generator (which also draws the
    augmentations), and the binary cross-entropy of the logits, 1 = generated."""

    def __init__(
        self, detector: Detector, cfg: DetectorTraining, real: np.ndarray, fake: np.ndarray
    ):
        self.detector, self.cfg, self.real, self.fake = detector, cfg, real, fake
        self.modules = {"model": detector}
        self.optimizers = {
            "opt": torch.optim.AdamW(detector.parameters(), lr=cfg.lr, weight_decay=0.01)
        }

    def step(self, step: int, progress: float | None) -> float:
        cfg, optimizer = self.cfg, self.optimizers["opt"]
        generator = step_generator(cfg.seed, step)
        pick = torch.randint(len(self.real), (2, cfg.batch_size), generator=generator).numpy()
        images = np.concatenate([self.real[pick[0]], self.fake[pick[1]]])  # (2B, 32, 32, 3)
        if cfg.augment:
            images = augment(images, generator)
        y = torch.cat([torch.zeros(cfg.batch_size), torch.ones(cfg.batch_size)])  # 1 = generated
        scaffold.set_learning_rate(optimizer, learning_rate(step, cfg, progress))
        loss = F.binary_cross_entropy_with_logits(self.detector(pixels.to_tensor(images)), y)
        return scaffold.optimizer_step(optimizer, loss, step)


def train_detector(
    out: str | os.PathLike,
    cfg: DetectorTraining | None = None,
    config: DetectorConfig | None = None,
    *,
    resume: bool = False,
    watch: Watch | None = None,
) -> Detector:
    """Train (or resume) a detector in the run folder `out`, in the training scaffold; at the end
    it is written to out/detector.safetensors with how it was made. Returns it in eval mode."""
    cfg = cfg or DetectorTraining()
    cfg.check()
    real, fake, pool_seconds = training_pool(out, cfg)
    torch.manual_seed(cfg.seed)
    task = DetectorTask(Detector(config).train(), cfg, real, fake)
    config = task.detector.config.to_dict()
    result = scaffold.run(task, cfg, out, config, resume=resume, watch=watch, desc="detector")
    detector = task.detector.eval()
    if result.finished:
        info = {
            "train_config": asdict(cfg),
            "pool_seconds": round(pool_seconds, 1),
            "train_seconds": round(result.history[-1]["elapsed"], 1),
            "parameters": sum(p.numel() for p in detector.parameters()),
        }
        save_detector(detector, Path(out) / "detector.safetensors", info)
        detector.info = info
    return detector


# -- saving and loading ----------------------------------------------------------------------------
def save_detector(detector: Detector, path: str | os.PathLike, info: dict | None = None) -> None:
    """The weights (float32, ~140 kB) and the config, as a file of kind "detector"."""
    save_weights(detector, path, KIND, info)


def load_detector(path: str | os.PathLike | None = None, device: str = "cpu") -> Detector:
    """The shipped detector (or the detector file at `path`) in eval mode, its record in `.info`;
    a file of another kind is refused in one sentence."""
    path = Path(path) if path is not None else DEFAULT_DETECTOR
    tensors, metadata = read_file(path)
    if metadata.get("kind") != KIND:
        raise CheckpointError(
            f"'{path}' holds {metadata.get('kind', 'unknown')} weights, not a detector"
        )
    detector = Detector(DetectorConfig.from_dict(json.loads(metadata["config"])))
    load_state(detector, tensors, path)
    detector.info = json.loads(metadata.get("info", "{}"))
    return detector.to(device).eval()
