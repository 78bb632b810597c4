"""The Shapes world: the pictures and captions the course's model learns from.

One 32 x 32 picture holds one flat, anti-aliased object on a light background. Four attributes
describe it (colour, shape, size, position: 6 x 4 x 2 x 9 = 432 combinations) and a caption names
some of them in plain English. Everything is generated on the fly and is deterministic: picture
`index` of a split with a given `seed` comes from its own random stream
`np.random.default_rng([seed, split_id, index])`, so it is the same on every machine and in any
batch. The pairs in HELD_OUT never appear in the train split (the composition test of the course).
"""

import json
import math
from dataclasses import dataclass
from itertools import product
from pathlib import Path

import numpy as np

COLOURS = ("red", "orange", "yellow", "green", "blue", "purple")
SHAPES = ("circle", "square", "triangle", "star")
SIZES = ("small", "large")
POSITIONS = (
    "top left",
    "top",
    "top right",
    "left",
    "center",
    "right",
    "bottom left",
    "bottom",
    "bottom right",
)
HELD_OUT = (("purple", "star"), ("green", "triangle"), ("orange", "circle"))
ATTRIBUTES = {"colour": COLOURS, "shape": SHAPES, "size": SIZES, "position": POSITIONS}
SPLITS = ("train", "val", "test")
IMAGE_SIZE = 32
BACKGROUND = (235, 235, 235)
PALETTE = {
    "red": (215, 40, 40),
    "orange": (240, 120, 20),
    "yellow": (235, 200, 20),
    "green": (40, 160, 65),
    "blue": (40, 95, 215),
    "purple": (140, 55, 190),
}
WIDTHS = {"small": 10.0, "large": 19.0}  # object width in pixels before jitter; large ~ 2 x small
POSITION_JITTER = 1.0  # pixels, uniform in [-1, 1] on each axis
SIZE_JITTER = 0.04  # relative, uniform in [-4 %, +4 %]
COLOUR_JITTER = 6  # units per channel, uniform in [-6, 6]
MARGIN = 2.5  # pixels between the canvas edge and an object at an edge position, before jitter
STAR_INNER = 0.5  # inner / outer radius of the star; a slim pentagram (0.38) blurs at 10 px

# Caption words. One attribute value is always written with the same words (large/big and
# small/tiny are the only synonyms), so a model can learn what each word means.
SIZE_WORDS = {"large": ("large", "big"), "small": ("small", "tiny")}
NOUN_FOR_ANY_SHAPE = "shape"
PHRASES = {
    "top left": "in the top left",
    "top": "at the top",
    "top right": "in the top right",
    "left": "on the left",
    "center": "in the center",
    "right": "on the right",
    "bottom left": "in the bottom left",
    "bottom": "at the bottom",
    "bottom right": "in the bottom right",
}
TEMPLATES = (
    "a large red circle in the top left",
    "red circle, top left, large",
    "a circle that is red and large in the top left",
    "in the top left, a large red circle",
    "large red circle, top left",
    "the large red circle is in the top left",
    "a circle, red and large, in the top left",
    "top left, a large red circle",
)
GLUE_WORDS = ("a", "an", "that", "is", "and", "in", "at", "on", "the", ",")
WORDS = (
    GLUE_WORDS
    + COLOURS
    + SHAPES
    + (NOUN_FOR_ANY_SHAPE,)
    + tuple(w for words in SIZE_WORDS.values() for w in words)
    + ("top", "bottom", "left", "right", "center")
)
OMIT_PROBABILITY = {"colour": 0.15, "shape": 0.15, "size": 0.3, "position": 0.3}


@dataclass(frozen=True)
class Attributes:
    colour: str
    shape: str
    size: str
    position: str

    def __post_init__(self):
        for name, allowed in ATTRIBUTES.items():
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"unknown {name} {value!r}; allowed: {', '.join(allowed)}")


@dataclass
class Example:
    image: np.ndarray  # (32, 32, 3) uint8
    caption: str
    attrs: Attributes
    mentioned: tuple[str, ...]  # the attributes the caption names, in ATTRIBUTES order


