"""The course in a real browser: JupyterLab runs notebook 04 in Chromium and a learner drags its
step slider.

A test of the kernel alone cannot see what breaks for a learner: a widget that never renders, a
picture that does not change when the slider moves (the front end and the kernel disagree), a
notebook that stops half way. This one starts JupyterLab on 127.0.0.1 with a token, opens a copy of
notebooks/04_sampling.ipynb in Debian's Chromium driven by Playwright, runs all cells from the Run
menu, presses the arrow keys on the step slider and checks that the picture and the step label
change. It leaves a screenshot in test-artifacts/browser-04.png.

Needs chromium (apt-get install chromium) and playwright (pip; its own browser download is never
used). Without them the test is skipped, unless MINIDIFF_REQUIRE_BROWSER=1, as in CI, where it
fails.
"""

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "04_sampling.ipynb"
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
RUN_SECONDS = 420  # for the whole notebook to run on a slow laptop CPU
STEP_LABEL = re.compile(r"step (\d+) of (\d+)")


def _missing() -> str | None:
    """Why this test cannot run here, or None."""
    if not os.access(CHROMIUM, os.X_OK):
        return f"Chromium is not installed ({CHROMIUM}); apt-get install chromium"
    for module, package in (("playwright.sync_api", "playwright"), ("jupyterlab", "jupyterlab")):
        try:
            __import__(module)
        except ImportError:
            return f"{package} is not installed; pip install {package}"
    if not NOTEBOOK.exists():
        return f"{NOTEBOOK.relative_to(REPO)} does not exist"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _api(base: str, token: str, path: str, method: str = "GET"):
    request = urllib.request.Request(
        f"{base}{path}", method=method, headers={"Authorization": f"token {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read()
    return json.loads(body) if body else None


def need_browser() -> None:
    """Skip where Chromium or playwright is missing; fail instead with MINIDIFF_REQUIRE_BROWSER=1
    (as in CI)."""
    reason = _missing()
    if reason:
        if os.environ.get("MINIDIFF_REQUIRE_BROWSER") == "1":
            pytest.fail(f"MINIDIFF_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server on a copy of notebooks/ -> (base url, token); stopped afterwards."""
    need_browser()
    root = tmp_path / "course"
    shutil.copytree(NOTEBOOK.parent, root / "notebooks")  # the browser's autosave stays here
    # the static twins, copied: Jupyter's file server refuses links that lead outside its root
    shutil.copytree(REPO / "figures", root / "figures")
    settings = tmp_path / "settings" / "@jupyterlab"
    for (
        extension,
        name,
        value,
    ) in (  # no news pop-up; every cell in the page, not only those in view
        ("apputils-extension", "notification", '{"fetchNews": "false"}'),
        ("notebook-extension", "tracker", '{"windowingMode": "none"}'),
    ):
        (settings / extension).mkdir(parents=True)
        (settings / extension / f"{name}.jupyterlab-settings").write_text(value)
    port, token = _free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),  # nothing in $HOME
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "JUPYTER_DATA_DIR": str(tmp_path / "data"),
        "IPYTHONDIR": str(tmp_path / "ipython"),
        "JUPYTER_CONFIG_PATH": str(REPO / "scripts" / "jupyter" / "config"),
    }
    log = open(tmp_path / "jupyter.log", "w")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter",
            "lab",
            "--no-browser",
            "--allow-root",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
            f"--LabApp.user_settings_dir={tmp_path / 'settings'}",
            f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ],
        cwd=root,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                _api(base, token, "/api/status")
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(
                        "JupyterLab did not start:\n"
                        + (tmp_path / "jupyter.log").read_text()[-3000:]
                    )
                time.sleep(0.5)
        yield base, token
    finally:
        try:  # shut the kernels down through the server, then the server itself
            for kernel in _api(base, token, "/api/kernels"):
                _api(base, token, f"/api/kernels/{kernel['id']}", "DELETE")
        except OSError:
            pass
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)  # the group started above: server and kernels
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
        log.close()


def _tracebacks(page) -> list[str]:
    """The tracebacks of failed cells (JupyterLab shows them as stderr output)."""
    return [
        text
        for text in page.locator(".jp-OutputArea-output").all_inner_texts()
        if "Traceback (most recent call last)" in text
    ]


