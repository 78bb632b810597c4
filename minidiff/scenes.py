"""The scenes world: one to four objects a picture, for the lessons on binding, counting, relations.

A scene is a tuple of `world.Attributes`, one per object, each in its own cell of the 3 x 3 grid
(`position` is the cell), drawn by the one-object world's renderer with its jitters. A caption of
one of four kinds describes it, and never contradicts it:

    two objects   "a red circle and a blue square"            (sizes and cells sometimes named)
    relation      "a red circle to the left of a blue square"  (left of, right of, above, below)
    count         "three green triangles"                      (one to four alike objects)
    one object    every caption of the one-object world        (world.caption)

The order of mention is drawn at random, independent of the layout. `holds` is the one rule for
relations: A is left of B when A's column is left of B's, above when A's row is above B's.

**The canvas is 48 x 48**, with objects 6.5 (small) and 12 (large) pixels wide. On 32 x 32 a cell
is 10.7 pixels: with the jitters (+-1 pixel, +-4 % size) and a pixel between neighbours, a large
object could be at most 7 pixels wide and a small one 3.5. After the judge's harshest augmentation
(3 x 3 blur, noise of 12.75 levels) the scene judge reads the shape of 2000 single objects 3.5
pixels wide 55 % of the time, 4.5 pixels (what a 40 x 40 canvas allows) 89 %, 5 pixels 96 %,
6 pixels 99.6 %, 6.5 pixels 99.7 %, 7 pixels 100 % (benchmarks/bench_scenes.py). A 16-pixel cell
holds 6.5 / 12 with at least 1.5 pixels between neighbours, and the judge reads all 3816 objects
of 2000 blurred, noisy test scenes right; 64 x 64 would cost 1.8 times the pixels for nothing.
Drawing a batch of 64 scenes takes about 23 ms on the course's 2-core machine (64 one-object
pictures: 9 ms; a training step of the shipped U-Net at batch 64: about 140 ms).

**Held out of training.** No training scene holds a pair of HELD_OUT_BINDINGS together ("a red
circle with a blue square"), nor an object of the one-object world's held-out pairs (purple star,
green triangle, orange circle). No training caption is one of the evaluation's multi-object prompts
(`reserved_for_evaluation`; minidiff.geneval). Validation and test draw every object freely.

**Vocabulary.** Scene captions use words today's tokenizer does not know ("to", "of", "three",
"circles", ...). `WORDS` is world.WORDS, in order, with the new words appended, so a tokenizer built
on it keeps every old word's id; world.WORDS and minidiff.tokenizer stay as they are, because the
shipped models' embedding tables depend on them. Every caption fits the tokenizer's 16 tokens.

**Deterministic**: scene `index` of a split comes from its own stream
`np.random.default_rng([seed, split_id, index, STREAM])` (its jitter from one more), the same on
every machine and in any batch.
"""

from dataclasses import dataclass
from itertools import permutations, product

import numpy as np

from . import world
from .world import COLOURS, POSITIONS, SHAPES, SIZES, Attributes

CANVAS = 48
CELL = CANVAS / 3  # pixels
WIDTHS = {"small": 6.5, "large": 12}  # object width before jitter; see the docstring
MAX_OBJECTS = 4
SPLITS = world.SPLITS
STREAM = 1  # told apart from the one-object world's streams [seed, split_id, index]
KINDS = ("one", "two", "relation", "count")
KIND_SHARES = (0.2, 0.3, 0.3, 0.2)
_KIND_CUMULATIVE = np.cumsum(KIND_SHARES)[:-1]
RELATIONS = ("left of", "right of", "above", "below")
NUMBERS = ("one", "two", "three", "four")
PLURALS = {s: s + "s" for s in SHAPES}
# Three ways to write a relation (the word orders A-rel-B, rel-B-A, B-with-A-rel), plus a terse one
SAID = {
    "left of": "to the left of",
    "right of": "to the right of",
    "above": "above",
    "below": "below",
}
TERSE = {"left of": "left of", "right of": "right of", "above": "above", "below": "below"}
WITH = {
    "left of": "to its left",
    "right of": "to its right",
    "above": "above it",
    "below": "below it",
}
NEW_WORDS = NUMBERS + tuple(PLURALS.values()) + ("to", "of", "above", "below", "with", "its", "it")
WORDS = world.WORDS + NEW_WORDS
MAX_WORDS = 15  # today's tokenizer: 16 tokens, <start> included
MENTION = {"colour": 0.85, "size": 0.6, "position": 0.25}  # chance that a caption names it