def _check_split(split: str):
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; allowed splits: {', '.join(SPLITS)}")


def combinations(split: str) -> tuple[Attributes, ...]:
    """Every attribute combination a split can show: 378 for train (no HELD_OUT pair), else 432."""
    _check_split(split)
    return tuple(
        Attributes(*c)
        for c in product(COLOURS, SHAPES, SIZES, POSITIONS)
        if split != "train" or (c[0], c[1]) not in HELD_OUT
    )


_COMBINATIONS = {split: combinations(split) for split in SPLITS}

# -- drawing -------------------------------------------------------------------------------------
# Each shape is an inside test on points (x, y) measured in pixels from the centre of the shape's
# bounding box, y pointing up; h is half the box width. Anti-aliasing: test 4 x 4 points per pixel
# and average, so an edge pixel gets the fraction of its area that the shape covers.
SUPERSAMPLE = 4
SQRT3 = math.sqrt(3)
SAMPLES = (np.arange(IMAGE_SIZE * SUPERSAMPLE, dtype=np.float32) + 0.5) / SUPERSAMPLE


def _mirror(x, y, degrees: float):
    """Reflect points lying clockwise of the mirror line `degrees` clockwise from up onto its other
    side: p -> p - 2 max(p . n, 0) n, with n the line's unit normal. Plain arithmetic, no trig on
    arrays, so every machine computes the same bits."""
    nx, ny = math.cos(math.radians(degrees)), -math.sin(math.radians(degrees))
    s = 2 * np.maximum(x * nx + y * ny, 0)
    return x - s * nx, y - s * ny


def _inside_star(x, y, h):
    """Inside a five-pointed star, one tip up, whose bounding box is 2h wide."""
    outer = h / math.sin(math.radians(72))  # tip radius; the tips beside the top one are widest
    inner = STAR_INNER * outer  # radius of the inner corners, 36 degrees from the tips
    y = y + outer * (1 - math.cos(math.radians(36))) / 2  # from the box centre to the star centre
    # The star has mirror lines every 36 degrees: fold every point into the wedge between the top
    # tip (0 degrees) and the inner corner beside it (36 degrees), then test one edge.
    x, y = _mirror(np.abs(x), y, 72)  # angles in [0, 180] -> [-36, 72]
    x, y = _mirror(np.abs(x), y, 36)  # -> [0, 72] -> [0, 36]
    tx, ty = 0.0, outer  # the tip
    cx, cy = inner * math.sin(math.radians(36)), inner * math.cos(math.radians(36))  # the corner
    return (cx - tx) * (y - ty) - (cy - ty) * (x - tx) <= 0  # on the centre's side of the edge


INSIDE = {
    "circle": lambda x, y, h: x * x + y * y <= h * h,
    "square": lambda x, y, h: np.maximum(np.abs(x), np.abs(y)) <= h,
    # equilateral, tip up: above the base and below both slanted sides (slope sqrt(3))
    "triangle": lambda x, y, h: (y >= -h * SQRT3 / 2) & (y + SQRT3 * np.abs(x) <= h * SQRT3 / 2),
    "star": _inside_star,
}
HEIGHT_PER_WIDTH = {
    "circle": 1.0,
    "square": 1.0,
    "triangle": SQRT3 / 2,
    "star": (1 + math.cos(math.pi / 5)) / (2 * math.sin(2 * math.pi / 5)),
}


def _coverage(
    shape: str, cx: np.ndarray, cy: np.ndarray, width: np.ndarray, side: int
) -> np.ndarray:
    """Box centres and widths (n,) in pixels from a window's top left corner -> fraction of each
    pixel of the side x side window that the shape covers, (n, side, side)."""
    samples = SAMPLES[: side * SUPERSAMPLE]
    x = samples[None, None, :] - cx[:, None, None]  # (n, 1, side * 4)
    y = cy[:, None, None] - samples[None, :, None]  # (n, side * 4, 1), up is positive
    inside = INSIDE[shape](x, y, width[:, None, None] / 2)  # (n, side * 4, side * 4)
    s = SUPERSAMPLE
    hits = inside.reshape(-1, side, s, side, s).sum(axis=(2, 4), dtype=np.float32)
    return hits / (s * s)  # (n, side, side)


