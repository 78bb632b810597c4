"""How every benchmark reports: the machine it ran on, timing statistics, a table, a JSON file.

Each bench_*.py script imports this file (it sits beside them, so `python benchmarks/bench_x.py`
finds it) and ends with `finish(title, columns, rows, extra, args)`.
"""

import datetime
import json
import os
import platform
import statistics
from pathlib import Path

import torch

from minidiff.device import cpu_name


def add_common_options(parser) -> None:
    """--device, --threads and --json, the same in every benchmark."""
    parser.add_argument(
        "--device",
        default=None,
        help="cpu, cuda or mps (default: the best available, as minidiff picks)",
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's own choice)"
    )
    parser.add_argument("--json", metavar="OUT", default=None, help="also write the figures here")


def add_sampling_options(parser, smoke_steps: int) -> None:
    """The options of a benchmark that samples from one model: which weights, how many steps,
    pictures and timed repeats, and --smoke (3 repeats of `smoke_steps` steps: a quick check)."""
    from minidiff.pipeline import DEFAULT_GUIDANCE, DEFAULT_SAMPLER, DEFAULT_STEPS
    from minidiff.samplers import SAMPLERS

    parser.add_argument(
        "--weights",
        default=None,
        help="model file or training checkpoint (default: the shipped weights)",
    )
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--guidance", type=float, default=DEFAULT_GUIDANCE)
    parser.add_argument("--sampler", default=DEFAULT_SAMPLER, choices=SAMPLERS)
    parser.add_argument("--n", type=int, default=8, help="pictures per run")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs after one warm-up")
    parser.add_argument("--prompt", default="a large red star in the top left")
    parser.add_argument(
        "--smoke", action="store_true", help=f"3 repeats, {smoke_steps} steps: a quick check"
    )
    parser.set_defaults(smoke_steps=smoke_steps)
    add_common_options(parser)


def sampling_setup(args):
    """Apply --smoke and --threads, check --repeats, and load the model: the Pipeline."""
    import minidiff
    from minidiff.checkpoint import CheckpointError

    if args.smoke:
        args.repeats, args.steps = 3, args.smoke_steps
    if args.repeats < 1:
        raise SystemExit(f"--repeats must be at least 1, got {args.repeats}")
    apply_threads(args.threads)
    try:
        return minidiff.load_pretrained(args.weights, device=args.device)
    except CheckpointError as e:
        raise SystemExit(str(e)) from None


def apply_threads(threads: int | None) -> None:
    if threads is not None:
        if threads < 1:
            raise SystemExit(f"--threads must be at least 1, got {threads}")
        torch.set_num_threads(threads)


def machine(device) -> dict:
    """What the figures depend on: CPU, cores this process may use, torch threads, device, date."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info = {
        "cpu": cpu_name(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable,
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    }
    if str(device).startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def timing(seconds: list[float]) -> dict:
    """Median, min and max of repeated timings (the median is the figure to quote)."""
    if not seconds:
        raise ValueError("no timings to summarise")
    return {
        "median_s": statistics.median(seconds),
        "min_s": min(seconds),
        "max_s": max(seconds),
        "repeats": len(seconds),
    }


def time_generate(pipe, args, sampler: str, steps: int) -> dict:
    """`timing` of pipe.generate(args.prompt, n=args.n, ...) over args.repeats calls after one
    warm-up call, waiting for the device after each."""
    import time

    def generate():
        pipe.generate(
            args.prompt,
            n=args.n,
            steps=steps,
            guidance_scale=args.guidance,
            sampler=sampler,
            seed=0,
        )
        sync(pipe.device)

    generate()  # warm-up: first-call allocations, lazy initialisation
    seconds = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        generate()
        seconds.append(time.perf_counter() - start)
    return timing(seconds)


def sync(device) -> None:
    """Wait for queued GPU work, so that a timer measures it."""
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()
    elif str(device).startswith("mps"):
        torch.mps.synchronize()


def table(columns: list[str], rows: list[list]) -> str:
    """Rows of numbers and words as aligned text; floats get 3 significant decimals."""

    def cell(v):
        if isinstance(v, float):
            return f"{v:.3f}" if abs(v) < 1000 else f"{v:,.0f}"
        if isinstance(v, int):
            return f"{v:,}"
        return str(v)

    cells = [[cell(v) for v in row] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(columns, widths, strict=True))
        )
    ]
    lines.append("  ".join("-" * w for w in widths))
    for r in cells:
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
    return "\n".join(lines)


def finish(title: str, columns: list[str], rows: list[list], extra: dict, args) -> None:
    """Print the machine, the table and any notes; write everything to --json if asked."""
    m = machine(extra.get("device", "cpu"))
    print(f"\n{title}")
    print(
        f"machine: {m['cpu']}, {m['usable_cpus']} of {m['logical_cpus']} CPUs usable, "
        f"{m['torch_threads']} torch threads, device {m['device']}, torch {m['torch']}, "
        f"{m['date']}"
    )
    if getattr(args, "smoke", False):
        print("SMOKE RUN: small sizes and short times, to check the script; not results.")
    print()
    print(table(columns, rows))
    for note in extra.get("notes", []):
        print(note)
    if args.json:
        record = {
            "title": title,
            "machine": m,
            "columns": columns,
            "rows": rows,
            "smoke": bool(getattr(args, "smoke", False)),
            "args": vars(args),
            **{k: v for k, v in extra.items() if k != "notes"},
            "notes": extra.get("notes", []),
        }
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(record, indent=2, default=str) + "\n")
        print(f"wrote {args.json}")
