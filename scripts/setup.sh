#!/usr/bin/env bash
# Install what is missing for minidiff into the current Python environment, then do one thing:
#   scripts/setup.sh course   open the course in JupyterLab at the first notebook
#   scripts/setup.sh test     run every test (package, notebooks, browser)
# Safe to run again: pip skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
what=${1:-}
case "$what" in
  course|test) ;;
  *) echo "usage: scripts/setup.sh course|test" >&2; exit 2 ;;
esac

pip_install() { "$PY" -m pip install --disable-pip-version-check -q "$@"; }

# torch first, pinned to the version the course is tested with. Where a local torch 2.13.0 wheel is
# configured (pip's find-links) this takes it and never downloads another torch; anywhere else it
# is the ordinary PyPI wheel. An existing torch >= 2.2 is kept as it is.
if ! "$PY" -c 'import torch, sys; v = tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2]); sys.exit(v < (2, 2))' 2>/dev/null; then
  pip_install "torch==2.13.0"
fi

if [ "$what" = course ]; then
  pip_install -e ".[course]"
  exec "$PY" -m jupyter lab notebooks/00_start_here.ipynb
fi

pip_install -e ".[test]"
# The browser test (tests/test_browser.py) drives Debian's Chromium through Playwright; Playwright's
# own browser download is never used. Install chromium where it is missing and apt-get can run as
# root; anywhere else that test is skipped, except in CI, which must run it.
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "setup.sh: installing chromium for the browser test (apt-get)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } \
    >/dev/null 2>&1 || echo "setup.sh: could not install chromium, which the browser test needs" >&2
fi
if [ "${CI:-}" = true ]; then
  export MINIDIFF_REQUIRE_BROWSER=1
fi
exec "$PY" -m pytest "${@:2}"
