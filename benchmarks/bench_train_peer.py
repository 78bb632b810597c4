"""The same training with minidiff's U-Net and with a diffusers UNet2DConditionModel of equal size.

    python benchmarks/bench_train_peer.py                   # small preset, 5 minutes each
    python benchmarks/bench_train_peer.py --minutes 10 --fold
    python benchmarks/bench_train_peer.py --smoke           # tiny preset, 20 s each: a quick check

Everything but the U-Net is the same in both runs, and the same as `minidiff train`: the text
encoder (architecture and config of the preset), and every optimizer step, which is
`minidiff.train.train_step` itself (the data stream, the noise and timesteps, the loss, AdamW with
the preset's learning-rate schedule and betas, gradient clipping, the EMA copy), the batch size,
and the wall-clock budget `--minutes`.

The diffusers U-Net is configured to minidiff's layout (see `diffusers_unet_kwargs`): one level per
entry of minidiff's `channels`, CrossAttnDownBlock2D / CrossAttnUpBlock2D where minidiff has
cross-attention, a cross-attention middle block, layers_per_block=1, cross_attention_dim = the text
width, the same heads and GroupNorm groups, and the `block_out_channels` closest to minidiff's
shape whose parameter count is within 10% of minidiff's U-Net (checked). It sees the 32x32 picture
directly (sample_size=32, 3 channels); with --fold it gets the 16x16, 12-channel picture that
minidiff's U-Net folds its input into (pixel_unshuffle), so both work at the same resolution.
Where the preset's U-Net has coordinate channels (UNetConfig.coordinates), the diffusers U-Net gets
the same two extra input channels.

Reported for each: parameter counts, steps done, training pictures per second (median over the run
after warm-up), the mean loss of the last 10% of steps, and prompt adherence at the end from
`minidiff.evaluate.evaluate(quick=True)` on the EMA weights (--eval-weights raw for the raw ones),
sampled through minidiff's own Pipeline and DDIM loop.
"""

import argparse
import copy
import itertools
import math
import statistics
import time

import report
import torch
import torch.nn.functional as F
from torch import nn

from minidiff.device import pick_device
from minidiff.evaluate import evaluate
from minidiff.model import ModelConfig, TextToImage, count_parameters
from minidiff.pipeline import DEFAULT_STEPS, Pipeline
from minidiff.schedules import make_alpha_bar
from minidiff.text_encoder import TextEncoder
from minidiff.train import TrainConfig, TrainingDiverged, make_optimizer, preset, train_step
from minidiff.unet import UNet, coordinate_grid

TOLERANCE = 0.10  # the two U-Nets' parameter counts may differ by this fraction at most


# -- the diffusers U-Net, behind minidiff's interface ---------------------------------------------
def diffusers_unet_kwargs(config: ModelConfig, channels: tuple[int, ...], fold: int) -> dict:
    """UNet2DConditionModel arguments laid out like minidiff's U-Net, with these channels."""
    u = config.unet
    levels = range(len(channels))
    return {
        "sample_size": u.image_size // fold,
        "in_channels": u.image_channels * fold**2 + 2 * u.coordinates,  # + (row, column) channels
        "out_channels": u.image_channels * fold**2,
        "block_out_channels": tuple(channels),
        "layers_per_block": 1,
        "down_block_types": tuple(
            "CrossAttnDownBlock2D" if i in u.attention_levels else "DownBlock2D" for i in levels
        ),
        "up_block_types": tuple(
            "CrossAttnUpBlock2D" if i in u.attention_levels else "UpBlock2D"
            for i in reversed(levels)
        ),
        "mid_block_type": "UNetMidBlock2DCrossAttn",
        "cross_attention_dim": config.text.width,
        "attention_head_dim": u.heads,  # diffusers' historical name: this is the number of heads
        "norm_num_groups": u.groups,
    }


