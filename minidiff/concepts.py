"""Two things the shipped model never saw, to teach it (notebook 13, `minidiff finetune`).

- **A new object**: the cross, a plus sign drawn by the world's own renderer, flat and placed like
  the four shapes the model knows; it is called by a new word ("cross" by default).
- **A new style**: "sketched", the world's own shapes drawn as outlines (OUTLINE of their width)
  instead of flat fills; it is asked for by a new word put before the shape ("a red sketched star").

Each is taught from EXAMPLES pictures with captions, in the format `minidiff dataset` writes (PNG
files and captions.jsonl), so a learner can bring pictures from any paint program instead. The
examples use only EXAMPLE_COLOURS and EXAMPLE_POSITIONS; the prompts that test whether the new word
combines with the rest of the language (`novel_prompts`) use only the other colours and the
corners, which no example shows.

    images, captions, drawings = examples("object")   # uint8 (12, 32, 32, 3), 12 captions
    export_examples("style", "my-style/")              # the same as a folder
"""

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import world

CROSS_ARM = 0.34  # half the thickness of an arm, as a share of half the cross's width
OUTLINE = 0.11  # the width of a sketched outline, as a share of the shape's width: 2 px large
# At 32 x 32 a small shape is 10 pixels wide: its outline would leave a triangle or a star no
# inside. The style is taught, and tested, on large shapes; the reader still reads small ones.
STYLE_SIZES = ("large",)
SHAPES = world.SHAPES + ("cross",)
STYLES = ("flat", "outline")
KINDS = ("object", "style")
WORDS = {"object": "cross", "style": "sketched"}  # the default new word of each
EXAMPLES = 12
EXAMPLE_COLOURS = ("red", "blue", "yellow")
EXAMPLE_POSITIONS = ("left", "center", "right", "top", "bottom")
NOVEL_COLOURS = tuple(c for c in world.COLOURS if c not in EXAMPLE_COLOURS)
NOVEL_POSITIONS = ("top left", "top right", "bottom left", "bottom right")


def _inside_cross(x, y, h):
    """Inside a plus sign whose bounding box is 2h wide: in the box and in one of the two arms."""
    ax, ay = np.abs(x), np.abs(y)
    return (np.maximum(ax, ay) <= h) & (np.minimum(ax, ay) <= CROSS_ARM * h)


INSIDE = {**world.INSIDE, "cross": _inside_cross}
HEIGHT_PER_WIDTH = {**world.HEIGHT_PER_WIDTH, "cross": 1.0}


@dataclass(frozen=True)
class Drawing:
    """One object as the extended renderer draws it: a world object, or a cross, or an outline."""

    colour: str
    shape: str
    size: str
    position: str
    style: str = "flat"

    def __post_init__(self):
        allowed = {**world.ATTRIBUTES, "shape": SHAPES, "style": STYLES}
        for name, values in allowed.items():
            if getattr(self, name) not in values:
                raise ValueError(
                    f"unknown {name} {getattr(self, name)!r}; allowed: {', '.join(values)}"
                )


def _disk(radius: float) -> list[tuple[int, int]]:
    r = int(math.floor(radius))
    return [(dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1) if dy**2 + dx**2 <= r**2]


def _erode(inside: np.ndarray, radius: float) -> np.ndarray:
    """The points of a mask (n, S, S) whose disk of `radius` samples lies inside it."""
    r = int(math.floor(radius))
    s = inside.shape[-1]
    padded = np.pad(inside, ((0, 0), (r, r), (r, r)))
    kept = inside.copy()
    for dy, dx in _disk(radius):
        kept &= padded[:, r + dy : r + dy + s, r + dx : r + dx + s]
    return kept


