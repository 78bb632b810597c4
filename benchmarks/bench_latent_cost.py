"""Is latent diffusion cheaper? The shipped pixel and latent models side by side, in one run.

    python benchmarks/bench_latent_cost.py          # 2 threads, as the other benchmarks
    python benchmarks/bench_latent_cost.py --train  # also: time to 90% adherence, from snapshots

For each model: U-Net FLOPs per picture (torch's FlopCounterMode), milliseconds per sampling step
for 8 pictures (one U-Net call, median of 30 after a warm-up), the whole `generate` of 8 pictures
at the defaults (median of 10), the decoder's FLOPs and milliseconds, and the memory a training
step keeps for its backward pass (the bytes of every tensor autograd saves, batch 64) next to the
weights' own bytes. The same FLOPs are counted again at larger picture sizes to show where the
saving grows. With --train, every snapshot of runs/fast2 (the pixel fast preset) and of
runs/latent is evaluated (quick set, defaults) until adherence on seen pairs reaches 0.9, and the
wall time of that step is read from the run's log. Writes benchmarks/results/latent_cost.json.
"""

import argparse
import json
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch

from minidiff import pixels, world
from minidiff.autoencoder import Autoencoder
from minidiff.course.paths import RESULTS_DIR, RUNS_DIR
from minidiff.model import TextToImage, count_parameters, unet_flops
from minidiff.pipeline import load_pretrained

RESULTS = RESULTS_DIR / "latent_cost.json"


def median_ms(fn, repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def saved_bytes(model: TextToImage, batch: int = 64) -> int:
    """Bytes of the tensors autograd keeps for the backward pass of one training step."""
    cfg = model.config.unet
    x = torch.randn(batch, cfg.image_channels, cfg.image_size, cfg.image_size)
    ids = torch.ones(batch, model.config.text.max_tokens, dtype=torch.long)
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x, torch.zeros(batch, dtype=torch.long), ids).square().mean().backward()
    model.zero_grad(set_to_none=True)
    model.eval()
    return total


def flops_at(model: TextToImage, pixels: int) -> int:
    """U-Net FLOPs per picture for pictures of side `pixels` (the same network, run larger)."""
    unet = model.config.unet
    side = pixels * unet.image_size // world.IMAGE_SIZE  # a latent is 4x smaller per side
    wider = replace(model.config, unet=replace(unet, image_size=side), autoencoder=None)
    return unet_flops(TextToImage(wider))


def time_to_90(run: Path, every: int) -> dict | None:
    from minidiff.evaluate import evaluate

    log = {r["step"]: r["elapsed"] for r in map(json.loads, (run / "log.jsonl").open())}
    for snapshot in sorted((run / "snapshots").glob("step-*.safetensors")):
        step = int(snapshot.stem.split("-")[1])
        if step % every:
            continue
        seen = evaluate(load_pretrained(snapshot), quick=True, progress=False).adherence["seen"]
        print(f"  {run.name} step {step}: seen {seen['all']:.3f}", flush=True)
        if seen["all"] >= 0.9:
            return {"step": step, "minutes": round(log[step] / 60, 2), "seen_all": seen["all"]}
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", action="store_true", help="also time training to 90%%")
    args = parser.parse_args()
    torch.set_num_threads(2)
    rows = {}
    for name in ("pixel", "latent"):
        pipe = load_pretrained(name, device="cpu")
        model, cfg = pipe.model, pipe.config.unet
        with torch.no_grad():
            context, mask = pipe.encode(["a red circle"], n=8, guided=False)
            x = torch.randn(8, cfg.image_channels, cfg.image_size, cfg.image_size)
            t = torch.full((8,), 500)
            step_ms = median_ms(lambda: model.unet(x, t, context, mask), repeats=30)  # noqa: B023
        generate_ms = median_ms(lambda: pipe.generate("a red circle", n=8), 10)  # noqa: B023
        row = {
            "input": [cfg.image_channels, cfg.image_size, cfg.image_size],
            "unet_parameters": count_parameters(model.unet),
            "unet_mflop_per_picture": round(unet_flops(model) / 1e6, 2),
            "ms_per_step_8_pictures": round(step_ms, 2),
            "generate_8_pictures_20_steps_ms": round(generate_ms, 1),
            "training_saved_mb_batch_64": round(saved_bytes(model) / 2**20, 1),
            "weights_mb_fp32": round(4 * count_parameters(model) / 2**20, 2),
            "unet_mflop_at": {p: round(flops_at(model, p) / 1e6) for p in (32, 64, 128, 256)},
        }
        if pipe.latent:
            from torch.utils.flop_counter import FlopCounterMode

            ae: Autoencoder = pipe.autoencoder
            z = torch.randn(8, 4, 8, 8)
            with torch.no_grad(), FlopCounterMode(display=False) as counter:
                ae.decode(z[:1])
            with torch.no_grad():
                row["decoder_ms_8_pictures"] = round(median_ms(lambda: ae.decode(z), 30), 2)  # noqa: B023
                images = pixels.to_tensor(world.batch("test", 0, 8)[0])
                row["encoder_ms_8_pictures"] = round(median_ms(lambda: ae.encode(images), 30), 2)  # noqa: B023
            row["decoder_mflop_per_picture"] = round(counter.get_total_flops() / 1e6, 2)
            row["autoencoder_parameters"] = count_parameters(ae)
        rows[name] = row
        print(name, json.dumps(row), flush=True)
    result = {"threads": 2, "device": "cpu", "rows": rows}
    if args.train:
        result["time_to_90"] = {
            "pixel (runs/fast2)": time_to_90(RUNS_DIR / "fast2", 250),
            "latent (runs/latent)": time_to_90(RUNS_DIR / "latent", 250),
        }
        print(json.dumps(result["time_to_90"]))
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
