"""Notebook 11, scenes: which word goes with which object, how many, and where.

    from minidiff.course import binding
    binding.scene_explorer(scene_pipe)     # scene prompts x seeds, each picture judged
    binding.failures(scene_pipe)           # the pictures the judge reads wrong, by category
    binding.compose_generate(scene_pipe, "a red circle and a blue square")  # composed with AND

Every verdict comes from the scene judge (minidiff.scene_judge) under GenEval's rules
(minidiff.geneval.correct): a picture is right when the objects the prompt names are there, with
their colours, their count and their relation.
"""

import html

import numpy as np
import torch

from minidiff import diffusion, geneval, pixels, samplers
from minidiff.course import paths
from minidiff.course.explorer import SCALE, Explorer, selection_slider, text_box
from minidiff.grid import make_grid
from minidiff.scene_judge import SeenObject, read_scenes
from minidiff.scene_prompts import parse_scene_prompt

PROMPTS = (
    "a red circle and a blue square",
    "a blue circle and a red square",
    "a yellow star to the left of a green square",
    "a green square to the left of a yellow star",
    "three purple triangles",
    "four orange circles",
    "a small blue star above a large red circle",
    "two green stars and a yellow circle",
)
SEEDS = (0, 1, 2)
RIGHT, WRONG = (40, 160, 60), (200, 40, 40)  # the frame around a picture the judge reads right


def is_right(prompt: str, found: list[SeenObject]) -> bool:
    """GenEval's rule for one picture (exact counts for a counting prompt, as GenEval asks)."""
    request = parse_scene_prompt(prompt)
    counting = len(request.objects) == 1 and request.objects[0].count > 1
    return geneval.correct(request, found, exact_count=counting)


def reading(found: list[SeenObject]) -> str:
    """What the judge read, in words: 'red circle (top left), blue square (center)'."""
    return ", ".join(f"{o.colour} {o.shape} ({o.position})" for o in found) or "nothing"


def framed(images: np.ndarray, verdicts: list[bool], width: int = 2) -> np.ndarray:
    """uint8 pictures (N, S, S, 3) with a green (right) or red (wrong) frame of `width` pixels."""
    out = np.pad(images, ((0, 0), (width, width), (width, width), (0, 0)))
    for picture, ok in zip(out, verdicts):
        picture[:width], picture[-width:] = RIGHT if ok else WRONG, RIGHT if ok else WRONG
        picture[:, :width], picture[:, -width:] = RIGHT if ok else WRONG, RIGHT if ok else WRONG
    out[:, width:-width, width:-width] = images
    return out


def judged(pipe, prompt: str, n: int = 8, seed: int = 0, **settings):
    """n pictures of one prompt, the judge's reading of each, and GenEval's verdict on each."""
    images = pipe.generate(prompt, n=n, seed=seed, **settings)
    found = read_scenes(images)
    return images, found, [is_right(prompt, f) for f in found]


