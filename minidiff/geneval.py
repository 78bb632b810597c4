"""GenEval-style scoring of scene pictures (Ghosh et al. 2023, "GenEval: An Object-Focused Framework
for Evaluating Text-to-Image Alignment").

GenEval asks an object detector what a generated picture holds and checks each prompt under fixed
rules. Here the scene judge (minidiff.scene_judge) is the detector and an object's shape is its
class; the judge lists objects best-read first, as a detector ranks by confidence.

    category            prompt                              correct when (GenEval's rule)
    single object       "a circle"                          a circle is found
    two objects         "a circle and a square"             a circle and a square are found
    counting            "three circles"                     three circles are found, not four
    colours             "a red circle"                      the best-read circle is red
    position            "a circle to the left of a square"  the best-read circle is left of the
                                                            best-read square (cell columns, rows)
    colour attribution  "a red circle and a blue square"    the best-read circle is red and the
                                                            best-read square blue

overall = the mean of the six category scores (GenEval's overall).

**The evaluation prompts stay out of training.** The two-object, counting and position prompts name
no colour, and no training caption of several objects leaves every colour out; the colour-
attribution prompts are the pairs of `scenes.ATTRIBUTION_PAIRS`, which no training caption joins
with "and" (`scenes.reserved_for_evaluation`, applied by `scenes.describe`, and tested). The
single-object and colours prompts are one-object prompts, which the one-object world must teach
(a circle is a circle); their held-out part is the one-object world's held-out pairs.
**Seen and held-out** are reported apart: a prompt is held out when it names a pair of
world.HELD_OUT (colours) or of scenes.HELD_OUT_BINDINGS (colour attribution).
"""

from dataclasses import dataclass

import numpy as np

from . import scenes, world
from .scene_judge import SeenObject
from .scene_prompts import parse_scene_prompt
from .scenes import SceneRequest

CATEGORIES = (
    "single_object",
    "two_objects",
    "counting",
    "colours",
    "position",
    "colour_attribution",
)
# GenEval's published results (Ghosh et al. 2023): another benchmark, with prompts about real
# objects, shown beside ours for context only
PUBLISHED = {
    "SD 1.5": {
        "overall": 0.43,
        "single_object": 0.97,
        "two_objects": 0.38,
        "counting": 0.35,
        "colours": 0.76,
        "position": 0.04,
        "colour_attribution": 0.06,
    },
    "SDXL": {
        "overall": 0.55,
        "single_object": 0.98,
        "two_objects": 0.74,
        "counting": 0.39,
        "colours": 0.85,
        "position": 0.15,
        "colour_attribution": 0.23,
    },
}
# pictures per prompt, so that every category has about 48 pictures (GenEval: 4 per prompt)
PICTURES_PER_PROMPT = {
    "single_object": 12,
    "two_objects": 4,
    "counting": 4,
    "colours": 2,
    "position": 1,
    "colour_attribution": 3,
}


@dataclass(frozen=True)
class EvalPrompt:
    category: str
    prompt: str
    held_out: bool  # names a held-out pair or binding


def _a(words: str) -> str:
    return ("an " if words[0] in "aeiou" else "a ") + words


def category_prompts() -> dict[str, list[EvalPrompt]]:
    """The prompts of each category, each once, in a fixed order."""
    shapes, pairs = world.SHAPES, [(a, b) for a in world.SHAPES for b in world.SHAPES if a != b]
    held = {frozenset(p) for p in scenes.HELD_OUT_BINDINGS}
    return {
        "single_object": [EvalPrompt("single_object", _a(s), False) for s in shapes],
        "two_objects": [EvalPrompt("two_objects", f"{_a(a)} and {_a(b)}", False) for a, b in pairs],
        "counting": [
            EvalPrompt("counting", f"{scenes.NUMBERS[n - 1]} {scenes.PLURALS[s]}", False)
            for n in (2, 3, 4)
            for s in shapes
        ],
        "colours": [
            EvalPrompt("colours", f"{_a(c)} {s}", (c, s) in world.HELD_OUT)
            for c in world.COLOURS
            for s in shapes
        ],
        "position": [
            EvalPrompt("position", f"{_a(a)} {scenes.SAID[r]} {_a(b)}", False)
            for r in scenes.RELATIONS
            for a, b in pairs
        ],
        "colour_attribution": [
            EvalPrompt(
                "colour_attribution",
                f"{_a(' '.join(p))} and {_a(' '.join(q))}",
                frozenset((p, q)) in held,
            )
            for p, q in scenes.ATTRIBUTION_PAIRS
        ],
    }