def matched_channels(config: ModelConfig, fold: int) -> tuple[tuple[int, ...], int, int]:
    """block_out_channels for a diffusers U-Net of about minidiff's size -> (channels, diffusers
    parameters, minidiff parameters).

    Candidates are minidiff's channels scaled and rounded to multiples of the GroupNorm groups and
    heads. Of those within TOLERANCE, the winner keeps minidiff's pattern (a level as wide as, or
    wider than, the one before it stays so) if any does, then has the channel ratios and size
    closest to minidiff's.
    """
    from diffusers import UNet2DConditionModel

    u = config.unet
    target = count_parameters(UNet(u))
    unit = math.lcm(u.groups, u.heads)
    candidates = set()
    for k in range(25, 200, 5):  # scale in percent
        options = [
            {
                max(unit, unit * math.floor(k * c / 100 / unit)),
                max(unit, unit * math.ceil(k * c / 100 / unit)),
            }
            for c in u.channels
        ]
        candidates.update(itertools.product(*options))

    def same_pattern(channels):
        pairs = itertools.combinations(zip(channels, u.channels, strict=True), 2)
        return all((a > b) == (ma > mb) and (a == b) == (ma == mb) for (a, ma), (b, mb) in pairs)

    best = None
    for channels in sorted(candidates):
        with torch.device("meta"):  # shapes only: counting needs no memory and no init
            n = count_parameters(
                UNet2DConditionModel(**diffusers_unet_kwargs(config, channels, fold))
            )
        if abs(n / target - 1) > TOLERANCE:
            continue
        shape = sum(
            abs(math.log(c / channels[0]) - math.log(m / u.channels[0]))
            for c, m in zip(channels, u.channels, strict=True)
        )
        score = (not same_pattern(channels), shape + abs(math.log(n / target)))
        if best is None or score < best[0]:
            best = (score, channels, n)
    if best is None:
        raise SystemExit(
            f"no diffusers U-Net within {TOLERANCE:.0%} of minidiff's {target:,} "
            "parameters was found"
        )
    return best[1], best[2], target


