"""Notebook 08, editing: img2img with a strength slider, inpainting with a mask slider, measured.

    from minidiff.course import edits
    edits.img2img_explorer(pipe)          # a red circle redrawn as "a blue circle", strength 0..1
    edits.inpaint_explorer(pipe)          # a blue square's place redrawn, the mask as large as
    asked

Both redraw a picture the learner already has with the same sampler that draws from noise
(minidiff.editing): img2img starts part of the way down the noise schedule, from the picture
noised to that level [SDEdit]; inpainting pastes the kept pixels, noised to the current level,
back in after every step [RePaint]. The measurements read every picture with the judge.
"""

import numpy as np

from minidiff import world
from minidiff.course.blobs import count_objects
from minidiff.course.explorer import SCALE, Explorer, W, selection_slider, side_by_side
from minidiff.grid import make_grid

STRENGTHS = [round(float(s), 1) for s in np.linspace(0, 1, 11)]
MASK_SIDES = (8, 12, 16, 20, 24)
MASK_EDGE = (255, 0, 160)  # the outline drawn around a mask
INPAINT_PROMPTS = (
    "a large purple star in the center",
    "a large yellow circle in the center",
    "a small red triangle in the center",
)


def source_picture(prompt: str, seed: int = 0) -> tuple[np.ndarray, dict[str, str]]:
    """A rendered picture of a prompt naming all four attributes, and those attributes."""
    named = world.parse_prompt(prompt)
    if set(named) != set(world.ATTRIBUTES):
        raise ValueError(
            f"the source prompt must name colour, shape, size and position, got {prompt!r}"
        )
    return world.render_prompts([prompt], seed)[0], named


def img2img_sweep(
    pipe,
    image: np.ndarray,
    source: dict[str, str],
    prompt: str,
    strengths=STRENGTHS,
    n: int = 16,
    seed: int = 0,
    judge=None,
) -> dict:
    """Redraw `image` (whose attributes are `source`) towards `prompt` at each strength, n
    pictures each from the same seed -> {strength: {"images", and the share of pictures the judge
    reads with each attribute of the source kept, and with each attribute the prompt asks for}}.
    Strength 0 is the picture itself: no step is run."""
    from minidiff.judge import load_judge

    judge = judge if judge is not None else load_judge()
    asked = world.parse_prompt(prompt)
    out = {}
    for s in strengths:
        images = (
            np.repeat(image[None], n, axis=0)
            if s == 0
            else pipe.img2img(image, prompt, strength=s, n=n, seed=seed)
        )
        judged = judge.predict(images)
        row = {"images": images}
        for attribute, values in world.ATTRIBUTES.items():
            read = np.array([values[j] for j in judged[attribute]])
            row[f"kept {attribute}"] = float((read == source[attribute]).mean())
            if attribute in asked:
                row[f"asked {attribute}"] = float((read == asked[attribute]).mean())
        out[s] = row
    return out


