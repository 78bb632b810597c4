"""Evaluation of a scene model: GenEval's six categories, and the swapped-binding test.

    report = evaluate_scenes(minidiff.load_pretrained("scenes"))  # minidiff evaluate --model scenes
    print(report.table())

**GenEval** (minidiff.geneval): one picture per evaluation prompt, read by the scene judge
(minidiff.scene_judge, which reads rendered scenes exactly), scored under GenEval's rules, per
category and overall, with the prompts that name a held-out binding reported apart. SD 1.5 and
SDXL's published numbers are printed beside ours for context only: another benchmark, on real
objects and a real detector.

**Swapped bindings** (`swapped_bindings`): prompts whose words are the same and whose binding is
the other way round ("a red circle and a blue square" / "a blue circle and a red square"; "a
circle to the left of a square" / "a square to the left of a circle"). Of the pictures where the
judge finds both objects bound one way or the other, the share bound the way the prompt asks. A
text encoder that sees no word order (text_encoder kind "bag") gives both prompts the same vector,
so its pictures of the two, drawn from the same noises, are the same pictures: it scores 0.5, by
construction.
"""

import time
from dataclasses import asdict, dataclass, field

import numpy as np

from . import geneval, scenes
from .geneval import GenEvalScores
from .scene_judge import SeenObject, read_scenes
from .scene_prompts import parse_scene_prompt

CHUNK = 64  # pictures per pipe.generate call; call k is seeded with 1000 * seed + k


def generate_pictures(
    pipe, prompts: list[str], seed: int = 0, progress: bool = True, **settings
) -> np.ndarray:
    """One picture per prompt, CHUNK prompts a call (call k uses seed 1000 * seed + k)."""
    from tqdm.auto import tqdm

    chunks = [prompts[i : i + CHUNK] for i in range(0, len(prompts), CHUNK)]
    out = [
        pipe.generate(chunk, n=1, seed=1000 * seed + k, **settings)
        for k, chunk in enumerate(tqdm(chunks, desc="generating", disable=not progress))
    ]
    return np.concatenate(out)


@dataclass
class SceneReport:
    scores: GenEvalScores
    settings: dict
    seconds: float
    prompts: list = field(default_factory=list, repr=False)  # the EvalPrompts, one a picture
    images: np.ndarray | None = field(default=None, repr=False)  # uint8 (N, 48, 48, 3)
    found: list = field(default_factory=list, repr=False)  # what the judge read in each

    @property
    def overall(self) -> float:
        return self.scores.overall

    def table(self) -> str:
        s = ", ".join(f"{k} {v}" for k, v in self.settings.items())
        return (
            f"GenEval categories on {self.scores.pictures} pictures ({s}), read by the scene "
            f"judge in {self.seconds:.0f} s\n{self.scores.table()}\n"
            "SD 1.5 and SDXL: published GenEval numbers on real objects, another benchmark, "
            "for context only."
        )

    def to_dict(self) -> dict:
        return {"overall": self.overall, **asdict(self.scores), "settings": self.settings}


def _check_scene_model(pipe) -> None:
    world_name = getattr(getattr(pipe, "config", None), "world", "scenes")
    if world_name != "scenes":
        raise ValueError(
            f"this model draws the {world_name!r} world; the scene evaluation needs a scene model "
            "(load_pretrained('scenes'), or a run of 'minidiff train --preset scenes')"
        )


def evaluate_scenes(
    pipe, repeats: int = 4, seed: int = 0, progress: bool = True, quick: bool = False, **settings
) -> SceneReport:
    """GenEval's six categories on `pipe` (a scene model): geneval.evaluation_prompts(repeats,
    quick), one picture each, at the sampling `settings` (the pipeline's defaults when left
    out)."""
    _check_scene_model(pipe)
    start = time.time()
    prompts = geneval.evaluation_prompts(repeats, quick)
    images = generate_pictures(pipe, [p.prompt for p in prompts], seed, progress, **settings)
    found = read_scenes(images)
    scores = geneval.score(prompts, found)
    base = getattr(pipe, "default_settings", None)
    used = (
        {"sampler": base.sampler, "steps": base.steps, "guidance": base.guidance_scale}
        if base
        else {}
    )
    used |= {("guidance" if k == "guidance_scale" else k): v for k, v in settings.items()}
    shown = {"repeats": repeats, **({"quick": True} if quick else {}), "seed": seed, **used}
    return SceneReport(scores, shown, time.time() - start, prompts, images, found)