# Six bindings: each of 12 objects in one, each colour in two, each shape in three, no two sharing
# a pair of colours, none touching the one-object held-out pairs. So both halves of every binding,
# and the swapped binding (a red square with a blue circle), are seen in training: what is new is
# only which colour goes with which shape.
HELD_OUT_BINDINGS = (
    (("red", "circle"), ("blue", "square")),
    (("red", "square"), ("green", "star")),
    (("orange", "square"), ("purple", "triangle")),
    (("orange", "triangle"), ("yellow", "star")),
    (("yellow", "triangle"), ("purple", "circle")),
    (("green", "circle"), ("blue", "star")),
)


def _shifted(pair, k: int):
    return tuple((COLOURS[(COLOURS.index(c) + k) % len(COLOURS)], s) for c, s in pair)


# The colour-attribution prompts of the evaluation: the held-out bindings; seen ones are their
# swaps (the same words bound the other way) and the bindings with each colour one step back.
SEEN_PAIRS = tuple(((a[0], b[1]), (b[0], a[1])) for a, b in HELD_OUT_BINDINGS) + tuple(
    _shifted(p, -1) for p in HELD_OUT_BINDINGS
)
ATTRIBUTION_PAIRS = HELD_OUT_BINDINGS + SEEN_PAIRS
_HELD_OUT = {frozenset(p) for p in HELD_OUT_BINDINGS}
_RESERVED_PAIRS = {frozenset(p) for p in ATTRIBUTION_PAIRS}
OBJECTS = tuple(product(COLOURS, SHAPES))  # the 24 colour-shapes
TRAIN_OBJECTS = tuple(o for o in OBJECTS if o not in world.HELD_OUT)
Scene = tuple[Attributes, ...]


@dataclass(frozen=True)
class ObjectRequest:
    """One object (or `count` alike ones) a prompt asks for; None: any value."""

    colour: str | None = None
    shape: str | None = None
    size: str | None = None
    position: str | None = None
    count: int = 1


@dataclass(frozen=True)
class SceneRequest:
    """What a prompt asks for: its objects and, between the first two, a relation (or None)."""

    objects: tuple[ObjectRequest, ...] = ()
    relation: str | None = None

    @property
    def total(self) -> int:
        return sum(o.count for o in self.objects)


def holds(relation: str, a: str, b: str) -> bool:
    """Does an object in cell `a` stand `relation` to one in cell `b`? Columns decide left and
    right, rows decide above and below: ("left of", "top left", "bottom") -> True."""
    (row_a, col_a), (row_b, col_b) = (divmod(POSITIONS.index(p), 3) for p in (a, b))
    if relation == "left of":
        return col_a < col_b
    if relation == "right of":
        return col_a > col_b
    if relation == "above":
        return row_a < row_b
    if relation == "below":
        return row_a > row_b
    raise ValueError(f"unknown relation {relation!r}; allowed: {', '.join(RELATIONS)}")


# every ordered pair of cells (a, b) where the relation holds
_PLACES = {r: [(a, b) for a, b in permutations(POSITIONS, 2) if holds(r, a, b)] for r in RELATIONS}


def allowed_in_training(scene: Scene) -> bool:
    """No object of world.HELD_OUT and no two objects of a held-out binding in one scene."""
    pairs = {(o.colour, o.shape) for o in scene}
    return not (pairs & set(world.HELD_OUT)) and not any(
        frozenset((a, b)) in _HELD_OUT for a in pairs for b in pairs
    )


def reserved_for_evaluation(request: SceneRequest) -> bool:
    """Is this an evaluation prompt, never a training caption? Prompts of several objects that name
    no colour (the two-object, counting and position prompts of minidiff.geneval), and "a red
    circle and a blue square" for a pair of ATTRIBUTION_PAIRS, in any words or order."""
    if request.total >= 2 and all(o.colour is None for o in request.objects):
        return True
    objs = request.objects
    return (
        request.relation is None
        and len(objs) == 2
        and all(o.count == 1 for o in objs)
        and frozenset((o.colour, o.shape) for o in objs) in _RESERVED_PAIRS
    )


