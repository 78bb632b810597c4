"""Training throughput: one process with 2 threads against two ranks of 1 thread under torchrun.

    python benchmarks/bench_torchrun.py --presets latent fast --steps 80

Each configuration runs `minidiff train --preset P --steps N` in a fresh folder (two ranks through
`torchrun --nproc_per_node 2 -m minidiff train ...`, gloo on the CPU), and the throughput is read
from the run's log between step 20 and the last step (after warm-up): steps per second, and
pictures per second (two ranks train two batches of 64 a step). Run it on a quiet machine.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(preset: str, steps: int, ranks: int, out: Path) -> dict:
    train = ["-m", "minidiff", "train", "--preset", preset, "--steps", str(steps)]
    train += ["--out", str(out), "--device", "cpu"]
    if ranks == 1:
        command = [sys.executable, *train]
        threads = "2"
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(ranks)]
        command += ["--master_addr", "127.0.0.1", "--master_port", str(free_port()), *train]
        threads = "1"
    env = {**os.environ, "OMP_NUM_THREADS": threads}
    subprocess.run(command, env=env, check=True, capture_output=True)
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    start = next(r for r in records if r["step"] >= 20)
    end = records[-1]
    rate = (end["step"] - start["step"]) / (end["elapsed"] - start["elapsed"])
    return {"steps_per_s": rate, "pictures_per_s": rate * 64 * ranks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["latent", "fast-pixel"])
    parser.add_argument("--steps", type=int, default=80)
    args = parser.parse_args()
    print("| preset | one process, 2 threads | two ranks, 1 thread each | ratio (pictures/s) |")
    print("| --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for preset in args.presets:
            one = run(preset, args.steps, 1, Path(tmp) / f"{preset}-1")
            two = run(preset, args.steps, 2, Path(tmp) / f"{preset}-2")
            print(
                f"| {preset} | {one['pictures_per_s']:.0f} pictures/s "
                f"({one['steps_per_s']:.2f} steps/s) | {two['pictures_per_s']:.0f} pictures/s "
                f"({two['steps_per_s']:.2f} steps/s) | "
                f"{two['pictures_per_s'] / one['pictures_per_s']:.2f}x |",
                flush=True,
            )


if __name__ == "__main__":
    main()
