"""Why binding fails, measured: scene runs that differ only in their text encoder or U-Net.

    for v in bag transformer transformer6 short short-text6 short-unet short-nopool; do
        minidiff train --preset scenes-$v --out runs/scenes-$v
    done
    python benchmarks/bench_binding.py --guidance 1   # reads the runs, writes results/binding.json
    python benchmarks/bench_binding.py scenes-bag --no-timing   # one run, merged in

The shipped scene model's own run, for reference:

    scenes              the scenes preset: 30 minutes (5,380 steps here), transformer encoder
    scenes-pixel        its first recipe, on pixels (4,558 steps; its row is kept in the results)

From scratch, the same data, seed, batch and 1,500 steps (`train.preset`):

    scenes-short        the scene model's transformer text encoder (2 layers, width 128)
    scenes-short-bag    word embeddings averaged, no order (text_encoder kind "bag")
    scenes-short-text6  a 6-layer transformer: a bigger text encoder (about 0.8M parameters more)
    scenes-short-unet   U-Net channels 64, 128, 128: a bigger U-Net (about 1.0M more)
    scenes-short-nopool no pooled prompt vector in the time embedding (UNetConfig.pooled_text)

A new text encoder for the shipped scene model's trained U-Net (TrainConfig.unet_from): the U-Net
starts trained, the encoder fresh, and all of it trains 600 more steps on the same data:

    scenes-bag           a bag of words
    scenes-transformer   the 2-layer transformer again, from scratch
    scenes-transformer6  a 6-layer transformer: a bigger text encoder

For each: the swapped-binding test (minidiff.evaluate_scenes.swapped_bindings: the same words bound
the other way; 0.5 is chance, and the bag-of-words encoder is at chance by construction), GenEval's
categories (evaluate_scenes, --repeats), the parameters of each part, and seconds per training step
measured here (median of --timed steps after 3 warm-up steps, one process at a time).
"""

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from minidiff.course.paths import RESULTS_DIR
from minidiff.evaluate_scenes import evaluate_scenes, swapped_bindings
from minidiff.model import count_parameters
from minidiff.pipeline import load_pretrained
from minidiff.train import PRESETS, TextToImageTask, build_model, preset

RUNS = tuple(p for p in PRESETS if p.startswith("scenes"))  # the scene model and its variants


def seconds_per_step(name: str, timed: int) -> float:
    model_config, cfg = preset(name)
    task = TextToImageTask(build_model(model_config, cfg, torch.device("cpu")), cfg)
    for step in range(3):
        task.step(step, None)
    times = []
    for step in range(3, 3 + timed):
        start = time.perf_counter()
        task.step(step, None)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="runs to measure (default: every one in --runs)")
    parser.add_argument("--runs", default="runs", help="the folder holding the four runs")
    parser.add_argument(
        "--no-timing", action="store_true", help="keep the seconds per step already in the file"
    )
    parser.add_argument("--repeats", type=int, default=1, help="GenEval prompt repeats")
    parser.add_argument("--sampler", default="ddim", help="the shipped scene model's default")
    parser.add_argument("--guidance", type=float, default=1.0, help="its default too")
    parser.add_argument("--n", type=int, default=8, help="pictures per swapped-binding prompt")
    parser.add_argument("--timed", type=int, default=10, help="training steps timed per run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(RESULTS_DIR / "binding.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.exists() else {"runs": {}}
    results["threads"] = args.threads
    results["settings"] = {"sampler": args.sampler, "guidance_scale": args.guidance, "n": args.n}
    found = [n for n in RUNS if (Path(args.runs) / n / "model.safetensors").exists()]
    for name in args.names or found:
        if name not in RUNS:
            parser.error(f"unknown run {name!r}; choose from {', '.join(RUNS)}")
        before = results["runs"].get(name, {})
        pipe = load_pretrained(Path(args.runs) / name / "model.safetensors", device="cpu")
        settings = {"sampler": args.sampler, "guidance_scale": args.guidance}
        binding = swapped_bindings(pipe, n=args.n, progress=False, **settings)
        scores = evaluate_scenes(pipe, repeats=args.repeats, progress=False, **settings).scores
        model_config, cfg = preset(name)
        results["runs"][name] = {
            "text_encoder": pipe.config.text.kind,
            "text_layers": pipe.config.text.layers,
            "unet_channels": list(pipe.config.unet.channels),
            "steps": cfg.steps,
            "batch_size": cfg.batch_size,
            "text_parameters": count_parameters(pipe.model.text_encoder),
            "unet_parameters": count_parameters(pipe.model.unet),
            "seconds_per_step": before.get("seconds_per_step")
            if args.no_timing
            else seconds_per_step(name, args.timed),
            "binding": binding.accuracy,
            "bound_either_way": binding.both_bound,
            "geneval": {"overall": scores.overall, **scores.categories},
            "held_out": scores.held_out,
            "seen": scores.seen,
        }
        r = results["runs"][name]
        print(
            f"{name:>20}: colour binding {r['binding']['colour']:.3f}, position binding "
            f"{r['binding']['position']:.3f}, GenEval overall {r['geneval']['overall']:.3f}, "
            f"{r['seconds_per_step'] or float('nan'):.3f} s/step",
            flush=True,
        )
    from minidiff.course.binding import results_table

    results["runs"] = {n: results["runs"][n] for n in RUNS if n in results["runs"]}
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(results_table(results))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
