"""minidiff site without a browser: the slides' cut, pinned assets, the page fix-ups.

The pages themselves are driven in Chromium by tests/test_site_browser.py."""

import base64
import hashlib
import io
import tarfile
from pathlib import Path

import nbformat
import pytest

from minidiff.course import site

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def md(text, **metadata):
    return {"cell_type": "markdown", "source": [text], "metadata": metadata}


def code(text, out=(), **metadata):
    return {
        "cell_type": "code",
        "source": [text],
        "metadata": metadata,
        "outputs": list(out),
        "execution_count": None,
    }


def test_markdown_blocks_split_at_blank_lines_but_not_inside_code_or_math():
    text = "## A\n\nOne\ntwo.\n\n$$\nx\n\ny\n$$\n\n```\na\n\nb\n```\n\n- c\n- d\n"
    assert site.markdown_blocks(text) == [
        "## A",
        "One\ntwo.",
        "$$\nx\n\ny\n$$",
        "```\na\n\nb\n```",
        "- c\n- d",
    ]
    assert site.markdown_blocks("$$a$$\n\nb") == ["$$a$$", "b"]


def _parts(notebook):
    return [
        (
            c.cell_type,
            "".join(c.source),
            len(c.get("outputs", [])),
            c.metadata.slideshow.slide_type,
            c.metadata.get("transient", {}).get("remove_source", False),
        )
        for c in site.slide_cells(notebook).cells
    ]


def test_slide_cells_cut_as_the_metadata_says():
    text = {"output_type": "stream", "name": "stdout", "text": "a table"}
    picture = {"output_type": "display_data", "data": {"image/png": "iVBOR"}, "metadata": {}}
    notebook = nbformat.from_dict(
        {
            "metadata": {},
            "cells": [
                md(
                    "## Guidance\n\nLong prose.\n\n$$x$$",
                    slideshow={"slide_type": "slide", "blocks": ["slide", "notes", "-"]},
                ),
                code(
                    "show(rows)", slideshow={"slide_type": "skip", "output": "slide"}, out=[picture]
                ),
                code("idea()", slideshow={"slide_type": "-", "output": "fragment"}, out=[text]),
                code(
                    "long_idea()", slideshow={"slide_type": "slide", "output": "slide"}, out=[text]
                ),
                code(
                    "table_and_plot()",
                    slideshow={"slide_type": "skip", "output": ["-", "slide"]},
                    out=[text, text, picture],
                ),  # a kernel may send one print as two outputs
                code("setup()", slideshow={"slide_type": "skip"}, out=[text]),
                code("plain()", slideshow={"slide_type": "-"}, out=[text]),
                md("# Solution", slideshow={"slide_type": "skip"}),
            ],
        }
    )
    assert _parts(notebook) == [
        ("markdown", "## Guidance", 0, "slide", False),
        ("markdown", "Long prose.", 0, "notes", False),
        ("markdown", "$$x$$", 0, "-", False),
        ("code", "show(rows)", 1, "slide", True),  # the picture alone on a new slide
        ("code", "idea()", 0, "-", False),  # the code, then its output as a fragment
        ("code", "idea()", 1, "fragment", True),
        ("code", "long_idea()", 0, "slide", False),  # the code fills a slide, its output the next
        ("code", "long_idea()", 1, "slide", True),
        ("code", "table_and_plot()", 1, "-", True),  # the table here, the plot on the next slide
        ("code", "table_and_plot()", 1, "slide", True),
        ("code", "plain()", 1, "-", False),
    ]
    assert site.slide_cells(notebook).cells[8].outputs[0].text == "a tablea table"
    assert "".join(notebook.cells[0].source).count("\n\n") == 2  # the notebook is unchanged


@pytest.mark.parametrize(
    "cell, says",
    [
        (
            md("## A\n\nb", slideshow={"slide_type": "slide", "blocks": ["slide"]}),
            "has 2 blocks of text but slide types for 1",
        ),
        (
            md("## A\n\nb", slideshow={"slide_type": "-", "blocks": ["slide", "notes"]}),
            "differs from its first block's",
        ),
        (code("x", slideshow={"slide_type": "-", "output": "picture"}), "slide type 'picture'"),
        (
            code("x", slideshow={"slide_type": "-", "output": ["-", "slide"]}, out=[{}]),
            "has 1 outputs but slide types for 2",
        ),
        (
            code("# Solution", slideshow={"slide_type": "-"}, jupyter={"source_hidden": True}),
            "must be 'skip'",
        ),
    ],
)
def test_slide_metadata_mistakes_are_named(cell, says):
    with pytest.raises(ValueError, match=says) as error:
        site.cell_slide_types(cell)
    assert "\n" not in str(error.value)


