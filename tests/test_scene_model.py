"""The scene model's plumbing: its words, its pictures, its refusals, its evaluation, AND.

An untrained tiny network is enough for the mechanics; what the shipped scene model draws is
measured by `minidiff evaluate --model scenes` and notebook 11.
"""

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import minidiff
import minidiff.pipeline
from minidiff import diffusion, geneval
from minidiff.checkpoint import SCENE_AUTOENCODER
from minidiff.course import binding, edits
from minidiff.evaluate_scenes import bound, evaluate_scenes, swapped_bindings, swapped_pairs
from minidiff.model import ModelConfig, TextToImage
from minidiff.pipeline import Pipeline
from minidiff.scene_judge import SeenObject, read_scenes
from minidiff.scene_prompts import render_prompts
from minidiff.text_encoder import TextEncoder, TextEncoderConfig
from minidiff.tokenizer import VOCAB, Tokenizer
from minidiff.train import TextToImageTask, _text, build_model, preset, training_batch
from minidiff.unet import UNetConfig


def tiny_scenes(kind: str = "transformer") -> ModelConfig:
    unet = UNetConfig(image_size=48, patch=3, channels=(16, 32, 32), context_dim=32, heads=2)
    return ModelConfig(text=_text(32, 1, "scenes", kind), unet=unet, world="scenes")


@pytest.fixture(scope="module")
def pipe():
    torch.manual_seed(0)
    return Pipeline(TextToImage(tiny_scenes()), "cpu")


def test_the_scene_words_keep_every_old_id():
    tokenizer = Tokenizer.for_world("scenes")
    assert tokenizer.vocab[: len(VOCAB)] == VOCAB
    assert Tokenizer.for_world("shapes").vocab == VOCAB
    for word in ("three", "circles", "to", "of", "above", "below"):
        assert word in tokenizer.vocab and word not in VOCAB
    with pytest.raises(ValueError, match="unknown world"):
        Tokenizer.for_world("cats")


def test_an_old_config_reads_as_the_one_object_world():
    config = ModelConfig(text=_text(32, 1), unet=UNetConfig(channels=(16, 32, 32), context_dim=32))
    d = config.to_dict()
    del d["world"]  # as the shipped models' files were written
    assert ModelConfig.from_dict(d).world == "shapes"
    assert ModelConfig.from_dict(d).picture_size == 32
    with pytest.raises(ValueError, match="unknown world"):
        TextToImage(replace(config, world="moon"))


def test_the_bag_of_words_encoder_cannot_tell_a_binding_from_its_swap():
    torch.manual_seed(0)
    tokenizer = Tokenizer.for_world("scenes")
    bag = TextEncoder(TextEncoderConfig(len(tokenizer), kind="bag"))
    order = TextEncoder(TextEncoderConfig(len(tokenizer)))
    for a, b in swapped_pairs()["colour"][:2] + swapped_pairs()["position"][:2]:
        ids = tokenizer.encode([a, b])
        context, mask = bag(ids)
        assert context.shape == (2, 1, 128) and mask.all()
        torch.testing.assert_close(context[0], context[1], atol=1e-5, rtol=0)
        assert (order(ids)[0][0] - order(ids)[0][1]).abs().max() > 1e-2  # word order read
    torch.manual_seed(0)
    bag_pipe = Pipeline(TextToImage(tiny_scenes("bag")), "cpu")
    a, b = swapped_pairs()["colour"][0]
    drawn = [bag_pipe.generate(p, n=2, seed=3, steps=3).astype(int) for p in (a, b)]
    assert np.abs(drawn[0] - drawn[1]).max() <= 1  # the same pictures, up to float rounding
    with pytest.raises(ValueError, match="unknown text encoder kind"):
        TextEncoder(TextEncoderConfig(10, kind="lstm"))