class SceneExplorer(Explorer):
    static_figure = "figures/11_scene_explorer.gif"

    def __init__(self, pipe, prompts=PROMPTS, seeds=SEEDS, n: int = 6):
        self.pipe, self.seeds, self.n = pipe, tuple(seeds), n
        self.prompts = list(prompts)
        self.prompt = text_box("a purple circle below an orange star", "prompt")
        self.button = self._generate_button()
        self.choice = _dropdown(self.prompts)
        super().__init__(
            selection_slider(list(self.seeds), self.seeds[0], "seed"),
            caption=f"{n} pictures of a scene prompt from one seed · green frame: the judge "
            "reads it right (GenEval's rule) · red: wrong",
            controls=[self.prompt, self.button, self.choice],
            outer=self.choice,
        )
        self.frames_of = {p: self._frames(p) for p in self.prompts}
        self._show()

    def _frames(self, prompt: str) -> dict:
        frames = {}
        for seed in self.seeds:
            images, found, verdicts = judged(self.pipe, prompt, self.n, seed)
            label = (
                f"'{html.escape(prompt)}' · seed {seed} · the judge reads {sum(verdicts)} of "
                f"{self.n} right · picture 1: {html.escape(reading(found[0]))}"
            )
            frames[seed] = (
                make_grid(framed(images, verdicts), ncol=self.n, scale=SCALE // 2),
                label,
            )
        return frames

    def _show(self) -> None:
        self._set_frames({(p, s): self.frames_of[p][s] for p in self.prompts for s in self.seeds})

    def compute(self) -> None:
        """Draw the typed prompt at every seed and add it to the prompts (a prompt no scene can
        show is refused in the label, with the reason)."""
        prompt = self.prompt.value.strip()
        frames = self._frames(prompt)  # refuses before anything changes
        if prompt not in self.prompts:
            self.prompts.append(prompt)
        self.frames_of[prompt] = frames
        self.choice.options = self.prompts
        self.choice.value = prompt
        self._show()


def _dropdown(options):
    import ipywidgets as W

    return W.Dropdown(options=list(options), description="scene", layout=W.Layout(width="460px"))


def scene_explorer(pipe, prompts=PROMPTS, seeds=SEEDS, n: int = 6):
    """Scene prompts x seeds, n pictures each, framed green or red by the scene judge."""
    return SceneExplorer(pipe, prompts, seeds, n)


# -- the failure gallery -------------------------------------------------------------------------
def failures(report, per_category: int = 6) -> dict:
    """The pictures of a scene evaluation (evaluate_scenes) the judge reads wrong, by GenEval
    category: {category: {"images", "prompts", "readings", "rate"}}, up to per_category each,
    spread over the category's prompts."""
    prompts, found = report.prompts, report.found
    out = {}
    for category in geneval.CATEGORIES:
        rows = [i for i, p in enumerate(prompts) if p.category == category]
        wrong = [i for i in rows if not is_right(prompts[i].prompt, found[i])]
        pick = wrong[:: max(1, len(wrong) // per_category)][:per_category]
        out[category] = {
            "images": report.images[pick],
            "prompts": [prompts[i].prompt for i in pick],
            "readings": [reading(found[i]) for i in pick],
            "rate": len(wrong) / len(rows),
        }
    return out


# -- composing prompts with AND ------------------------------------------------------------
def parts_of(prompt: str) -> list[str]:
    """'a red circle and a blue square' -> ['a red circle', 'a blue square']: the objects of a
    two-object prompt without a relation, each a prompt of its own."""
    request = parse_scene_prompt(prompt)
    if request.relation is not None or len(request.objects) < 2:
        raise ValueError(
            f"composing with AND needs a prompt of several objects joined by 'and', got {prompt!r}"
        )
    return [p.strip() for p in prompt.split(" and ")]


def composed_eps_fn(pipe, parts: list[list[str]], n: int, weight: float):
    """eps_hat = eps(null) + weight * sum_i (eps(part_i) - eps(null)): Composable Diffusion's AND
    (Liu et al. 2022) for P prompts at once, n pictures each (rows prompt-major, as
    pipe.generate lays them out): parts[p] are prompt p's parts, every prompt with as many. One
    network call on every part's rows and the null prompt's."""
    k = len(parts[0])
    if any(len(p) != k for p in parts):
        raise ValueError("every prompt composed at once needs the same number of parts")
    rows = [pipe.encode([p[i] for p in parts], n, guided=False) for i in range(k)]
    rows.append(_null(pipe, parts, n))
    context = torch.cat([c for c, _ in rows])  # (k+1) blocks of P*n rows: part 0, ..., null
    mask = torch.cat([m for _, m in rows])
    unet, prediction = pipe.model.unet, pipe.config.prediction

    @torch.no_grad()
    def eps_hat(x_t: torch.Tensor, t: int) -> torch.Tensor:
        x_in = x_t.repeat(k + 1, 1, 1, 1)
        t_in = torch.full((x_in.shape[0],), t, device=x_t.device, dtype=torch.long)
        out = unet(x_in, t_in, context, mask)
        alpha = diffusion.alpha_bar_at(pipe.alpha_bar, t)
        eps, _ = diffusion.split_prediction(out, x_in, alpha, prediction)
        eps = eps.view(k + 1, *x_t.shape)
        return diffusion.composed_eps(eps[k], list(eps[:k]), weight)

    return eps_hat


def _null(pipe, parts, n):
    """The empty prompt's encoded rows, one per picture: (P*n, L, D), (P*n, L)."""
    context, mask = pipe.encode(None, n, guided=False)  # (n, L, D)
    return context.repeat(len(parts), 1, 1), mask.repeat(len(parts), 1)


def compose_generate(
    pipe, prompt: str | list[str], n: int = 8, seed: int = 0, weight: float | None = None
) -> np.ndarray:
    """n pictures per prompt (several objects joined by "and") drawn as the AND of its parts,
    from the same noise as pipe.generate(prompt, n, seed=seed), with the pipeline's default
    sampler and steps; weight defaults to its guidance scale, so that each part pulls as hard as
    the plain prompt does."""
    prompts = [prompt] if isinstance(prompt, str) else list(prompt)
    parts, defaults = [parts_of(p) for p in prompts], pipe.default_settings
    weight = defaults.guidance_scale if weight is None else weight
    x_T, generator = pipe.noise(seed, len(prompts) * n)
    options = samplers.SampleOptions(
        sampler=defaults.sampler, eta=defaults.eta, clip_x0=pipe.clip_x0, generator=generator
    )
    eps_fn = composed_eps_fn(pipe, parts, n, weight)
    timesteps = samplers.make_timesteps(defaults.steps, pipe.config.T)
    x0, _ = samplers.sample(eps_fn, x_T, pipe.alpha_bar, timesteps, options)
    return pixels.to_uint8(pipe.decode(x0))  # a latent model's latents, decoded


def attribution(pipe, n: int = 8, seed: int = 0, weight: float | None = None) -> dict:
    """GenEval's colour attribution, drawn plainly and composed with AND (at the pipeline's
    default settings, each part weighted as its guidance scale), from the same noises:
    {"plain": share right, "and": share right, "pictures": count, "images": {way: uint8}}."""
    prompts = [p.prompt for p in geneval.category_prompts()["colour_attribution"]]
    images = {
        "plain": pipe.generate(prompts, n=n, seed=seed),
        "and": compose_generate(pipe, prompts, n, seed, weight),
    }
    repeated = [p for p in prompts for _ in range(n)]
    out = {"pictures": n * len(prompts), "prompts": prompts, "images": images}
    for way, stacked in images.items():
        out[way] = float(np.mean([is_right(p, f) for p, f in zip(repeated, read_scenes(stacked))]))
    return out


def read_results() -> dict:
    """The binding experiments (benchmarks/bench_binding.py): bag-of-words against transformer,
    a bigger text encoder against a bigger U-Net, at equal budget."""
    return paths.read_results("binding.json", "python benchmarks/bench_binding.py")


def results_table(results: dict) -> str:
    """The experiments' table as markdown: one row per run, with the parameters of its text
    encoder and U-Net, its binding, and GenEval's overall and two binding categories."""
    cols = ("overall", "position", "colour_attribution")  # the rest: results/binding.json
    head = "| run | text encoder | U-Net | s / step | colour binding | position binding | "
    head += " | ".join(f"GenEval {c.replace('_', ' ')}" for c in cols) + " |"
    lines = [head, "|" + " --- |" * (6 + len(cols))]
    bound = "{:.2f} ({:.0%})"  # binding accuracy (share of pictures bound either way)
    for name, r in results["runs"].items():
        g = r["geneval"]
        lines.append(
            f"| {name} | {r['text_parameters'] / 1e6:.2f}M | {r['unet_parameters'] / 1e6:.2f}M | "
            f"{r['seconds_per_step'] or float('nan'):.2f} | "
            f"{bound.format(r['binding']['colour'], r['bound_either_way']['colour'])} | "
            f"{bound.format(r['binding']['position'], r['bound_either_way']['position'])} | "
            + " | ".join(f"{g[c]:.2f}" for c in cols)
            + " |"
        )
    return "\n".join(lines)


# -- where each word looks ------------------------------------------------------------------
def word_attention(pipe, prompt: str = "a red circle and a blue square", seed: int = 0) -> dict:
    """Each word's cross-attention in one scene, and the share of it on each object's cell.

    The maps are probe.attention_maps (at the pipeline's default guidance) averaged over the
    second half of the sampling steps, when the objects are in place. Returns {"image",
    "tokens", "maps" (L, 48, 48), "objects" (what the judge read), "share" {token: [share of its
    attention on each object's cell]}}."""
    from minidiff import scenes
    from minidiff.course import probe

    tokens, image, maps = probe.attention_maps(
        pipe, prompt, seed=seed, guidance_scale=pipe.default_settings.guidance_scale
    )
    maps = maps[maps.shape[0] // 2 :].mean(0)  # (L, S, S)
    objects = read_scenes(image[None])[0]
    side = round(scenes.CELL)
    share = {}
    for w, token in enumerate(tokens):
        total = maps[w].sum()
        cells = []
        for o in objects:
            row, col = divmod(scenes.POSITIONS.index(o.position), 3)
            cell = maps[w, row * side : (row + 1) * side, col * side : (col + 1) * side]
            cells.append(float(cell.sum() / total))
        share[token] = cells
    return {"image": image, "tokens": tokens, "maps": maps, "objects": objects, "share": share}


def attention_figure(result: dict, words=("red", "circle", "blue", "square")):
    """The picture, then each word's attention map over it (bright: the pixels look at it)."""
    import matplotlib.pyplot as plt

    words = [w for w in words if w in result["tokens"]]
    fig, axes = plt.subplots(1, len(words) + 1, figsize=(2.2 * (len(words) + 1), 2.5))
    axes[0].imshow(result["image"], interpolation="nearest")
    axes[0].set_title("the picture", fontsize=9)
    for ax, word in zip(axes[1:], words):
        w = result["tokens"].index(word)
        ax.imshow(result["image"], interpolation="nearest")
        ax.imshow(result["maps"][w], cmap="magma", alpha=0.75, interpolation="bilinear")
        on = ", ".join(
            f"{o.colour} {o.shape} {s:.0%}"
            for o, s in zip(result["objects"], result["share"][word])
        )
        ax.set_title(f"'{word}'\n{on}", fontsize=8)
    for ax in axes:
        ax.set_axis_off()
    fig.tight_layout()
    return fig