def _layout(attrs: Attributes, u: np.ndarray) -> tuple[float, float, float, np.ndarray]:
    """Six uniforms u in [0, 1) -> box centre (cx, cy), width and RGB colour of one object."""
    return place(HEIGHT_PER_WIDTH[attrs.shape], attrs.colour, attrs.size, attrs.position, u)


def place(
    height_per_width: float, colour: str, size: str, position: str, u: np.ndarray
) -> tuple[float, float, float, np.ndarray]:
    """Where and how the renderer draws one object of a shape whose box is `height_per_width` as
    high as wide (so a new shape, minidiff.concepts, is placed as the world's own are): six
    uniforms u in [0, 1) -> box centre (cx, cy), width and RGB colour."""
    width = WIDTHS[size]
    height = width * height_per_width
    row, col = divmod(POSITIONS.index(position), 3)
    # An edge position puts the box MARGIN pixels from the edge, so jitter never leaves the canvas.
    cx = MARGIN + width / 2 + col * (IMAGE_SIZE - 2 * MARGIN - width) / 2
    cy = MARGIN + height / 2 + row * (IMAGE_SIZE - 2 * MARGIN - height) / 2
    jitter = 2 * u - 1  # (6,) in [-1, 1)
    cx, cy = cx + POSITION_JITTER * jitter[0], cy + POSITION_JITTER * jitter[1]
    width = width * (1 + SIZE_JITTER * jitter[2])
    rgb = np.array(PALETTE[colour]) + np.round(COLOUR_JITTER * jitter[3:])
    return cx, cy, width, rgb


def _paint(attrs: list[Attributes], layouts: list[tuple]) -> np.ndarray:
    """Draw n objects at once -> uint8 (n, 32, 32, 3)."""
    cx, cy, width = (np.array([lay[i] for lay in layouts], dtype=np.float32) for i in range(3))
    rgb = np.array([lay[3] for lay in layouts], dtype=np.float32)  # (n, 3)
    alpha = coverage([a.shape for a in attrs], cx, cy, width)[..., None]  # (n, 32, 32, 1)
    image = (1 - alpha) * np.array(BACKGROUND, dtype=np.float32) + alpha * rgb[:, None, None, :]
    return np.round(image).astype(np.uint8)


def coverage(shapes: list[str], cx, cy, width, canvas: int = IMAGE_SIZE) -> np.ndarray:
    """The renderer's anti-aliased masks of k objects, for pictures of several (minidiff.scenes):
    box centres (cx, cy) and widths (k,) in pixels from the top left corner of a canvas x canvas
    picture -> the fraction of each pixel that each object covers, float32 (k, canvas, canvas)."""
    unknown = sorted(set(shapes) - set(SHAPES))
    if unknown:
        raise ValueError(f"unknown shapes {unknown}; allowed: {', '.join(SHAPES)}")
    cx, cy, width = (np.asarray(v, dtype=np.float32).reshape(-1) for v in (cx, cy, width))
    alpha = np.zeros((len(shapes), canvas, canvas), dtype=np.float32)  # (k, canvas, canvas)
    for shape in SHAPES:
        rows = np.flatnonzero(np.array(shapes) == shape)
        if len(rows) == 0:
            continue
        # Only a window around each object is sampled: 3 times less work than the whole canvas.
        side = min(math.ceil(float(width[rows].max())) + 2, canvas, IMAGE_SIZE)
        left = np.clip(np.floor(cx[rows] - side / 2), 0, canvas - side).astype(int)  # (m,)
        top = np.clip(np.floor(cy[rows] - side / 2), 0, canvas - side).astype(int)
        window = _coverage(shape, cx[rows] - left, cy[rows] - top, width[rows], side)
        steps = np.arange(side)
        alpha[
            rows[:, None, None],
            top[:, None, None] + steps[None, :, None],
            left[:, None, None] + steps[None, None, :],
        ] = window  # (m, side, side)
    return alpha


