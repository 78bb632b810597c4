"""Copy a finished run of one of the course's extra models into the package, with its card.

    python scripts/ship_course_model.py autoencoder --run runs/autoencoder --commit <c> \
        --evaluation ae_eval.txt
    python scripts/ship_course_model.py latent --run runs/latent --commit <c> --evaluation e.txt
    python scripts/ship_course_model.py skewed --run runs/skewed --commit <c> --evaluation e.txt

autoencoder -> minidiff/weights/autoencoder.safetensors   (minidiff train-autoencoder)
scene-autoencoder -> minidiff/weights/scene-autoencoder.safetensors
                                               (minidiff train-autoencoder --world scenes)
latent      -> minidiff/weights/minidiff-latent.safetensors (minidiff train --preset latent)
skewed      -> minidiff/weights/minidiff-skewed.safetensors (minidiff train --preset skewed)
scenes      -> minidiff/weights/minidiff-scenes.safetensors (minidiff train --preset scenes)
scenes-transformer, scenes-bag -> the two text encoders notebook 11 sets side by side
flow        -> minidiff/weights/minidiff-flow.safetensors  (benchmarks/bench_flow.py train)
turbo       -> minidiff/weights/minidiff-turbo.safetensors (minidiff distill)
Each gets a card beside it, minidiff/weights/<name>.md: the command, seed, commit, hardware,
wall time and the saved evaluation. The main model has its own script, scripts/ship_model.py.
"""

import argparse
import json
from datetime import datetime, timezone
from pathlib import Path

import torch

from minidiff.checkpoint import load_autoencoder, load_model, save_autoencoder, save_model
from minidiff.device import cpu_name
from minidiff.model import count_parameters
from minidiff.pipeline import WEIGHTS_DIR

