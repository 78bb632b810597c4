"""The course as a website and lecture slides that work without a kernel.

    minidiff site --out site             # executes every notebook, then writes the pages
    python -m http.server -d site 8000   # or open site/index.html from a USB stick

For each notebook: a page (notebooks/NN_name.html) and a reveal.js slide deck
(slides/NN_name.slides.html), cut by the notebook's own cell metadata to fit a 1280 x 800 screen
(see "slides" below), plus an index page with the course map, the hero picture and a link to every
page and deck. The explorers keep working on them: their frames are stored in the page as widget
state, and the sliders and Play switch frames in the browser (see minidiff.course.explorer).
Buttons that run the model need a kernel, and say so.

Every script, style sheet and font the pages load is served from the site itself (assets/), taken at
build time from the npm registry in the pinned versions below and checked against the registry's
sha512. They are cached (MINIDIFF_CACHE, default ~/.cache/minidiff), so a second build runs offline.
"""

import base64
import copy
import hashlib
import html
import io
import json
import os
import shutil
import tarfile
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

from minidiff.course import registry
from minidiff.course.paths import FIGURES_DIR, NOTEBOOKS

REGISTRY = "https://registry.npmjs.org"
EXPLORER_CALLS = registry.explorer_calls()
PAGE_LIMIT = 10 * 1024 * 1024  # bytes per page, widget state included
ASSETS_URL = "../assets"  # from notebooks/ and slides/, where the pages are


@dataclass(frozen=True)
class Asset:
    """Files of one npm package, copied to assets/<folder>/ keeping their paths."""

    package: str
    version: str
    sha512: str  # the registry's dist.integrity, without "sha512-"
    files: tuple[str, ...]  # globs relative to the package root; "dir/**": all below dir
    folder: str

    @property
    def tarball(self) -> str:
        return f"{REGISTRY}/{self.package}/-/{self.package.split('/')[-1]}-{self.version}.tgz"


ASSETS = (
    Asset(
        "requirejs",
        "2.3.7",
        "DouTG8T1WanGok6Qjg2SXuCMzszOo0eHeH9hDZ5Y4x8Je+9JB38HdTLT4/VA8OaUhBa0JPVHJ0pyBkM1z+pDsw==",
        ("require.js",),
        "requirejs",
    ),
    Asset(
        "@jupyter-widgets/html-manager",
        "1.0.15",
        "5thBIV6ymNgmPVOHvzx+gGy8ZSKmSazhtGw4/c4xJDVzRhG9PTeQsRjF3FUTopvFi//SABeNz1yp47bCrJ3CQA==",
        (
            "dist/embed-amd.js",
            "dist/*.woff2",
            "dist/*.woff",
            "dist/*.ttf",
            "dist/*.eot",
            "dist/*.svg",
        ),
        "html-manager",
    ),
    Asset(
        "mathjax",
        "2.7.9",
        "NOGEDTIM9+MrsqnjPEjVGNx4q0GQxqm61yQwSK+/5S59i26wId5IC5gNu9/bu8+CCVl5p9G2IHcAl/wJa+5+BQ==",
        (
            "MathJax.js",
            "config/TeX-AMS_CHTML-full.js",
            "config/Safe.js",
            "extensions/**",
            "jax/input/TeX/**",
            "jax/output/CommonHTML/**",
            "jax/element/**",
            "localization/en/**",
            "fonts/HTML-CSS/TeX/woff/**",
        ),
        "mathjax",
    ),
    Asset(
        "reveal.js",
        "4.0.2",
        "LWZSUenufF1gpD7npxJ7KfoQQFKgc1D6XrLTFgKlwWNP1BQ74hT48KONFWMAw+8R/QUeaScCLCLrBVHDfFIEiw==",
        (
            "dist/reveal.js",
            "dist/reveal.css",
            "dist/theme/white.css",
            "dist/theme/fonts/source-sans-pro/**",
            "plugin/notes/**",
        ),
        "reveal.js",
    ),
    Asset(
        "jquery",
        "2.2.4",
        "lBHj60ezci2u1v2FqnZIraShGgEXq35qCzMv4lITyHGppTnA13rwR0MgwyNJh9TnDs3aXUvd1xjAotfraMHX/Q==",
        ("dist/jquery.min.js",),
        "jquery",
    ),
    Asset(
        "font-awesome",
        "4.7.0",
        "U6kGnykA/6bFmg1M/oT9EkFeIYv7JlX3bozwQJWiiLz6L0w3F5vBVPxHlwyX/vtNq1ckcpRKOB9f2Qal/VtFpg==",
        ("css/font-awesome.min.css", "fonts/*"),
        "font-awesome",
    ),
)


