"""The training scaffold on its own, with a toy task (fit a line): the rules every training
shares, checked once, whatever network runs in it."""

import json
import math

import pytest
import torch

from minidiff import scaffold
from minidiff.scaffold import QUIET, LoopConfig, Watch


class Line:
    """Fit y = 3x - 1 from noisy points; every draw of step k from step_generator(seed, k)."""

    def __init__(self, cfg: LoopConfig):
        torch.manual_seed(cfg.seed)
        self.cfg, self.model = cfg, torch.nn.Linear(1, 1)
        self.modules = {"model": self.model}
        self.optimizers = {"opt": torch.optim.SGD(self.model.parameters(), lr=cfg.lr)}
        self.seen = []  # the first x of every step's batch

    def step(self, step: int, progress: float | None) -> float:
        generator = scaffold.step_generator(self.cfg.seed, step)
        x = torch.randn(16, 1, generator=generator)
        self.seen.append(float(x[0, 0]))
        loss = ((self.model(x) - (3 * x - 1)) ** 2).mean()
        scaffold.set_learning_rate(self.optimizers["opt"], scaffold.learning_rate(step, self.cfg))
        return scaffold.optimizer_step(self.optimizers["opt"], loss, step)


CFG = LoopConfig(steps=12, lr=0.1, warmup=2, checkpoint_every=4, log_every=2)


def test_every_step_draws_its_own_batch_and_the_same_step_the_same():
    a = [torch.randn(3, generator=scaffold.step_generator(0, k)) for k in range(4)]
    assert all(not torch.equal(a[i], a[j]) for i in range(4) for j in range(i))
    assert torch.equal(a[2], torch.randn(3, generator=scaffold.step_generator(0, 2)))
    assert not torch.equal(a[2], torch.randn(3, generator=scaffold.step_generator(1, 2)))


def test_the_schedule_warms_up_then_decays_to_its_final_share():
    cfg = LoopConfig(steps=100, lr=1.0, warmup=10, final_lr=0.1)
    lrs = [scaffold.learning_rate(k, cfg) for k in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(b <= a for a, b in zip(lrs[10:], lrs[11:]))
    assert scaffold.learning_rate(100, cfg) == pytest.approx(0.1)
    assert scaffold.learning_rate(50, cfg, progress=0.5) == pytest.approx(0.1 + 0.9 * 0.5)


def test_a_run_learns_logs_and_resumes_exactly(tmp_path):
    whole = Line(CFG)
    result = scaffold.run(whole, CFG, tmp_path / "whole", {"line": 1}, watch=QUIET)
    assert result.finished and result.step == 12
    assert result.history[-1]["loss"] < result.history[0]["loss"] / 2  # it learns
    assert [r["step"] for r in result.history] == [2, 4, 6, 8, 10, 12]
    half = Line(CFG)
    stopped = scaffold.run(
        half, CFG, tmp_path / "half", {"line": 1}, watch=Watch(progress=False, stop_at=5)
    )
    assert not stopped.finished and stopped.step == 5
    resumed = Line(CFG)
    scaffold.run(resumed, CFG, tmp_path / "half", {"line": 1}, resume=True, watch=QUIET)
    assert half.seen + resumed.seen == whole.seen  # the same batches, in the same order
    assert torch.equal(resumed.model.weight, whole.model.weight)
    log = [json.loads(line) for line in (tmp_path / "half" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 4, 5, 6, 8, 10, 12]


def test_resume_refuses_other_settings_and_other_networks(tmp_path):
    scaffold.run(Line(CFG), CFG, tmp_path, {"line": 1}, watch=Watch(progress=False, stop_at=4))
    other = LoopConfig(**{**CFG.__dict__, "lr": 0.5})
    with pytest.raises(ValueError, match="other training settings"):
        scaffold.run(Line(other), other, tmp_path, {"line": 1}, resume=True, watch=QUIET)
    with pytest.raises(ValueError, match="another model config"):
        scaffold.run(Line(CFG), CFG, tmp_path, {"line": 2}, resume=True, watch=QUIET)


def test_a_non_finite_loss_stops_before_it_reaches_the_weights(tmp_path):
    task = Line(CFG)
    before = task.model.weight.detach().clone()
    with pytest.raises(scaffold.TrainingDiverged, match="loss became nan at step 0"):
        scaffold.optimizer_step(task.optimizers["opt"], torch.tensor(math.nan), 0)
    assert torch.equal(task.model.weight, before)


@pytest.mark.parametrize(
    "name, value",
    [("steps", 0), ("log_every", -1), ("lr", math.inf), ("minutes", math.nan), ("final_lr", 2.0)],
)
def test_bad_loop_settings_are_refused_in_one_sentence(tmp_path, name, value):
    cfg = LoopConfig(**{**CFG.__dict__, name: value})
    with pytest.raises(ValueError, match=name) as e:
        scaffold.run(Line(CFG), cfg, tmp_path, {}, watch=QUIET)
    assert "\n" not in str(e.value)
