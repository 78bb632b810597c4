"""The `minidiff` command line: generate, train, dataset, info (and evaluate, figures, site)."""

import argparse
import sys
import warnings


def _generate(args) -> None:
    import numpy as np

    from . import load_pretrained
    from .grid import make_grid, save_png
    from .pipeline import Pipeline

    pipe = load_pretrained(args.weights, device=args.device)  # a diffusion model, or a GAN
    if args.adapter is not None and not isinstance(pipe, Pipeline):
        raise ValueError("--adapter teaches a diffusion model a word; a GAN takes no adapter")
    if args.adapter is not None:
        pipe.load_adapter(args.adapter, scale=args.adapter_scale)
    settings = {"steps": args.steps, "guidance_scale": args.guidance, "sampler": args.sampler}
    settings = {k: v for k, v in settings.items() if v is not None}  # None: the model's default
    guidance = settings.get("guidance_scale", pipe.default_settings.guidance_scale)
    if args.negative and guidance == 1.0:
        raise ValueError(
            f"--negative {args.negative!r} acts only through guidance, and guidance "
            "1 (the default) is none: add --guidance above 1, e.g. --guidance 3"
        )
    images = pipe.generate(
        args.prompt, n=args.n, negative_prompt=args.negative, seed=args.seed, **settings
    )
    if args.out_dir:
        from pathlib import Path

        out = Path(args.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for i, image in enumerate(images):
            save_png(image, out / f"{i:03d}.png")
        print(f"wrote {len(images)} pictures to {out}/")
    if args.out or not args.out_dir:
        path = args.out or "grid.png"
        save_png(make_grid(np.asarray(images), ncol=min(args.n, 8)), path)
        print(f"wrote a grid of {len(images)} pictures to {path}")


def _train(args) -> None:
    from dataclasses import replace
    from pathlib import Path

    from . import distributed
    from .device import pick_device
    from .grid import save_png
    from .pipeline import sample_grid
    from .train import preset, train, with_objective

    def write_samples(ema, step: int) -> None:
        save_png(sample_grid(ema), Path(args.out) / "samples" / f"step-{step:06d}.png")

    model_config, train_config = preset(args.preset)
    if args.objective is not None:
        model_config = with_objective(model_config, args.objective)
    if args.steps is not None:
        train_config = replace(train_config, steps=args.steps)
    if args.seed is not None:
        train_config = replace(train_config, seed=args.seed)
    if args.minutes is not None:
        train_config = replace(train_config, minutes=args.minutes)
    ranks = distributed.setup(pick_device(args.device))  # several processes under torchrun
    try:
        result = train(
            model_config,
            train_config,
            args.out,
            resume=args.resume,
            device=args.device,
            on_sample=write_samples,
        )
    except KeyboardInterrupt:
        sys.exit(130)
    finally:
        distributed.teardown()
    if ranks.main:
        where = result.out_dir / "model.safetensors"
        shared = f" ({ranks.world_size} processes)" if ranks.active else ""
        print(f"trained to step {result.step}{shared}; model written to {where}")


def _dataset(args) -> None:
    from .world import export_split

    if args.concept is not None:
        from .concepts import EXAMPLES, export_examples

        n = EXAMPLES if args.n is None else args.n
        export_examples(args.concept, args.out, n=n, seed=args.seed, word=args.word)
        print(f"wrote {n} examples of the new {args.concept} and captions.jsonl to {args.out}")
        return
    n = 64 if args.n is None else args.n
    export_split(args.split, n, args.out, seed=args.seed)
    print(f"wrote {n} {args.split} pictures and captions.jsonl to {args.out}")


def _finetune(args) -> None:
    from .finetune import FinetuneConfig, check_folder, finetune

    settings = {"method": args.method, "word": args.word}
    for name in ("steps", "lr", "seed", "rank", "lora_targets", "prior_weight", "minutes"):
        if getattr(args, name) is not None:
            settings[name] = getattr(args, name)
    cfg = FinetuneConfig(**settings)
    if not args.resume:
        check_folder(args.out)
    try:
        result = finetune(
            args.images, args.out, cfg, base=args.weights or "pixel", device=args.device,
            resume=args.resume,
        )  # fmt: skip
    except KeyboardInterrupt:
        sys.exit(130)
    print(
        f"taught {args.word!r} by {args.method} in {result.step} steps; load it with "
        f"pipe.load_adapter('{args.out}') or minidiff generate --adapter {args.out}"
    )


def _info(args) -> None:
    from .checkpoint import load_model
    from .model import TextToImage, count_parameters, shape_table
    from .pipeline import weights_path
    from .train import preset

    if args.preset:
        model = TextToImage(preset(args.preset)[0])
    else:
        model, _ = load_model(weights_path(args.weights))
    print(f"text encoder: {count_parameters(model.text_encoder):,} parameters")
    print(f"U-Net:        {count_parameters(model.unet):,} parameters")
    print(shape_table(model))


def _evaluate(args) -> None:

    from . import load_pretrained
    from .evaluate import evaluate
    from .pipeline import Pipeline

    pipe = load_pretrained(args.weights, device=args.device)  # a diffusion model, or a GAN
    if (
        isinstance(pipe, Pipeline) and pipe.config.world == "scenes"
    ):  # GenEval's categories, read by the scene judge
        from .evaluate_scenes import evaluate_scenes

        settings = {"steps": args.steps, "guidance_scale": args.guidance, "sampler": args.sampler}
        settings = {k: v for k, v in settings.items() if v is not None}
        repeats = 1 if args.quick else 4
        report = evaluate_scenes(pipe, repeats, args.seed, quick=args.quick, **settings)
        _print_report(report, args.json)
        return
    report = evaluate(
        pipe,
        quick=args.quick,
        steps=args.steps,
        guidance_scale=args.guidance,
        seed=args.seed,
        sampler=args.sampler,
    )
    _print_report(report, args.json)


def _print_report(report, json_path: str | None) -> None:
    """An evaluation's table, and its numbers as JSON at json_path if given (--json)."""
    import json

    print(report.table())
    if json_path:
        with open(json_path, "w") as f:
            json.dump(report.to_dict(), f, indent=2)
        print(f"wrote the report to {json_path}")


def _train_autoencoder(args) -> None:
    from dataclasses import replace

    from .evaluate_autoencoder import evaluate_autoencoder
    from .train_autoencoder import AutoencoderTraining, train_autoencoder

    cfg = AutoencoderTraining()
    if args.steps is not None:
        cfg = replace(cfg, steps=args.steps)
    if args.seed is not None:
        cfg = replace(cfg, seed=args.seed)
    cfg = replace(cfg, world=args.world)
    try:
        model = train_autoencoder(args.out, cfg, resume=args.resume, device=args.device)
    except KeyboardInterrupt:
        sys.exit(130)
    print(evaluate_autoencoder(model, world_name=args.world).table())
    print(f"wrote the autoencoder to {args.out}/autoencoder.safetensors")


def _distill(args) -> None:
    from dataclasses import replace

    from .distill import DistillConfig, distill

    cfg = DistillConfig(method=args.method)
    for name in ("steps", "seed", "pairs", "teacher_steps", "minutes"):
        if getattr(args, name) is not None:
            cfg = replace(cfg, **{name: getattr(args, name)})
    if args.student_steps is not None:
        cfg = replace(cfg, student_steps=tuple(args.student_steps))
    try:
        result = distill(args.teacher, cfg, args.out, resume=args.resume, device=args.device)
    except KeyboardInterrupt:
        sys.exit(130)
    made_for = ", ".join(map(str, cfg.student_steps))
    where = result.out_dir / "model.safetensors"
    print(f"distilled to step {result.step}; the student, for {made_for} steps, written to {where}")


def _train_gan(args) -> None:
    from dataclasses import replace

    from .gan import GanTraining, train_gan

    cfg = GanTraining()
    for name in ("steps", "minutes", "seed", "batch_size", "lr", "lr_d", "mode_seeking"):
        if getattr(args, name) is not None:
            cfg = replace(cfg, **{name: getattr(args, name)})
    try:
        result = train_gan(args.out, cfg, resume=args.resume, device=args.device)
    except KeyboardInterrupt:
        sys.exit(130)
    where = result.out_dir / "gan.safetensors"
    print(f"trained to step {result.step}; the generator written to {where}")


def _evaluate_autoencoder(args) -> None:

    from .checkpoint import load_autoencoder
    from .evaluate_autoencoder import evaluate_autoencoder

    report = evaluate_autoencoder(load_autoencoder(args.weights), n=args.n, world_name=args.world)
    _print_report(report, args.json)


def _train_judge(args) -> None:
    from .judge import JudgeTraining, train_judge

    cfg = JudgeTraining(steps=args.steps, batch_size=args.batch_size, seed=args.seed)
    try:
        judge = train_judge(args.out, cfg, resume=args.resume)
    except KeyboardInterrupt:
        sys.exit(130)
    accuracy = ", ".join(f"{k} {v:.4f}" for k, v in judge.info["test_accuracy"].items())
    print(
        f"wrote the judge to {args.out}/judge.safetensors; accuracy on "
        f"{judge.info['test_pictures']} test pictures: {accuracy}"
    )


def _figures(args) -> None:
    from .course.registry import make_figures
    from .pipeline import load_pretrained

    pipe = load_pretrained(args.weights, device=args.device)
    written = make_figures(args.out, pipe=pipe, only=args.only)
    print(f"wrote {len(written)} figures to {args.out}/: {', '.join(p.name for p in written)}")


def _site(args) -> None:
    from .course.paths import NOTEBOOKS
    from .course.site import build, report_table

    notebooks = None
    if args.only:
        notebooks = [NOTEBOOKS / (n if n.endswith(".ipynb") else f"{n}.ipynb") for n in args.only]
        missing = [p.stem for p in notebooks if not p.exists()]
        if missing:
            known = sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
            raise FileNotFoundError(
                f"no notebook named {', '.join(missing)}; the notebooks are {', '.join(known)}"
            )
    try:
        report = build(args.out, notebooks)
    except RuntimeError as e:  # a download that failed, a page over the size limit: one line
        raise SystemExit(f"minidiff site: error: {e}") from None
    print(report_table(report))
    print(f"open {args.out}/index.html, or serve it: python -m http.server -d {args.out} 8000")


def figure_names() -> list[str]:
    """The figures `minidiff figures` can draw, as the course's registry lists them."""
    from .course.registry import FIGURES

    return list(FIGURES)


def build_parser() -> argparse.ArgumentParser:
    from .diffusion import OBJECTIVES
    from .pipeline import MODELS
    from .samplers import SAMPLERS

    parser = argparse.ArgumentParser(prog="minidiff", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="draw pictures from a prompt into a PNG grid")
    g.add_argument("prompt")
    g.add_argument("--n", type=int, default=8)
    g.add_argument("--steps", type=int, default=None)
    g.add_argument("--guidance", type=float, default=None, help="classifier-free guidance scale")
    g.add_argument("--negative", default=None, help="negative prompt")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument(
        "--sampler",
        default=None,
        choices=SAMPLERS,
        help="default: the pipeline's (minidiff.pipeline.DEFAULT_SAMPLER)",
    )
    g.add_argument("--out", default=None, help="grid PNG path (default grid.png)")
    g.add_argument("--out-dir", default=None, help="also write one PNG per picture here")
    weights_help = (
        "a model file or training checkpoint (default: $MINIDIFF_WEIGHTS if set, "
        "else the shipped model)"
    )
    model_help = (
        "a shipped model by name: pixel (the default), latent, fast, flow, turbo, skewed, scenes, "
        "gan or gan-long"
    )
    g.add_argument("--weights", default=None, help=weights_help)
    g.add_argument("--model", default=None, choices=MODELS, help=model_help)
    g.add_argument("--adapter", default=None, help="a minidiff finetune output folder to load")
    g.add_argument("--adapter-scale", type=float, default=1.0, help="a LoRA adapter's strength")
    g.add_argument("--device", default=None)
    g.set_defaults(func=_generate)

    t = sub.add_parser("train", help="train a model from scratch (or --resume)")
    t.add_argument("--preset", default="small")
    t.add_argument("--out", required=True)
    t.add_argument("--resume", action="store_true")
    t.add_argument("--steps", type=int, default=None)
    t.add_argument("--seed", type=int, default=None)
    t.add_argument(
        "--minutes",
        type=float,
        default=None,
        help="a wall-clock budget: the learning-rate schedule spans it, and the run "
        "stops and writes model.safetensors when it is spent",
    )
    t.add_argument(
        "--objective",
        default=None,
        choices=OBJECTIVES,
        help="what the network learns: 'flow' (rectified flow, as SD3 and FLUX) or a diffusion "
        "prediction, eps, x0 or v (default: the preset's)",
    )
    t.add_argument("--device", default=None)
    t.set_defaults(func=_train)

    d = sub.add_parser(
        "dataset", help="export a split of the Shapes world as PNGs + captions.jsonl"
    )
    d.add_argument("--split", default="test")
    d.add_argument("--n", type=int, default=None, help="pictures (default 64; a concept's: 12)")
    d.add_argument("--out", required=True)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument(
        "--concept",
        default=None,
        choices=("object", "style"),
        help="instead of a split: the examples of a new object (a cross) or style (sketched) "
        "for minidiff finetune",
    )
    d.add_argument("--word", default=None, help="the concept's word in its captions")
    d.set_defaults(func=_dataset)

    ft = sub.add_parser(
        "finetune",
        help="teach the pixel model a new word from a folder of pictures (textual inversion, "
        "LoRA or full fine-tuning)",
    )
    ft.add_argument("--method", required=True, choices=("textual-inversion", "lora", "full"))
    ft.add_argument("--word", required=True, help="the new word, one the model does not know")
    ft.add_argument(
        "--images", required=True, help="PNG pictures and captions.jsonl (minidiff dataset)"
    )
    ft.add_argument("--out", required=True, help="the run folder; load_adapter reads it")
    ft.add_argument("--resume", action="store_true")
    ft.add_argument("--steps", type=int, default=None)
    ft.add_argument("--lr", type=float, default=None)
    ft.add_argument("--seed", type=int, default=None)
    ft.add_argument("--minutes", type=float, default=None)
    ft.add_argument("--rank", type=int, default=None, help="LoRA rank (default 4)")
    ft.add_argument("--lora-targets", default=None, choices=("attention", "attention+conv"))
    ft.add_argument(
        "--prior-weight",
        type=float,
        default=None,
        help="prior preservation's weight (default 1 for full, 0 for lora)",
    )
    ft.add_argument("--weights", default=None, help="the base model (default: the pixel model)")
    ft.add_argument("--device", default=None)
    ft.set_defaults(func=_finetune)

    i = sub.add_parser("info", help="parameter counts and the per-block shape table")
    i.add_argument("--preset", default=None)
    i.add_argument("--weights", default=None, help=weights_help)
    i.add_argument("--model", default=None, choices=MODELS, help=model_help)
    i.set_defaults(func=_info)

    e = sub.add_parser("evaluate", help="measure prompt adherence, diversity and Frechet distance")
    e.add_argument("--weights", default=None, help=weights_help)
    e.add_argument("--model", default=None, choices=MODELS, help=model_help)
    e.add_argument("--quick", action="store_true", help="about 10x fewer pictures")
    e.add_argument("--steps", type=int, default=None)
    e.add_argument("--guidance", type=float, default=None, help="classifier-free guidance scale")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument(
        "--sampler",
        default=None,
        choices=SAMPLERS,
        help="default: the pipeline's (minidiff.pipeline.DEFAULT_SAMPLER)",
    )
    e.add_argument("--json", default=None, help="also write the report as JSON here")
    e.add_argument("--device", default=None)
    e.set_defaults(func=_evaluate)

    s = sub.add_parser(
        "distill", help="distil a model into a student that draws in 1 to 4 steps (or --resume)"
    )
    s.add_argument("--teacher", required=True, help="a model file, or a shipped model's name")
    s.add_argument("--method", required=True, choices=("reflow", "progressive"))
    s.add_argument("--out", required=True)
    s.add_argument("--resume", action="store_true")
    s.add_argument("--steps", type=int, default=None, help="training steps in all")
    s.add_argument("--student-steps", type=int, nargs="+", default=None, dest="student_steps")
    s.add_argument("--teacher-steps", type=int, default=None, dest="teacher_steps")
    s.add_argument("--pairs", type=int, default=None, help="reflow: the teacher's pictures")
    s.add_argument("--minutes", type=float, default=None)
    s.add_argument("--seed", type=int, default=None)
    s.add_argument("--device", default=None)
    s.set_defaults(func=_distill)

    a = sub.add_parser(
        "train-autoencoder", help="train the autoencoder of the latent model (or --resume)"
    )
    a.add_argument("--out", required=True)
    a.add_argument("--resume", action="store_true")
    a.add_argument("--steps", type=int, default=None)
    a.add_argument("--seed", type=int, default=None)
    a.add_argument("--device", default=None)
    a.add_argument(
        "--world", choices=("shapes", "scenes"), default="shapes", help="whose pictures it keeps"
    )
    a.set_defaults(func=_train_autoencoder)

    tg = sub.add_parser(
        "train-gan", help="train a conditional GAN on the Shapes world (or --resume)"
    )
    tg.add_argument("--out", required=True, help="the run folder (checkpoint, log, generator)")
    tg.add_argument("--resume", action="store_true")
    tg.add_argument("--steps", type=int, default=None)
    tg.add_argument("--minutes", type=float, default=None)
    tg.add_argument("--seed", type=int, default=None)
    tg.add_argument("--batch-size", type=int, default=None)
    tg.add_argument("--lr", type=float, default=None, help="the generator's learning rate")
    tg.add_argument("--lr-d", type=float, default=None, help="the discriminator's")
    tg.add_argument(
        "--mode-seeking", type=float, default=None, help="weight of MSGAN's term (default 0)"
    )
    tg.add_argument("--device", default=None)
    tg.set_defaults(func=_train_gan)

    ea = sub.add_parser(
        "evaluate-autoencoder",
        help="how well the autoencoder keeps pictures: "
        "judge agreement, PSNR, the latents' statistics",
    )
    ea.add_argument(
        "--weights", default=None, help="an autoencoder file (default: the shipped one)"
    )
    ea.add_argument("--n", type=int, default=1000, help="test pictures (default 1000)")
    ea.add_argument(
        "--world", choices=("shapes", "scenes"), default="shapes", help="whose test pictures"
    )
    ea.add_argument("--json", default=None, help="also write the report as JSON here")
    ea.set_defaults(func=_evaluate_autoencoder)

    j = sub.add_parser("train-judge", help="train the attribute classifier used by evaluate")
    j.add_argument("--out", required=True, help="the run folder (checkpoint, log, judge)")
    j.add_argument("--resume", action="store_true", help="continue the run in --out")
    j.add_argument("--steps", type=int, default=600)
    j.add_argument("--seed", type=int, default=0)
    j.add_argument("--batch-size", type=int, default=128)
    j.set_defaults(func=_train_judge)

    f = sub.add_parser("figures", help="regenerate every figure and animation of the course")
    f.add_argument("--out", default="figures", help="output folder (default figures/)")
    f.add_argument(
        "--only",
        nargs="+",
        default=None,
        help=f"just these figures (names: {' '.join(figure_names())})",
    )
    f.add_argument("--weights", default=None, help=weights_help)
    f.add_argument("--device", default=None)
    f.set_defaults(func=_figures)

    s = sub.add_parser(
        "site",
        help="the course as web pages and slides that work without a "
        "kernel (executes every notebook)",
    )
    s.add_argument("--out", default="site", help="output folder (default site/)")
    s.add_argument("--only", nargs="+", default=None, help="just these notebooks, e.g. 04_sampling")
    s.set_defaults(func=_site)
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "model", None) is not None:
        if args.weights is not None:
            parser.error("give --model or --weights, not both")
        args.weights = args.model  # load_pretrained and weights_path know the shipped names
    warnings.simplefilter("default")
    try:
        args.func(args)
    except (ValueError, FileExistsError, FileNotFoundError) as e:
        # A learner's mistake: one clear sentence, no traceback.
        print(f"minidiff {args.command}: error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
