"""What the prompt, guidance, a negative prompt, img2img and inpainting do to the pictures.

On the stand-in PromptColourModel (tests/conftest.py), whose pictures are the colour the prompt
names, so each feature has an effect a test can measure: broken on purpose, these tests fail.
"""

import numpy as np
import pytest

from minidiff import world
from minidiff.cli import main
from minidiff.pipeline import NegativePromptWarning

GREY = 127.5  # the colour of a prompt that names none: 0 in model space


def mean_rgb(pictures: np.ndarray) -> np.ndarray:
    return pictures.reshape(-1, 3).astype(np.float64).mean(0)


def redness(pictures: np.ndarray) -> float:
    """Red minus the mean of green and blue, in grey levels: 0 for grey, 175 for palette red."""
    r, g, b = mean_rgb(pictures)
    return r - (g + b) / 2


def test_the_pictures_take_the_colour_the_prompt_names(colour_pipe):
    for colour in ("red", "blue", "yellow"):
        pictures = colour_pipe.generate(f"a {colour} circle", n=4, guidance_scale=1.0)
        assert np.abs(mean_rgb(pictures) - world.PALETTE[colour]).max() < 8, colour


def test_guidance_zero_is_the_unconditional_picture_and_more_guidance_goes_further(colour_pipe):
    def draw(scale):
        return colour_pipe.generate("a red circle", n=4, guidance_scale=scale, seed=3)

    unconditional = colour_pipe.generate(None, n=4, guidance_scale=1.0, seed=3)
    np.testing.assert_allclose(draw(0.0), unconditional, atol=1)
    assert abs(redness(unconditional)) < 3
    scores = [redness(draw(s)) for s in (0.0, 0.5, 1.0, 1.25, 2.0)]
    assert all(a + 10 < b for a, b in zip(scores, scores[1:])), scores


def test_a_negative_prompt_pushes_the_pictures_away_from_it(colour_pipe):
    plain = colour_pipe.generate("a circle", n=4, guidance_scale=1.5, seed=1)
    not_red = colour_pipe.generate(
        "a circle", n=4, guidance_scale=1.5, seed=1, negative_prompt="red"
    )
    assert abs(redness(plain)) < 3
    assert redness(not_red) < -50  # cyan-ish: away from red, not just less red


def test_without_guidance_a_negative_prompt_changes_nothing(colour_pipe):
    """At scale 1 only the conditional prediction is used: there is nothing to push away from."""
    plain = colour_pipe.generate("a blue circle", n=2, guidance_scale=1.0)
    with pytest.warns(NegativePromptWarning):
        negative = colour_pipe.generate(
            "a blue circle", n=2, guidance_scale=1.0, negative_prompt="blue"
        )
    np.testing.assert_array_equal(plain, negative)


def test_img2img_moves_from_the_picture_to_the_prompt_as_strength_grows(colour_pipe):
    blue = np.full((32, 32, 3), world.PALETTE["blue"], np.uint8)
    scores = [
        redness(colour_pipe.img2img(blue, "a red circle", strength=s, n=4, guidance_scale=1.0))
        for s in (0.1, 0.3, 0.6, 1.0)
    ]
    assert scores[0] < redness(blue[None]) + 90  # a small strength keeps most of the blue
    assert all(a + 10 < b for a, b in zip(scores, scores[1:])), scores
    assert scores[-1] > 150  # strength 1: the prompt's red, whatever the picture was


def test_inpainting_keeps_the_outside_exactly_and_follows_the_prompt_inside(colour_pipe):
    blue = np.full((32, 32, 3), world.PALETTE["blue"], np.uint8)
    mask = np.zeros((32, 32), bool)
    mask[8:24, 8:24] = True  # redraw the middle
    out = colour_pipe.inpaint(blue, mask, "a red circle", n=2, guidance_scale=1.0)
    np.testing.assert_array_equal(out[:, ~mask], np.broadcast_to(blue[~mask], out[:, ~mask].shape))
    assert redness(out[:, mask]) > 100


def test_the_command_line_writes_the_pictures_the_prompt_asks_for(
    colour_pipe, tmp_path, monkeypatch
):
    import minidiff.pipeline

    monkeypatch.setattr(minidiff.pipeline, "load_pretrained", lambda path, device=None: colour_pipe)
    main(["generate", "a red circle", "--n", "2", "--out-dir", str(tmp_path), "--guidance", "1"])
    from PIL import Image

    for name in ("000.png", "001.png"):
        picture = np.asarray(Image.open(tmp_path / name).convert("RGB"))
        assert np.abs(mean_rgb(picture[None]) - world.PALETTE["red"]).max() < 12


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_the_command_line_refuses_a_guidance_that_is_not_a_finite_number(
    colour_pipe, tmp_path, monkeypatch, capsys, value
):
    import minidiff.pipeline

    monkeypatch.setattr(minidiff.pipeline, "load_pretrained", lambda path, device=None: colour_pipe)
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", "a red circle", "--guidance", value, "--out", str(tmp_path / "g.png")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "guidance_scale must be a finite number >= 0" in err
    assert not (tmp_path / "g.png").exists()
