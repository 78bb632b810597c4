"""The course without a kernel, in a real browser: `minidiff site` builds every page and slide
deck, a server on 127.0.0.1 serves them, and Chromium, with every request that does not go to
127.0.0.1 blocked, opens them.

On notebook 04's page and its slide deck it moves the step slider and presses Play, and checks that
the picture and the step label change. On every page it moves every slider of every explorer and
checks that the explorer's picture changes, and that the buttons that run the model are disabled
and say why. It steps through every slide of every deck at 1280 x 800, a projector's size, and
fails on a slide whose text, pictures or widgets run below or right of the screen or are cut off
inside it, and it opens the speaker notes. It leaves screenshots and lists of what it checked in
test-artifacts/.

The site is built into a temporary folder (about as long as running every notebook), or taken
from MINIDIFF_SITE_DIR if that names a built one. Needs chromium and playwright, as
tests/test_browser.py does.
"""

import functools
import http.server
import json
import os
import threading
from pathlib import Path

import pytest

from tests.test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, STEP_LABEL, need_browser

pytestmark = [pytest.mark.browser, pytest.mark.slow]
EXPLORER = (
    "xpath=ancestor::div[contains(concat(' ', normalize-space(@class), ' '), "
    "' minidiff-explorer ')][1]"
)


@pytest.fixture(scope="module")
def site_dir(tmp_path_factory):
    need_browser()
    if os.environ.get("MINIDIFF_SITE_DIR"):
        return Path(os.environ["MINIDIFF_SITE_DIR"])
    from minidiff.course.site import build, report_table

    out = tmp_path_factory.mktemp("site")
    report = build(out, progress=False)
    print(report_table(report))
    return out


@pytest.fixture(scope="module")
def server(site_dir):
    handler = functools.partial(_QuietHandler, directory=str(site_dir))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _offline_page(browser, base: str, viewport: dict | None = None):
    """A page whose requests may only go to the site: anything else is blocked and recorded, and
    so is any request the site cannot answer."""
    page = browser.new_page(viewport=viewport or {"width": 1300, "height": 1000})
    page.outside, page.missing = [], []

    def route(request_route):
        if request_route.request.url.startswith(base):
            request_route.continue_()
        else:
            page.outside.append(request_route.request.url)
            request_route.abort()

    page.context.route("**/*", route)  # the page's own context: its pop-ups too (speaker view)
    page.context.on("response", lambda r: r.status >= 400 and page.missing.append(r.url))
    page.context.on(
        "requestfailed", lambda r: r.url.startswith(base) and page.missing.append(r.url)
    )
    return page


def _wait_for_widgets(page) -> None:
    """Until the widget bundle has drawn the stored widgets (or there are none)."""
    if page.locator("script[type='application/vnd.jupyter.widget-state+json']").count():
        rendered = page.locator(
            ".jupyter-widgets .widget-html, .jupyter-widgets .widget-image, "
            ".jupyter-widgets .widget-slider"
        ).first
        rendered.wait_for(state="attached", timeout=60_000)  # on slides it may be off screen
        page.wait_for_timeout(500)


def _scrub_and_play(page, shot: Path, keys: bool = True) -> None:
    """Move the step slider (arrow keys, or on slides, where reveal.js takes the arrow keys, a
    click a third of the way along it), then press Play."""
    from playwright.sync_api import expect

    slider = page.locator(".widget-slider:has(.widget-label:text-is('step'))").first
    explorer = slider.locator(EXPLORER)
    picture = explorer.locator("img.widget-image:visible").first
    label = explorer.locator(".widget-html:visible", has_text=STEP_LABEL).first
    explorer.scroll_into_view_if_needed()
    expect(label).to_be_visible(timeout=30_000)
    src, text = picture.get_attribute("src"), label.inner_text()
    if keys:
        slider.locator(".noUi-handle").focus()
        for _ in range(3):
            page.keyboard.press("ArrowRight")
    else:
        track = slider.locator(".noUi-base")
        box = track.bounding_box()
        track.click(position={"x": box["width"] / 3, "y": box["height"] / 2})
    expect(label).not_to_have_text(text, timeout=10_000)
    assert picture.get_attribute("src") != src
    moved = int(STEP_LABEL.search(label.inner_text()).group(1))
    before = int(STEP_LABEL.search(text).group(1))
    assert moved == before + 3 if keys else moved > before

    explorer.locator(".widget-play button").first.click()  # play
    page.wait_for_timeout(1500)  # 300 ms a frame
    played = int(STEP_LABEL.search(label.inner_text()).group(1))
    assert played > moved, f"Play did not move the step: {moved} -> {played}"
    page.wait_for_timeout(300)
    page.screenshot(path=shot)