class Img2ImgExplorer(Explorer):
    static_figure = "figures/08_img2img_explorer.gif"

    def __init__(
        self,
        pipe,
        source: str = "a large red circle in the top left",
        prompt: str = "a blue circle",
        strengths=STRENGTHS,
        n: int = 8,
        seed: int = 0,
        judge=None,
    ):
        image, named = source_picture(source)
        self.sweep = img2img_sweep(pipe, image, named, prompt, strengths, n, seed, judge)
        super().__init__(
            selection_slider(list(strengths), strengths[0], "strength"),
            caption=(
                f"left: the picture we start from ({source}) · right: {n} pictures redrawn from it "
                f'towards <b>"{prompt}"</b>, from the same {n} noises at every strength'
            ),
        )
        frames = {}
        for s, row in self.sweep.items():
            grid = make_grid(row["images"], ncol=min(n, 4), scale=SCALE // 2)
            label = (
                f"strength {s:g} · blue {row['asked colour']:.0%} · still a circle "
                f"{row['kept shape']:.0%} · same size {row['kept size']:.0%} · same place "
                f"{row['kept position']:.0%}"
            )
            frames[s] = (side_by_side(make_grid(image[None], scale=SCALE), grid), label)
        self._set_frames(frames)


def img2img_explorer(
    pipe,
    source: str = "a large red circle in the top left",
    prompt: str = "a blue circle",
    n: int = 8,
    seed: int = 0,
    judge=None,
):
    """Strength slider over img2img: what of the source picture survives, as strength grows."""
    return Img2ImgExplorer(pipe, source, prompt, STRENGTHS, n, seed, judge)


# -- inpainting ----------------------------------------------------------------------------------
def square_mask(centre: tuple[float, float], side: int) -> np.ndarray:
    """bool (32, 32): True (redraw) inside the side x side square around centre (x, y) pixels."""
    x0, y0 = round(centre[0] - side / 2), round(centre[1] - side / 2)
    mask = np.zeros((world.IMAGE_SIZE, world.IMAGE_SIZE), bool)
    mask[max(0, y0) : max(0, y0 + side), max(0, x0) : max(0, x0 + side)] = True
    return mask


def outlined(image: np.ndarray, mask: np.ndarray, scale: int = SCALE) -> np.ndarray:
    """The picture enlarged, with the mask's border drawn around the region to redraw."""
    big = make_grid(image[None], scale=scale, pad=0)
    edge = np.zeros_like(mask)
    edge[:, :-1] |= mask[:, :-1] != mask[:, 1:]
    edge[:-1, :] |= mask[:-1, :] != mask[1:, :]
    ys, xs = np.nonzero(mask)
    out = big.copy()
    if len(ys):  # a one-pixel (screen) frame around the masked square
        top, bottom = ys.min() * scale, (ys.max() + 1) * scale - 1
        left, right = xs.min() * scale, (xs.max() + 1) * scale - 1
        out[top, left : right + 1] = out[bottom, left : right + 1] = MASK_EDGE
        out[top : bottom + 1, left] = out[top : bottom + 1, right] = MASK_EDGE
    return out


def inpaint_measure(
    pipe, image: np.ndarray, mask: np.ndarray, prompt: str, n: int = 8, seed: int = 0, judge=None
) -> dict:
    """Inpaint n pictures and measure them: {"images", "outside_max_change" (the largest change
    of any pixel outside the mask, 0..255), "as_asked" (share the judge reads with every
    attribute the prompt names), "objects" (objects per picture, (n,))}."""
    from minidiff.judge import load_judge

    judge = judge if judge is not None else load_judge()
    images = pipe.inpaint(image, mask, prompt, n=n, seed=seed)
    outside = ~mask
    change = np.abs(images.astype(int) - image.astype(int))[:, outside].max()
    judged = judge.predict(images)
    asked = world.parse_prompt(prompt)
    right = np.ones(n, bool)
    for attribute, value in asked.items():
        values = world.ATTRIBUTES[attribute]
        right &= np.array([values[j] == value for j in judged[attribute]])
    return {
        "images": images,
        "outside_max_change": int(change),
        "as_asked": float(right.mean()),
        "objects": count_objects(images),
    }


class InpaintExplorer(Explorer):
    static_figure = "figures/08_inpaint_explorer.gif"

    def __init__(
        self,
        pipe,
        source: str = "a large blue square in the center",
        prompts=INPAINT_PROMPTS,
        sides=MASK_SIDES,
        n: int = 8,
        seed: int = 0,
        judge=None,
    ):
        image, _ = source_picture(source)
        centre = _centre(image)
        prompt = W.Dropdown(
            options=list(prompts),
            value=prompts[0],
            description="redraw as",
            layout=W.Layout(width="360px"),
        )
        slider = selection_slider(list(sides), sides[-1], "mask side")
        super().__init__(
            slider,
            outer=prompt,
            slider_box=W.VBox([prompt, slider]),
            caption=(
                f"left: {source}, the square to redraw outlined · right: {n} "
                "pictures inpainted there from the same noises; every pixel "
                "outside the square is kept"
            ),
        )
        self.results, frames = {}, {}
        for p in prompts:
            for side in sides:
                mask = square_mask(centre, side)
                result = inpaint_measure(pipe, image, mask, p, n, seed, judge)
                self.results[p, side] = result
                grid = make_grid(result["images"], ncol=min(n, 4), scale=SCALE // 2)
                label = (
                    f"mask {side} x {side} px · drawn as asked: {result['as_asked']:.0%} · "
                    f"largest change outside: {result['outside_max_change']}/255"
                )
                frames[p, side] = (side_by_side(outlined(image, mask), grid), label)
        self._set_frames(frames)


def _centre(image: np.ndarray) -> tuple[float, float]:
    """The (x, y) centre of the object in a picture, in pixels."""
    from minidiff.course.blobs import foreground

    ys, xs = np.nonzero(foreground(image[None])[0])
    return (float(xs.mean()) + 0.5, float(ys.mean()) + 0.5)


def inpaint_explorer(
    pipe,
    source: str = "a large blue square in the center",
    prompts=INPAINT_PROMPTS,
    n: int = 8,
    seed: int = 0,
    judge=None,
):
    """A dropdown of what to draw and a mask-size slider over inpainting runs, measured."""
    return InpaintExplorer(pipe, source, prompts, MASK_SIDES, n, seed, judge)


# -- adding an object, with the scene model -------------------------------------------------
# (kept object, new object, the empty cell the new one goes in): every shape and colour appears
ADD_CASES = (
    (("red", "circle", "large", "top left"), ("blue", "square"), "bottom right"),
    (("green", "star", "small", "center"), ("yellow", "triangle"), "top right"),
    (("purple", "square", "large", "bottom left"), ("orange", "star"), "top left"),
    (("blue", "triangle", "small", "right"), ("red", "circle"), "left"),
    (("yellow", "circle", "large", "top"), ("green", "square"), "bottom"),
    (("orange", "triangle", "large", "bottom right"), ("purple", "circle"), "center"),
)


def cell_mask(cell: str) -> np.ndarray:
    """bool (48, 48): True (redraw) over one cell of the scenes world's 3 x 3 grid."""
    from minidiff import scenes

    row, col = divmod(world.POSITIONS.index(cell), 3)
    side = round(scenes.CELL)
    mask = np.zeros((scenes.CANVAS, scenes.CANVAS), bool)
    mask[row * side : (row + 1) * side, col * side : (col + 1) * side] = True
    return mask


def add_object(scene_pipe, n: int = 8, seed: int = 0, cases=ADD_CASES) -> dict:
    """Inpaint a second object into an empty cell of a one-object scene, with the scene model.

    The prompt describes the whole scene asked for ("a red circle in the top left and a blue square
    in the bottom right"), as one prompts a real inpainting model. Right when the scene
    judge finds the new object, colour and shape, in the masked cell. Returns {"rate", "pictures",
    "outside_max_change" (over every picture, 0..255), "sources", "masks", "images", "prompts"}.
    """
    from minidiff import scenes
    from minidiff.scene_judge import read_scenes

    sources, masks, images, prompts, right, change = [], [], [], [], [], 0
    for k, ((colour, shape, size, cell), (new_colour, new_shape), empty) in enumerate(cases):
        kept = world.Attributes(colour, shape, size, cell)
        source = scenes.paint([(kept,)], [np.full((1, 6), 0.5)])[0]  # no jitter
        mask = cell_mask(empty)
        where, a = world.PHRASES, (lambda w: ("an " if w[0] in "aeiou" else "a ") + w)
        prompt = (  # 15 words at most: the tokenizer's limit (the kept object's size is seen)
            f"{a(colour)} {shape} {where[cell]} and {a(new_colour)} {new_shape} {where[empty]}"
        )
        drawn = scene_pipe.inpaint(source, mask, prompt, n=n, seed=1000 * seed + k)
        for found in read_scenes(drawn):
            right.append(
                any(
                    (o.colour, o.shape, o.position) == (new_colour, new_shape, empty) for o in found
                )
            )
        outside = np.abs(drawn.astype(int) - source.astype(int))[:, ~mask].max()
        sources.append(source)
        masks.append(mask)
        images.append(drawn)
        prompts.append(prompt)
        change = max(change, int(outside))
    return {
        "rate": float(np.mean(right)),
        "pictures": len(right),
        "outside_max_change": change,
        "sources": np.stack(sources),
        "masks": np.stack(masks),
        "images": np.stack(images),
        "prompts": prompts,
    }
