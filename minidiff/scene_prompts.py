"""Reading scene prompts: what a prompt asks for, or one sentence that says why no scene shows it.

    parse_scene_prompt("a red circle to the left of a blue square")
    -> SceneRequest(objects=(ObjectRequest("red", "circle"), ObjectRequest("blue", "square")),
                    relation="left of")

The grammar is the captions' (minidiff.scenes), read generously:
- objects are separated by "and", "with" or a comma when an article or a number follows ("a red
  circle and a blue square", "in the top left, a red circle"); each object is read as a one-object
  prompt (world.parse_prompt), so every prompt of the one-object world still reads;
- a number and a plural ask for alike objects ("three green triangles", "one red circle");
- one relation joins two single objects: "A to the left of B", "A left of B", "to the left of B, A",
  "B with A to its left" (likewise right of, above, below);
- a cell named after an object belongs to that object: "a red circle and a blue square in the
  center" puts only the square in the center.

Refused, in one sentence: unknown words (with the closest known ones), five or more objects, two
objects in one cell ("two red circles in the center", "a red circle in the center and a blue square
in the center"), a relation no layout satisfies ("a red circle above a blue square at the top"),
two colours (sizes, shapes) for one object ("a red blue circle"), more than one relation.
"""

import difflib
from itertools import permutations
from typing import NoReturn

import numpy as np

from . import scenes, world
from .scenes import MAX_OBJECTS, NUMBERS, PLURALS, SAID, WORDS, ObjectRequest, SceneRequest

TOO_MANY = ("five", "six", "seven", "eight", "nine", "ten")  # read only to be refused
STARTS = ("a", "an", "the") + NUMBERS + TOO_MANY  # the words an object phrase starts with
SCENE_ONLY = ("to", "of", "with", "its", "it", "above", "below")  # words of relations
_SINGULAR = {p: s for s, p in PLURALS.items()}
# (words, relation, form), longest first so that "to the left of" wins over "left of"
_FORMS = {"said": SAID, "terse": scenes.TERSE, "with": scenes.WITH}
_PHRASES = sorted(
    [(tuple(table[r].split()), r, form) for form, table in _FORMS.items() for r in table],
    key=lambda p: -len(p[0]),
)


def _tokens(prompt: str) -> list[str]:
    return prompt.lower().replace(",", " , ").split()


def _refuse(prompt: str, why: str) -> NoReturn:
    raise ValueError(f"cannot draw {prompt!r}: {why}")


def _object(words: list[str], prompt: str) -> ObjectRequest:
    """The words of one object phrase -> what it asks for."""
    stray = [w for w in words if w in SCENE_ONLY]
    if stray:
        _refuse(
            prompt,
            f"'{stray[0]}' belongs in a relation such as 'a red circle to the left of "
            f"a blue square'",
        )
    numbers = [w for w in words if w in NUMBERS + TOO_MANY]
    if len(numbers) > 1:
        _refuse(prompt, f"one object phrase gives two numbers ({' and '.join(numbers)})")
    if numbers and numbers[0] in TOO_MANY:
        _refuse(prompt, f"the scenes world draws at most {MAX_OBJECTS} objects, not {numbers[0]}")
    count = NUMBERS.index(numbers[0]) + 1 if numbers else 1
    plurals = [w for w in words if w in _SINGULAR]
    if plurals and not numbers:
        _refuse(prompt, f"say how many {plurals[0]}, for example 'two {plurals[0]}'")
    if plurals and count == 1 or numbers and count > 1 and not plurals:
        _refuse(prompt, f"'{numbers[0]}' and the noun after it disagree in number")
    colours = list(dict.fromkeys(w for w in words if w in world.COLOURS))
    if len(colours) > 1:
        _refuse(
            prompt,
            f"one object cannot be both {colours[0]} and {colours[1]}; for two objects "
            f"write 'a {colours[0]} circle and a {colours[1]} square'",
        )
    rest = " ".join(_SINGULAR.get(w, w) for w in words if w not in NUMBERS)
    try:
        named = world.parse_prompt(rest)
    except ValueError as e:  # "... names both large and small", "... mixes center with left"
        _refuse(prompt, "one object " + str(e).split("' ")[-1])
    return ObjectRequest(**named, count=count)


def _split_objects(words: list[str]) -> list[list[str]]:
    """Cut a prompt's words into object phrases at "and", "with" or "," before an article or a
    number; a piece without a noun ("in the top left,") joins the next one."""
    pieces, current = [], []
    for i, w in enumerate(words):
        if w in ("and", "with", ",") and i + 1 < len(words) and words[i + 1] in STARTS:
            pieces.append(current)
            current = []
        else:
            current.append(w)
    pieces.append(current)
    nouns = set(world.SHAPES) | {world.NOUN_FOR_ANY_SHAPE} | set(_SINGULAR)
    merged, carry = [], []
    for piece in pieces:
        if any(w in nouns for w in piece):
            merged.append(carry + piece)
            carry = []
        else:
            carry += piece + [","]
    if carry and merged:  # words after the last noun ("..., top left") stay with it
        merged[-1] += [","] + carry[:-1]
    return merged or [carry]


def _find_relations(words: list[str]) -> list[tuple[int, int, str, str]]:
    """Every relation phrase: (start, end, relation, form)."""
    found, i = [], 0
    while i < len(words):
        for phrase, relation, form in _PHRASES:
            if tuple(words[i : i + len(phrase)]) == phrase:
                found.append((i, i + len(phrase), relation, form))
                i += len(phrase) - 1
                break
        i += 1
    return found