def _run_all_cells(page) -> None:
    """Run all cells from the Run menu and wait until none is queued or running any more
    (Run All stops at a failing cell). A click that lands before the notebook is ready to take
    the command is tried again, up to three times."""
    started = page.locator(".jp-InputArea-prompt", has_text=re.compile(r"\[(\*|\d+)\]"))
    for _ in range(3):
        page.locator(".jp-Notebook").first.click(position={"x": 5, "y": 5})  # focus the notebook
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile("^Run$")).click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile("^Run All Cells$")).click()
        start_by = time.monotonic() + 15
        while not started.count() and time.monotonic() < start_by:
            page.wait_for_timeout(100)
        if started.count():
            break
    else:
        page.screenshot(path=ARTIFACTS / "browser-04-failed.png")
        pytest.fail(f"Run All Cells did not start {NOTEBOOK.name} after three tries")
    waiting = page.locator(".jp-InputArea-prompt", has_text="[*]")  # queued or running cells
    deadline = time.monotonic() + RUN_SECONDS
    while waiting.count():
        if time.monotonic() > deadline:
            page.screenshot(path=ARTIFACTS / "browser-04-failed.png")
            pytest.fail(
                f"{NOTEBOOK.name} did not finish in {RUN_SECONDS} s (see "
                "test-artifacts/browser-04-failed.png)"
            )
        page.wait_for_timeout(500)


def test_step_slider_moves_the_picture_in_a_real_browser(lab):
    from playwright.sync_api import expect, sync_playwright

    base, token = lab
    started = time.monotonic()
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "browser-04-failed.png").unlink(missing_ok=True)  # from an earlier failed run
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{base}/lab/tree/notebooks/{NOTEBOOK.name}?reset&token={token}")
            idle = page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")
            expect(idle).to_be_visible(timeout=120_000)  # the kernel has started

            _run_all_cells(page)  # and so the kernel is free to answer a slider move at once
            # the first slider whose description is "step", and the explorer (VBox) around it
            slider = page.locator(".widget-slider:has(.widget-label:text-is('step'))").first
            if not slider.is_visible():
                page.screenshot(path=ARTIFACTS / "browser-04-failed.png")
                pytest.fail(
                    f"{NOTEBOOK.name} ran but shows no step slider; its errors: "
                    + "\n".join(_tracebacks(page))[-3000:]
                )
            explorer = slider.locator(
                "xpath=ancestor::div[contains(concat(' ', "
                "normalize-space(@class), ' '), ' widget-vbox ')][1]"
            )
            picture = explorer.locator("img.widget-image").first
            label = explorer.locator(".widget-html", has_text=STEP_LABEL).first
            expect(picture).to_have_attribute("src", re.compile(".+"), timeout=30_000)
            expect(label).to_be_visible(timeout=30_000)
            explorer.scroll_into_view_if_needed()
            src, text = picture.get_attribute("src"), label.inner_text()

            slider.locator(".noUi-handle").focus()
            for _ in range(3):
                page.keyboard.press("ArrowRight")
            expect(label).not_to_have_text(text, timeout=30_000)
            expect(picture).not_to_have_attribute("src", src, timeout=30_000)
            step_before = int(STEP_LABEL.search(text).group(1))
            step_after = int(STEP_LABEL.search(label.inner_text()).group(1))
            assert step_after > step_before
            page.wait_for_timeout(300)  # let the new picture paint before the screenshot
            page.screenshot(path=ARTIFACTS / "browser-04.png")

            # the widget works; now the rest of the notebook must have run cleanly too
            failed = _tracebacks(page)
            assert not failed, f"a cell of {NOTEBOOK.name} failed:\n{failed[0][-3000:]}"
            unrun = page.locator(".jp-CodeCell:has(.jp-InputArea-prompt:text-is('[ ]:'))")
            assert unrun.count() == 0, f"a code cell was not run:\n{unrun.first.inner_text()}"
        finally:
            browser.close()
    print(f"browser test: {time.monotonic() - started:.0f} s after JupyterLab started")
