"""minidiff's DDIM loop against diffusers' DDIMScheduler, driving the same model from the same x_T.

    python benchmarks/bench_sampler_overhead.py                  # shipped weights, 20 steps
    python benchmarks/bench_sampler_overhead.py --steps 50 --repeats 20

Both loops sample 8 pictures of one prompt with classifier-free guidance, from the same starting
noise x_T, for the same number of steps:

- minidiff: `minidiff.samplers.sample` with the pipeline's guided `eps_fn` (what `generate` runs);
- diffusers: `DDIMScheduler` configured by `minidiff.diffusers_bridge.diffusers_scheduler` (same
  alphas_cumprod, prediction_type, "trailing" timesteps, set_alpha_to_one, clip_sample), stepping
  the same guided eps_hat in diffusers' usual loop (`diffusers_loop`).

Reported: the median time of each loop, the time of the network calls alone (so the rest is the
sampler's own bookkeeping and math), the same two loops with a stand-in network that costs almost
nothing (the per-step overhead of each sampler, isolated), and the largest absolute difference
between the two loops' final pictures in 0-255 pixel values. The runs alternate between the two
loops so that a slow spell of the machine hits both.
"""

import argparse
import time

import report
import torch

from minidiff import pixels, samplers
from minidiff.diffusers_bridge import diffusers_loop, diffusers_scheduler


def timed(run, device) -> float:
    start = time.perf_counter()
    run()
    report.sync(device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    report.add_sampling_options(parser, smoke_steps=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    pipe = report.sampling_setup(args)
    T, dev = pipe.config.T, pipe.device
    prepared = pipe.prepare(
        args.prompt,
        args.n,
        steps=args.steps,
        guidance_scale=args.guidance,
        seed=args.seed,
        sampler="ddim",
    )
    eps_fn, x_T, timesteps = prepared.eps_fn, prepared.x_T, prepared.timesteps
    output_fn = eps_fn  # both loops call the very same guided network call
    scheduler = diffusers_scheduler(pipe.config, "ddim", prediction="eps")

    def stand_in(x_t, t):  # a "network" that costs next to nothing: the samplers' cost alone
        return 0.1 * x_t

    runs = {
        ("minidiff samplers.sample", "model"): lambda: samplers.sample(
            eps_fn, x_T, pipe.alpha_bar, timesteps, prepared.options
        )[0],
        ("diffusers DDIMScheduler", "model"): lambda: diffusers_loop(
            scheduler, output_fn, x_T, args.steps
        ),
        ("network calls alone", "model"): lambda: [output_fn(x_T, t) for t, _ in timesteps][-1],
        ("minidiff samplers.sample", "stand-in"): lambda: samplers.sample(
            stand_in, x_T, pipe.alpha_bar, timesteps, prepared.options
        )[0],
        ("diffusers DDIMScheduler", "stand-in"): lambda: diffusers_loop(
            scheduler, stand_in, x_T, args.steps
        ),
    }
    with torch.no_grad():
        x0_minidiff = runs[("minidiff samplers.sample", "model")]()  # also the warm-ups
        x0_diffusers = runs[("diffusers DDIMScheduler", "model")]()
        for run in runs.values():
            run()
        seconds = {key: [] for key in runs}
        for _ in range(args.repeats):
            for key, run in runs.items():  # interleaved
                seconds[key].append(timed(run, dev))
    stats = {key: report.timing(s) for key, s in seconds.items()}
    diff = int(
        (
            torch.from_numpy(pixels.to_uint8(x0_minidiff)).int()
            - torch.from_numpy(pixels.to_uint8(x0_diffusers)).int()
        )
        .abs()
        .max()
    )

    columns = ["loop", "network", "median ms", "min ms", "max ms", "ms/step"]
    rows = [
        [
            loop,
            net,
            1000 * s["median_s"],
            1000 * s["min_s"],
            1000 * s["max_s"],
            1000 * s["median_s"] / args.steps,
        ]
        for (loop, net), s in stats.items()
    ]
    network = stats[("network calls alone", "model")]["median_s"]
    notes = [f"\nlargest pixel difference between the two loops' pictures: {diff} (0-255)"]
    for loop in ("minidiff samplers.sample", "diffusers DDIMScheduler"):
        alone = stats[(loop, "stand-in")]["median_s"] / args.steps
        notes.append(
            f"{loop}: {1e6 * alone:.0f} us/step of its own work (stand-in network), "
            f"{100 * alone / (network / args.steps):.1f}% of one guided network call"
        )
    if T % args.steps:
        notes.append(
            f"note: {args.steps} does not divide T = {T}; diffusers' DDIMScheduler then "
            "takes t_prev = t - T // steps, not the next listed timestep, so the "
            "pictures differ by more than rounding"
        )
    title = (
        f"sampler overhead: DDIM, {args.steps} steps, {args.n} pictures, guidance "
        f"{args.guidance}, median of {args.repeats} runs"
    )
    record = {
        "device": str(dev),
        "max_pixel_difference": diff,
        "timings": {f"{loop} / {net}": s for (loop, net), s in stats.items()},
        "notes": notes,
    }
    report.finish(title, columns, rows, record, args)


if __name__ == "__main__":
    main()
