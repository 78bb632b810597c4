"""How fast does an explorer answer a slider move? Every explorer of the course registry.

    python benchmarks/bench_explorers.py            # the shipped model, every registered explorer
    python benchmarks/bench_explorers.py --only guidance_explorer

Each explorer is built as `minidiff figures` builds it (minidiff.course.registry), then its main
slider is walked down and up through every value; the time to set the value (pick the stored
frame and show it) is measured per move. Reports the median and the largest move per explorer.
The target is a tenth of a second: a slider move only picks a frame, it never runs the network
(tests/test_widgets.py checks that by counting network calls, not by timing).
"""

import argparse
import time

import report

import minidiff
from minidiff.course import registry
from minidiff.course.explorer import slider_values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", default=None, help="just these explorers")
    report.add_common_options(parser)
    args = parser.parse_args()
    report.apply_threads(args.threads)
    pipe = minidiff.load_pretrained(device=args.device)
    entries = [
        e
        for e in registry.EXPLORERS
        if e.build is not None and (args.only is None or e.name in args.only)
    ]
    rows = []
    for entry in entries:
        explorer = entry.build(pipe)
        values = slider_values(explorer.slider)
        seconds = []
        for value in values[::-1] + values:
            start = time.perf_counter()
            explorer.slider.value = value
            seconds.append(time.perf_counter() - start)
        stats = report.timing(seconds)
        rows.append([entry.name, len(values), 1000 * stats["median_s"], 1000 * stats["max_s"]])
    report.finish(
        "explorers: time to answer a slider move (pick and show a stored frame)",
        ["explorer", "frames", "median ms", "max ms"],
        rows,
        {"device": str(pipe.device)},
        args,
    )


if __name__ == "__main__":
    main()
