#!/usr/bin/env bash
# Install what is missing for minidiff, then do one thing:
#   scripts/setup.sh course [jupyter lab args]   open the course in JupyterLab at the first notebook
#   scripts/setup.sh test [pytest args]          run every test (package, notebooks, browser)
# Where: into the active virtual environment or conda env; with none active, into the project's own
# .venv, made on the first run with $PYTHON (default python3) and reused after. Never into a system
# Python. Safe to run again: pip skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-}
case "$what" in
  course|test) ;;
  *) echo "usage: scripts/setup.sh course|test" >&2; exit 2 ;;
esac
say() { echo "setup.sh: $*" >&2; }

# The interpreter: $PYTHON if set, else the active environment's, else python3.
if [ -n "${PYTHON:-}" ]; then base=$PYTHON
elif [ -n "${VIRTUAL_ENV:-}" ] && [ -x "$VIRTUAL_ENV/bin/python" ]; then base=$VIRTUAL_ENV/bin/python
elif [ -n "${CONDA_PREFIX:-}" ] && [ -x "$CONDA_PREFIX/bin/python" ]; then base=$CONDA_PREFIX/bin/python
else base=python3
fi
# -> "<in an environment: 0|1> <X.Y> <executable>"; an environment is a venv, or the active
# VIRTUAL_ENV / CONDA_PREFIX (a conda env's Python is not a venv)
probe=$("$base" -c '
import os, sys
envs = {os.path.realpath(os.environ[k]) for k in ("VIRTUAL_ENV", "CONDA_PREFIX") if os.environ.get(k)}
inside = sys.prefix != sys.base_prefix or os.path.realpath(sys.prefix) in envs
print(int(inside), "%d.%d" % sys.version_info[:2], sys.executable)' 2>/dev/null) || {
  say "cannot run Python '$base'; install Python 3.10 or newer, or point PYTHON at one"; exit 1; }
read -r inside version exe <<<"$probe"
case "$version" in 3.[0-9]) say "$exe is Python $version; minidiff needs 3.10 or newer (set PYTHON)"
  exit 1 ;; esac

if [ "$inside" = 1 ]; then
  py=$exe
else
  venv=$PWD/.venv
  if [ -e "$venv" ] && ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
    say ".venv has no working python and pip (an unfinished or moved set-up); making it again"
    rm -rf "$venv"
  fi
  if [ -e "$venv" ]; then
    say "no virtual environment active; using .venv"
  else
    if ! "$base" -c 'import venv, ensurepip' 2>/dev/null; then
      say "no virtual environment active, and $exe cannot make one because its venv module is" \
          "missing: install it (Debian/Ubuntu: sudo apt install python$version-venv) and run this again"
      exit 1
    fi
    say "no virtual environment active; creating .venv with $exe and installing there"
    trap 'rm -rf "$venv"' EXIT  # a half-made .venv would only get in the next run's way
    if ! log=$("$base" -m venv "$venv" 2>&1) || ! "$venv/bin/python" -m pip --version >/dev/null 2>&1
    then
      printf '%s\n' "$log" | tail -n 15 >&2
      say "$exe could not make .venv (above); if its venv module is missing, install it" \
          "(Debian/Ubuntu: sudo apt install python$version-venv) and run this again"
      exit 1
    fi
    trap - EXIT
  fi
  py=$venv/bin/python
  export VIRTUAL_ENV=$venv PATH=$venv/bin:$PATH  # as if activated, for anything run from here
fi

pip_install() { "$py" -m pip install --disable-pip-version-check -q "$@"; }

# torch first, pinned to the version the course is tested with. Where a local torch 2.13.0 wheel is
# configured (pip's find-links) this takes it and never downloads another torch; anywhere else it
# is the ordinary PyPI wheel. An existing torch >= 2.2 is kept as it is.
if ! "$py" -c 'import torch, sys; v = tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2]); sys.exit(v < (2, 2))' 2>/dev/null; then
  say "installing torch 2.13.0 (no torch 2.2 or newer in this environment)"
  pip_install "torch==2.13.0"
fi

# Jupyter's settings, state and IPython's profile live in the project's .jupyter/ (ignored by git),
# never in the home folder. The course's own JupyterLab settings (scripts/jupyter/user-settings: no
# news pop-up, no update check) are copied in where .jupyter has none yet, so a learner's own
# later choice stays. The browser test starts JupyterLab with its own folders under tmp.
# scripts/jupyter/config holds the course's server config (read, never written): no search for
# language servers, which runs npm and leaves its logs in ~/.npm.
state=$PWD/.jupyter
export JUPYTER_CONFIG_PATH=$PWD/scripts/jupyter/config
export JUPYTER_CONFIG_DIR=$state/config JUPYTER_DATA_DIR=$state/data \
  JUPYTER_RUNTIME_DIR=$state/runtime IPYTHONDIR=$state/ipython \
  JUPYTERLAB_SETTINGS_DIR=$state/lab/user-settings JUPYTERLAB_WORKSPACES_DIR=$state/lab/workspaces
(cd scripts/jupyter/user-settings && find . -name '*.jupyterlab-settings') | while read -r f; do
  if [ ! -e "$JUPYTERLAB_SETTINGS_DIR/$f" ]; then
    mkdir -p "$(dirname "$JUPYTERLAB_SETTINGS_DIR/$f")"
    cp "scripts/jupyter/user-settings/$f" "$JUPYTERLAB_SETTINGS_DIR/$f"
  fi
done

if [ "$what" = course ]; then
  pip_install -e ".[course]"
  root=(); [ "$(id -u)" = 0 ] && root=(--allow-root)  # as in a container, where root is the user
  # served from the project folder, so the notebooks' links to ../figures/ work
  exec "$py" -m jupyter lab notebooks/00_start_here.ipynb --ServerApp.root_dir="$PWD" \
    ${root[@]+"${root[@]}"} "${@:2}"
fi

pip_install -e ".[test]"
# The browser test (tests/test_browser.py) drives Debian's Chromium through Playwright; Playwright's
# own browser download is never used. Install chromium where it is missing and apt-get can run as
# root; anywhere else that test is skipped, except in CI, which must run it.
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  say "installing chromium for the browser test (apt-get)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } \
    >/dev/null 2>&1 || say "could not install chromium, which the browser test needs"
fi
if [ "${CI:-}" = true ]; then
  export MINIDIFF_REQUIRE_BROWSER=1
fi
# The complete tier (conftest.py): the notebooks, browser and training-process tests too; plain
# pytest runs only the fast tier.
PYTEST_TIER=(--complete)
exec "$py" -m pytest "${PYTEST_TIER[@]}" "${@:2}"