def test_notebook_04_page_and_slides_scrub_and_play_offline(server, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    page = _offline_page(browser, server)
    page.goto(f"{server}/notebooks/04_sampling.html")
    _wait_for_widgets(page)
    _scrub_and_play(page, ARTIFACTS / "site-04.png")
    icons = page.evaluate(
        "document.fonts.check('12px FontAwesome') || "
        "[...document.fonts].some(f => f.status == 'loaded' && "
        "/awesome/i.test(f.family))"
    )
    assert icons, "the Play button's icon font did not load"
    assert not page.outside, f"the page asked outside 127.0.0.1: {page.outside[:5]}"
    assert not page.missing, f"the site lacks: {page.missing[:5]}"
    page.close()

    slides = _offline_page(browser, server)
    slides.goto(f"{server}/slides/04_sampling.slides.html")
    slides.locator(".reveal .slides").wait_for(timeout=30_000)
    _wait_for_widgets(slides)
    for _ in range(30):  # walk the deck to the slide with the step scrubber
        if slides.locator(
            "section.present .widget-slider:has(.widget-label:text-is('step'))"
        ).count():
            break
        slides.keyboard.press("ArrowRight")
        slides.wait_for_timeout(150)
    else:
        pytest.fail("no slide of 04_sampling shows the step scrubber")
    _scrub_and_play(slides, ARTIFACTS / "site-04-slides.png", keys=False)
    assert not slides.outside, f"the slides asked outside 127.0.0.1: {slides.outside[:5]}"
    assert not slides.missing, f"the site lacks: {slides.missing[:5]}"
    slides.close()


def test_every_explorer_works_on_its_static_page(server, browser, site_dir):
    report = json.loads((site_dir / "build.json").read_text())
    assert len(report["pages"]) == len(list((site_dir / "notebooks").glob("*.html")))
    checked = {}
    for entry in report["pages"]:
        assert entry["page_bytes"] < 10 * 2**20 and entry["slides_bytes"] < 10 * 2**20, entry
        page = _offline_page(browser, server)
        page.goto(f"{server}/notebooks/{entry['name']}.html")
        _wait_for_widgets(page)
        rows = []
        sliders = page.locator(".widget-slider")
        for i in range(sliders.count()):
            slider = sliders.nth(i)
            name = slider.locator(".widget-label").first.inner_text().strip()
            explorer = slider.locator(EXPLORER)
            if not explorer.count():  # a slider that sets a number for a button (00's count)
                rows.append({"slider": name, "explorer": False})
                continue
            slider.scroll_into_view_if_needed()
            pictures = explorer.locator("img.widget-image:visible")
            before = pictures.evaluate_all("imgs => imgs.map(i => i.src)")
            slider.locator(".noUi-handle").focus()
            page.keyboard.press("Home")
            page.keyboard.press("ArrowRight")
            page.wait_for_timeout(200)
            after = pictures.evaluate_all("imgs => imgs.map(i => i.src)")
            if before == after:  # it already stood at the second value: try the last one
                page.keyboard.press("End")
                page.wait_for_timeout(200)
                after = pictures.evaluate_all("imgs => imgs.map(i => i.src)")
            assert before != after, f"{entry['name']}: moving slider '{name}' changed no picture"
            rows.append(
                {
                    "slider": name,
                    "picture changes": True,
                    "play": explorer.locator(".widget-play").count() > 0,
                }
            )
        dropdowns = page.locator(".minidiff-explorer .widget-dropdown select")
        for i in range(dropdowns.count()):  # notebook 05's word: a stack of frames per word
            dropdown = dropdowns.nth(i)
            pictures = dropdown.locator(EXPLORER).locator("img.widget-image:visible")
            before = pictures.evaluate_all("imgs => imgs.map(i => i.src)")
            options = dropdown.locator("option").count()
            current = dropdown.evaluate("s => s.selectedIndex")
            dropdown.select_option(index=(current + 1) % options)
            page.wait_for_timeout(200)
            after = pictures.evaluate_all("imgs => imgs.map(i => i.src)")
            assert before != after, f"{entry['name']}: choosing another word changed no picture"
            rows.append({"dropdown": dropdown.evaluate("s => s.value"), "picture changes": True})
        buttons = page.locator(".widget-button:not(.widget-play button)")
        for j in range(buttons.count()):
            button = buttons.nth(j)
            text = button.inner_text().strip()
            if text and button.is_visible():
                assert button.is_disabled(), f"{entry['name']}: button '{text}' is live"
                rows.append({"button": text, "disabled": True})
        if any("button" in r for r in rows):
            assert page.locator("text=needs a running Python kernel").count()
        assert not page.outside, f"{entry['name']} asked outside 127.0.0.1: {page.outside[:5]}"
        assert not page.missing, f"{entry['name']}: the site lacks {page.missing[:5]}"
        checked[entry["name"]] = rows
        page.close()
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "site-explorers.json").write_text(json.dumps(checked, indent=1))
    sliders_checked = sum("picture changes" in r for rows in checked.values() for r in rows)
    assert sliders_checked >= 11, checked  # 01-07 and 09-10 one explorer or more, 08 two
    print(json.dumps(checked, indent=1))