def test_a_scene_model_draws_48_pixel_scenes_and_trains_on_them(pipe):
    images = pipe.generate(["a red circle and a blue square", "three green stars"], n=2, steps=2)
    assert images.shape == (4, 48, 48, 3) and images.dtype == np.uint8
    model_config, cfg = preset("tiny")
    cfg = replace(cfg, batch_size=4)
    pictures, captions = training_batch("scenes", 0, cfg)
    assert pictures.shape == (4, 48, 48, 3) and len(captions) == 4
    task = TextToImageTask(build_model(tiny_scenes(), cfg, torch.device("cpu")), cfg)
    assert np.isfinite([task.step(s, None) for s in range(2)]).all()
    with pytest.raises(ValueError, match="skewed training split exists only"):
        build_model(tiny_scenes(), replace(cfg, skew=preset("skewed")[1].skew), "cpu")


def test_a_latent_scene_model_draws_and_inpaints_48_pixel_scenes():
    from minidiff.autoencoder import AutoencoderConfig

    ae = AutoencoderConfig(channels=(8, 8, 16))  # 48 x 48 -> 12 x 12 x 4
    unet = replace(tiny_scenes().unet, image_channels=4, image_size=12, patch=1)
    config = replace(tiny_scenes(), unet=unet, autoencoder=ae.to_dict())
    assert config.picture_size == 48
    torch.manual_seed(0)
    latent = Pipeline(TextToImage(config), "cpu")
    assert latent.generate("two green stars", n=2, steps=2).shape == (2, 48, 48, 3)
    source = render_prompts(["a large red circle in the top left"])[0]
    mask = edits.cell_mask("bottom right")
    drawn = latent.inpaint(source, mask, "a red circle and a blue square", n=2, steps=3)
    assert (drawn[:, ~mask] == source[~mask]).all()  # pasted back: decoding changes nothing there
    assert (drawn[:, mask] != source[mask]).any()
    with pytest.raises(
        ValueError, match="a latent U-Net must take 4 channels of 12 x 12, got 4 of 8"
    ):
        TextToImage(replace(config, unet=replace(unet, image_size=8)))
    # the scenes preset: the shipped scene autoencoder's latents of the 48 x 48 scenes
    if SCENE_AUTOENCODER.exists():
        model_config, cfg = preset("scenes")
        assert model_config.picture_size == 48 and model_config.unet.image_size == 12
        assert cfg.autoencoder == str(SCENE_AUTOENCODER) and cfg.minutes == 30


@pytest.mark.parametrize(
    "prompt, why",
    [
        ("five red circles", "at most 4 objects"),
        ("a red blue circle", "both red and blue"),
        ("a red circle and a blue square and a green star and a yellow star and a star", "at most"),
        ("a red cirle", "closest known words: circle"),
    ],
)
def test_a_scene_the_world_cannot_draw_is_refused_in_a_sentence(pipe, prompt, why):
    with pytest.raises(ValueError, match=why):
        pipe.generate(prompt, n=1, steps=1)


def test_inpainting_a_scene_keeps_every_pixel_outside_the_mask(pipe):
    source = render_prompts(["a large red circle in the top left"])[0]
    mask = edits.cell_mask("bottom right")
    assert mask.sum() == 16 * 16
    drawn = pipe.inpaint(source, mask, "a red circle and a blue square", n=2, steps=3)
    assert drawn.shape == (2, 48, 48, 3)
    assert (drawn[:, ~mask] == source[~mask]).all()
    with pytest.raises(ValueError, match=r"mask must have shape \(48, 48\)"):
        pipe.inpaint(source, np.zeros((32, 32), bool), "a red circle", n=1, steps=1)
    with pytest.raises(ValueError, match=r"\(48, 48, 3\)"):
        pipe.inpaint(source[:32, :32], mask, "a red circle", n=1, steps=1)


class Renderer:
    """A perfect scene generator (the world's own renderer), or one that draws `swap[prompt]`."""

    config = SimpleNamespace(world="scenes")

    def __init__(self, swap=None):
        self.swap = swap or {}

    def generate(self, prompts, n=1, seed=0, **settings):
        prompts = [
            self.swap.get(p, p) for p in ([prompts] if isinstance(prompts, str) else prompts)
        ]
        return render_prompts([p for p in prompts for _ in range(n)], seed=seed)


def test_the_evaluation_scores_a_perfect_generator_1_and_reports_held_out_apart():
    report = evaluate_scenes(Renderer(), repeats=1, progress=False)
    assert report.overall == 1.0
    assert set(report.scores.categories) == set(geneval.CATEGORIES)
    assert report.scores.held_out["colour_attribution"] == 1.0
    assert "SDXL" in report.table() and "another benchmark" in report.table()