def coverage(
    shapes: list[str], cx, cy, width, outline: float = 0.0, canvas: int = world.IMAGE_SIZE
) -> np.ndarray:
    """The anti-aliased masks of k objects, the cross among the shapes, (k,) box centres and widths
    in pixels -> float32 (k, canvas, canvas); with `outline` > 0, only a band inside each shape's
    edge, `outline` of its width wide (the sketched style). The world renderer's 4 x 4 samples per
    pixel."""
    unknown = sorted(set(shapes) - set(SHAPES))
    if unknown:
        raise ValueError(f"unknown shapes {unknown}; allowed: {', '.join(SHAPES)}")
    s = world.SUPERSAMPLE
    samples = (np.arange(canvas * s, dtype=np.float32) + 0.5) / s
    cx, cy, width = (np.asarray(v, dtype=np.float32).reshape(-1, 1, 1) for v in (cx, cy, width))
    x = samples[None, None, :] - cx  # (k, 1, canvas * 4)
    y = cy - samples[None, :, None]  # (k, canvas * 4, 1), up is positive
    inside = np.zeros((len(shapes), canvas * s, canvas * s), dtype=bool)
    for i, shape in enumerate(shapes):
        inside[i] = INSIDE[shape](x[i : i + 1], y[i : i + 1], width[i : i + 1] / 2)[0]
    if outline > 0:
        for i in range(len(shapes)):
            band = outline * float(width[i, 0, 0]) * s  # samples
            inside[i : i + 1] &= ~_erode(inside[i : i + 1], band)
    hits = inside.reshape(-1, canvas, s, canvas, s).sum(axis=(2, 4), dtype=np.float32)
    return hits / (s * s)


def draw(drawings: list[Drawing], rng: np.random.Generator) -> np.ndarray:
    """Pictures of drawings, with the world's jitter drawn from rng -> uint8 (n, 32, 32, 3)."""
    boxes = [
        world.place(HEIGHT_PER_WIDTH[d.shape], d.colour, d.size, d.position, rng.random(6))
        for d in drawings
    ]
    pictures = []
    for d, (cx, cy, width, rgb) in zip(drawings, boxes):
        band = OUTLINE if d.style == "outline" else 0.0
        alpha = coverage([d.shape], [cx], [cy], [width], band)[0][..., None]  # (32, 32, 1)
        background = np.array(world.BACKGROUND, dtype=np.float32)
        pictures.append(np.round((1 - alpha) * background + alpha * rgb.astype(np.float32)))
    return np.stack(pictures).astype(np.uint8)


# -- captions with the new word -------------------------------------------------------------------
def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown concept kind {kind!r}; choose one of {', '.join(KINDS)}")


def with_word(caption: str, kind: str, word: str, shape: str) -> str:
    """A world caption of `shape` -> the same caption with the new word: the object's word takes
    the shape's place ("a red circle" -> "a red cross"), the style's word stands before it ("a red
    sketched circle")."""
    _check_kind(kind)
    new = word if kind == "object" else f"{word} {shape}"
    changed, count = re.subn(rf"\b{shape}\b", new, caption, count=1)
    if count != 1:
        raise ValueError(f"the caption {caption!r} does not name the shape {shape!r}")
    return changed


def _sizes(kind: str) -> tuple[str, ...]:
    return world.SIZES if kind == "object" else STYLE_SIZES


