from dataclasses import replace

import pytest
import torch

from minidiff.checkpoint import save_model
from minidiff.model import TextToImage
from minidiff.train import preset


@pytest.fixture(scope="session")
def tiny_model_file(tmp_path_factory):
    """An untrained 'tiny' model file: right shapes, meaningless pictures — for API tests."""
    torch.manual_seed(0)
    model = TextToImage(preset("tiny")[0])
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    save_model(model, path, info={"note": "untrained test model"})
    return path


@pytest.fixture(scope="session")
def tiny_pipe(tiny_model_file):
    from minidiff.pipeline import load_pretrained

    return load_pretrained(tiny_model_file, device="cpu")


class PromptColourModel(torch.nn.Module):
    """A stand-in for TextToImage whose answer depends on the prompt, so features can be checked.

    It is the ideal denoiser of a world where a prompt's pictures are its colour c plus Gaussian
    pixel noise of std SPREAD: c is the mean of the palette colours the prompt names, or grey (0 in
    model space) when it names none, as the empty prompt. Its text encoder passes the token ids
    through as one-hot vectors; its U-Net reads the colour words back and predicts the posterior
    mean of x0 given x_t, which moves from x_t itself (little noise) to c (all noise):
        x0_hat = c + k (x_t - sqrt(ᾱ) c),  k = sqrt(ᾱ) SPREAD² / (ᾱ SPREAD² + 1 - ᾱ)
    returned as eps_hat = (x_t - sqrt(ᾱ) x0_hat) / sqrt(1 - ᾱ). Guidance, negative prompts and
    img2img then have predictable effects on the colour of the pictures, which a test measures.
    """

    SPREAD = 0.3

    def __init__(self):
        from minidiff import world
        from minidiff.schedules import make_alpha_bar
        from minidiff.tokenizer import Tokenizer

        super().__init__()
        self.config = replace(preset("tiny")[0], prediction="eps")
        tokenizer = Tokenizer()
        self.vocab_size, self.pad_id = len(tokenizer), tokenizer.pad_id
        colours = torch.zeros(self.vocab_size, 3)
        named = torch.zeros(self.vocab_size)
        for colour, rgb in world.PALETTE.items():
            colours[tokenizer.ids[colour]] = torch.tensor(rgb) / 127.5 - 1
            named[tokenizer.ids[colour]] = 1
        self.register_buffer("colours", colours)  # (V, 3) in model space
        self.register_buffer("named", named)  # (V,) 1 for colour words
        self.register_buffer("alpha_bar", make_alpha_bar(self.config.schedule, self.config.T))
        self.unet = self._unet

    def encode_text(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        context = torch.nn.functional.one_hot(ids, self.vocab_size).float()  # (B, L, V)
        return context, ids != self.pad_id

    def target(self, context: torch.Tensor) -> torch.Tensor:
        """The flat picture x0 (B, 3, 1, 1) each row of context describes."""
        counts = context.sum(1) * self.named  # (B, V): colour words only
        total = counts.sum(1, keepdim=True).clamp(min=1)
        return ((counts @ self.colours) / total)[:, :, None, None]

    def _unet(self, x_t, t, context, mask):
        ab = self.alpha_bar.to(x_t.device)[t].to(x_t.dtype)[:, None, None, None]  # (B, 1, 1, 1)
        c = self.target(context).to(x_t.dtype)
        k = ab.sqrt() * self.SPREAD**2 / (ab * self.SPREAD**2 + 1 - ab)
        x0_hat = c + k * (x_t - ab.sqrt() * c)
        return (x_t - ab.sqrt() * x0_hat) / (1 - ab).sqrt()

    def forward(self, x_t, t, ids):
        return self._unet(x_t, t, *self.encode_text(ids))


@pytest.fixture(scope="session")
def colour_pipe():
    """A Pipeline around PromptColourModel: pictures whose colour follows the prompt."""
    from minidiff.pipeline import Pipeline

    return Pipeline(PromptColourModel(), "cpu")
