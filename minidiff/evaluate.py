"""Evaluation: does the model draw what it is asked, and does it vary what it is not told?

    report = evaluate(minidiff.load_pretrained())    # about a minute on a laptop CPU
    print(report.table())

Every number comes from the judge (`minidiff.judge`) reading generated pictures, on a fixed list of
prompts and seeds, so two runs on the same model give the same report:

- **adherence**: the fraction of pictures whose judged attribute is the one the prompt asked for,
  per attribute and for all four at once ("all"), on prompts naming all four attributes in the
  world's own words ("a large red circle in the top left"). Reported separately for the colour-shape
  pairs seen in training and for the held-out pairs (purple star, green triangle, orange circle),
  which measure composition. A third group, **paraphrase**, asks for all four attributes in
  word orders and phrasings that no training caption uses ("small blue square at top right", "a
  square, blue and small, top right"): does the model read the words, or memorise sentences?
- **diversity**: for prompts that leave attributes out ("a red circle" says nothing of size or
  position), the normalised entropy H / log K of the judged values of each left-out attribute over
  the pictures of one prompt: 1 when all K values are equally common, 0 when the model always draws
  the same one. With few pictures per prompt even a perfectly uniform generator scores below 1; the
  report shows that ceiling beside the score.
- **Frechet distance** between judge features of the generated pictures and of real rendered
  pictures of the same prompts (left-out attributes drawn uniformly); the "floor" beside it is the
  distance between two independent real sets of that size, which is not 0 for finite sets.
"""

import functools
import math
import time
from dataclasses import asdict, dataclass, field
from itertools import product

import numpy as np

from . import world

GROUPS = ("seen", "held_out", "paraphrase")
COLUMNS = tuple(world.ATTRIBUTES) + ("all",)
CHUNK = 48  # pictures per pipe.generate call; call k is seeded with 1000 * seed + k
# Prompts that leave attributes out. Each one's left-out attributes can take every value in
# training (no held-out pair is possible: an unnamed colour goes with "square", an unnamed shape
# with red, yellow or blue), so a faithful model spreads them uniformly.
DIVERSITY = (
    {"colour": "red", "shape": "circle"},
    {"size": "large", "shape": "square"},
    {"colour": "yellow", "position": "left"},
    {"shape": "square"},
    {"size": "small", "colour": "blue", "shape": "triangle"},
    {"colour": "blue", "position": "center"},
    {"colour": "red"},
    {"colour": "green", "shape": "square", "position": "bottom"},
)


# Phrasings a person would write that no training caption uses (world.TEMPLATES are the training
# ones; a test checks that no caption world.caption_in can write is among these).
PARAPHRASES = (
    "small blue square at top right",
    "a square, blue and small, top right",
    "small blue square in the top right",
    "the square in the top right is small and blue",
    "a blue square that is small, in the top right",
    "in the top right is a small blue square",
)


def paraphrase(named: dict[str, str], template: int, synonym: int = 0) -> str:
    """A prompt naming all four attributes in PARAPHRASES[template], with size word `synonym`
    (0: large/small, 1: big/tiny)."""
    colour, shape, position = named["colour"], named["shape"], named["position"]
    size = world.SIZE_WORDS[named["size"]][synonym]
    phrase = world.PHRASES[position]
    article = "an" if size[0] in "aeiou" else "a"
    forms = (
        f"{size} {colour} {shape} at {position}",
        f"a {shape}, {colour} and {size}, {position}",
        f"{size} {colour} {shape} {phrase}",
        f"the {shape} {phrase} is {size} and {colour}",
        f"{'an' if colour[0] in 'aeiou' else 'a'} {colour} {shape} that is {size}, {phrase}",
        f"{phrase} is {article} {size} {colour} {shape}",
    )
    if not 0 <= template < len(forms):
        raise ValueError(f"no paraphrase template {template}; there are {len(forms)}")
    return forms[template]


