"""The scenes world's measurements: what drawing data costs, how well the scene judge reads.

    python benchmarks/bench_scenes.py                 # 2000 test scenes, 20 timed batches
    python benchmarks/bench_scenes.py --smoke         # small sizes: checks that the script runs

1. Data cost: milliseconds to draw a batch of 64 scenes (`scenes.batch`, median of --repeats after
   a warm-up), next to a batch of 64 one-object pictures (`world.batch`); a training step of the
   shipped 1.85M U-Net at batch 64 takes about 140 ms on the course's 2-core machine.
2. The scene judge's agreement with the truth on --scenes test scenes, per object (colour, shape,
   size, cell, all four), objects read where there are none, and scenes read exactly: on the
   rendered pictures and after `blur_and_noise` (3 x 3 blur, noise of 12.75 levels).
3. The canvas decision: the share of single objects whose shape the judge reads after
   `blur_and_noise`, by object width (2000 objects each), as in the docstring of minidiff.scenes.
4. GenEval on the world's own pictures of the evaluation prompts: 1.0 in every category.
5. Latent or pixels for the scene model: the shipped autoencoder (trained on 32 x 32 one-object
   pictures; convolutional, so it takes 48 x 48 scenes to 12 x 12 x 4 latents) encodes and decodes
   the test scenes, and the judge reads the reconstructions. A latent scene model can draw no
   better than its autoencoder keeps.
"""

import argparse
import statistics
import time

import numpy as np
import report
import torch

from minidiff import geneval, pixels, scenes, world
from minidiff.checkpoint import load_autoencoder
from minidiff.scene_judge import agreement, blur_and_noise, read_scenes
from minidiff.scene_prompts import render_prompts

WIDTHS = (3.5, 4.5, 5.0, 6.0, 6.5, 7.0)  # 32 x 32 allows 3.5, 40 x 40 4.5, 48 x 48 6.5


def batch_ms(draw, repeats: int) -> float:
    draw(0)  # warm-up
    times = []
    for k in range(1, repeats + 1):
        start = time.perf_counter()
        draw(k)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def single_objects(width: float, n: int, rng: np.random.Generator):
    """n single objects of one width with the world's jitters in the centre cell: (pictures,
    shapes)."""
    shapes = [world.SHAPES[i] for i in rng.integers(len(world.SHAPES), size=n)]
    u = 2 * rng.random((n, 6)) - 1
    cx, cy = (scenes.CANVAS / 2 + world.POSITION_JITTER * u[:, i] for i in (0, 1))
    widths = width * (1 + world.SIZE_JITTER * u[:, 2])
    alpha = world.coverage(shapes, cx, cy, widths, scenes.CANVAS)[..., None]  # (n, S, S, 1)
    rgb = np.array([world.PALETTE[c] for c in rng.choice(world.COLOURS, n)])[:, None, None]
    pictures = (1 - alpha) * np.array(world.BACKGROUND) + alpha * rgb
    return np.round(pictures).astype(np.uint8), shapes


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=2000, help="test scenes the judge reads")
    parser.add_argument("--objects", type=int, default=2000, help="single objects per width")
    parser.add_argument("--repeats", type=int, default=20, help="timed batches of 64")
    parser.add_argument("--smoke", action="store_true", help="200 scenes, 200 objects, 3 repeats")
    report.add_common_options(parser)
    args = parser.parse_args()
    if args.smoke:
        args.scenes, args.objects, args.repeats = 200, 200, 3
    report.apply_threads(args.threads)
    rows, extra = [], {"notes": []}

    scenes_ms = batch_ms(lambda k: scenes.batch("train", 64 * k, 64), args.repeats)
    world_ms = batch_ms(lambda k: world.batch("train", 64 * k, 64), args.repeats)
    rows.append(["data: ms per batch of 64 scenes (48 x 48)", scenes_ms])
    rows.append(["data: ms per batch of 64 one-object pictures (32 x 32)", world_ms])

    images, _, truth = scenes.batch("test", 0, args.scenes)
    rng = np.random.default_rng(0)
    for name, pictures in (("rendered", images), ("blurred, noisy", blur_and_noise(images, rng))):
        scores = agreement(truth, read_scenes(pictures))
        extra[f"judge {name}"] = scores
        for k, v in scores.items():
            rows.append([f"judge on {args.scenes} {name} test scenes: {k}", v])
    extra["objects_read"] = sum(len(s) for s in truth)

    for width in WIDTHS:
        pictures, shapes = single_objects(width, args.objects, rng)
        found = read_scenes(blur_and_noise(pictures, rng))
        right = np.mean([len(f) == 1 and f[0].shape == s for f, s in zip(found, shapes)])
        rows.append([f"shape read, blurred noisy single objects {width} px wide", float(right)])

    autoencoder = load_autoencoder(device="cpu")
    with torch.no_grad():
        kept = pixels.to_uint8(autoencoder.decode(autoencoder.encode(pixels.to_tensor(images))))
    for k, v in agreement(truth, read_scenes(kept)).items():
        rows.append([f"judge on the autoencoder's reconstructions of the test scenes: {k}", v])

    prompts = geneval.evaluation_prompts()
    result = geneval.score(prompts, read_scenes(render_prompts([p.prompt for p in prompts])))
    rows.append(
        [f"GenEval overall, the world's own pictures ({len(prompts)} prompts)", result.overall]
    )
    extra["notes"].append(result.table())
    extra["notes"].append(f"objects in the {args.scenes} test scenes: {extra['objects_read']}")
    report.finish(
        "the scenes world: data cost and the scene judge", ["measure", "value"], rows, extra, args
    )


if __name__ == "__main__":
    main()