def test_the_index_links_every_page(server, browser, site_dir):
    page = _offline_page(browser, server)
    page.goto(f"{server}/index.html")
    links = page.locator("a").evaluate_all("as => as.map(a => a.getAttribute('href'))")
    for name in (p.stem for p in (site_dir / "notebooks").glob("*.html")):
        assert f"notebooks/{name}.html" in links and f"slides/{name}.slides.html" in links
    assert page.locator("img").evaluate("i => i.naturalWidth") > 0  # the hero picture
    assert not page.outside and not page.missing
    page.close()


# -- every slide fits the screen -------------------------------------------------------------------
SCREEN = {"width": 1280, "height": 800}  # a lecture hall's projector, or a laptop
_REVEAL = """() => new Promise(resolve => {
    const css = document.querySelector("link[href$='dist/reveal.css']").getAttribute("href");
    require([css.replace(/reveal\\.css$/, "reveal.js")], reveal => {
        window.minidiffReveal = reveal;  // the deck's own reveal.js, as the page loaded it
        reveal.configure({transition: "none", backgroundTransition: "none"});
        resolve(reveal.getSlides().map(slide => {
            const heading = slide.querySelector("h1, h2, h3");
            const {h, v} = reveal.getIndices(slide);
            return {h, v, heading: heading ? heading.textContent.replace(/\u00b6$/, "").trim()
                                           : null};
        }));
    });
})"""
_SHOW = """([h, v]) => new Promise((resolve, reject) => {
    const reveal = window.minidiffReveal;
    reveal.slide(h, v);
    const slide = reveal.getCurrentSlide();
    const fragments = slide.querySelectorAll(".fragment").length;
    if (fragments) reveal.slide(h, v, fragments - 1);  // the slide as it ends, every fragment in
    const started = Date.now();
    const drawn = () => MathJax.Hub.queue.pending === 0 && !MathJax.Hub.queue.running
        && [...slide.querySelectorAll("script[type^='math/tex']")].every(math => {
            const frame = document.getElementById(math.id + "-Frame");  // MathJax's rendering
            return frame && frame.getBoundingClientRect().width > 0; })
        && [...slide.querySelectorAll("img")].every(image => image.complete);
    (function wait() {
        if (drawn()) requestAnimationFrame(() => requestAnimationFrame(() => resolve()));
        else if (Date.now() - started > 20000) reject(new Error("the slide's math or pictures "
                                                            + "were not drawn in 20 s"));
        else setTimeout(wait, 50);
    })();
})"""
# What of the current slide lies outside the screen, or is cut by a box that scrolls or clips
# (a code cell too narrow for its lines, say). Measured on what is drawn: every line of text,
# picture, formula and widget control, fragments not yet shown included (they keep their room),
# speaker notes not -> a list of problems.
_MEASURE = """() => {
    const slide = window.minidiffReveal.getCurrentSlide();
    const [width, height] = [window.innerWidth, window.innerHeight];
    const boxes = [];  // [box, the element drawing it]
    const walker = document.createTreeWalker(slide, NodeFilter.SHOW_TEXT);
    while (walker.nextNode()) {
        const text = walker.currentNode;
        if (!text.textContent.trim()) continue;
        const range = document.createRange();
        range.selectNodeContents(text);
        for (const box of range.getClientRects()) boxes.push([box, text.parentElement]);
    }
    for (const el of slide.querySelectorAll("img, svg, canvas, video, input, select, button, "
                                            + ".noUi-target, .widget-readout")) {
        for (const box of el.getClientRects()) boxes.push([box, el]);
    }
    const problems = new Set();
    for (const el of slide.querySelectorAll("*")) {  // text cut short with an ellipsis ("guida…")
        const style = getComputedStyle(el);
        if (style.textOverflow === "ellipsis" && el.scrollWidth > el.clientWidth + 1
            && el.getClientRects().length && !el.closest("aside.notes"))
            problems.add(`${el.tagName.toLowerCase()} "${el.textContent.trim().slice(0, 30)}" `
                         + "is cut short");
    }
    const extent = {left: width, top: height, right: 0, bottom: 0};
    for (const [box, el] of boxes) {
        if (box.width === 0 || box.height === 0
            || el.closest("aside.notes, .MJX_Assistive_MathML")) continue;  // not drawn
        const style = getComputedStyle(el);
        if (style.display === "none" || style.visibility === "hidden"
            && !el.closest(".fragment")) continue;
        extent.left = Math.min(extent.left, box.left);
        extent.top = Math.min(extent.top, box.top);
        extent.right = Math.max(extent.right, box.right);
        extent.bottom = Math.max(extent.bottom, box.bottom);
        for (let up = el; up && up !== slide.parentElement; up = up.parentElement) {
            const clip = getComputedStyle(up);
            if (clip.overflowX === "visible" && clip.overflowY === "visible") continue;
            const inside = up.getBoundingClientRect();
            const name = up.tagName.toLowerCase() + (typeof up.className === "string"
                && up.className.trim() ? "." + up.className.trim().split(/\\s+/)[0] : "");
            if (box.right > inside.right + 1 || box.left < inside.left - 1)
                problems.add(`${name} cuts its content at the side`);
            if (box.bottom > inside.bottom + 1 || box.top < inside.top - 1)
                problems.add(`${name} cuts its content at the bottom`);
        }
    }
    if (extent.bottom > height) problems.add(
        `runs ${Math.ceil(extent.bottom - height)} px below the screen`);
    if (extent.right > width) problems.add(
        `runs ${Math.ceil(extent.right - width)} px right of the screen`);
    if (extent.top < 0) problems.add(`starts ${Math.ceil(-extent.top)} px above the screen`);
    if (extent.left < 0) problems.add(`starts ${Math.ceil(-extent.left)} px left of it`);
    return [...problems];
}"""