def _cache_dir() -> Path:
    return Path(os.environ.get("MINIDIFF_CACHE", Path.home() / ".cache" / "minidiff")) / "npm"


def _tarball(asset: Asset) -> bytes:
    """The package's tarball from the cache, else from the registry; checked against sha512."""
    path = _cache_dir() / f"{asset.folder}-{asset.version}.tgz"
    if path.exists():
        data = path.read_bytes()
    else:
        try:
            with urllib.request.urlopen(asset.tarball, timeout=120) as response:
                data = response.read()
        except OSError as e:
            raise RuntimeError(
                f"could not download {asset.package}@{asset.version} from the npm "
                f"registry ({e}); the site needs it once, then it is cached in "
                f"{_cache_dir()}"
            ) from None
    digest = base64.b64encode(hashlib.sha512(data).digest()).decode()
    if digest != asset.sha512:
        raise RuntimeError(
            f"{asset.package}@{asset.version}: the tarball's sha512 is {digest}, "
            f"not the pinned {asset.sha512}; delete {path} and build again"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        tmp = path.with_suffix(".part")
        tmp.write_bytes(data)
        tmp.replace(path)
    return data


def _matches(name: str, pattern: str) -> bool:
    """ "dir/**": anything below dir; else a glob within one folder ("dist/*.woff")."""
    if pattern.endswith("/**"):
        return name.startswith(pattern[:-2])
    return fnmatch(name, pattern) and name.count("/") == pattern.count("/")


def copy_assets(out: Path) -> list[Path]:
    """Unpack the wanted files of every asset under out/assets/; regular files only, and only
    below the package root, so a tarball cannot write anywhere else."""
    from tqdm.auto import tqdm

    written = []
    for asset in tqdm(ASSETS, desc="assets (downloaded once, then cached)", leave=False):
        with tarfile.open(fileobj=io.BytesIO(_tarball(asset)), mode="r:gz") as tar:
            for member in tar.getmembers():
                name = member.name.split("/", 1)[-1]  # drop "package/"
                if not member.isfile() or ".." in Path(name).parts:
                    continue
                if any(_matches(name, pattern) for pattern in asset.files):
                    data = tar.extractfile(member).read()
                    for relative in _copies(asset, name):
                        target = out / "assets" / relative
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_bytes(data)
                        written.append(target)
    return written


# The widget bundle finds its icon fonts beside the AMD modules it defines (webpack's public path
# is the folder of require.js's module URL), so _page_html maps "@jupyter-widgets" to
# assets/html-manager/modules/ and the fonts are copied where its modules resolve.
WIDGET_MODULES = "html-manager/modules"


def _copies(asset: Asset, name: str) -> list[str]:
    """Where under assets/ file `name` of `asset` goes: its own folder, except the widget
    bundle's fonts, which go where its modules look for them (two places)."""
    if asset.folder == "html-manager" and not name.endswith(".js"):
        font = name.rsplit("/", 1)[-1]
        return [f"{WIDGET_MODULES}/{font}", f"{WIDGET_MODULES}/html-manager/dist/{font}"]
    return [f"{asset.folder}/{name}"]


# -- slides ----------------------------------------------------------------------------------------
def is_explorer(cell) -> bool:
    return cell["cell_type"] == "code" and any(c in "".join(cell["source"]) for c in EXPLORER_CALLS)


def is_solution(cell) -> bool:
    return cell.get("metadata", {}).get("jupyter", {}).get("source_hidden", False)


# A deck is cut by the notebook's own cell metadata, the Jupyter slideshow's slide types
# (metadata.slideshow.slide_type: slide, subslide, fragment, "-" to continue, notes, skip), with two
# keys of minidiff's for a cell whose parts belong in different places, so that the notebook, read
# as a page, stays as it is:
#   a markdown cell's "blocks": one slide type per block of its text (a paragraph, heading, list,
#     table, picture or formula; blocks are separated by blank lines), the first one its slide_type:
#     the heading, formula and picture stay on the slide, the long prose goes to the speaker notes;
#   a code cell's "output": where its output goes, apart from its code: code that only prepares
#     is "skip" and its picture "slide", on a slide of its own; code that fills a slide is "slide"
#     and its output "slide" again. Or a list with one slide type per output (text printed in a
#     row counts as one), when a cell shows a table and a plot that each need a slide.
SLIDE_TYPES = ("slide", "subslide", "fragment", "-", "notes", "skip")


def markdown_blocks(source: str) -> list[str]:
    """A markdown text split at its blank lines, except those inside fenced code or $$ math."""
    blocks, lines, fence, math = [], [], False, False
    for line in source.splitlines():
        stripped = line.strip()
        if not stripped and not fence and not math:
            if lines:
                blocks.append("\n".join(lines))
            lines = []
            continue
        lines.append(line)
        if stripped.startswith("```"):
            fence = not fence
        elif not fence and stripped.count("$$") % 2:
            math = not math
    if lines:
        blocks.append("\n".join(lines))
    return blocks


def joined_outputs(cell) -> list:
    """A code cell's outputs, with text printed in a row as one output (a kernel may send one
    print as several): what the list form of "output" counts."""
    outputs = []
    for output in cell.get("outputs", []):
        previous = outputs[-1] if outputs else {}
        if (
            output.get("output_type") == "stream"
            and previous.get("output_type") == "stream"
            and previous.get("name") == output.get("name")
        ):
            outputs[-1] = copy.deepcopy(previous)
            outputs[-1]["text"] = "".join(previous["text"]) + "".join(output["text"])
        else:
            outputs.append(output)
    return outputs


def cell_slide_types(cell) -> list[str]:
    """The slide types of a cell's parts, checked: one per block of a markdown cell; for a code
    cell, its code's, then its output's (one per output if "output" is a list, a list that is
    checked against the outputs once the notebook has run)."""
    show = cell.get("metadata", {}).get("slideshow", {})
    kind = show.get("slide_type", "-")
    name = cell.get("id", "without an id")
    if cell["cell_type"] == "code":
        output = show.get("output", kind)
        outputs = joined_outputs(cell)
        if isinstance(output, list) and outputs and len(output) != len(outputs):
            raise ValueError(
                f"cell {name} has {len(outputs)} outputs but slide types for {len(output)}"
            )
        types = [kind, *output] if isinstance(output, list) else [kind, output]
    elif "blocks" in show:
        types = list(show["blocks"])
        source = "".join(cell["source"])
        count = len(markdown_blocks(source))
        if len(types) != count:
            raise ValueError(
                f"cell {name} has {count} blocks of text but slide types for "
                f"{len(types)}: {source[:60]!r}"
            )
        if types[0] != kind:
            raise ValueError(
                f"cell {name}: slide_type {kind!r} differs from its first block's {types[0]!r}"
            )
    else:
        types = [kind]
    unknown = sorted(set(types) - set(SLIDE_TYPES))
    if unknown:
        raise ValueError(
            f"cell {name} has slide type {unknown[0]!r}, not one of {', '.join(SLIDE_TYPES)}"
        )
    if is_solution(cell) and types[0] != "skip":
        raise ValueError(f"cell {name} is a hidden solution, so its slide type must be 'skip'")
    return types


def slide_cells(notebook):
    """A copy of an (executed) notebook with one cell per part of the deck: a markdown cell with
    "blocks" split into a cell per block, a code cell with an "output" of its own into its code and
    its outputs -> nbformat.NotebookNode, for nbconvert's slides exporter."""
    deck = copy.deepcopy(notebook)
    cells = []
    for cell in deck.cells:
        types = cell_slide_types(cell)
        if cell.cell_type == "markdown" and len(types) > 1:
            blocks = markdown_blocks("".join(cell.source))
            cells += [_part(cell, kind, source=block) for kind, block in zip(types, blocks)]
        elif (
            cell.cell_type == "code"
            and "output" in cell.metadata.get("slideshow", {})
            and cell.outputs
        ):
            outputs = joined_outputs(cell)
            groups = (
                [(kind, [output]) for kind, output in zip(types[1:], outputs)]
                if len(types) > 2
                else [(types[1], outputs)]
            )
            cells.append(_part(cell, types[0], outputs=[]))
            cells += [_part(cell, kind, outputs=outputs, code=False) for kind, outputs in groups]
        else:
            cells.append(cell)
    deck.cells = [
        cell for cell in cells if cell.metadata.get("slideshow", {}).get("slide_type") != "skip"
    ]
    for number, cell in enumerate(deck.cells):
        cell.id = f"{cell.get('id', 'cell')}-{number}"  # the parts of a cell, told apart
    return deck


def _part(cell, kind: str, code: bool = True, **fields):
    """A copy of cell as one part of the deck, of slide type kind, with fields replaced (source,
    outputs); code=False leaves its code out (nbconvert's own flag for that)."""
    part = copy.deepcopy(cell)
    part.metadata.slideshow = {"slide_type": kind}
    if not code:
        part.metadata.transient = {"remove_source": True}
    part.update(fields)
    return part


# -- building --------------------------------------------------------------------------------------
@contextmanager
def _static_explorers():
    """Kernels started inside build explorers for a page without a kernel (explorer.static_page)."""
    before = os.environ.get("MINIDIFF_STATIC")
    os.environ["MINIDIFF_STATIC"] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("MINIDIFF_STATIC")
        else:
            os.environ["MINIDIFF_STATIC"] = before


def execute(path: Path, timeout: int = 600):
    """Run a notebook top to bottom in a fresh kernel, in its own folder; the widget state is
    stored in its metadata -> nbformat.NotebookNode."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    with _static_explorers():
        NotebookClient(
            notebook,
            timeout=timeout,
            kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
            store_widget_state=True,
        ).execute()
    return notebook


def _hide_solutions(notebook) -> None:
    for cell in notebook.cells:
        if is_solution(cell):
            cell.metadata.setdefault("tags", []).append("minidiff-solution")


def _exporters(assets: str = ASSETS_URL):
    from nbconvert import HTMLExporter, SlidesExporter
    from traitlets.config import Config

    config = Config()
    config.TagRemovePreprocessor.enabled = True
    config.TagRemovePreprocessor.remove_input_tags = {"minidiff-solution"}
    shared = {
        "require_js_url": f"{assets}/requirejs/require.js",
        "widget_renderer_url": f"{assets}/html-manager/dist/embed-amd.js",
        "mathjax_url": f"{assets}/mathjax/MathJax.js?config=TeX-AMS_CHTML-full,Safe",
        "jquery_url": f"{assets}/jquery/dist/jquery.min.js",
    }
    page = HTMLExporter(config=config, template_name="lab", **shared)
    # 1152 x 720: the 16:10 of a 1280 x 800 screen, at about the size of nbconvert's fonts; no
    # scrolling, which a lecturer cannot do on a projected slide (the browser test checks the fit)
    slides = SlidesExporter(
        config=config,
        reveal_url_prefix=f"{assets}/reveal.js",
        reveal_width="1152",
        reveal_height="720",
        reveal_scroll=False,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        reveal_theme="white",  # its font ships with it
        template_name="minidiff_slides",
        extra_template_basedirs=[str(Path(__file__).parent / "templates")],
        font_awesome_url=f"{assets}/font-awesome/css/font-awesome.min.css",
        **shared,
    )
    return page, slides


def _page_html(page: str, assets: str = ASSETS_URL) -> str:
    """Point require.js's "@jupyter-widgets" modules at the site's own copy (for the icon fonts),
    and give widgets the page's sans-serif font."""
    require = f'<script src="{assets}/requirejs/require.js"></script>'
    if require not in page:
        raise RuntimeError("nbconvert's template no longer loads require.js as minidiff expects")
    extra = (
        f'<script>require.config({{paths: {{"@jupyter-widgets": '
        f'"{assets}/{WIDGET_MODULES}"}}}});</script>\n'
        "<style>.jupyter-widgets, .widget-html-content, .widget-label "
        "{ font-family: var(--jp-ui-font-family, system-ui, sans-serif); }</style>"
    )
    return page.replace(require, require + "\n" + extra, 1)


def _title_and_question(notebook) -> tuple[str, str]:
    """'04 · Sampling: how does noise become a picture?' -> (the heading, the text after it)."""
    heading = "".join(notebook.cells[0].source).strip().splitlines()[0].lstrip("# ").strip()
    title, _, question = heading.partition(":")
    return title.strip(), question.strip()


def index_page(entries: list[dict]) -> str:
    rows = "\n".join(
        f"<li><a href='notebooks/{e['name']}.html'><b>{html.escape(e['title'])}</b></a>"
        f"{': ' + html.escape(e['question']) if e['question'] else ''} "
        f"<span class='slides'>(<a href='slides/{e['name']}.slides.html'>slides</a>)</span></li>"
        for e in entries
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>minidiff: how AI image generators turn words into pictures</title>
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; max-width: 46rem;
       margin: 2rem auto; padding: 0 1rem; line-height: 1.5; color: #222; }}
img {{ max-width: 100%; image-rendering: pixelated; }}
li {{ margin: 0.4rem 0; }} .slides {{ color: #666; font-size: 0.9em; }}
</style></head><body>
<h1>minidiff</h1>
<p>A course that builds, trains, watches and breaks a tiny text-to-image diffusion model, the
kind of model behind Stable Diffusion, DALL·E and Midjourney, small enough for a laptop.</p>
<img src="figures/hero.png" alt="Pictures drawn by the course's model: each row one prompt, each
column one seed">
<h2>The course</h2>
<ol start="0">
{rows}
</ol>
<p>These pages were computed when the site was built. The sliders and Play buttons work here, in
the browser, with no Python behind them; buttons that run the model (Generate, Start) need the
notebooks in JupyterLab: <code>bash scripts/setup.sh course</code>.</p>
</body></html>
"""


def build(
    out: str | os.PathLike = "site", notebooks: list[Path] | None = None, progress: bool = True
) -> dict:
    """Execute every notebook and write the site to `out` -> a report: {"pages": [{"name",
    "page_bytes", "slides_bytes", "seconds"}], "assets_bytes", "seconds"}."""
    from tqdm.auto import tqdm

    start = time.time()
    out = Path(out)
    notebooks = (
        sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
        if notebooks is None
        else [Path(p) for p in notebooks]
    )
    if not notebooks:
        raise FileNotFoundError(
            f"no notebooks found under {NOTEBOOKS}; minidiff site "
            "builds the course from a clone of the minidiff repository"
        )
    for folder in ("notebooks", "slides"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    assets = copy_assets(out)
    if FIGURES_DIR.is_dir():
        shutil.copytree(FIGURES_DIR, out / "figures", dirs_exist_ok=True)
    page_exporter, slides_exporter = _exporters()
    entries = []
    for path in tqdm(notebooks, desc="building pages", disable=not progress):
        began = time.time()
        notebook = execute(path)
        _hide_solutions(notebook)
        name = path.stem
        title, question = _title_and_question(notebook)
        notebook.metadata["title"] = f"minidiff {title}"
        page = _page_html(page_exporter.from_notebook_node(notebook)[0])
        slides = _page_html(slides_exporter.from_notebook_node(slide_cells(notebook))[0])
        (out / "notebooks" / f"{name}.html").write_text(page, encoding="utf-8")
        (out / "slides" / f"{name}.slides.html").write_text(slides, encoding="utf-8")
        entries.append(
            {
                "name": name,
                "title": title,
                "question": question,
                "page_bytes": len(page.encode()),
                "slides_bytes": len(slides.encode()),
                "seconds": round(time.time() - began, 1),
            }
        )
    (out / "index.html").write_text(index_page(entries), encoding="utf-8")
    report = {
        "pages": entries,
        "assets_bytes": sum(p.stat().st_size for p in assets),
        "seconds": round(time.time() - start, 1),
    }
    (out / "build.json").write_text(json.dumps(report, indent=1))
    too_big = [e["name"] for e in entries if max(e["page_bytes"], e["slides_bytes"]) > PAGE_LIMIT]
    if too_big:
        raise RuntimeError(f"pages over {PAGE_LIMIT // 2**20} MB: {', '.join(too_big)}")
    return report


def report_table(report: dict) -> str:
    lines = [f"{'notebook':<28}{'page':>10}{'slides':>10}{'seconds':>10}"]
    for e in report["pages"]:
        lines.append(
            f"{e['name']:<28}{e['page_bytes'] / 2**20:>8.2f}MB"
            f"{e['slides_bytes'] / 2**20:>8.2f}MB{e['seconds']:>10.1f}"
        )
    lines.append(
        f"assets (shared by every page): {report['assets_bytes'] / 2**20:.1f} MB; "
        f"built in {report['seconds']:.0f} s"
    )
    return "\n".join(lines)