# -- swapped bindings ------------------------------------------------------------------------------
def swapped_pairs() -> dict[str, list[tuple[str, str]]]:
    """(prompt, the same words bound the other way) for colour and for position, each pair once."""
    colour = [
        (f"{geneval._a(f'{a} {s}')} and {geneval._a(f'{b} {t}')}",
         f"{geneval._a(f'{b} {s}')} and {geneval._a(f'{a} {t}')}")
        for (a, s), (b, t) in scenes.HELD_OUT_BINDINGS
    ]  # fmt: skip
    shapes = scenes.SHAPES
    position = [
        (f"{geneval._a(s)} {scenes.SAID[r]} {geneval._a(t)}",
         f"{geneval._a(t)} {scenes.SAID[r]} {geneval._a(s)}")
        for r in ("left of", "above")
        for i, s in enumerate(shapes)
        for t in shapes[i + 1 :]
    ]  # fmt: skip
    return {"colour": colour, "position": position}


def bound(prompt: str, found: list[SeenObject]) -> str | None:
    """'asked' if the picture binds the prompt's two objects as it asks, 'swapped' if the other
    way round, None if it shows neither (an object missing, or no relation either way)."""
    request = parse_scene_prompt(prompt)
    a, b = request.objects
    if a.shape == b.shape:
        raise ValueError(f"the swapped-binding test needs two different shapes: {prompt!r}")
    first = {o.shape: o for o in reversed(found)}  # the best-read object of each shape
    if a.shape not in first or b.shape not in first:
        return None
    oa, ob = first[a.shape], first[b.shape]
    if request.relation is not None:
        if scenes.holds(request.relation, oa.position, ob.position):
            return "asked"
        return "swapped" if scenes.holds(request.relation, ob.position, oa.position) else None
    if (oa.colour, ob.colour) == (a.colour, b.colour):
        return "asked"
    return "swapped" if (oa.colour, ob.colour) == (b.colour, a.colour) else None


@dataclass
class BindingReport:
    accuracy: dict[str, float]  # kind -> asked / (asked + swapped)
    both_bound: dict[str, float]  # kind -> share of pictures bound one way or the other
    pictures: dict[str, int]

    def table(self) -> str:
        lines = ["binding | right way / (right + swapped) | pictures bound either way"]
        for kind in self.accuracy:
            lines.append(
                f"{kind} | {self.accuracy[kind]:.3f} | {self.both_bound[kind]:.2f} "
                f"of {self.pictures[kind]}"
            )
        return "\n".join(lines)


def swapped_bindings(
    pipe, n: int = 8, seed: int = 0, progress: bool = True, **settings
) -> BindingReport:
    """Both prompts of every swapped pair, n pictures each from the same n noises, judged (see the
    module docstring). Drawn from the same noises, a bag-of-words model's pictures of the two
    prompts are the same pictures, so its score is 0.5 exactly, not only in expectation."""
    from tqdm.auto import tqdm

    _check_scene_model(pipe)
    accuracy, both, count = {}, {}, {}
    for kind, pairs in swapped_pairs().items():
        verdicts = []
        for k, pair in enumerate(tqdm(pairs, desc=f"{kind} pairs", disable=not progress)):
            for prompt in pair:  # the same seed, so the same noises, for both prompts
                images = pipe.generate(prompt, n=n, seed=1000 * seed + k, **settings)
                verdicts += [bound(prompt, found) for found in read_scenes(images)]
        asked, swapped = verdicts.count("asked"), verdicts.count("swapped")
        accuracy[kind] = asked / max(1, asked + swapped)
        both[kind] = (asked + swapped) / len(verdicts)
        count[kind] = len(verdicts)
    return BindingReport(accuracy, both, count)