def example_drawings(kind: str, n: int = EXAMPLES) -> list[Drawing]:
    """The objects of the n example pictures: the examples' colours and positions in turn, both
    sizes (the style: large); the object is always a cross, the style goes through the world's
    four shapes."""
    _check_kind(kind)
    out, sizes = [], _sizes(kind)
    for i in range(n):
        shape = "cross" if kind == "object" else world.SHAPES[i % len(world.SHAPES)]
        out.append(
            Drawing(
                EXAMPLE_COLOURS[i % len(EXAMPLE_COLOURS)],
                shape,
                sizes[(i // len(EXAMPLE_COLOURS)) % len(sizes)],
                EXAMPLE_POSITIONS[i % len(EXAMPLE_POSITIONS)],
                "flat" if kind == "object" else "outline",
            )
        )
    return out


def examples(
    kind: str, n: int = EXAMPLES, seed: int = 0, word: str | None = None
) -> tuple[np.ndarray, list[str], list[Drawing]]:
    """The n example pictures of a concept and their captions, each naming the new word, the
    colour, and (most of the time, as the world's captions do) the size and position."""
    _check_kind(kind)
    word = word or WORDS[kind]
    rng = np.random.default_rng([seed, KINDS.index(kind)])
    drawings = example_drawings(kind, n)
    images = draw(drawings, rng)
    captions = []
    for d in drawings:
        stand_in = "circle" if d.shape == "cross" else d.shape  # the world can caption it
        attrs = world.Attributes(d.colour, stand_in, d.size, d.position)
        u = rng.random(2)
        named = {"colour": True, "shape": True, "size": u[0] >= 0.3, "position": u[1] >= 0.3}
        mention = tuple(a for a in world.ATTRIBUTES if named[a])
        template, synonym = rng.integers(len(world.TEMPLATES)), rng.integers(2)
        plain = world.caption_in(attrs, mention, int(template), int(synonym))
        captions.append(with_word(plain, kind, word, stand_in))
    return images, captions, drawings


def _prompts(kind: str, word: str | None, colours, positions) -> list[tuple[str, Drawing]]:
    """The word with every colour, size and position given, in the world's first template; the
    style takes the world's shapes in turn, twice over its one size (so 24 or 30 either way)."""
    _check_kind(kind)
    word = word or WORDS[kind]
    sizes = _sizes(kind) * (len(world.SIZES) // len(_sizes(kind)))
    out = []
    combos = [(c, z, p) for c in colours for z in sizes for p in positions]
    for i, (colour, size, position) in enumerate(combos):
        shape = "cross" if kind == "object" else world.SHAPES[i % len(world.SHAPES)]
        stand_in = "circle" if shape == "cross" else shape
        plain = world.canonical_prompt(
            {"colour": colour, "shape": stand_in, "size": size, "position": position}
        )
        style = "flat" if kind == "object" else "outline"
        out.append(
            (with_word(plain, kind, word, stand_in), Drawing(colour, shape, size, position, style))
        )
    return out


def novel_prompts(kind: str, word: str | None = None) -> list[tuple[str, Drawing]]:
    """Prompts that pair the new word with colours and positions no example shows, with what each
    asks for: 3 colours x 2 sizes x 4 corners = 24."""
    return _prompts(kind, word, NOVEL_COLOURS, NOVEL_POSITIONS)


def familiar_prompts(kind: str, word: str | None = None) -> list[tuple[str, Drawing]]:
    """The examples' own kinds of prompt (their colours and positions), written in the world's
    first template: what concept fidelity is measured on, 3 x 2 x 5 = 30 prompts."""
    return _prompts(kind, word, EXAMPLE_COLOURS, EXAMPLE_POSITIONS)


# -- the examples as a folder ----------------------------------------------------------------------
def export_examples(
    kind: str, out_dir, n: int = EXAMPLES, seed: int = 0, word: str | None = None
) -> Path:
    """Write a concept's examples as 00000.png ... and captions.jsonl (what `minidiff dataset`
    writes, so `minidiff finetune --images` reads either)."""
    from PIL import Image

    images, captions, drawings = examples(kind, n, seed, word)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "captions.jsonl", "w") as lines:
        for i, (image, text, d) in enumerate(zip(images, captions, drawings)):
            file = f"{i:05d}.png"
            Image.fromarray(image).save(out / file)
            lines.write(json.dumps({"file": file, "caption": text, **vars(d)}) + "\n")
    return out


def read_examples(folder, size: int = world.IMAGE_SIZE) -> tuple[np.ndarray, list[str]]:
    """A folder of PNG pictures and captions.jsonl ({"file", "caption"} per line) -> uint8
    (n, size, size, 3) and n captions, refused in one sentence when it cannot be learned from."""
    from PIL import Image

    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"'{folder}' is not a folder; give a folder of PNG pictures and captions")
    listing = folder / "captions.jsonl"
    pngs = sorted(folder.glob("*.png"))
    if not pngs:
        raise ValueError(f"'{folder}' holds no PNG pictures to learn from")
    if not listing.is_file():
        raise ValueError(
            f"'{folder}' has no captions.jsonl (one line per picture: "
            '{"file": "00000.png", "caption": "a red cross"})'
        )
    images, captions = [], []
    for number, line in enumerate(listing.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            file, caption = row["file"], row["caption"]
        except (ValueError, KeyError, TypeError):
            raise ValueError(
                f"line {number} of '{listing}' is not a JSON object with 'file' and 'caption'"
            ) from None
        if not (folder / file).is_file():
            raise ValueError(f"captions.jsonl names '{file}', which is not in '{folder}'")
        with Image.open(folder / file) as picture:
            if picture.size != (size, size):
                raise ValueError(
                    f"'{file}' is {picture.size[0]} x {picture.size[1]} pixels; the model draws "
                    f"{size} x {size}, so every example must be that size"
                )
            images.append(np.asarray(picture.convert("RGB"), dtype=np.uint8))
        captions.append(str(caption))
    if not images:
        raise ValueError(f"'{listing}' names no pictures")
    return np.stack(images), captions
