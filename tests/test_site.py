"""minidiff site without a browser: slide metadata, pinned assets, the page fix-ups.

The pages themselves are driven in Chromium by tests/test_site_browser.py."""

import base64
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from minidiff.course import site

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def md(text):
    return {"cell_type": "markdown", "source": [text], "metadata": {}}


def code(text, **metadata):
    return {"cell_type": "code", "source": [text], "metadata": metadata, "outputs": []}


def test_slide_types_one_idea_per_slide_and_explorers_alone():
    cells = [md("# 04 · Sampling"), code("import minidiff"), md("## The loop"), code("x = 1"),
             md("More words."), md("## Live: the scrubber"), code("widgets.step_scrubber(pipe)"),
             code("y = 2"), code("widgets.guidance_explorer(pipe)"), md("Text after it."),
             code("# Solution", jupyter={"source_hidden": True})]
    assert site.slide_types(cells) == ["slide", "-", "slide", "-", "-", "slide", "-", "slide",
                                       "slide", "slide", "skip"]


def test_every_notebook_has_slide_metadata_with_each_explorer_on_its_own_slide():
    for path in NOTEBOOKS:
        cells = json.loads(path.read_text())["cells"]
        types = [c["metadata"].get("slideshow", {}).get("slide_type") for c in cells]
        assert None not in types, f"{path.name}: a cell has no slide type"
        assert types[0] == "slide"
        for i, cell in enumerate(cells):
            if site.is_explorer(cell):
                starts = i if types[i] == "slide" else i - 1  # with its heading just above
                assert types[starts] == "slide", (path.name, i)
                assert all(t == "-" for t in types[starts + 1:i + 1]), (path.name, i)
                assert i + 1 == len(cells) or types[i + 1] in ("slide", "skip"), (path.name, i)
            if site.is_solution(cell):
                assert types[i] == "skip", f"{path.name}: a solution would show on a slide"


def test_mark_slides_keeps_what_an_author_chose():
    notebook = {"cells": [md("# A"), code("x", slideshow={"slide_type": "fragment"})]}
    site.mark_slides(notebook)
    assert [c["metadata"]["slideshow"]["slide_type"] for c in notebook["cells"]] == ["slide",
                                                                                   "fragment"]


def test_asset_globs():
    assert site._matches("dist/embed-amd.js", "dist/embed-amd.js")
    assert site._matches("dist/a1.woff2", "dist/*.woff2")
    assert not site._matches("dist/sub/a1.woff2", "dist/*.woff2")  # one folder deep only
    assert site._matches("jax/output/CommonHTML/fonts/TeX/main.js", "jax/output/CommonHTML/**")
    assert not site._matches("jax/output/SVG/jax.js", "jax/output/CommonHTML/**")


def _tarball(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_assets_come_from_the_cache_checked_and_only_wanted_files(tmp_path, monkeypatch):
    data = _tarball({"package/dist/x.js": b"x", "package/dist/map.js.map": b"m",
                     "package/../../evil.js": b"e", "package/README.md": b"r"})
    digest = base64.b64encode(hashlib.sha512(data).digest()).decode()
    asset = site.Asset("tiny", "1.0.0", digest, ("dist/*.js",), "tiny")
    monkeypatch.setenv("MINIDIFF_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cache" / "npm").mkdir(parents=True)
    (tmp_path / "cache" / "npm" / "tiny-1.0.0.tgz").write_bytes(data)
    monkeypatch.setattr(site, "ASSETS", (asset,))
    written = site.copy_assets(tmp_path / "out")
    assert [p.relative_to(tmp_path / "out").as_posix() for p in written] == [
        "assets/tiny/dist/x.js"]
    assert not (tmp_path / "evil.js").exists()

    bad = site.Asset("tiny", "1.0.0", "A" * 86 + "==", ("dist/*.js",), "tiny")
    monkeypatch.setattr(site, "ASSETS", (bad,))
    with pytest.raises(RuntimeError, match="not the pinned"):
        site.copy_assets(tmp_path / "out2")


def test_every_pinned_asset_has_a_version_and_a_sha512():
    for asset in site.ASSETS:
        assert asset.version[0].isdigit() and "*" not in asset.version and "^" not in asset.version
        assert len(base64.b64decode(asset.sha512)) == 64, asset.package
        assert asset.tarball.startswith("https://registry.npmjs.org/")


def test_pages_load_widget_modules_from_the_site():
    page = '<head><script src="../assets/requirejs/require.js"></script></head>'
    fixed = site._page_html(page, "../assets")
    assert '"@jupyter-widgets": "../assets/html-manager/modules"' in fixed
    assert fixed.index("require.js") < fixed.index("require.config")
    with pytest.raises(RuntimeError, match="no longer loads require.js"):
        site._page_html("<head></head>", "../assets")


def test_index_page_lists_every_notebook_with_its_slides():
    entries = [{"name": "00_start_here", "title": "00 · Start here",
                "question": "what does a text-to-image model do?"},
               {"name": "04_sampling", "title": "04 · Sampling", "question": ""}]
    text = site.index_page(entries)
    assert "notebooks/00_start_here.html" in text and "slides/04_sampling.slides.html" in text
    assert "figures/hero.png" in text and "http" not in text.split("<body>")[0]


def test_explorers_built_for_a_static_page_say_their_buttons_need_a_kernel(monkeypatch, colour_pipe):
    from minidiff.course import widgets

    monkeypatch.setenv("MINIDIFF_STATIC", "1")
    scrubber = widgets.step_scrubber(colour_pipe, "a red circle", steps=3)
    assert scrubber.button.disabled and "kernel" in scrubber.button.tooltip
    assert any("needs a running Python kernel" in getattr(w, "value", "")
               for w in scrubber.children)
    monkeypatch.delenv("MINIDIFF_STATIC")
    assert not widgets.step_scrubber(colour_pipe, "a red circle", steps=3).button.disabled
