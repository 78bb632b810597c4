import warnings

import numpy as np
import pytest

from minidiff import world
from minidiff.checkpoint import CheckpointError
from minidiff.pipeline import NegativePromptWarning, load_pretrained
from minidiff.tokenizer import UnknownWordError


def test_generate_returns_uint8_pictures(tiny_pipe):
    images = tiny_pipe.generate("a large red star in the top left", n=3, steps=4, seed=0)
    assert images.shape == (3, 32, 32, 3) and images.dtype == np.uint8


def test_a_list_of_prompts_gives_n_pictures_each(tiny_pipe):
    images = tiny_pipe.generate(["a red circle", "a blue square"], n=2, steps=3)
    assert images.shape == (4, 32, 32, 3)


def test_same_seed_same_pictures_other_seed_other_pictures(tiny_pipe):
    a = tiny_pipe.generate("a green star", n=2, steps=5, seed=3)
    b = tiny_pipe.generate("a green star", n=2, steps=5, seed=3)
    c = tiny_pipe.generate("a green star", n=2, steps=5, seed=4)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_trace_records_every_step(tiny_pipe, sampler):
    traj = tiny_pipe.trace("a blue circle", n=2, steps=6, sampler=sampler, seed=1)
    assert len(traj.steps) == 6
    assert traj.timesteps == sorted(traj.timesteps, reverse=True)
    assert traj.frames("x_t").shape == (6, 2, 32, 32, 3)
    assert traj.frames("x0_hat").shape == (6, 2, 32, 32, 3)
    same = tiny_pipe.generate("a blue circle", n=2, steps=6, sampler=sampler, seed=1)
    assert np.array_equal(traj.images, same)


def test_unconditional_and_negative_prompts(colour_pipe):
    """None samples the empty prompt; a negative prompt takes the null rows' place in the guided
    call, so at scale 0 (the second prediction alone) it draws what the negative prompt asks."""

    def grey_red_blue(prompt, **settings):  # mean (R, G, B) in 0..255 of 4 pictures
        return colour_pipe.generate(prompt, n=4, steps=4, seed=2, **settings).mean((0, 1, 2))

    grey = grey_red_blue(None)
    assert np.abs(grey - grey.mean()).max() < 15  # no colour named: grey
    assert np.abs(grey_red_blue("a red circle", guidance_scale=0.0) - grey).max() < 3
    as_negative = grey_red_blue("a red circle", guidance_scale=0.0, negative_prompt="a blue circle")
    blue = grey_red_blue("a blue circle")
    assert np.abs(as_negative - blue).max() < 3 and blue[2] > blue[0] + 50


def test_a_negative_prompt_without_guidance_warns_in_one_sentence(colour_pipe):
    with pytest.warns(NegativePromptWarning, match="no effect at guidance scale 1") as seen:
        colour_pipe.generate("a red circle", n=1, steps=2, negative_prompt="blue")
    assert "\n" not in str(seen[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # above 1 it acts, and nothing is said
        colour_pipe.generate(
            "a red circle", n=1, steps=2, negative_prompt="blue", guidance_scale=3.0
        )


def test_an_unknown_setting_is_named(tiny_pipe):
    with pytest.raises(TypeError, match="unknown setting 'guidance'; the settings are steps"):
        tiny_pipe.generate("a red circle", n=1, guidance=3.0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"prompt": "a pruple star"}, "unknown word 'pruple'.*purple"),
        ({"prompt": ""}, "the prompt is empty"),
        ({"prompt": "   "}, "the prompt is empty"),
        ({"prompt": "a red circle", "steps": 0}, "steps must be between 1 and"),
        ({"prompt": "a red circle", "steps": -3}, "steps must be between 1 and"),
        (
            {"prompt": "a red circle", "guidance_scale": -1.0},
            "guidance_scale must be a finite number >= 0, got -1.0",
        ),
        (
            {"prompt": "a red circle", "guidance_scale": float("nan")},
            "guidance_scale must be a finite number >= 0, got nan",
        ),
        (
            {"prompt": "a red circle", "guidance_scale": float("inf")},
            "guidance_scale must be a finite number >= 0, got inf",
        ),
        ({"prompt": "a red circle", "n": 0}, "n must be a positive whole number"),
        ({"prompt": "a red circle", "sampler": "heun"}, "unknown sampler 'heun'"),
    ],
)
def test_bad_settings_are_one_sentence_errors(tiny_pipe, kwargs, message):
    with pytest.raises(ValueError, match=message) as info:
        tiny_pipe.generate(**{"n": 1, "steps": 2, **kwargs})
    assert "\n" not in str(info.value)


