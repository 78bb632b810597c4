"""Notebook 07, latent diffusion: latents to look at, an encode-decode explorer, the cost figure.

    from minidiff.course import latent
    latent.latent_explorer(autoencoder)          # test pictures, noised in latent space, decoded

A latent is 4 channels of 8 x 8 numbers. `channel_tiles` draws each channel as a small heat map
(blue below zero, white at zero, red above), so a learner can see what the autoencoder keeps of a
picture: not its pixels, but a coarse code the decoder turns back into them.
"""

import numpy as np
import torch

from minidiff import pixels, world
from minidiff.course.explorer import Explorer, W, selection_slider
from minidiff.course.paths import read_results
from minidiff.course.plotting import bare
from minidiff.diffusion import q_sample
from minidiff.grid import make_grid
from minidiff.schedules import make_alpha_bar

LATENT_RANGE = 2.5  # heat-map colours saturate at this many standard deviations


def heat(values: np.ndarray, limit: float = LATENT_RANGE) -> np.ndarray:
    """float (H, W) -> uint8 (H, W, 3): blue for -limit, white for 0, red for +limit."""
    v = np.clip(values / limit, -1, 1)[..., None]
    white, red, blue = np.array([255, 255, 255]), np.array([200, 30, 30]), np.array([30, 70, 200])
    out = np.where(v >= 0, white + v * (red - white), white - v * (blue - white))
    return out.round().astype(np.uint8)