# -- drawing -------------------------------------------------------------------------------------
def _layout(scene: Scene, u: np.ndarray):
    """Objects (k,) and six uniforms each (k, 6) -> box centres, widths (k,) and colours (k, 3)."""
    rows, cols = np.array([divmod(POSITIONS.index(o.position), 3) for o in scene]).reshape(-1, 2).T
    jitter = 2 * u - 1  # (k, 6) in [-1, 1)
    cx = (cols + 0.5) * CELL + world.POSITION_JITTER * jitter[:, 0]  # box centred in its cell
    cy = (rows + 0.5) * CELL + world.POSITION_JITTER * jitter[:, 1]
    width = np.array([WIDTHS[o.size] for o in scene]) * (1 + world.SIZE_JITTER * jitter[:, 2])
    rgb = np.array([world.PALETTE[o.colour] for o in scene]).reshape(-1, 3) + np.round(
        world.COLOUR_JITTER * jitter[:, 3:]
    )
    return cx, cy, width, rgb


def paint(scenes: list[Scene], draws: list[np.ndarray]) -> np.ndarray:
    """Scenes and their uniforms (one (k, 6) array per scene) -> uint8 (n, CANVAS, CANVAS, 3)."""
    objects = [o for scene in scenes for o in scene]
    cx, cy, width, rgb = _layout(tuple(objects), np.concatenate(draws))
    alpha = world.coverage([o.shape for o in objects], cx, cy, width, CANVAS)  # (K, S, S)
    background = np.array(world.BACKGROUND, dtype=np.float32)
    change = (rgb - background).astype(np.float32)  # (K, 3)
    owner = np.repeat(np.arange(len(scenes)), [len(s) for s in scenes])  # scene of each object
    rank = np.concatenate([np.arange(len(s)) for s in scenes])  # its number in the scene
    images = np.broadcast_to(background, (len(scenes), CANVAS, CANVAS, 3)).copy()
    for r in range(MAX_OBJECTS):  # objects never overlap (one cell each): add their paint
        k = rank == r
        images[owner[k]] += alpha[k][..., None] * change[k][:, None, None, :]  # (m, S, S, 3)
    return np.round(images).astype(np.uint8)


def render(scene: Scene, rng: np.random.Generator) -> np.ndarray:
    """One picture of a scene with jitter drawn from rng -> uint8 (CANVAS, CANVAS, 3)."""
    return paint([scene], [rng.random((len(scene), 6))])[0]


# -- captions ------------------------------------------------------------------------------------
def _article(words: str) -> str:
    return ("an " if words[0] in "aeiou" else "a ") + words


def _bare(obj: Attributes, named: ObjectRequest, synonym: int, plural: bool = False) -> str:
    """ "big red circle": the named size and colour, and the shape (or its plural)."""
    size = named.size and world.SIZE_WORDS[named.size][synonym]
    return " ".join(
        w for w in (size, named.colour, PLURALS[obj.shape] if plural else obj.shape) if w
    )


def _name(obj: Attributes, rng: np.random.Generator, position: bool = False) -> ObjectRequest:
    u = rng.random(3)
    return ObjectRequest(
        obj.colour if u[0] < MENTION["colour"] else None,
        obj.shape,
        obj.size if u[1] < MENTION["size"] else None,
        obj.position if position and u[2] < MENTION["position"] else None,
    )


def _words(caption: str) -> int:
    return len(caption.replace(",", " , ").split())


def _caption_two(scene: Scene, rng: np.random.Generator):
    """Two objects joined by "and", each written in one of the one-object templates that start with
    an article (0, 2, 5: "a big red circle in the top left", "a circle that is red and big", "the
    big red circle is in the top left"); shortened until it fits MAX_WORDS."""
    named = [_name(o, rng, position=True) for o in scene]
    templates, synonym = rng.choice((0, 2, 5), 2), int(rng.integers(2))
    for shorter in range(3):  # as drawn; template 0; no cells named
        if shorter == 1:
            templates = (0, 0)
        if shorter == 2:
            named = [ObjectRequest(n.colour, n.shape, n.size) for n in named]
        mentions = [tuple(k for k in world.ATTRIBUTES if getattr(n, k)) for n in named]
        text = " and ".join(
            world.caption_in(o, m, int(t), synonym) for o, m, t in zip(scene, mentions, templates)
        )
        if _words(text) <= MAX_WORDS:
            break
    return text, SceneRequest(tuple(named))


def _caption_relation(scene: Scene, relation: str, rng: np.random.Generator):
    a, b = (_name(o, rng) for o in scene)
    synonym, template = int(rng.integers(2)), int(rng.integers(5))
    bare_a, bare_b = _bare(scene[0], a, synonym), _bare(scene[1], b, synonym)
    text = (
        f"{_article(bare_a)} {SAID[relation]} {_article(bare_b)}",
        f"{SAID[relation]} {_article(bare_b)}, {_article(bare_a)}",
        f"{_article(bare_b)} with {_article(bare_a)} {WITH[relation]}",
        f"the {bare_a} is {SAID[relation]} the {bare_b}",
        f"{bare_a} {TERSE[relation]} {bare_b}",
    )[template]
    return text, SceneRequest((a, b), relation)