def measure_deck(browser, base: str, name: str, shots: Path | None = None) -> list[dict]:
    """Open a deck at SCREEN size, show each of its slides as reveal.js does on the space bar and
    measure it -> [{"slide", "problems"}], a slide named by its place (#/h/v) and heading."""
    page = _offline_page(browser, base, SCREEN)
    page.goto(f"{base}/slides/{name}.slides.html")
    page.locator(".reveal .slides section").first.wait_for(timeout=30_000)
    page.wait_for_function("window.MathJax && MathJax.Hub && window.require", timeout=30_000)
    _wait_for_widgets(page)
    page.wait_for_function(
        """() => [...document.querySelectorAll(
        "script[type='application/vnd.jupyter.widget-view+json']")].every(
        s => s.parentElement.querySelector('.jupyter-widgets'))""",
        timeout=60_000,
    )
    measured, heading = [], name
    for slide in page.evaluate(_REVEAL):
        heading = slide["heading"] or f"{heading.removesuffix(' (continued)')} (continued)"
        page.evaluate(_SHOW, [slide["h"], slide["v"]])
        label = f"#/{slide['h']}/{slide['v']} '{heading}'"
        measured.append({"slide": label, "problems": page.evaluate(_MEASURE)})
        if shots is not None:
            shots.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=shots / f"{slide['h']:02d}-{slide['v']:02d}.png")
    assert not page.outside, f"{name}'s slides asked outside 127.0.0.1: {page.outside[:5]}"
    assert not page.missing, f"{name}: the site lacks {page.missing[:5]}"
    page.close()
    return measured