class DiffusersUNet(nn.Module):
    """A diffusers UNet2DConditionModel called like minidiff's: unet(x_t, t, context, mask).

    With `coordinates`, the picture gets minidiff's two coordinate channels (CoordConv) on the way
    in, as minidiff's U-Net does (diffusers has no counterpart of its query position embedding).
    """

    def __init__(self, unet: nn.Module, fold: int, coordinates: bool):
        super().__init__()
        self.unet, self.fold, self.coordinates = unet, fold, coordinates

    def forward(
        self, x_t: torch.Tensor, t: torch.Tensor, context: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        x = F.pixel_unshuffle(x_t, self.fold) if self.fold > 1 else x_t  # (B, 3 f^2, 32/f, 32/f)
        if self.coordinates:
            x = torch.cat([x, coordinate_grid(x)], dim=1)  # (B, 3 f^2 + 2, 32/f, 32/f)
        # mask (B, L) True at real tokens; diffusers turns it into an attention bias
        out = self.unet(x, t, encoder_hidden_states=context, encoder_attention_mask=mask).sample
        return F.pixel_shuffle(out, self.fold) if self.fold > 1 else out  # (B, 3, 32, 32)


class DiffusersTextToImage(nn.Module):
    """minidiff's TextToImage with the diffusers U-Net: what Pipeline and training_loss need.

    `config` is the preset's ModelConfig: its text encoder, schedule, T and prediction are used;
    its `unet` field describes minidiff's U-Net and is not.
    """

    def __init__(self, config: ModelConfig, unet_kwargs: dict, fold: int):
        from diffusers import UNet2DConditionModel

        super().__init__()
        self.config = config
        self.text_encoder = TextEncoder(config.text)
        self.unet = DiffusersUNet(
            UNet2DConditionModel(**unet_kwargs), fold, config.unet.coordinates
        )

    def encode_text(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.text_encoder(ids)  # (B, L, D), (B, L)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        context, mask = self.text_encoder(ids)
        return self.unet(x_t, t, context, mask)


# -- one training run, as minidiff.train.train does it, for a fixed wall-clock time ---------------
def train_for(
    model: nn.Module, cfg: TrainConfig, seconds: float, device: torch.device, label: str
) -> dict:
    """Train `model` (and an EMA copy) for `seconds`; returns the EMA copy and per-step figures."""
    model_cfg = model.config
    ema = copy.deepcopy(model).requires_grad_(False)
    optimizer = make_optimizer(model, cfg)
    alpha_bar = make_alpha_bar(model_cfg.schedule, model_cfg.T)  # float64, on the CPU
    step_seconds, losses = [], []
    model.train()
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        step = len(losses)
        t0 = time.perf_counter()
        try:  # the very step minidiff.train.train takes: same data, noise, loss, AdamW and EMA
            losses.append(train_step(model, ema, optimizer, step, cfg, alpha_bar))
        except TrainingDiverged as e:
            raise SystemExit(f"{label}: {e}") from None
        step_seconds.append(time.perf_counter() - t0)  # .item() in train_step waited for the device
    model.eval()
    warm = min(len(step_seconds) - 1, max(5, len(step_seconds) // 10))  # skip warm-up steps
    tail = losses[-max(1, len(losses) // 10) :]
    return {
        "ema": ema,
        "steps": len(losses),
        "seconds": time.perf_counter() - start,
        "images_per_s": cfg.batch_size / statistics.median(step_seconds[warm:]),
        "final_loss": statistics.fmean(tail),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small", help="minidiff preset (default: small)")
    parser.add_argument("--minutes", type=float, default=5.0, help="training time for each U-Net")
    parser.add_argument(
        "--fold",
        action="store_true",
        help="give the diffusers U-Net the 2x2-folded 16x16 picture, as minidiff's",
    )
    parser.add_argument(
        "--eval-steps", type=int, default=DEFAULT_STEPS, help="sampling steps in the evaluation"
    )
    parser.add_argument("--eval-weights", choices=("ema", "raw"), default="ema")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny preset, 20 s each, 10 evaluation steps: a quick check",
    )
    report.add_common_options(parser)
    args = parser.parse_args()
    if args.smoke:
        args.preset, args.minutes, args.eval_steps = "tiny", 20 / 60, 10
    report.apply_threads(args.threads)
    device = pick_device(args.device)
    model_cfg, train_cfg = preset(args.preset)
    fold = model_cfg.unet.patch if args.fold else 1

    channels, n_diffusers, n_minidiff = matched_channels(model_cfg, fold)
    kwargs = diffusers_unet_kwargs(model_cfg, channels, fold)
    assert abs(n_diffusers / n_minidiff - 1) <= TOLERANCE, (n_diffusers, n_minidiff)
    print(
        f"minidiff U-Net: {n_minidiff:,} parameters, channels {model_cfg.unet.channels}, "
        f"attention at levels {model_cfg.unet.attention_levels}, patch {model_cfg.unet.patch}"
    )
    print(
        f"diffusers UNet2DConditionModel: {n_diffusers:,} parameters "
        f"({n_diffusers / n_minidiff - 1:+.1%}), {kwargs}"
    )

    builders = {
        "minidiff UNet": lambda: TextToImage(model_cfg),
        "diffusers UNet2DConditionModel": lambda: DiffusersTextToImage(model_cfg, kwargs, fold),
    }
    rows, results = [], {}
    for label, build in builders.items():
        torch.manual_seed(train_cfg.seed)
        model = build().to(device)
        print(f"training {label} for {60 * args.minutes:.0f} s ...", flush=True)
        run = train_for(model, train_cfg, 60 * args.minutes, device, label)
        weights = run.pop("ema") if args.eval_weights == "ema" else model
        start = time.perf_counter()
        scores = evaluate(
            Pipeline(weights, device), quick=True, steps=args.eval_steps, progress=False
        )
        run["eval_seconds"] = time.perf_counter() - start
        run.pop("ema", None)
        run["adherence"] = scores.adherence
        run["unet_parameters"] = count_parameters(model.unet)
        run["text_parameters"] = count_parameters(model.text_encoder)
        results[label] = run
        rows.append(
            [
                label,
                run["unet_parameters"],
                run["text_parameters"],
                run["steps"],
                run["images_per_s"],
                run["final_loss"],
                scores.adherence["seen"]["all"],
                scores.adherence["held_out"]["all"],
                run["eval_seconds"],
            ]
        )

    columns = [
        "U-Net",
        "U-Net params",
        "text params",
        "steps",
        "images/s",
        "final loss",
        "adherence",
        "held-out",
        "eval s",
    ]
    same = (
        f"\nsame for both: preset {args.preset!r}, batch {train_cfg.batch_size}, AdamW lr "
        f"{train_cfg.lr} (warm-up {train_cfg.warmup}, cosine over {train_cfg.steps} steps), "
        f"{60 * args.minutes:.0f} s of training each"
    )
    legend = (
        "images/s: median over the steps after warm-up; final loss: mean of the last 10% of "
        "steps; adherence: all four attributes right, seen colour-shape pairs (held-out: "
        f"the held-out pairs), evaluate(quick=True), {args.eval_steps} steps, "
        f"{args.eval_weights} weights"
    )
    notes = [same, legend]
    title = f"training peer: minidiff U-Net against diffusers UNet2DConditionModel ({args.preset})"
    report.finish(
        title,
        columns,
        rows,
        {
            "device": str(device),
            "diffusers_unet_config": kwargs,
            "fold": fold,
            "results": results,
            "notes": notes,
        },
        args,
    )


if __name__ == "__main__":
    main()