def channel_tiles(z: np.ndarray, scale: int = 16) -> np.ndarray:
    """One latent (4, 8, 8) -> uint8 picture: its channels side by side as heat maps, each
    enlarged to the size of the 32 x 32 picture it codes (at `scale` screen pixels per latent
    element)."""
    tiles = np.stack([heat(c) for c in np.asarray(z, dtype=np.float32)])  # (4, 8, 8, 3)
    return make_grid(
        tiles, ncol=len(tiles), scale=scale, pad=max(2, scale // 2), background=150
    )  # grey gaps: white is a value (0)


@torch.no_grad()
def encode_decode(autoencoder, pictures: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """uint8 pictures (N, 32, 32, 3) -> (latents (N, 4, 8, 8) float32, as the diffusion model sees
    them, i.e. scaled; their decoded pictures uint8 (N, 32, 32, 3))."""
    z = autoencoder.encode(pixels.to_tensor(pictures))
    return z.numpy(), pixels.to_uint8(autoencoder.decode(z))


class LatentExplorer(Explorer):
    static_figure = "figures/07_latent_explorer.gif"

    def __init__(
        self,
        autoencoder,
        n_pictures: int = 6,
        seed: int = 0,
        ts=(0, 100, 200, 300, 400, 500, 600, 700, 800, 900, 999),
    ):
        images, captions, _ = world.batch("test", 0, n_pictures, seed=seed)
        self.captions = captions
        picture = W.Dropdown(
            options=[(c, i) for i, c in enumerate(captions)],
            value=0,
            description="picture",
            layout=W.Layout(width="420px"),
        )
        slider = selection_slider(list(ts), ts[0], "t")
        super().__init__(
            slider,
            outer=picture,
            slider_box=W.VBox([picture, slider]),
            caption=(
                "left to right: the test picture · the same amount of noise added to its pixels · "
                "its latent's 4 channels with that noise added in latent space · "
                "that noisy latent, decoded. At t = 0 the last picture is the autoencoder's "
                "reconstruction."
            ),
        )
        alpha_bar = make_alpha_bar("cosine")
        x0 = pixels.to_tensor(images)  # (N, 3, 32, 32)
        with torch.no_grad():
            z0 = autoencoder.encode(x0)  # (N, 4, 8, 8)
            frames = {}
            for t in ts:
                g = torch.Generator().manual_seed(seed)
                x_t = q_sample(x0, t, alpha_bar, torch.randn(x0.shape, generator=g))
                z_t = q_sample(z0, t, alpha_bar, torch.randn(z0.shape, generator=g))
                decoded = pixels.to_uint8(autoencoder.decode(z_t))
                noisy = pixels.to_uint8(x_t)
                for i in range(n_pictures):
                    row = [
                        make_grid(images[i : i + 1], scale=4),
                        make_grid(noisy[i : i + 1], scale=4),
                        channel_tiles(z_t[i].numpy(), scale=16),
                        make_grid(decoded[i : i + 1], scale=4),
                    ]
                    error = np.abs(decoded[i].astype(int) - images[i].astype(int)).mean()
                    frames[i, t] = (
                        _row(row),
                        (
                            f"t = {t} · ᾱ_t = {alpha_bar[t]:.3f} · decoded "
                            f"picture off by {error:.1f} of 255 per pixel on average"
                        ),
                    )
        self._set_frames(frames)


def _row(pictures: list[np.ndarray], gap: int = 12) -> np.ndarray:
    height = max(p.shape[0] for p in pictures)
    width = sum(p.shape[1] for p in pictures) + gap * (len(pictures) - 1)
    out = np.full((height, width, 3), 255, np.uint8)
    x = 0
    for p in pictures:
        out[: p.shape[0], x : x + p.shape[1]] = p
        x += p.shape[1] + gap
    return out


def latent_explorer(autoencoder, n_pictures: int = 6, seed: int = 0):
    """Dropdown of test pictures and a t slider: each picture, noised in pixel space and in
    latent space to the same ᾱ_t, the noisy latent's channels, and what the decoder makes of it."""
    return LatentExplorer(autoencoder, n_pictures, seed)


def read_cost() -> dict:
    """The pixel-against-latent cost measurement (benchmarks/bench_latent_cost.py)."""
    return read_results("latent_cost.json", "python benchmarks/bench_latent_cost.py --train")


def cost_table(cost: dict) -> str:
    """The measured costs as a Markdown table, pixel beside latent."""
    pixel, latent = cost["rows"]["pixel"], cost["rows"]["latent"]
    rows = [
        (
            "what the U-Net denoises",
            "x".join(map(str, pixel["input"])),
            "x".join(map(str, latent["input"])),
        ),
        (
            "U-Net MFLOP per picture per step",
            pixel["unet_mflop_per_picture"],
            latent["unet_mflop_per_picture"],
        ),
        (
            "one sampling step, 8 pictures (ms)",
            pixel["ms_per_step_8_pictures"],
            latent["ms_per_step_8_pictures"],
        ),
        ("decoder, once per picture (MFLOP)", 0, latent["decoder_mflop_per_picture"]),
        ("decoder, 8 pictures (ms)", 0, latent["decoder_ms_8_pictures"]),
        (
            "8 pictures, 20 steps, in all (ms)",
            pixel["generate_8_pictures_20_steps_ms"],
            latent["generate_8_pictures_20_steps_ms"],
        ),
        (
            "training: activations kept, batch 64 (MB)",
            pixel["training_saved_mb_batch_64"],
            latent["training_saved_mb_batch_64"],
        ),
    ]
    if cost.get("time_to_90"):
        t = list(cost["time_to_90"].values())
        rows.append(
            (
                "training to 90% adherence (minutes)",
                *[f"{x['minutes']:.1f} (step {x['step']})" if x else "not reached" for x in t],
            )
        )
    lines = ["| | pixel model | latent model |", "| --- | --- | --- |"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)


def show_trace(run, picks=(1, 4, 8, 12, 16, 20)):
    """A latent model's sampling run (Pipeline.trace, n=1): at each picked step, the latent x_t's
    four channels and the decoded x̂0."""
    import matplotlib.pyplot as plt

    latents, decoded = run.latents("x_t")[:, 0], run.frames("x0_hat")[:, 0]
    fig, axes = plt.subplots(2, len(picks), figsize=(1.9 * len(picks), 4.2), squeeze=False)
    for c, step in enumerate(picks):
        axes[0, c].imshow(channel_tiles(latents[step - 1], scale=1), interpolation="nearest")
        axes[0, c].set_title(f"step {step}, t = {run.timesteps[step - 1]}", fontsize=8)
        axes[1, c].imshow(decoded[step - 1], interpolation="nearest")
        for ax in axes[:, c]:
            bare(ax)
    axes[0, 0].set_ylabel("latent x_t\n(4 channels)", fontsize=8)
    axes[1, 0].set_ylabel("decoded x̂0", fontsize=8)
    fig.tight_layout()
    plt.show()
