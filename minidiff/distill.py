"""Few-step students: a trained model (the teacher) distilled into one that draws in 1 to 4 steps.

    minidiff distill --teacher flow --method reflow --out runs/turbo
    minidiff distill --teacher flow --method progressive --out runs/turbo-pd

Two methods, both starting the student from the teacher's weights, both in the training scaffold
(checkpoints, --resume, progress, a time budget), both at guidance 1:

- "reflow" [RF sec. 2.3]: the teacher draws `pairs` pictures from seeded noise with its own
  deterministic sampler (`teacher_steps` steps); the student then learns flow matching on the
  straight lines between each noise and the picture the teacher drew from it. The teacher's paths
  curve; these lines do not cross each other as much, so a few Euler steps follow them. Flow
  teachers only.
- "progressive" [Salimans & Ho 2022, alg. 2]: in each round the student learns to take in one
  step what its teacher takes in two (from training pictures noised to the student's timesteps),
  and the round's student becomes the next round's teacher: `teacher_steps` -> ... -> the fewest
  of `student_steps`. Flow teachers (Euler) and diffusion teachers (DDIM).

The student is written as a model file whose info says it is one: the steps it was made for,
and its default settings, so that the pipeline draws it right and refuses what it was not made for.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from . import pixels, scaffold
from .checkpoint import load_model, save_model
from .device import pick_device
from .diffusion import alpha_bar_at, noised, per_image, split_prediction
from .model import TextToImage
from .samplers import ddim_step, flow_euler_step, make_timesteps, sample
from .scaffold import LoopConfig, RunResult, Watch, learning_rate, step_generator
from .schedules import make_alpha_bar, sigma_from_alpha_bar
from .tokenizer import Tokenizer
from .train import ema_update

METHODS = ("reflow", "progressive")


@dataclass
class DistillConfig(LoopConfig):
    """A distillation: the scaffold's settings (LoopConfig), then the method's own."""

    method: str = "reflow"
    steps: int = 1200
    lr: float = 2e-4
    warmup: int = 50
    batch_size: int = 64
    grad_clip: float = 1.0
    ema_decay: float = 0.995
    teacher_steps: int = 16  # reflow: the teacher's steps per pair; progressive: round 1's
    pairs: int = 8192  # reflow: how many (noise, picture) pairs the teacher draws
    student_steps: tuple[int, ...] = (1, 2, 4)  # what the student is made for (and shipped for)

    def positive_counts(self) -> tuple[str, ...]:
        return ("batch_size", "teacher_steps", "pairs")

    def check(self) -> None:
        super().check()
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        steps = self.student_steps
        if not steps or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in steps):
            raise ValueError(f"student_steps must be whole numbers >= 1, got {steps!r}")
        if self.method == "progressive":
            rounds = math.log2(self.teacher_steps / min(steps))
            if rounds < 1 or rounds != int(rounds):
                raise ValueError(
                    f"progressive distillation halves the steps each round: teacher_steps "
                    f"({self.teacher_steps}) must be the fewest student steps ({min(steps)}) "
                    "times 2, 4, 8, ..."
                )


def rounds_of(cfg: DistillConfig) -> list[int]:
    """The student's steps in each progressive round: teacher_steps / 2, / 4, ... down to the
    fewest of student_steps (reflow: one round, of the most)."""
    if cfg.method == "reflow":
        return [max(cfg.student_steps)]
    n, out = cfg.teacher_steps, []
    while n > min(cfg.student_steps):
        n //= 2
        out.append(n)
    return out


PAIR_CHUNK = 256  # pictures the teacher draws per call


def _captions(world: str, chunk: int, seed: int) -> list[str]:
    """The captions of training batch `chunk` (of PAIR_CHUNK pictures)."""
    from .train import TrainConfig, training_batch

    cfg = TrainConfig(batch_size=PAIR_CHUNK, seed=seed)
    return list(training_batch(world, chunk, cfg)[1])


@torch.no_grad()
def draw_pairs(teacher, cfg: DistillConfig, progress: bool = True) -> dict[str, torch.Tensor]:
    """The teacher's (noise, picture, prompt ids) pairs for reflow: `cfg.pairs` training captions,
    each drawn from its own seeded noise with the teacher's deterministic sampler at guidance 1.
    Returns {"noise", "x0" (what the sampler works on: latents or pixels), "ids"}."""
    from tqdm.auto import tqdm

    from .pipeline import Pipeline

    pipe = Pipeline(teacher, next(teacher.parameters()).device)
    sampler = "euler" if pipe.flow else "ddim"
    noise, x0, ids = [], [], []
    for start in tqdm(range(0, cfg.pairs, PAIR_CHUNK), desc="teacher pairs", disable=not progress):
        n = min(PAIR_CHUNK, cfg.pairs - start)
        captions = _captions(pipe.config.world, start // PAIR_CHUNK, cfg.seed)[:n]
        p = pipe.prepare(
            captions,
            1,
            steps=cfg.teacher_steps,
            sampler=sampler,
            guidance_scale=1.0,
            seed=cfg.seed * 1_000_003 + start,
        )
        options = replace(p.options, clip_x0=False)
        out, _ = sample(p.eps_fn, p.x_T, pipe.alpha_bar, p.timesteps, options)
        noise.append(p.x_T.cpu())
        x0.append(out.cpu())
        ids.append(pipe.tokenizer.encode(captions))
    return {"noise": torch.cat(noise), "x0": torch.cat(x0), "ids": torch.cat(ids)}


class DistillTask:
    """The scaffold's view of a distillation: the student, its EMA copy, its teacher, AdamW."""

    def __init__(self, teacher: TextToImage, cfg: DistillConfig, pairs=None):
        self.cfg = cfg
        self.config = teacher.config
        self.flow = teacher.config.prediction == "flow"
        if cfg.method == "reflow" and not self.flow:
            raise ValueError(
                "reflow straightens a flow model's paths; distil a diffusion model with "
                "method 'progressive'"
            )
        self.student = copy.deepcopy(teacher).train()
        self.ema = copy.deepcopy(teacher).requires_grad_(False)
        self.teacher = copy.deepcopy(teacher).requires_grad_(False).eval()
        self.modules = {"model": self.student, "ema": self.ema, "teacher": self.teacher}
        params = [p for p in self.student.parameters() if p.requires_grad]
        self.optimizers = {"opt": torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)}
        self.alpha_bar = make_alpha_bar(teacher.config.schedule, teacher.config.T)
        self.tokenizer = Tokenizer.for_world(teacher.config.world)
        self.pairs = pairs
        self.rounds = rounds_of(cfg)
        self.per_round = cfg.steps // len(self.rounds)

    @property
    def device(self) -> torch.device:
        return next(self.teacher.parameters()).device

    def round_of(self, step: int) -> int:
        return min(step // self.per_round, len(self.rounds) - 1)

    def step(self, step: int, progress: float | None) -> float:
        cfg = self.cfg
        k = self.round_of(step)
        if cfg.method == "progressive" and k > 0 and step == k * self.per_round:
            self.teacher.load_state_dict(self.ema.state_dict())  # last round's student teaches
        local = replace(cfg, steps=self.per_round)
        lr = learning_rate(step - k * self.per_round, local, progress)
        scaffold.set_learning_rate(self.optimizers["opt"], lr)
        g = step_generator(cfg.seed, step, self.device)
        if cfg.method == "reflow":
            out, target = self._reflow(g)
        else:
            out, target = self._progressive(step, self.rounds[k], g)
        loss = F.mse_loss(out, target)
        value = scaffold.optimizer_step(self.optimizers["opt"], loss, step, cfg.grad_clip)
        ema_update(self.ema, self.student, step, cfg.ema_decay)  # as minidiff.train's
        return value

    def _reflow(self, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Flow matching on the straight line from the teacher's picture x0 to its noise z."""
        n, dev = self.pairs["x0"].shape[0], self.device
        pick = torch.randint(0, n, (self.cfg.batch_size,), generator=g, device=g.device).cpu()
        x0, z = self.pairs["x0"][pick].to(dev), self.pairs["noise"][pick].to(dev)
        ids = self.pairs["ids"][pick].to(dev)
        t = torch.randint(0, self.config.T, (len(pick),), generator=g, device=g.device).to(dev)
        x_t = noised(x0, t, self.alpha_bar, z, flow=True)
        return self.student(x_t, t, ids), z - x0

    def _training_batch(self, step: int):
        from .train import TrainConfig, training_batch

        images, captions = training_batch(
            self.config.world, step, TrainConfig(batch_size=self.cfg.batch_size, seed=self.cfg.seed)
        )
        x0 = pixels.to_tensor(images).to(self.device)
        if self.teacher.autoencoder is not None:
            with torch.no_grad():
                x0 = self.teacher.autoencoder.encode(x0)
        return x0, self.tokenizer.encode(list(captions)).to(self.device)

    def _progressive(self, step: int, n_student: int, g: torch.Generator):
        """The student's one step from t should land where the teacher's two steps land."""
        x0, ids = self._training_batch(step)
        B, dev = x0.shape[0], self.device
        fine = make_timesteps(2 * n_student, self.config.T)  # the teacher's grid
        which = torch.randint(0, n_student, (B,), generator=g, device=g.device).tolist()
        t = torch.tensor([fine[2 * i][0] for i in which], device=dev)
        t_mid = torch.tensor([fine[2 * i][1] for i in which], device=dev)
        t_end = torch.tensor([fine[2 * i + 1][1] for i in which], device=dev)
        eps = torch.randn(x0.shape, generator=g, device=g.device).to(dev)
        x_t = noised(x0, t, self.alpha_bar, eps, self.flow)
        ab = [alpha_bar_at(self.alpha_bar, s) for s in (t, t_mid, t_end)]
        with torch.no_grad():
            x_mid = self._teacher_step(x_t, t, ids, ab[0], ab[1])
            x_end = self._teacher_step(x_mid, t_mid, ids, ab[1], ab[2])
        out = self.student(x_t, t, ids)
        if self.flow:  # one Euler step from σ_t to σ_end lands on x_end: solve for u
            s_t, s_end = sigma_from_alpha_bar(ab[0]), sigma_from_alpha_bar(ab[2])
            return out, (x_end - x_t) / per_image(s_end - s_t, x_t)
        # one DDIM step lands on x_end: solve for x0, then write it as the model's prediction
        # (in float64: near pure noise the division loses float32's digits)
        x_t64, x_end64 = x_t.double(), x_end.double()
        a_t, s_t = ab[0].sqrt(), (1 - ab[0]).sqrt()
        a_e, s_e = ab[2].sqrt(), (1 - ab[2]).sqrt()
        r = per_image(s_e / s_t, x_t64)
        x0_target = (x_end64 - r * x_t64) / (per_image(a_e, x_t64) - r * per_image(a_t, x_t64))
        target = _as_prediction(x0_target, x_t64, ab[0], self.config.prediction)
        return out, target.to(x_t.dtype)

    def _teacher_step(self, x, t, ids, ab_t, ab_prev):
        out = self.teacher(x, t, ids)
        if self.flow:
            x_prev, _, _ = flow_euler_step(x, out, ab_t, ab_prev)
            return x_prev
        eps_hat, _ = split_prediction(out, x, ab_t, self.config.prediction)
        x_prev, _ = ddim_step(x, eps_hat, ab_t, ab_prev)
        return x_prev


def _as_prediction(x0: torch.Tensor, x_t: torch.Tensor, ab_t, prediction: str) -> torch.Tensor:
    """What a network predicting `prediction` should output for this x0 at x_t."""
    a, s = per_image(ab_t.sqrt(), x_t), per_image((1 - ab_t).sqrt(), x_t)
    if prediction == "x0":
        return x0
    if prediction == "eps":
        return (x_t - a * x0) / s
    return (a * x_t - x0) / s  # v: x0 = sqrt(ᾱ) x_t - sqrt(1-ᾱ) v


def distill(
    teacher_path: str | Path,
    cfg: DistillConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    device: str | None = None,
    watch: Watch | None = None,
) -> RunResult:
    """Distil the model at teacher_path (a file or a shipped name) into a few-step student in
    out_dir (model.safetensors at the end; checkpoints and --resume as `minidiff train`)."""
    from .checkpoint import FORMAT, read_file, run_checkpoint, write_file
    from .pipeline import weights_path

    cfg.check()
    dev = pick_device(device)
    path = weights_path(str(teacher_path))
    teacher, info = load_model(path, device=dev)
    if info.get("student"):
        raise ValueError(f"'{teacher_path}' is already a few-step student; distil its teacher")
    out = Path(out_dir)
    run_checkpoint(out, resume)  # refuse a used folder before the teacher draws its pairs
    pairs = None
    if cfg.method == "reflow":
        if teacher.config.prediction != "flow":
            raise ValueError(
                "reflow straightens a flow model's paths; distil a diffusion model with "
                "method 'progressive'"
            )
        file = out / "pairs.safetensors"
        if resume and file.exists():  # the teacher's pairs are drawn once per run
            pairs, _ = read_file(file)
        else:
            pairs = draw_pairs(teacher, cfg, progress=watch is None or watch.progress)
            write_file(pairs, {"format": FORMAT, "what": "reflow pairs"}, file)
    task = DistillTask(teacher, cfg, pairs)
    config = {"teacher": teacher.config.to_dict(), "method": cfg.method}
    result = scaffold.run(task, cfg, out, config, resume=resume, watch=watch, desc=cfg.method)
    if result.finished:
        n = min(cfg.student_steps) if cfg.method == "progressive" else max(cfg.student_steps)
        sampler = "euler" if task.flow else "ddim"
        student = {
            "method": cfg.method,
            "steps": list(cfg.student_steps),
            "teacher": str(teacher_path),
            "distill_config": json.loads(json.dumps(asdict(cfg))),
        }
        defaults = {"steps": n, "sampler": sampler, "guidance_scale": 1.0}
        last = result.history[-1] if result.history else {}
        info = {
            "step": result.step,
            "train_config": student["distill_config"],
            "elapsed_s": last.get("elapsed"),
            "final_loss": last.get("loss"),
            "student": student,
            "defaults": defaults,
        }
        save_model(task.ema, out / "model.safetensors", info=info)
    return result
