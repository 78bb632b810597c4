import pytest
import torch

from minidiff.model import ModelConfig, TextToImage, count_parameters, shape_table
from minidiff.text_encoder import TextEncoderConfig
from minidiff.tokenizer import Tokenizer
from minidiff.train import preset
from minidiff.unet import UNet, UNetConfig


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return TextToImage(preset("tiny")[0]).eval()


def test_output_has_the_input_shape(model):
    x = torch.randn(3, 3, 32, 32)
    ids = Tokenizer().encode(["a red circle", "", "a small blue star in the top left"])
    out = model(x, torch.tensor([0, 500, 999]), ids)
    assert out.shape == x.shape


def test_wrong_picture_size_is_one_clear_error(model):
    ids = Tokenizer().encode(["a red circle"])
    with pytest.raises(
        ValueError, match=r"x_t must have shape \(batch, 3, 32, 32\), got \(1, 3, 16, 16\)"
    ):
        model(torch.randn(1, 3, 16, 16), torch.tensor([3]), ids)


def test_attention_weights_are_readable_and_ignore_padding(model):
    ids = Tokenizer().encode(["a large red circle"])  # <start> + 4 words, then padding
    layers = model.unet.attention_layers()
    assert layers
    for _, layer in layers:
        layer.record = True
    model(torch.randn(1, 3, 32, 32), torch.tensor([10]), ids)
    for name, layer in layers:
        w = layer.last_weights  # (B, heads, HW, L)
        assert w.shape[0] == 1 and w.shape[-1] == ids.shape[1], name
        torch.testing.assert_close(w.sum(-1), torch.ones_like(w.sum(-1)))
        assert w[..., 5:].abs().max() == 0  # padding tokens get no attention
        layer.record = False


def test_recording_attention_does_not_change_the_output(model):
    x, t = torch.randn(2, 3, 32, 32), torch.tensor([5, 900])
    ids = Tokenizer().encode(["a green star", "a tiny square at the top"])
    plain = model(x, t, ids)
    for _, layer in model.unet.attention_layers():
        layer.record = True
    recorded = model(x, t, ids)
    for _, layer in model.unet.attention_layers():
        layer.record = False
    torch.testing.assert_close(plain, recorded, atol=1e-5, rtol=1e-5)


def test_the_prompt_changes_the_output():
    torch.manual_seed(0)
    model = TextToImage(preset("tiny")[0])
    for p in model.parameters():  # zero-initialised output layers would hide the text path
        torch.nn.init.normal_(p, std=0.1)
    x, t = torch.randn(1, 3, 32, 32), torch.tensor([400])
    tok = Tokenizer()
    a = model(x, t, tok.encode(["a red circle"]))
    b = model(x, t, tok.encode(["a blue square"]))
    assert torch.equal(a, model(x, t, tok.encode(["a red circle"])))
    assert (a - b).abs().max() > 1e-5  # well above float noise (the same prompt differs by 0)


def test_without_the_pooled_prompt_the_words_reach_the_picture_only_by_cross_attention():
    from dataclasses import replace

    torch.manual_seed(0)
    config = preset("tiny")[0]
    model = TextToImage(replace(config, unet=replace(config.unet, pooled_text=False)))
    assert model.unet.text_mlp is None
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.1)
    x, t, tok = torch.randn(1, 3, 32, 32), torch.tensor([400]), Tokenizer()
    a = model(x, t, tok.encode(["a red circle"]))
    assert (a - model(x, t, tok.encode(["a blue square"]))).abs().max() > 1e-5
    for layer in [m for _, m in model.unet.attention_layers()]:
        layer.to_v.weight.data.zero_()  # every word's value is zero: cross-attention reads nothing
    a = model(x, t, tok.encode(["a red circle"]))
    assert torch.equal(a, model(x, t, tok.encode(["a blue square"])))  # no other way in


def test_parameter_counts_and_shape_table(model):
    table = shape_table(model)
    assert "unet.mid" in table and "total" in table
    assert f"{count_parameters(model):,}" in table
    small = TextToImage(preset("small")[0])
    assert 1_000_000 < count_parameters(small) < 3_000_000


def test_config_round_trips_through_a_dict():
    config = preset("small")[0]
    assert ModelConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="not a minidiff model config"):
        ModelConfig.from_dict({"unet": {}})


def test_mismatched_widths_are_refused():
    config = ModelConfig(
        text=TextEncoderConfig(vocab_size=10, width=64), unet=UNetConfig(context_dim=128)
    )
    with pytest.raises(ValueError, match="context_dim"):
        TextToImage(config)


def test_heads_must_divide_channels():
    with pytest.raises(ValueError, match="divisible by heads"):
        UNet(UNetConfig(channels=(18, 18, 18), heads=4, groups=2))
