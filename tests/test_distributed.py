"""Two CPU ranks under PyTorch's own launcher (torchrun): the same weights on both, one data
stream each, files written once, and a resume that continues the very same run."""

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from minidiff.checkpoint import load_model

# Run under torchrun with 2 ranks: (a) 4 steps then stop, resumed to 8 (two calls of the
# scaffold, as two launches would); (b) the command line straight to 8 steps. Each rank saves its
# own weights of (a), so the test can compare them across ranks.
SCRIPT = textwrap.dedent(
    """
    import sys
    from dataclasses import replace
    from pathlib import Path

    import torch
    from safetensors.torch import save_file

    from minidiff import distributed, scaffold
    from minidiff.cli import main
    from minidiff.train import TextToImageTask, build_model, preset

    torch.set_num_threads(1)
    out = Path(sys.argv[1])
    ranks = distributed.setup()
    model_config, cfg = preset("tiny")
    cfg = replace(cfg, steps=8, checkpoint_every=4, log_every=1)

    def task():
        return TextToImageTask(build_model(model_config, cfg, torch.device("cpu")), cfg)

    config = model_config.to_dict()
    scaffold.run(task(), cfg, out / "a", config, watch=scaffold.Watch(progress=False, stop_at=4))
    resumed = task()
    scaffold.run(resumed, cfg, out / "a", config, resume=True, watch=scaffold.QUIET)
    weights = {f"{k}.{n}": p.detach().contiguous() for k, m in resumed.modules.items()
               for n, p in m.state_dict().items()}
    save_file(weights, str(out / f"rank{ranks.rank}.safetensors"))
    main(["train", "--preset", "tiny", "--steps", "8", "--out", str(out / "b"), "--device", "cpu"])
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(tmp_path: Path, nproc: int) -> subprocess.CompletedProcess:
    script = tmp_path / "two_ranks.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",  # what the torchrun command runs
        "--nproc_per_node",
        str(nproc),
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(free_port()),
        str(script),
        str(tmp_path),
    ]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    done = torchrun(out, 2)
    assert done.returncode == 0, done.stderr[-3000:]
    return out, done


def test_both_ranks_hold_the_same_weights(two_ranks):
    out, _ = two_ranks
    rank0, rank1 = load_file(out / "rank0.safetensors"), load_file(out / "rank1.safetensors")
    assert rank0.keys() == rank1.keys() and any(k.startswith("ema.") for k in rank0)
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), name


def test_a_resumed_run_is_the_run_without_the_interruption(two_ranks):
    """(a) stopped at 4 and resumed to 8; (b) ran 8 steps at once, through the command line."""
    out, done = two_ranks
    ema = {k[4:]: v for k, v in load_file(out / "rank0.safetensors").items() if k[:4] == "ema."}
    straight, _ = load_model(out / "b" / "model.safetensors")
    for name, value in straight.state_dict().items():
        assert torch.allclose(ema[name], value, atol=1e-6), name
    assert "trained to step 8 (2 processes)" in done.stdout


def test_rank_0_alone_writes_the_log(two_ranks):
    out, _ = two_ranks
    # once each, in order: (a) logs every step and resumed without a gap; (b) the preset's 5
    for run, expected in (("a", list(range(1, 9))), ("b", [5, 8])):
        lines = (out / run / "log.jsonl").read_text().splitlines()
        assert [json.loads(line)["step"] for line in lines] == expected, run


def test_each_rank_trains_on_its_own_batches(monkeypatch):
    """Rank r of N draws batch number step * N + r (and its noise): N ranks never see the same
    pictures in a step, and together they see every batch once."""
    from minidiff import distributed, train

    model_config, cfg = train.preset("tiny")
    task = train.TextToImageTask(train.build_model(model_config, cfg, torch.device("cpu")), cfg)
    drawn = []
    real = train.training_batch

    def recording(world, batch, cfg):
        drawn.append(batch)
        return real(world, batch, cfg)

    monkeypatch.setattr(train, "training_batch", recording)
    for rank in (0, 1):
        monkeypatch.setattr(distributed, "_current", distributed.Ranks(rank=rank, world_size=2))
        for step in (0, 1, 2):
            task.step(step, None)
    assert drawn == [0, 2, 4, 1, 3, 5]
