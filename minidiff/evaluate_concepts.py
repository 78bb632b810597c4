"""Measuring a taught word (minidiff.finetune): does the model draw the new thing, does the word
combine with the rest of the language, and what did teaching it break?

    report = concept_report(pipe, "object", "cross")   # pipe with the adapter loaded

- **concept fidelity**: on the examples' own kinds of prompt (concepts.familiar_prompts), the share
  of pictures in which the concept reader (minidiff.concept_reader) sees the new thing: a cross, or
  an outline;
- **prompt fidelity**: on prompts that pair the word with colours and positions no example shows
  (concepts.novel_prompts), the share in which it sees the new thing *and* the colour, size and
  position asked for (and, for the style, the shape);
- **drift** (`drift_report`): the world judge's adherence on ordinary prompts (minidiff.evaluate's
  seen and held-out prompts), and how far their pictures moved from the base model's for the same
  seeds, in grey levels.
"""

import numpy as np

from . import concepts
from .concept_reader import read_concepts
from .evaluate import adherence, prompt_set

PER_PROMPT = 4  # pictures of each prompt


def _has_concept(kind: str, reading) -> bool:
    if reading is None:
        return False
    return reading.shape == "cross" if kind == "object" else reading.style == "outline"


def concept_report(
    pipe, kind: str, word: str | None = None, seed: int = 0, per_prompt: int = PER_PROMPT
) -> dict:
    """{"concept_fidelity", "prompt_fidelity", and the pictures of each} for a pipeline that knows
    the word (an adapter loaded)."""
    out = {}
    for name, prompts in (
        ("concept", concepts.familiar_prompts(kind, word)),
        ("prompt", concepts.novel_prompts(kind, word)),
    ):
        pictures = pipe.generate([p for p, _ in prompts], n=per_prompt, seed=seed)
        asked = [d for _, d in prompts for _ in range(per_prompt)]
        readings = read_concepts(pictures)
        if name == "concept":
            right = [_has_concept(kind, r) for r in readings]
        else:
            right = [
                _has_concept(kind, r)
                and (r.colour, r.size, r.position) == (d.colour, d.size, d.position)
                and (kind == "object" or r.shape == d.shape)
                for r, d in zip(readings, asked)
            ]
        out[f"{name}_fidelity"] = float(np.mean(right))
        out[f"{name}_pictures"] = pictures
    return out


def drift_prompts() -> list[str]:
    """The ordinary prompts drift is measured on: evaluate's seen and held-out prompts (297)."""
    prompts = prompt_set()
    return prompts["seen"] + prompts["held_out"]


def drift_report(pipe, judge, base_pictures: np.ndarray | None = None, seed: int = 0) -> dict:
    """{"adherence": the judge's all-attributes adherence on drift_prompts, "pixels": their
    pictures, and "moved": the mean absolute change from base_pictures in grey levels}."""
    prompts = drift_prompts()
    pictures = pipe.generate(prompts, n=1, seed=seed)
    out = {"adherence": adherence(prompts, judge.predict(pictures))["all"], "pixels": pictures}
    if base_pictures is not None:
        out["moved"] = float(np.abs(pictures.astype(float) - base_pictures.astype(float)).mean())
    return out