def prompt_set(quick: bool = False) -> dict[str, list[str]]:
    """The fixed prompts of each part, one entry per picture: {"seen", "held_out", "diversity"}.

    Full: 189 seen prompts (every seen colour-shape pair in 9 of its 18 size-position combinations,
    balanced), the 54 held-out prompts twice each, 144 paraphrases (every third of the 432
    combinations, seen and held-out pairs, the six PARAPHRASES in turn), and the 8 diversity prompts
    48 times each: 825 pictures. Quick: about a tenth of each (24 + 12 + 12 + 24 = 72 pictures).
    """
    seen_pairs = [
        (c, s) for c in world.COLOURS for s in world.SHAPES if (c, s) not in world.HELD_OUT
    ]
    seen = [
        {"colour": c, "shape": s, "size": z, "position": p}
        for i, (c, s) in enumerate(seen_pairs)
        for j, z in enumerate(world.SIZES)
        for k, p in enumerate(world.POSITIONS)
        if (i + j + k) % 2 == 0
    ]
    held_out = [
        {"colour": c, "shape": s, "size": z, "position": p}
        for c, s in world.HELD_OUT
        for z in world.SIZES
        for p in world.POSITIONS
    ]
    if quick:
        seen = seen[::8]
        held_out = [
            {
                "colour": c,
                "shape": s,
                "size": world.SIZES[j % 2],
                "position": world.POSITIONS[(3 * i + 2 * j) % 9],
            }
            for i, (c, s) in enumerate(world.HELD_OUT)
            for j in range(4)
        ]
        diversity = [a for a in DIVERSITY[:4] for _ in range(6)]
    else:
        held_out = held_out * 2
        diversity = [a for a in DIVERSITY for _ in range(48)]
    combos = [
        {"colour": c, "shape": s, "size": z, "position": p}
        for c, s, z, p in product(world.COLOURS, world.SHAPES, world.SIZES, world.POSITIONS)
    ]
    combos = combos[:: 36 if quick else 3]
    paraphrases = [
        paraphrase(a, i % len(PARAPHRASES), (i // len(PARAPHRASES)) % 2)
        for i, a in enumerate(combos)
    ]
    out = {
        group: [world.canonical_prompt(a) for a in named]
        for group, named in (("seen", seen), ("held_out", held_out), ("diversity", diversity))
    }
    return {
        "seen": out["seen"],
        "held_out": out["held_out"],
        "paraphrase": paraphrases,
        "diversity": out["diversity"],
    }


# -- the three measures ----------------------------------------------------------------------------
def hits(prompts: list[str], judged: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per picture, whether each attribute its prompt named was judged right: {attribute or "all":
    (N,) float, 1 right, 0 wrong, nan where the prompt does not name it}. judged: value indices."""
    out = {name: np.full(len(prompts), np.nan) for name in COLUMNS}
    for i, prompt in enumerate(prompts):
        named = world.parse_prompt(prompt)
        for name, value in named.items():
            out[name][i] = world.ATTRIBUTES[name].index(value) == judged[name][i]
        out["all"][i] = all(out[name][i] == 1 for name in named)
    return out


def adherence(prompts: list[str], judged: dict[str, np.ndarray]) -> dict[str, float]:
    """Fraction of pictures whose judged attribute equals the one its prompt named, per attribute
    (over the prompts that name it) and "all" (every named attribute right)."""
    return {
        name: float(np.nanmean(h)) if (~np.isnan(h)).any() else math.nan
        for name, h in hits(prompts, judged).items()
    }


def normalised_entropy(values: np.ndarray, k: int) -> float:
    """H(p) / log K of the empirical distribution p of integer values in [0, k): 1 uniform, 0 one
    value. H(p) = -sum_i p_i log p_i   [Shannon 1948]"""
    values = np.asarray(values)
    if k < 2 or values.size == 0:
        raise ValueError(
            f"need k >= 2 possible values and at least one value, got k={k}, {values.size} values"
        )
    p = np.bincount(values, minlength=k) / values.size
    p = p[p > 0]
    return float(-(p * np.log(p)).sum() / math.log(k))


@functools.lru_cache
def uniform_entropy_ceiling(n: int, k: int, draws: int = 2000) -> float:
    """Expected normalised_entropy of n values drawn uniformly from k: the best score n pictures
    can get (the plug-in entropy of a small sample is biased low). Fixed seed, so deterministic."""
    rng = np.random.default_rng(0)
    return float(np.mean([normalised_entropy(rng.integers(k, size=n), k) for _ in range(draws)]))


def diversity_scores(
    prompts: list[str], judged: dict[str, np.ndarray]
) -> tuple[dict[str, float], dict[str, float]]:
    """Normalised entropy of each left-out attribute over the pictures of each distinct prompt,
    averaged per attribute and over all (prompt, attribute) ("mean"); and the same averages of
    uniform_entropy_ceiling for those numbers of pictures. judged: value indices."""
    scores: dict[str, list[float]] = {name: [] for name in world.ATTRIBUTES}
    ceilings: dict[str, list[float]] = {name: [] for name in world.ATTRIBUTES}
    for prompt in dict.fromkeys(prompts):  # distinct prompts, in order
        mine = np.array([p == prompt for p in prompts])  # (N,) this prompt's pictures
        for name, values in world.ATTRIBUTES.items():
            if name not in world.parse_prompt(prompt):
                scores[name].append(normalised_entropy(judged[name][mine], len(values)))
                ceilings[name].append(uniform_entropy_ceiling(int(mine.sum()), len(values)))
    out = []
    for table in (scores, ceilings):
        means = {k: float(np.mean(v)) for k, v in table.items() if v}
        means["mean"] = float(np.mean([x for v in table.values() for x in v]))
        out.append(means)
    return out[0], out[1]


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two sets of features (N, D) and (M, D):
    |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2)   [Dowson & Landau 1982; FID,
    Heusel et al. 2017]. Matrix square roots of these symmetric matrices via eigh (no scipy)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(
            f"need two feature sets (N, D) and (M, D) with N, M >= 2, got {a.shape} and {b.shape}"
        )
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)  # (D, D)
    w, v = np.linalg.eigh(s_a)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T  # S_a^1/2
    middle = np.linalg.eigvalsh(root_a @ s_b @ root_a)  # eigenvalues of S_a^1/2 S_b S_a^1/2
    trace_root = np.sqrt(np.clip(middle, 0, None)).sum()  # tr((S_a^1/2 S_b S_a^1/2)^1/2)
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2 * trace_root)


# -- the report ------------------------------------------------------------------------------------
@dataclass
class EvalReport:
    adherence: dict[str, dict[str, float]]  # group -> attribute or "all" -> fraction right
    held_out_pairs: dict[str, float]  # "purple star" -> all-attributes adherence
    diversity: dict[str, float]  # left-out attribute or "mean" -> normalised entropy
    diversity_ceiling: dict[str, float]  # the same for a perfectly uniform generator
    frechet_distance: float
    frechet_floor: float  # between two real sets of the same prompts and size
    pictures: dict[str, int]  # group -> number of pictures
    settings: dict = field(default_factory=dict)  # steps, guidance_scale, sampler, seed, quick, …

    def to_dict(self) -> dict:
        return asdict(self)

    def table(self) -> str:
        s = self.settings
        quick = ", quick" if s.get("quick") else ""
        title = (
            f"minidiff evaluation: {sum(self.pictures.values())} pictures, {s.get('sampler')} "
            f"{s.get('steps')} "
            f"steps, guidance {s.get('guidance_scale')}, seed {s.get('seed')}{quick} "
            f"({s.get('seconds', 0):.0f} s)"
        )
        lines = [
            title,
            "",
            "prompt adherence (fraction of pictures the judge reads as asked)",
            f"  {'':<16}" + "".join(f"{c:>10}" for c in COLUMNS) + f"{'pictures':>10}",
        ]
        for group in GROUPS:
            row = self.adherence[group]
            lines.append(
                f"  {group.replace('_', '-') + ' pairs':<16}"
                + "".join(f"{row[c]:>10.3f}" for c in COLUMNS)
                + f"{self.pictures[group]:>10}"
            )
        pairs = ", ".join(f"{k} {v:.3f}" for k, v in self.held_out_pairs.items())
        lines += [
            f"  held-out, all attributes right: {pairs}",
            "",
            "diversity (normalised entropy of the attributes a prompt leaves out; 1 = uniform)",
            f"  {'':<16}" + "".join(f"{c:>10}" for c in self.diversity),
            f"  {'model':<16}" + "".join(f"{v:>10.3f}" for v in self.diversity.values()),
            f"  {'uniform ceiling':<16}"
            + "".join(f"{self.diversity_ceiling[c]:>10.3f}" for c in self.diversity),
            "",
            f"Frechet distance in judge features: {self.frechet_distance:.3f} "
            + f"(two real sets of the same size: {self.frechet_floor:.3f})",
        ]
        return "\n".join(lines)


def _generate(
    pipe,
    prompts: list[str],
    steps: int,
    guidance_scale: float,
    sampler: str,
    seed: int,
    progress: bool,
) -> np.ndarray:
    """One picture per prompt, CHUNK prompts per call (call k uses seed 1000 * seed + k)
    -> uint8 (N, 32, 32, 3)."""
    from tqdm.auto import tqdm

    chunks = [prompts[i : i + CHUNK] for i in range(0, len(prompts), CHUNK)]
    out = [
        pipe.generate(
            chunk,
            n=1,
            steps=steps,
            guidance_scale=guidance_scale,
            sampler=sampler,
            seed=1000 * seed + k,
        )
        for k, chunk in enumerate(tqdm(chunks, desc="generating", disable=not progress))
    ]
    return np.concatenate(out)


def evaluate(
    pipe,
    quick: bool = False,
    steps: int | None = None,
    guidance_scale: float | None = None,
    seed: int = 0,
    judge=None,
    progress: bool = True,
    sampler: str | None = None,
) -> EvalReport:
    """Generate the fixed prompt set with `pipe` and measure it (see the module docstring).

    pipe: anything with pipe.generate(prompts: list[str], n, steps, guidance_scale, sampler, seed)
    -> uint8 (len(prompts) * n, 32, 32, 3), such as a minidiff Pipeline. steps, guidance_scale and
    sampler default to the model's defaults (Pipeline.default_settings), else the pipeline
    module's; judge defaults to the shipped one.
    """
    from .judge import load_judge
    from .pipeline import Settings

    start = time.time()
    # a minidiff Pipeline's defaults, with its model's own (a flow model draws with "euler")
    own = getattr(pipe, "default_settings", None) or Settings()
    steps = own.steps if steps is None else steps
    guidance_scale = own.guidance_scale if guidance_scale is None else guidance_scale
    sampler = own.sampler if sampler is None else sampler
    judge = judge if judge is not None else load_judge()
    parts = prompt_set(quick)
    order = GROUPS + ("diversity",)
    prompts = [p for group in order for p in parts[group]]
    images = _generate(pipe, prompts, steps, guidance_scale, sampler, seed, progress)
    if images.shape != (len(prompts), world.IMAGE_SIZE, world.IMAGE_SIZE, 3):
        raise ValueError(
            f"pipe.generate returned {images.shape} for {len(prompts)} prompts, "
            f"expected ({len(prompts)}, {world.IMAGE_SIZE}, {world.IMAGE_SIZE}, 3)"
        )
    judged = judge.predict(images)
    ends = np.cumsum([len(parts[g]) for g in order])[:-1]
    rows = dict(zip(order, np.split(np.arange(len(prompts)), ends)))
    per_group = {g: {k: v[rows[g]] for k, v in judged.items()} for g in rows}
    adherence_ = {g: adherence(parts[g], per_group[g]) for g in GROUPS}
    all_right = hits(parts["held_out"], per_group["held_out"])["all"]
    pairs = {
        f"{c} {s}": float(all_right[[f"{c} {s}" in p for p in parts["held_out"]]].mean())
        for c, s in world.HELD_OUT
    }

    diversity, ceiling = diversity_scores(parts["diversity"], per_group["diversity"])
    real = judge.embed_pictures(world.render_prompts(prompts, seed=[seed, 1]))
    fd = frechet_distance(judge.embed_pictures(images), real)
    floor = frechet_distance(
        judge.embed_pictures(world.render_prompts(prompts, seed=[seed, 2])), real
    )
    settings = {
        "steps": steps,
        "guidance_scale": guidance_scale,
        "sampler": sampler,
        "seed": seed,
        "quick": quick,
        "seconds": round(time.time() - start, 1),
    }
    return EvalReport(
        adherence_,
        pairs,
        diversity,
        ceiling,
        fd,
        floor,
        {g: len(parts[g]) for g in parts},
        settings,
    )
