"""The one place that knows the repository's layout, and the reader of what benchmarks measured.

The notebooks, figures and site live beside the package in the repository (not in an installed
wheel); everything that reads or writes them takes its paths from here.
"""

import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
FIGURES_DIR = REPO / "figures"
RESULTS_DIR = REPO / "benchmarks" / "results"  # committed measurements too slow for a notebook
RUNS_DIR = REPO / "runs"  # training runs (ignored by git)


def read_results(path: str | Path, command: str) -> dict:
    """A committed results file (a name under benchmarks/results/, or a path): what a benchmark
    measured that takes longer than a notebook may. `command` is what writes it again."""
    path = RESULTS_DIR / path
    if not path.exists():
        raise FileNotFoundError(f"no results at '{path}'; run {command}")
    return json.loads(path.read_text())
