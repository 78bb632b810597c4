"""Copy a finished training run into the package and write its model card.

    python scripts/ship_model.py --run runs/small --commit <commit the run was trained from> \
        --evaluation eval.txt --snapshots 100 300 1000 3000

Copies run/model.safetensors to minidiff/weights/minidiff-shapes.safetensors, the chosen
snapshots to minidiff/weights/snapshots/, and writes minidiff/weights/MODEL_CARD.md from the run's
log, the model file's metadata and the saved output of `minidiff evaluate`.
"""

import argparse
import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

import torch

from minidiff.checkpoint import load_model, save_model
from minidiff.device import cpu_name
from minidiff.model import count_parameters
from minidiff.pipeline import WEIGHTS_DIR

WEIGHTS = WEIGHTS_DIR


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--run", required=True, type=Path)
    p.add_argument("--commit", required=True)
    p.add_argument(
        "--evaluation", required=True, type=Path, help="saved `minidiff evaluate` output"
    )
    p.add_argument("--snapshots", type=int, nargs="*", default=[])
    p.add_argument("--hardware", default=None, help="how the run was placed on the machine")
    p.add_argument("--half", action="store_true", help="store the model in float16")
    p.add_argument("--notes", default="", help="extra lines for the card")
    args = p.parse_args()

    model, info = load_model(args.run / "model.safetensors")
    log = [json.loads(line) for line in (args.run / "log.jsonl").read_text().splitlines()]
    info = {
        **info,
        "commit": args.commit,
        "command": f"minidiff train --preset small --out {args.run}",
    }
    target = WEIGHTS / "minidiff-shapes.safetensors"
    save_model(model, target, info=info, dtype=torch.float16 if args.half else None)
    snap_dir = WEIGHTS / "snapshots"
    if snap_dir.exists():
        shutil.rmtree(snap_dir)
    snap_dir.mkdir(parents=True)
    for step in args.snapshots:
        name = f"step-{step:06d}.safetensors"
        shutil.copyfile(args.run / "snapshots" / name, snap_dir / name)
        os.chmod(snap_dir / name, 0o644)

    cfg, tc = model.config, info["train_config"]
    minutes = log[-1]["elapsed"] / 60
    sizes = sorted(f.stat().st_size for f in WEIGHTS.rglob("*.safetensors"))
    card = f"""# minidiff-shapes: model card

The text-to-image model that ships inside minidiff (`minidiff/weights/minidiff-shapes.safetensors`),
trained from scratch by minidiff's own training command on Shapes-world pictures drawn on the fly.
Nothing was downloaded; no pretrained component was used.

## How it was made
| | |
| --- | --- |
| command | `{info["command"]}` |
| seed | {tc["seed"]} |
| code | commit `{args.commit}` |
| hardware | {args.hardware or cpu_name()}, torch {torch.__version__} |
| wall time | {minutes:.1f} minutes for {info["step"]} steps of {tc["batch_size"]} pictures |
| final training loss | {log[-1]["loss"]:.4f} (v-prediction MSE, one batch) |
| written | {datetime.now(timezone.utc).strftime("%Y-%m-%d")} |

Training settings: AdamW (lr {tc["lr"]}, weight decay {tc["weight_decay"]}, warm-up {tc["warmup"]}
steps, cosine decay to lr/10), gradient clip {tc["grad_clip"]}, EMA decay {tc["ema_decay"]} (the
shipped weights are the EMA), condition dropout {tc["p_uncond"]} (for classifier-free guidance),
timesteps drawn {tc["t_sampling"].replace("_", "-")}.

## What it is
| part | |
| --- | --- |
| objective | predicts v (`prediction="{cfg.prediction}"`) on the {cfg.schedule} schedule, T = {cfg.T} |
| U-Net | {count_parameters(model.unet):,} parameters; channels {cfg.unet.channels} at 16/8/4 px after 2x2 patching; cross-attention at levels {cfg.unet.attention_levels} and the middle; coordinate channels |
| text encoder | {count_parameters(model.text_encoder):,} parameters; {cfg.text.layers} transformer layers of width {cfg.text.width}, {cfg.text.max_tokens} tokens |
| weights on disk | {"float16" if args.half else "float32"}, {target.stat().st_size / 1e6:.1f} MB; all shipped weights together {sum(sizes) / 1e6:.1f} MB |

Training snapshots for the "watch it learn" lesson (EMA weights, float16):
{", ".join(f"step {s}" for s in args.snapshots) or "none"} in `minidiff/weights/snapshots/`.

## Evaluation
`minidiff evaluate` (defaults of the pipeline; fixed prompts and seeds; the judge is
`minidiff/weights/judge.safetensors`):

```
{args.evaluation.read_text().strip()}
```

{args.notes}

## Limits
It knows only the Shapes world: one flat shape of six colours, four kinds, two sizes and nine
positions on a light 32x32 background. Any other word is refused by the tokenizer.
"""
    (WEIGHTS / "MODEL_CARD.md").write_text(card)
    print(
        f"shipped {target} and {len(args.snapshots)} snapshots; wrote {WEIGHTS / 'MODEL_CARD.md'}"
    )


if __name__ == "__main__":
    main()