WEIGHTS = WEIGHTS_DIR
KINDS = {
    "autoencoder": (
        "autoencoder.safetensors",
        "minidiff train-autoencoder --out {run}",
        (
            "The autoencoder of the latent model: 32x32x3 pictures to 8x8x4 latents and "
            "back. A KL-regularised VAE as in latent diffusion, trained on Shapes-world "
            "training pictures drawn on the fly."
        ),
    ),
    "scene-autoencoder": (
        "scene-autoencoder.safetensors",
        "minidiff train-autoencoder --world scenes --out {run}",
        (
            "The autoencoder of the scene model: 48x48x3 scenes to 12x12x4 latents and back. "
            "The latent model's design, trained on scenes-world training pictures drawn on the "
            "fly."
        ),
    ),
    "latent": (
        "minidiff-latent.safetensors",
        "minidiff train --preset latent --out {run}",
        (
            "The latent text-to-image model of notebook 07: the shipped model's text encoder "
            "and U-Net design, denoising the autoencoder's 8x8x4 latents; the autoencoder's "
            "frozen weights travel in the same file."
        ),
    ),
    "skewed": (
        "minidiff-skewed.safetensors",
        "minidiff train --preset skewed --out {run}",
        (
            "The model of notebook 09's bias experiment: the fast recipe on a training split "
            "in which 80% of the stars whose caption names no colour are yellow "
            "(minidiff.world.Skew()); 20% would be yellow without the skew."
        ),
    ),
    "scenes": (
        "minidiff-scenes.safetensors",
        "minidiff train --preset scenes --out {run}",
        (
            "The scene model of notebook 11: one to four objects on a 48 x 48 canvas "
            "(minidiff.scenes), drawn in the scene autoencoder's 12 x 12 x 4 latents (its "
            "frozen weights travel in the same file), with a 2-layer transformer text encoder "
            "over the scenes' words."
        ),
    ),
    "scenes-transformer": (
        "minidiff-scenes-transformer.safetensors",
        "minidiff train --preset scenes-transformer --out {run}",
        (
            "The twin of notebook 11's binding experiment that reads word order: the shipped "
            "scene model's trained U-Net with a fresh 2-layer transformer text encoder, 600 "
            "more steps."
        ),
    ),
    "scenes-bag": (
        "minidiff-scenes-bag.safetensors",
        "minidiff train --preset scenes-bag --out {run}",
        (
            "The bag-of-words twin of notebook 11's binding experiment: the shipped scene "
            "model's trained U-Net with a fresh text encoder that averages its word embeddings "
            "(so it cannot see word order), the same 600 steps on the same data."
        ),
    ),
    "flow": (
        "minidiff-flow.safetensors",
        "python benchmarks/bench_flow.py train --objective flow --steps 5880 --out {run}",
        (
            "The flow-matching twin of notebook 07's latent model (notebook 12): the same "
            "network and data, trained by rectified flow (it predicts the velocity noise - "
            "picture) and drawn with Euler steps."
        ),
    ),
    "turbo": (
        "minidiff-turbo.safetensors",
        "minidiff distill --teacher {teacher} --method {method} --out {run}",
        (
            "The few-step student of notebook 12: a copy of its teacher, distilled to draw in "
            "1, 2 or 4 steps at guidance 1 (the steps it was made for are in its file, and "
            "the pipeline refuses others)."
        ),
    ),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("kind", choices=KINDS)
    p.add_argument("--run", required=True, type=Path)
    p.add_argument("--commit", required=True)
    p.add_argument("--evaluation", required=True, type=Path, help="saved evaluation output")
    p.add_argument("--hardware", default=None, help="how the run was placed on the machine")
    p.add_argument(
        "--defaults",
        default=None,
        help="the model's own sampling defaults as JSON, e.g. '{\"guidance_scale\": 3.0}'",
    )
    p.add_argument("--notes", default="", help="extra lines for the card, after the table")
    args = p.parse_args()
    name, command, what = KINDS[args.kind]
    command = command.format(run=args.run, teacher="?", method="?")
    target = WEIGHTS / name
    if args.kind.endswith("autoencoder"):
        model = load_autoencoder(args.run / "autoencoder.safetensors")
        info = {**model.info, "commit": args.commit, "command": command}
        save_autoencoder(model, target, info)
        seconds, seed, steps = info["elapsed_s"], info["train_config"]["seed"], info["steps"]
        parts = (
            f"{count_parameters(model):,} parameters, channels {model.config.channels}, "
            f"scale factor {model.config.scale_factor:.4f}"
        )
    else:
        model, info = load_model(args.run / "model.safetensors")
        if "student" in info:  # minidiff distill: its teacher and method name the command
            student = info["student"]
            command = KINDS[args.kind][1].format(
                run=args.run, teacher=student["teacher"], method=student["method"]
            )
        info = {**info, "commit": args.commit, "command": command}
        if args.defaults:
            info["defaults"] = json.loads(args.defaults)
        save_model(model, target, info=info, dtype=torch.float16)
        seconds, seed, steps = info["elapsed_s"], info["train_config"]["seed"], info["step"]
        parts = (
            f"U-Net {count_parameters(model.unet):,} and text encoder "
            f"{count_parameters(model.text_encoder):,} parameters; U-Net channels "
            f"{model.config.unet.channels} on {model.config.unet.image_channels} x "
            f"{model.config.unet.image_size} x {model.config.unet.image_size} inputs"
        )
    total = sum(f.stat().st_size for f in WEIGHTS.rglob("*.safetensors"))
    defaults_row = ""
    if args.defaults:
        defaults_row = f"| its sampling defaults | `{args.defaults}` (chosen by measurement) |"
    card = f"""# {name}: model card

{what} Trained from scratch by minidiff's own command; nothing was downloaded.

| | |
| --- | --- |
| command | `{command}` |
| seed | {seed} |
| code | commit `{args.commit}` |
| hardware | {args.hardware or cpu_name()}, torch {torch.__version__} |
| wall time | {seconds / 60:.1f} minutes for {steps} steps |
| network | {parts} |
| on disk | float16, {target.stat().st_size / 1e6:.2f} MB; all shipped weights {total / 1e6:.1f} MB |
| written | {datetime.now(timezone.utc).strftime("%Y-%m-%d")} |
{defaults_row}

{args.notes}

## Evaluation

```
{args.evaluation.read_text().strip()}
```
"""
    target.with_suffix(".md").write_text(card)
    print(f"shipped {target} ({target.stat().st_size / 1e6:.2f} MB) and its card")


if __name__ == "__main__":
    main()