def test_every_slide_of_every_deck_fits_a_1280x800_screen(server, browser, site_dir):
    """Every slide, as a lecturer steps through the deck: nothing below or right of the screen,
    nothing cut off inside it. The count per deck goes to test-artifacts/slides-fit.json."""
    report = json.loads((site_dir / "build.json").read_text())
    decks = {
        entry["name"]: measure_deck(browser, server, entry["name"]) for entry in report["pages"]
    }
    over = [
        f"{name} {slide['slide']}: {'; '.join(slide['problems'])}"
        for name, slides in decks.items()
        for slide in slides
        if slide["problems"]
    ]
    counts = {
        name: {"slides": len(slides), "over": sum(bool(s["problems"]) for s in slides)}
        for name, slides in decks.items()
    }
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "slides-fit.json").write_text(
        json.dumps({"counts": counts, "slides": decks}, indent=1)
    )
    total = sum(c["slides"] for c in counts.values())
    assert total >= 2 * len(decks), counts  # a deck of one slide would be a broken cut
    assert not over, f"{len(over)} of {total} slides do not fit a 1280 x 800 screen:\n" + "\n".join(
        over
    )


def test_the_speaker_view_shows_a_slides_notes_offline(server, browser):
    """`s` on notebook 06's "Two guesses, and a push" opens reveal.js's speaker view, which shows
    the prose that the slide left to the notes."""
    page = _offline_page(browser, server, SCREEN)
    page.goto(f"{server}/slides/06_guidance.slides.html")
    page.wait_for_function("window.MathJax && MathJax.Hub && window.require", timeout=30_000)
    slides = page.evaluate(_REVEAL)
    push = next(s for s in slides if s["heading"] == "Two guesses, and a push")
    page.evaluate(_SHOW, [push["h"], push["v"]])
    shown = page.locator("section.present:not(.stack)").inner_text()
    assert "Classifier-free guidance" not in shown, "the prose is on the slide, not in the notes"
    with page.expect_popup() as opened:
        page.keyboard.press("s")
    speaker = opened.value
    speaker.wait_for_function(
        "() => (document.querySelector('.speaker-controls-notes') || "
        "{innerText: ''}).innerText.includes('Classifier-free guidance')",
        timeout=30_000,
    )
    speaker.close()
    assert not page.outside, f"the speaker view asked outside 127.0.0.1: {page.outside[:5]}"
    assert not page.missing, f"the site lacks: {page.missing[:5]}"
    page.close()
