"""Model size against quality: three sizes about 4x apart, the same recipe and 5-minute budget.

    python benchmarks/train_size_ladder.py            # trains what is missing, then measures all
    python benchmarks/train_size_ladder.py --measure  # measures the runs already in runs/

Each size scales the U-Net channels and the text encoder width together and trains with the fast
preset (`minidiff train --preset fast-pixel`, then named fast: uniform t, EMA 0.995, a
5-minute wall-clock budget on both cores). Each model is then measured by `minidiff.evaluate` at
the defaults (guidance 1) and at
guidance 1.5, its snapshot at step 500 (the same pictures seen by every size) at guidance 1, and
its cost is counted: U-Net FLOPs per picture (torch's FlopCounterMode) and the
training compute it spent (steps x batch x 3 x U-Net FLOPs, the usual forward + backward
estimate). The numbers go to benchmarks/results/size_ladder.json, which notebook 09 reads; a grid
of samples from each size goes to figures/09_size_ladder.png.
"""

import argparse
import json
from dataclasses import replace
from pathlib import Path

import torch

from minidiff.course.paths import RESULTS_DIR, RUNS_DIR
from minidiff.evaluate import evaluate
from minidiff.model import TextToImage, count_parameters, unet_flops
from minidiff.pipeline import load_pretrained
from minidiff.train import preset, train

RESULTS = RESULTS_DIR / "size_ladder.json"
# name: (U-Net channels, text encoder width)
SAME_STEPS = 500  # every size gets this far in 5 minutes
SIZES = {"S": ((24, 48, 48), 64), "M": ((48, 96, 96), 128), "L": ((96, 192, 192), 256)}


def config(name: str):
    model_config, cfg = preset("fast-pixel")
    channels, width = SIZES[name]
    model_config = replace(
        model_config,
        text=replace(model_config.text, width=width),
        unet=replace(model_config.unet, channels=channels, context_dim=width),
    )
    return model_config, cfg


def measure(name: str, run: Path) -> dict:
    model_config, cfg = config(name)
    model = TextToImage(model_config)
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    steps = log[-1]["step"]
    flops = unet_flops(model)
    row = {
        "size": name,
        "channels": list(SIZES[name][0]),
        "text_width": SIZES[name][1],
        "parameters": count_parameters(model),
        "unet_parameters": count_parameters(model.unet),
        "unet_mflop_per_picture": round(flops / 1e6, 1),
        "steps": steps,
        "seconds": log[-1]["elapsed"],
        "train_pflop": round(3 * flops * steps * cfg.batch_size / 1e15, 3),
    }
    # the same number of steps (the same pictures seen), from the run's snapshot
    snapshot = load_pretrained(run / "snapshots" / f"step-{SAME_STEPS:06d}.safetensors")
    report = evaluate(snapshot, progress=False)
    row[f"at_step_{SAME_STEPS}"] = report.to_dict()
    print(
        f"{name} at step {SAME_STEPS}: seen {report.adherence['seen']['all']:.3f} held-out "
        f"{report.adherence['held_out']['all']:.3f} FD {report.frechet_distance:.1f}",
        flush=True,
    )
    pipe = load_pretrained(run / "model.safetensors")
    for guidance in (1.0, 1.5):
        report = evaluate(pipe, guidance_scale=guidance, progress=False)
        row[f"guidance_{guidance}"] = report.to_dict()
        print(
            f"{name} guidance {guidance}: seen {report.adherence['seen']['all']:.3f} held-out "
            f"{report.adherence['held_out']['all']:.3f} FD {report.frechet_distance:.1f}",
            flush=True,
        )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measure", action="store_true", help="only measure existing runs")
    parser.add_argument("--runs", default=str(RUNS_DIR), help="folder of the runs")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for name in SIZES:
        run = Path(args.runs) / f"ladder_{name}"
        if not args.measure and not (run / "model.safetensors").exists():
            model_config, cfg = config(name)
            print(
                f"training {name}: {count_parameters(TextToImage(model_config)):,} parameters",
                flush=True,
            )
            train(model_config, cfg, run, resume=(run / "checkpoint.safetensors").exists())
    rows = [measure(name, Path(args.runs) / f"ladder_{name}") for name in SIZES]
    RESULTS.write_text(
        json.dumps({"budget_minutes": preset("fast-pixel")[1].minutes, "rows": rows}, indent=1)
        + "\n"
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