def test_the_swapped_binding_test_reads_right_swapped_and_chance():
    pairs = [p for kind in swapped_pairs().values() for p in kind]
    assert swapped_bindings(Renderer(), n=2, progress=False).accuracy == {
        "colour": 1.0,
        "position": 1.0,
    }
    swapped = Renderer({a: b for a, b in pairs} | {b: a for a, b in pairs})
    assert swapped_bindings(swapped, n=2, progress=False).accuracy == {
        "colour": 0.0,
        "position": 0.0,
    }
    # both prompts of a pair drawn alike, as a bag of words must: half right
    alike = Renderer({b: a for a, b in pairs})
    assert swapped_bindings(alike, n=2, progress=False).accuracy == {
        "colour": 0.5,
        "position": 0.5,
    }


def test_bound_reads_colour_and_relation():
    def seen(colour, shape, cell):
        return SeenObject(colour, shape, "large", cell, 12.0, 0.0)

    red_circle, blue_square = seen("red", "circle", "left"), seen("blue", "square", "right")
    assert bound("a red circle and a blue square", [red_circle, blue_square]) == "asked"
    assert bound("a blue circle and a red square", [red_circle, blue_square]) == "swapped"
    assert bound("a green circle and a blue square", [red_circle, blue_square]) is None
    assert bound("a circle to the left of a square", [blue_square, red_circle]) == "asked"
    assert bound("a square to the left of a circle", [red_circle, blue_square]) == "swapped"
    assert bound("a circle above a square", [red_circle, blue_square]) is None
    assert bound("a circle and a square", [red_circle]) is None
    with pytest.raises(ValueError, match="two different shapes"):
        bound("a red circle and a blue circle", [red_circle])


def test_the_scene_evaluation_refuses_a_one_object_model():
    with pytest.raises(ValueError, match="needs a scene model"):
        evaluate_scenes(SimpleNamespace(config=SimpleNamespace(world="shapes")), progress=False)


def test_and_of_one_part_is_classifier_free_guidance(pipe):
    """Composable diffusion with one part at weight w is guidance at scale w, exactly."""
    x = torch.randn(2, 3, 48, 48, generator=torch.Generator().manual_seed(1))
    composed = binding.composed_eps_fn(pipe, [["a red circle"]], 2, 2.5)(x, 500)
    p = pipe.prepare("a red circle", n=2, guidance_scale=2.5)
    torch.testing.assert_close(composed, p.eps_fn(x, 500), atol=1e-5, rtol=1e-5)
    e0, e1, e2 = torch.randn(3, 4)
    torch.testing.assert_close(
        diffusion.composed_eps(e0, [e1, e2], 2.0), e0 + 2 * (e1 - e0 + e2 - e0)
    )
    assert binding.parts_of("a red circle and a blue square") == ["a red circle", "a blue square"]
    with pytest.raises(ValueError, match="joined by 'and'"):
        binding.parts_of("a red circle to the left of a blue square")
    ddim = Pipeline(pipe.model, "cpu", info={"defaults": {"sampler": "ddim"}})  # no added noise
    images = binding.compose_generate(ddim, "a red circle and a blue square", n=2)
    assert images.shape == (2, 48, 48, 3)
    two = ["a red circle and a blue square", "a green star and a yellow triangle"]
    both = binding.compose_generate(ddim, two, n=2)  # batched: the same pictures, row for row
    assert np.abs(both[:2].astype(int) - images).max() <= 1


def test_the_scene_explorer_frames_every_prompt_and_seed(pipe):
    explorer = binding.scene_explorer(pipe, prompts=binding.PROMPTS[:2], seeds=(0, 1), n=2)
    assert set(explorer.frames) == {(p, s) for p in binding.PROMPTS[:2] for s in (0, 1)}
    explorer.prompt.value = "five red circles"
    with pytest.raises(ValueError, match="at most 4"):
        explorer.compute()
    assert len(explorer.prompts) == 2  # nothing lost
    explorer.prompt.value = "two blue squares"
    explorer.compute()
    assert explorer.choice.value == "two blue squares" and "judge reads" in explorer.label.value