def test_the_edits_sample_like_generate_and_take_a_sampler(tiny_pipe):
    """img2img is q_sample to the first kept step, then the pipeline's own prepared loop: its
    default sampler, and any other when asked."""
    from minidiff import diffusion, pixels, samplers

    image = world.example("test", 0).image
    p = tiny_pipe.prepare("a blue circle", 2, steps=6, seed=5)
    kept = p.timesteps[-3:]  # strength 0.5 of 6 steps
    x_init = pixels.picture_to_tensor(image).expand(2, -1, -1, -1)
    noise = samplers.randn_like(x_init, p.options.generator)
    x_t = diffusion.q_sample(x_init, kept[0][0], tiny_pipe.alpha_bar, noise)
    by_hand = pixels.to_uint8(
        samplers.sample(p.eps_fn, x_t, tiny_pipe.alpha_bar, kept, p.options)[0]
    )
    edited = tiny_pipe.img2img(image, "a blue circle", strength=0.5, n=2, steps=6, seed=5)
    assert p.options.sampler == "ddpm" and np.array_equal(edited, by_hand)
    other = tiny_pipe.img2img(
        image, "a blue circle", strength=0.5, n=2, steps=6, seed=5, sampler="ddim"
    )
    assert not np.array_equal(other, edited)


def test_unknown_word_error_is_a_value_error(tiny_pipe):
    with pytest.raises(UnknownWordError):
        tiny_pipe.generate("a red circel", n=1, steps=2)


def test_over_long_prompt_is_cut_with_a_warning(tiny_pipe):
    long = "a large red circle in the top left " * 3
    with pytest.warns(UserWarning, match="dropped"):
        images = tiny_pipe.generate(long, n=1, steps=2)
    assert images.shape == (1, 32, 32, 3)


def test_img2img_and_inpaint(tiny_pipe):
    image = tiny_pipe.generate("a red circle", n=1, steps=3)[0]
    out = tiny_pipe.img2img(image, "a blue circle", strength=0.5, n=2, steps=4)
    assert out.shape == (2, 32, 32, 3)
    mask = np.zeros((32, 32), bool)
    mask[:16] = True
    painted = tiny_pipe.inpaint(image, mask, "a blue circle", n=1, steps=4)
    assert painted.shape == (1, 32, 32, 3)
    # the kept half stays the input (up to uint8 rounding)
    assert np.abs(painted[0, 16:].astype(int) - image[16:].astype(int)).max() <= 1


def test_img2img_and_inpaint_refuse_wrong_shapes(tiny_pipe):
    image = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match=r"image must be a uint8 array of shape \(32, 32, 3\)"):
        tiny_pipe.img2img(np.zeros((64, 64, 3), np.uint8), "a red circle")
    with pytest.raises(ValueError, match="strength"):
        tiny_pipe.img2img(image, "a red circle", strength=1.5, steps=2)
    with pytest.raises(ValueError, match=r"mask must have shape \(32, 32\)"):
        tiny_pipe.inpaint(image, np.zeros((16, 16), bool), "a red circle")


def test_load_pretrained_refuses_a_broken_file(tmp_path, tiny_model_file):
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(tiny_model_file.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_pretrained(broken, device="cpu")
