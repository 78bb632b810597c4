"""ruff keeps the code in one style: lint (pyflakes, pycodestyle, import order) and the formatter,
at a line length of 100 (pyproject.toml). A failure names the file and the line."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def ruff(*args: str) -> str:
    """Run ruff (a test dependency: pip install -e '.[test]') in the repository; its complaints,
    or "" when it has none."""
    result = subprocess.run(
        [sys.executable, "-m", "ruff", *args], cwd=REPO, capture_output=True, text=True, check=False
    )
    return "" if result.returncode == 0 else (result.stdout + result.stderr)[-4000:]


def test_ruff_finds_nothing_to_fix():
    assert ruff("check", ".") == ""


def test_the_code_is_formatted():
    assert ruff("format", "--check", ".") == ""