def test_a_model_file_can_carry_its_own_default_settings(pipe):
    from minidiff.checkpoint import CheckpointError

    own = Pipeline(pipe.model, "cpu", info={"defaults": {"sampler": "ddim", "guidance_scale": 3}})
    assert own.default_settings.sampler == "ddim" and own.default_settings.steps == 20
    x = own.generate("a red circle", n=1, steps=2)
    y = own.generate("a red circle", n=1, steps=2, sampler="ddim", guidance_scale=3)
    assert (x == y).all()  # a call's settings override the model's, which override the pipeline's
    with pytest.raises(CheckpointError, match="default settings are not usable"):
        Pipeline(pipe.model, "cpu", info={"defaults": {"guidance_scale": float("nan")}})


def test_the_shipped_weights_stay_under_60_mb_and_each_model_has_a_card():
    from minidiff.pipeline import MODELS, WEIGHTS_DIR

    total = sum(f.stat().st_size for f in WEIGHTS_DIR.rglob("*.safetensors"))
    assert total < 60e6, f"the shipped weights take {total / 1e6:.1f} MB"
    for name, path in MODELS.items():
        if path.exists():
            card = WEIGHTS_DIR / "MODEL_CARD.md" if name == "pixel" else path.with_suffix(".md")
            assert card.exists() and "command" in card.read_text(), f"{name} has no card"


@pytest.mark.skipif(
    not Path(minidiff.pipeline.MODELS["scenes"]).exists(), reason="the scene model is not shipped"
)
def test_the_shipped_scene_model_draws_the_colours_and_counts_it_is_asked():
    """What its card says it does (it binds at chance, so no pairing is asserted)."""
    scene_pipe = minidiff.load_pretrained("scenes", device="cpu")
    assert scene_pipe.config.world == "scenes" and scene_pipe.picture_size == 48
    assert scene_pipe.default_settings.sampler == "ddim"
    found = read_scenes(scene_pipe.generate("a red circle and a blue square", n=8))
    both = [{"red", "blue"} <= {o.colour for o in f} for f in found]
    assert sum(both) >= 5, f"red and blue objects in {sum(both)} of 8 pictures"
    found = read_scenes(scene_pipe.generate("two green squares", n=8))
    two = [sum(o.colour == "green" for o in f) == 2 for f in found]
    assert sum(two) >= 4, f"two green objects in {sum(two)} of 8 pictures"


def test_a_run_can_start_its_unet_from_a_trained_one_with_a_fresh_text_encoder(tmp_path):
    from minidiff.checkpoint import CheckpointError, save_model

    torch.manual_seed(1)
    trained = TextToImage(tiny_scenes())
    save_model(trained, tmp_path / "trained.safetensors")
    _, cfg = preset("tiny")
    cfg = replace(cfg, unet_from=str(tmp_path / "trained.safetensors"))
    model = build_model(tiny_scenes("bag"), cfg, torch.device("cpu"))
    for a, b in zip(model.unet.state_dict().values(), trained.unet.state_dict().values()):
        assert torch.equal(a, b)
    assert model.text_encoder.config.kind == "bag"
    wider = replace(tiny_scenes(), unet=replace(tiny_scenes().unet, channels=(16, 32, 48)))
    with pytest.raises(CheckpointError, match="same U-Net design"):
        build_model(wider, cfg, torch.device("cpu"))


def test_the_command_line_evaluates_a_scene_model_and_refuses_an_impossible_scene(tmp_path, capsys):
    from minidiff.checkpoint import save_model
    from minidiff.cli import main

    torch.manual_seed(0)
    path = tmp_path / "scenes.safetensors"
    save_model(TextToImage(tiny_scenes()), path)
    main(["evaluate", "--weights", str(path), "--quick", "--steps", "2"])
    out = capsys.readouterr().out
    assert "GenEval categories on 162 pictures" in out and "SDXL (GenEval, real objects)" in out
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", "five red circles", "--weights", str(path), "--out", str(tmp_path / "g")])
    assert exit_info.value.code == 2
    assert "at most 4 objects" in capsys.readouterr().err
    assert not (tmp_path / "g").exists()