def render(attrs: Attributes, rng: np.random.Generator) -> np.ndarray:
    """One picture of `attrs` with random jitter drawn from rng -> uint8 (32, 32, 3)."""
    return _paint([attrs], [_layout(attrs, rng.random(6))])[0]


# -- captions ------------------------------------------------------------------------------------
def _random_mention(rng: np.random.Generator) -> tuple[str, ...]:
    u = rng.random(len(ATTRIBUTES))
    mention = tuple(n for n, p in zip(ATTRIBUTES, u) if p >= OMIT_PROBABILITY[n])
    return mention or ("shape",)  # never an empty caption: "" is the unconditional prompt


def _with_article(words: list[str]) -> str:
    return ("an " if words[0][0] in "aeiou" else "a ") + " ".join(words)


def caption(
    attrs: Attributes, rng: np.random.Generator, mention: tuple[str, ...] | None = None
) -> str:
    """A caption naming the attributes in `mention` (random if None) in one of the TEMPLATES."""
    if mention is None:
        mention = _random_mention(rng)
    unknown = set(mention) - set(ATTRIBUTES)
    if unknown:
        raise ValueError(
            f"mention names unknown attributes {sorted(unknown)}; allowed: {', '.join(ATTRIBUTES)}"
        )
    template, synonym = rng.random(2)
    return caption_in(attrs, mention, int(template * len(TEMPLATES)), int(synonym * 2))


def caption_in(attrs: Attributes, mention: tuple[str, ...], template: int, synonym: int) -> str:
    """The caption of `attrs` naming `mention` in TEMPLATES[template], with size word `synonym`
    (0: large/small, 1: big/tiny). Every training caption is one of these."""
    if not mention:
        return ""
    colour = attrs.colour if "colour" in mention else None
    noun = attrs.shape if "shape" in mention else NOUN_FOR_ANY_SHAPE
    size = SIZE_WORDS[attrs.size][synonym] if "size" in mention else None
    position = attrs.position if "position" in mention else None
    phrase = PHRASES.get(position)
    bare = " ".join(w for w in (size, colour, noun) if w)  # large red circle
    noun_phrase = _with_article(bare.split())  # a large red circle
    adjectives = " and ".join(w for w in (colour, size) if w)  # red and large
    if template == 0:  # a large red circle in the top left
        words = [noun_phrase, phrase]
    elif template == 1:  # red circle, top left, large
        return ", ".join(w for w in (" ".join(w for w in (colour, noun) if w), position, size) if w)
    elif template == 2:  # a circle that is red and large in the top left
        words = [_with_article([noun]), adjectives and "that is " + adjectives, phrase]
    elif template == 3:  # in the top left, a large red circle
        return f"{phrase}, {noun_phrase}" if phrase else noun_phrase
    elif template == 4:  # large red circle, top left
        return ", ".join(w for w in (bare, position) if w)
    elif template == 5:  # the large red circle is in the top left
        words = ["the", bare, phrase and "is " + phrase]
    elif template == 6:  # a circle, red and large, in the top left
        return ", ".join(w for w in (_with_article([noun]), adjectives, phrase) if w)
    elif template == 7:  # top left, a large red circle
        return f"{position}, {noun_phrase}" if position else noun_phrase
    else:
        raise ValueError(f"no template number {template}; there are {len(TEMPLATES)}")
    return " ".join(w for w in words if w)


_MEANINGS = {
    **{c: ("colour", c) for c in COLOURS},
    **{s: ("shape", s) for s in SHAPES},
    **{w: ("size", size) for size, words in SIZE_WORDS.items() for w in words},
    "top": ("vertical", "top"),
    "bottom": ("vertical", "bottom"),
    "left": ("horizontal", "left"),
    "right": ("horizontal", "right"),
    "center": ("center", "center"),
}  # the words that carry meaning; the rest is glue