def _caption_count(scene: Scene, rng: np.random.Generator):
    named = _name(scene[0], rng)
    number, plural = NUMBERS[len(scene) - 1], len(scene) > 1
    synonym, template = int(rng.integers(2)), int(rng.integers(3 if plural else 2))
    noun = PLURALS[scene[0].shape] if plural else scene[0].shape
    size = named.size and world.SIZE_WORDS[named.size][synonym]
    adjectives = " and ".join(w for w in (named.colour, size) if w)
    text = (
        f"{number} {_bare(scene[0], named, synonym, plural)}",
        f"{number} {noun}, {adjectives}" if adjectives else f"{number} {noun}",
        f"{_bare(scene[0], named, synonym, plural)}, {number}",
    )[template]
    return text, SceneRequest(
        (ObjectRequest(named.colour, named.shape, named.size, count=len(scene)),)
    )


def _draw(split: str, rng: np.random.Generator):
    """One (scene, caption, named request) of a split, before the training filter."""
    pool = TRAIN_OBJECTS if split == "train" else OBJECTS
    kind = KINDS[np.searchsorted(_KIND_CUMULATIVE, rng.random(), side="right")]
    cells = [POSITIONS[i] for i in rng.permutation(len(POSITIONS))]
    if kind == "count":
        colour, shape = pool[rng.integers(len(pool))]  # alike objects: one colour, shape, size
        size, n = SIZES[rng.integers(2)], int(rng.integers(1, MAX_OBJECTS + 1))
        scene = tuple(Attributes(colour, shape, size, c) for c in cells[:n])
        return (scene, *_caption_count(scene, rng))
    if kind == "one":
        colour, shape = pool[rng.integers(len(pool))]
        obj = Attributes(colour, shape, SIZES[rng.integers(2)], cells[0])
        text = world.caption(obj, rng)
        return (obj,), text, SceneRequest((ObjectRequest(**world.parse_prompt(text)),))
    i, j = rng.choice(len(pool), 2, replace=False)  # two different colour-shapes
    if kind == "two":
        scene = tuple(
            Attributes(*pool[k], SIZES[rng.integers(2)], c) for k, c in zip((i, j), cells)
        )
        return (scene, *_caption_two(scene, rng))
    relation = RELATIONS[rng.integers(len(RELATIONS))]
    a, b = _PLACES[relation][rng.integers(len(_PLACES[relation]))]  # uniform over the layouts
    scene = (
        Attributes(*pool[i], SIZES[rng.integers(2)], a),
        Attributes(*pool[j], SIZES[rng.integers(2)], b),
    )
    return (scene, *_caption_relation(scene, relation, rng))


def describe(split: str, index: int, seed: int = 0) -> tuple[Scene, str, SceneRequest]:
    """Scene `index` of a split without its pixels: (scene, caption, what the caption names). The
    train split draws again until the scene is allowed in training and the caption is not reserved
    for the evaluation."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; allowed splits: {', '.join(SPLITS)}")
    rng = np.random.default_rng([seed, SPLITS.index(split), index, STREAM])
    while True:
        scene, text, named = _draw(split, rng)
        if split != "train" or (allowed_in_training(scene) and not reserved_for_evaluation(named)):
            return scene, text, named


def batch(split: str, start: int, n: int, seed: int = 0):
    """Scenes start .. start + n - 1 of a split -> (uint8 (n, CANVAS, CANVAS, 3), captions,
    scenes); scene i is the same in every batch that holds it."""
    if not (isinstance(start, int) and isinstance(n, int) and start >= 0 and n >= 1):
        raise ValueError(f"need an integer start >= 0 and n >= 1, got start={start!r}, n={n!r}")
    drawn, captions, draws = [], [], []
    for index in range(start, start + n):
        scene, text, _ = describe(split, index, seed)
        drawn.append(scene)
        captions.append(text)
        # the jitter comes from a stream of its own, so it never changes what describe() draws
        rng = np.random.default_rng([seed, SPLITS.index(split), index, STREAM, 1])
        draws.append(rng.random((len(scene), 6)))
    return paint(drawn, draws), captions, drawn
