"""What one training step of the fast preset costs, and which engineering levers change it.

    python benchmarks/bench_train_levers.py --json benchmarks/results/train_levers.json
    python benchmarks/bench_train_levers.py --smoke

Measured, each as pictures per second of `train_step` (median of --repeats steps after warm-up):
- **the cost of drawing the data**: `world.batch` plus tokenising, for one batch, against the step;
- **threads or workers**: one process with 1 and with 2 torch threads, and two processes with one
  thread each running at the same time (their summed throughput is what two data-parallel
  workers could reach at best, before they exchange gradients);
- **channels_last** memory format for the model and the pictures;
- **torch.compile** of the model (default mode): the seconds the first compiled step takes, and
  the throughput after it.
These are throughputs, not training runs: a lever that does not speed up a step cannot buy more
steps in 5 minutes; one that does still has to be checked by a run (`minidiff train --preset
fast`).
"""

import argparse
import multiprocessing as mp
import statistics
import time

import report
import torch

from minidiff import pixels, world
from minidiff.model import TextToImage
from minidiff.schedules import make_alpha_bar
from minidiff.train import make_optimizer, preset, train_step


def _setup(channels_last: bool = False, compiled: bool = False):
    model_config, cfg = preset("fast-pixel")
    torch.manual_seed(0)
    model, ema = TextToImage(model_config), TextToImage(model_config)
    ema.load_state_dict(model.state_dict())
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if compiled:
        model.unet = torch.compile(model.unet)
    return (
        model,
        ema,
        make_optimizer(model, cfg),
        cfg,
        make_alpha_bar(model_config.schedule, model_config.T),
    )


def step_rate(
    repeats: int, threads: int, channels_last: bool = False, compiled: bool = False
) -> dict:
    """Pictures per second of train_step (median over `repeats` steps after warm-up)."""
    torch.set_num_threads(threads)
    model, ema, opt, cfg, alpha_bar = _setup(channels_last, compiled)
    start = time.perf_counter()
    train_step(model, ema, opt, 0, cfg, alpha_bar)
    first = time.perf_counter() - start
    train_step(model, ema, opt, 1, cfg, alpha_bar)
    seconds = []
    for step in range(2, 2 + repeats):
        start = time.perf_counter()
        train_step(model, ema, opt, step, cfg, alpha_bar)
        seconds.append(time.perf_counter() - start)
    median = statistics.median(seconds)
    return {"pictures_per_s": cfg.batch_size / median, "step_s": median, "first_step_s": first}


def _worker(repeats: int, queue) -> None:
    queue.put(step_rate(repeats, threads=1)["pictures_per_s"])


def data_cost(repeats: int, batch_size: int) -> float:
    """Seconds to draw one batch of pictures and captions and tokenise them (median)."""
    from minidiff.tokenizer import Tokenizer

    tokenizer = Tokenizer()
    seconds = []
    for i in range(repeats):
        start = time.perf_counter()
        images, captions, _ = world.batch("train", i * batch_size, batch_size, seed=0)
        pixels.to_tensor(images), tokenizer.encode(captions)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile (~1 min)")
    parser.add_argument("--smoke", action="store_true", help="3 repeats, no compile")
    report.add_common_options(parser)
    args = parser.parse_args()
    if args.smoke:
        args.repeats, args.no_compile = 3, True
    _, cfg = preset("fast-pixel")
    rows = []
    base = step_rate(args.repeats, threads=2)
    data = data_cost(args.repeats, cfg.batch_size)
    rows.append(
        [
            "drawing the data (1 thread)",
            f"{data * 1e3:.1f} ms a batch",
            f"{data / base['step_s']:.0%} of a 2-thread step",
            "",
        ]
    )
    one = step_rate(args.repeats, threads=1)
    rows.append(["1 process, 1 thread", f"{one['pictures_per_s']:.0f}", "", ""])
    rows.append(
        [
            "1 process, 2 threads",
            f"{base['pictures_per_s']:.0f}",
            f"{base['pictures_per_s'] / one['pictures_per_s']:.2f}x 1 thread",
            "",
        ]
    )
    queue = mp.get_context("spawn").Queue()
    workers = [
        mp.get_context("spawn").Process(target=_worker, args=(args.repeats, queue))
        for _ in range(2)
    ]
    for w in workers:
        w.start()
    rates = [queue.get() for _ in workers]
    for w in workers:
        w.join()
    rows.append(
        [
            "2 processes, 1 thread each",
            f"{sum(rates):.0f} together",
            f"{sum(rates) / base['pictures_per_s']:.2f}x 2 threads",
            "before any gradient exchange",
        ]
    )
    cl = step_rate(args.repeats, threads=2, channels_last=True)
    rows.append(
        [
            "channels_last, 2 threads",
            f"{cl['pictures_per_s']:.0f}",
            f"{cl['pictures_per_s'] / base['pictures_per_s']:.2f}x",
            "",
        ]
    )
    if not args.no_compile:
        comp = step_rate(args.repeats, threads=2, compiled=True)
        rows.append(
            [
                "torch.compile(unet), 2 threads",
                f"{comp['pictures_per_s']:.0f}",
                f"{comp['pictures_per_s'] / base['pictures_per_s']:.2f}x",
                f"first step {comp['first_step_s']:.0f} s",
            ]
        )
    report.finish(
        f"training step of the fast preset (batch {cfg.batch_size}): pictures per "
        f"second, median of {args.repeats} steps",
        ["lever", "pictures/s", "against", "note"],
        rows,
        {},
        args,
    )


if __name__ == "__main__":
    main()