def parse_prompt(prompt: str) -> dict[str, str]:
    """The attributes a prompt names, synonyms resolved: "a big red star" -> {"colour": "red",
    "shape": "star", "size": "large"}. The inverse of caption(); unknown words raise ValueError."""
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a string, got {type(prompt).__name__}")
    found: dict[str, str] = {}
    for word in prompt.lower().replace(",", " , ").split():
        if word not in WORDS:
            raise ValueError(f"unknown word {word!r} in prompt {prompt!r}")
        key, value = _MEANINGS.get(word, (None, None))
        if key is not None and found.setdefault(key, value) != value:
            raise ValueError(f"prompt {prompt!r} names both {found[key]} and {value}")
    place = [found.pop(k) for k in ("vertical", "horizontal", "center") if k in found]
    if "center" in place and len(place) > 1:
        raise ValueError(f"prompt {prompt!r} mixes center with another position")
    if place:
        found["position"] = " ".join(place)  # e.g. "top" + "left" -> "top left"
    return {k: found[k] for k in ATTRIBUTES if k in found}


# -- a skewed split --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Skew:
    """A chosen bias of a split, for the course's bias experiment (notebook 09).

    Of the pictures whose `given` attribute has `given_value` (the stars) and whose caption leaves
    `attribute` out (says no colour), a share `share` get `value` (yellow); the others spread
    evenly over the remaining values the split allows for them. Pictures whose caption names the
    attribute are left alone, so "a red star" still means a red star; what the model learns is
    what to draw when it is not told. Skew() is "80% of the stars a caption leaves uncoloured are
    yellow"; without a skew, yellow is 1 in 5 of them (purple stars are held out of training).
    """

    attribute: str = "colour"
    value: str = "yellow"
    share: float = 0.8
    given: str = "shape"
    given_value: str = "star"

    def __post_init__(self):
        for name, val in ((self.attribute, self.value), (self.given, self.given_value)):
            if name not in ATTRIBUTES:
                raise ValueError(
                    f"unknown attribute {name!r}; choose one of {', '.join(ATTRIBUTES)}"
                )
            if val not in ATTRIBUTES[name]:
                raise ValueError(
                    f"{val!r} is not a {name}; choose one of {', '.join(ATTRIBUTES[name])}"
                )
        if self.attribute == self.given:
            raise ValueError("the skewed attribute and the given one must differ")
        if not (isinstance(self.share, (int, float)) and 0.0 <= self.share <= 1.0):
            raise ValueError(f"share must be a number from 0 to 1, got {self.share!r}")

    def applies(self, attrs: Attributes, mention: tuple[str, ...]) -> bool:
        return getattr(attrs, self.given) == self.given_value and self.attribute not in mention

    def redraw(self, attrs: Attributes, split: str, rng: np.random.Generator) -> Attributes:
        """attrs with the skewed attribute drawn again: `value` with probability `share`, else
        uniformly one of the other values the split allows with the rest of attrs."""
        fixed = {k: v for k, v in vars(attrs).items() if k != self.attribute}
        others = [
            c
            for c in _COMBINATIONS[split]
            if all(getattr(c, k) == v for k, v in fixed.items())
            and getattr(c, self.attribute) != self.value
        ]
        u = rng.random()
        if u < self.share or not others:
            return Attributes(**{**fixed, self.attribute: self.value})
        return others[min(int((u - self.share) / (1 - self.share) * len(others)), len(others) - 1)]


def skew_count(skew: Skew, split: str = "train", n: int = 20000, seed: int = 0) -> tuple[int, int]:
    """(hits, total): among the first n pictures of the split drawn with `skew`, the `total` the
    skew applies to, and the `hits` among them with the skewed value: what the model is shown."""
    hits = total = 0
    for i in range(n):
        attrs, _, _, mention = _describe(split, i, seed, skew)
        if skew.applies(attrs, mention):
            total += 1
            hits += getattr(attrs, skew.attribute) == skew.value
    return hits, total


# -- splits --------------------------------------------------------------------------------------
def _describe(split: str, index: int, seed: int, skew: Skew | None = None):
    """Everything about picture `index` of a split but its pixels: (attrs, layout, caption,
    mentioned), drawn from the picture's own random stream."""
    rng = np.random.default_rng([seed, SPLITS.index(split), index])
    allowed = _COMBINATIONS[split]
    attrs = allowed[rng.integers(len(allowed))]  # uniform over the split's combinations
    u = rng.random(6)  # the draws render() makes
    mention = _random_mention(rng)
    text = caption(attrs, rng, mention)
    if skew is not None and skew.applies(attrs, mention):  # the caption does not name it
        attrs = skew.redraw(attrs, split, rng)
    return attrs, _layout(attrs, u), text, mention