def _as_if_run(notebook):
    """The notebook with a stand-in output where its code would show one (as many as its slide
    metadata names), so that slide_cells places outputs as it does for the site."""
    for cell in notebook.cells:
        if cell.cell_type == "code":
            output = cell.metadata.get("slideshow", {}).get("output")
            count = len(output) if isinstance(output, list) else 1
            cell.outputs = [
                nbformat.v4.new_output("display_data", {"text/plain": "out"}) for _ in range(count)
            ]
    return notebook


def test_every_notebook_cuts_its_slides_with_each_explorer_on_its_own_slide():
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        types = [c.metadata.get("slideshow", {}).get("slide_type") for c in notebook.cells]
        assert None not in types, f"{path.name}: a cell has no slide type"
        assert types[0] == "slide", f"{path.name}: the first cell does not start a slide"
        explorers = sum(site.is_explorer(c) for c in notebook.cells)
        deck = site.slide_cells(_as_if_run(notebook)).cells  # checks every cell's metadata
        placed = set()
        for i, cell in enumerate(deck):
            if not (site.is_explorer(cell) and cell.outputs) or cell.source in placed:
                continue  # the explorer itself is its cell's first output
            placed.add(cell.source)
            kind = cell.metadata.slideshow.slide_type
            if kind != "slide":  # then with its heading just above it (speaker notes aside)
                above = next(
                    c for c in deck[i - 1 :: -1] if c.metadata.slideshow.slide_type != "notes"
                )
                assert (
                    above.metadata.slideshow.slide_type == "slide"
                    and above.source.lstrip().startswith("#")
                ), f"{path.name}: explorer {i} shares its slide with more than a heading"
            after = [c.metadata.slideshow.slide_type for c in deck[i + 1 :]]
            shown = [t for t in after if t != "notes"]
            assert not shown or shown[0] in ("slide", "subslide"), (
                f"{path.name}: explorer {i} shares its slide with what follows it"
            )
        assert len(placed) == explorers, f"{path.name}: an explorer is not on any slide"
        assert not any(site.is_solution(c) for c in deck), f"{path.name}: a solution shows"


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
    data = _tarball(
        {
            "package/dist/x.js": b"x",
            "package/dist/map.js.map": b"m",
            "package/../../evil.js": b"e",
            "package/README.md": b"r",
        }
    )
    digest = base64.b64encode(hashlib.sha512(data).digest()).decode()
    asset = site.Asset("tiny", "1.0.0", digest, ("dist/*.js",), "tiny")
    monkeypatch.setenv("MINIDIFF_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cache" / "npm").mkdir(parents=True)
    (tmp_path / "cache" / "npm" / "tiny-1.0.0.tgz").write_bytes(data)
    monkeypatch.setattr(site, "ASSETS", (asset,))
    written = site.copy_assets(tmp_path / "out")
    assert [p.relative_to(tmp_path / "out").as_posix() for p in written] == [
        "assets/tiny/dist/x.js"
    ]
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
    entries = [
        {
            "name": "00_start_here",
            "title": "00 · Start here",
            "question": "what does a text-to-image model do?",
        },
        {"name": "04_sampling", "title": "04 · Sampling", "question": ""},
    ]
    text = site.index_page(entries)
    assert "notebooks/00_start_here.html" in text and "slides/04_sampling.slides.html" in text
    assert "figures/hero.png" in text and "http" not in text.split("<body>")[0]


def test_explorers_built_for_a_static_page_say_their_buttons_need_a_kernel(
    monkeypatch, colour_pipe
):
    from minidiff.course import widgets

    monkeypatch.setenv("MINIDIFF_STATIC", "1")
    scrubber = widgets.step_scrubber(colour_pipe, "a red circle", steps=3)
    assert scrubber.button.disabled and "kernel" in scrubber.button.tooltip
    assert any(
        "needs a running Python kernel" in getattr(w, "value", "") for w in scrubber.children
    )
    monkeypatch.delenv("MINIDIFF_STATIC")
    assert not widgets.step_scrubber(colour_pipe, "a red circle", steps=3).button.disabled