def _relation_parts(words: list[str], prompt: str):
    """(words of A, relation, words of B) of a prompt with one relation, "A <relation> B"."""
    found = _find_relations(words)
    if len(found) > 1:
        _refuse(prompt, "a prompt can relate two objects with one relation only")
    start, end, relation, form = found[0]
    before, after = words[:start], words[end:]
    if form == "with":  # "B with A to its left"
        if "with" not in before or after:
            _refuse(prompt, f"write '{scenes.WITH[relation]}' after 'B with A'")
        w = before.index("with")
        return before[w + 1 :], relation, before[:w]
    if before:  # "A to the left of B"
        return before, relation, after
    commas = [i for i, w in enumerate(after[:-1]) if w == "," and after[i + 1] in STARTS]
    if not commas:  # "to the left of B, A" needs the comma
        _refuse(
            prompt,
            f"say what is {relation} it, as in '{SAID[relation]} a blue square, a red circle'",
        )
    return after[commas[-1] + 1 :], relation, after[: commas[-1]]


def layouts(request: SceneRequest) -> list[tuple[str, ...]]:
    """Every way to give each requested object its own cell, named cells and the relation kept:
    a list of tuples of cells, one per object, objects in request order (count copies in a row)."""
    wanted = [o.position for o in request.objects for _ in range(o.count)]
    second = request.objects[0].count if request.objects else 0  # the first object of group 2
    found = []
    for cells in permutations(world.POSITIONS, len(wanted)):
        if all(w in (None, c) for w, c in zip(wanted, cells)) and (
            request.relation is None or scenes.holds(request.relation, cells[0], cells[second])
        ):
            found.append(cells)
    return found


def _matches(obj: world.Attributes, want: ObjectRequest) -> bool:
    return all(getattr(want, k) in (None, getattr(obj, k)) for k in world.ATTRIBUTES)


def satisfies(scene: scenes.Scene, request: SceneRequest) -> bool:
    """Does the scene hold exactly the requested objects, in a layout where the relation holds?"""
    slots = [o for o in request.objects for _ in range(o.count)]
    if len(slots) != len(scene):
        return False
    for order in permutations(scene):  # at most 4! = 24 ways to pair objects with slots
        second = order[request.objects[0].count] if request.relation else None
        if all(_matches(obj, want) for obj, want in zip(order, slots)) and (
            request.relation is None
            or scenes.holds(request.relation, order[0].position, second.position)
        ):
            return True
    return False


def parse_scene_prompt(prompt: str) -> SceneRequest:
    """A prompt -> the SceneRequest it asks for; a prompt no scene can show raises ValueError (one
    sentence). The empty prompt "" asks for nothing (the unconditional prompt)."""
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a string, got {type(prompt).__name__}")
    words = _tokens(prompt)
    for w in words:
        if w not in WORDS and w not in TOO_MANY:
            close = difflib.get_close_matches(w, WORDS, n=3)
            hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise ValueError(f"unknown word {w!r} in prompt {prompt!r}{hint}")
    if not words:
        return SceneRequest()
    relation = None
    if _find_relations(words):
        a, relation, b = _relation_parts(words, prompt)
        parts = [_split_objects(a), _split_objects(b)]
        if any(len(p) != 1 for p in parts):
            _refuse(prompt, "a relation joins exactly two objects, one on each side")
        objects = tuple(_object(p[0], prompt) for p in parts)
        if any(o.count > 1 for o in objects):
            _refuse(prompt, "a relation joins two single objects, not a number of them")
    else:
        objects = tuple(_object(p, prompt) for p in _split_objects(words))
    request = SceneRequest(objects, relation)
    if request.total > MAX_OBJECTS:
        _refuse(
            prompt, f"the scenes world draws at most {MAX_OBJECTS} objects, not {request.total}"
        )
    cells = [o.position for o in objects if o.position]
    for o in objects:
        if o.position and o.count > 1:
            _refuse(prompt, f"{NUMBERS[o.count - 1]} objects cannot share one cell ({o.position})")
    if len(set(cells)) < len(cells):
        twice = next(c for c in cells if cells.count(c) > 1)
        _refuse(prompt, f"two objects cannot share one cell ({twice})")
    if relation and not layouts(request):
        _refuse(
            prompt,
            f"no layout of the 3 x 3 grid puts the first object {relation} the second "
            f"in the cells it names",
        )
    return request


def draw_scene(
    request: SceneRequest, rng: np.random.Generator, objects: tuple = scenes.OBJECTS
) -> scenes.Scene:
    """A random scene that shows the request: unnamed attributes drawn uniformly (colour and shape
    from `objects`; alike objects share them and their size), the layout uniform over `layouts`."""
    scene = []
    for want in request.objects:
        pool = [o for o in objects if want.colour in (None, o[0]) and want.shape in (None, o[1])]
        if not pool:
            raise ValueError(f"no allowed object is a {want.colour or ''} {want.shape or 'shape'}")
        colour, shape = pool[rng.integers(len(pool))]
        size = want.size or world.SIZES[rng.integers(len(world.SIZES))]
        scene += [(colour, shape, size)] * want.count
    options = layouts(request)
    cells = options[rng.integers(len(options))]
    return tuple(world.Attributes(*o, c) for o, c in zip(scene, cells))


def render_prompts(prompts: list[str], seed: int = 0) -> np.ndarray:
    """Real scenes of prompts, one each -> uint8 (N, CANVAS, CANVAS, 3): a perfect generator."""
    rng = np.random.default_rng(seed)
    return np.stack([scenes.render(draw_scene(parse_scene_prompt(p), rng), rng) for p in prompts])