def _generate(split: str, start: int, n: int, seed: int, skew: Skew | None = None):
    """Pictures start .. start + n - 1 of a split: (images, captions, attrs, mentioned)."""
    _check_split(split)
    if not (isinstance(start, int) and isinstance(n, int) and start >= 0 and n >= 1):
        raise ValueError(f"need an integer start >= 0 and n >= 1, got start={start!r}, n={n!r}")
    if skew is not None and not isinstance(skew, Skew):
        raise TypeError(f"skew must be a minidiff.world.Skew, got {type(skew).__name__}")
    attrs, layouts, captions, mentioned = zip(
        *(_describe(split, i, seed, skew) for i in range(start, start + n))
    )
    return _paint(list(attrs), list(layouts)), list(captions), list(attrs), list(mentioned)


def batch(split: str, start: int, n: int, seed: int = 0, skew: Skew | None = None):
    """Pictures start .. start + n - 1 of a split -> (uint8 (n, 32, 32, 3), captions, attrs);
    with a `skew` (see Skew), the split drawn with that bias."""
    images, captions, attrs, _ = _generate(split, start, n, seed, skew)
    return images, captions, attrs


def example(split: str, index: int, seed: int = 0) -> Example:
    """Picture `index` of a split: the same as picture `index` of any batch that contains it."""
    images, captions, attrs, mentioned = _generate(split, index, 1, seed)
    return Example(images[0], captions[0], attrs[0], mentioned[0])


def canonical_prompt(named: dict[str, str]) -> str:
    """{attribute: value} -> the world's first caption template: "a large red circle in the top
    left"; an unnamed shape is called "shape", an unnamed position is not mentioned."""
    words = [named.get("size"), named.get("colour"), named.get("shape", NOUN_FOR_ANY_SHAPE)]
    words = [w for w in words if w]
    article = "an" if words[0][0] in "aeiou" else "a"
    phrase = PHRASES[named["position"]] if "position" in named else None
    prompt = " ".join(w for w in [article, *words, phrase] if w)
    if parse_prompt(prompt) != {k: named[k] for k in ATTRIBUTES if k in named}:
        raise AssertionError(f"the prompt {prompt!r} does not read back as {named}")
    return prompt


def render_prompts(prompts: list[str], seed: int | list[int]) -> np.ndarray:
    """Real pictures of prompts, one each, left-out attributes uniform -> uint8 (N, 32, 32, 3)."""
    rng = np.random.default_rng(seed)
    pictures = []
    for prompt in prompts:
        named = parse_prompt(prompt)
        attrs = {
            k: named.get(k) or values[rng.integers(len(values))] for k, values in ATTRIBUTES.items()
        }
        pictures.append(render(Attributes(**attrs), rng))
    return np.stack(pictures)


def export_split(split: str, n: int, out_dir, seed: int = 0) -> Path:
    """Write pictures 0 .. n - 1 of a split as 00000.png ... plus captions.jsonl into out_dir."""
    from PIL import Image

    _check_split(split)
    if not isinstance(n, int) or n <= 0:
        raise ValueError(f"n must be a positive integer number of pictures, got {n!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    digits = max(5, len(str(n - 1)))
    with open(out_dir / "captions.jsonl", "w") as lines:
        for start in range(0, n, 1000):
            images, captions, attrs, mentioned = _generate(split, start, min(1000, n - start), seed)
            for i, image in enumerate(images):
                file = f"{start + i:0{digits}d}.png"
                Image.fromarray(image).save(out_dir / file)
                row = {
                    "file": file,
                    "caption": captions[i],
                    **vars(attrs[i]),
                    "mentioned": list(mentioned[i]),
                }
                lines.write(json.dumps(row) + "\n")
    return out_dir