def evaluation_prompts(repeats: int = 1, quick: bool = False) -> list[EvalPrompt]:
    """Every category's prompts, each PICTURES_PER_PROMPT[category] * repeats times in a row;
    quick: half as many pictures a prompt (at least one), about 170 in all."""
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be an integer >= 1, got {repeats!r}")
    per = {c: max(1, k // 2) if quick else k for c, k in PICTURES_PER_PROMPT.items()}
    return [
        p
        for category, prompts in category_prompts().items()
        for p in prompts
        for _ in range(per[category] * repeats)
    ]


def correct(request: SceneRequest, found: list[SeenObject], exact_count: bool = False) -> bool:
    """GenEval's rule: for each requested object, the `count` best-read objects of its shape must
    exist and carry every attribute it names; a relation must hold between all of them (GenEval
    compares box centres; here cells, as minidiff.scenes defines relations); with `exact_count`
    (counting) no further object of that shape may be found."""
    matched = []
    for want in request.objects:
        of_shape = [o for o in found if want.shape in (None, o.shape)]  # best read first
        top = of_shape[: want.count]
        if len(top) < want.count or (exact_count and len(of_shape) > want.count):
            return False
        for attribute in ("colour", "size", "position"):
            value = getattr(want, attribute)
            if value is not None and sum(getattr(o, attribute) == value for o in top) < want.count:
                return False
        matched.append(top)
    return request.relation is None or all(
        scenes.holds(request.relation, a.position, b.position)
        for a in matched[0]
        for b in matched[1]
    )


@dataclass
class GenEvalScores:
    categories: dict[str, float]  # category -> the share of its pictures that are correct
    seen: dict[str, float]  # the same over the prompts without / with a held-out pair, for the
    held_out: dict[str, float]  # categories that have both; "all": over every such picture
    pictures: int

    @property
    def overall(self) -> float:
        return float(np.mean([self.categories[c] for c in CATEGORIES]))

    def table(self) -> str:
        """Our six categories beside GenEval's published numbers (another benchmark, on real
        objects: for context only)."""
        cols = ("overall",) + CATEGORIES
        rows = [("minidiff scenes", {"overall": self.overall, **self.categories})]
        rows += [(f"{name} (GenEval, real objects)", v) for name, v in PUBLISHED.items()]
        width = max(len(name) for name, _ in rows)
        lines = [" | ".join(["model".ljust(width)] + [c.replace("_", " ") for c in cols])]
        for name, values in rows:
            lines.append(
                " | ".join([name.ljust(width)] + [f"{values[c]:.2f}".rjust(len(c)) for c in cols])
            )
        lines.append(
            "seen / held out: "
            + ", ".join(
                f"{c.replace('_', ' ')} {self.seen[c]:.2f} / {self.held_out[c]:.2f}"
                for c in self.held_out
            )
        )
        return "\n".join(lines)


def score(prompts: list[EvalPrompt], found: list[list[SeenObject]]) -> GenEvalScores:
    """Judged pictures, one per evaluation prompt -> the GenEval scores."""
    if len(prompts) != len(found):
        raise ValueError(
            f"need one judged picture per prompt, got {len(found)} for {len(prompts)} prompts"
        )
    ok = np.array(
        [
            correct(parse_scene_prompt(p.prompt), f, p.category == "counting")
            for p, f in zip(prompts, found)
        ]
    )
    category = np.array([p.category for p in prompts])
    held = np.array([p.held_out for p in prompts])
    missing = [c for c in CATEGORIES if c not in category]
    if missing:
        raise ValueError(
            f"the prompts hold no {', '.join(missing)} prompt; use evaluation_prompts()"
        )
    scores = {c: float(ok[category == c].mean()) for c in CATEGORIES}
    split = [c for c in CATEGORIES if held[category == c].any() and (~held[category == c]).any()]
    seen = {c: float(ok[(category == c) & ~held].mean()) for c in split}
    held_out = {c: float(ok[(category == c) & held].mean()) for c in split}
    if split:
        seen["all"], held_out["all"] = float(ok[~held].mean()), float(ok[held].mean())
    return GenEvalScores(scores, seen, held_out, len(prompts))
