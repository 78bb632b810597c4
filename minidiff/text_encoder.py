"""A small transformer that turns prompt token ids into vectors the U-Net can attend to.

This is minidiff's stand-in for the CLIP text encoder of Stable Diffusion: token embedding plus
learned position embedding, a few pre-norm transformer layers, and a final LayerNorm. Unlike CLIP it
is trained together with the denoiser, from scratch, on Shapes-world captions.

`kind="bag"` is the ablation of notebook 11: the average of the prompt's word embeddings, through a
small MLP, as one vector. It cannot know word order, so "a red circle and a blue square" and "a
blue circle and a red square" reach the U-Net as the same vector, by construction.
"""

from dataclasses import dataclass

import torch
from torch import nn

KINDS = ("transformer", "bag")


@dataclass
class TextEncoderConfig:
    vocab_size: int
    max_tokens: int = 16
    width: int = 128
    layers: int = 2
    heads: int = 4
    # "transformer" (the default), or "bag": the average of the prompt's word embeddings, one
    # vector with no word order, for the binding experiment of notebook 11
    kind: str = "transformer"


class TextEncoder(nn.Module):
    def __init__(self, config: TextEncoderConfig):
        super().__init__()
        self.config = config
        if config.kind not in KINDS:
            raise ValueError(f"unknown text encoder kind {config.kind!r}; choose one of {KINDS}")
        self.token_embedding = nn.Embedding(config.vocab_size, config.width)
        if config.kind == "bag":
            w = config.width
            self.mlp = nn.Sequential(nn.Linear(w, 4 * w), nn.GELU(), nn.Linear(4 * w, w))
            self.final_norm = nn.LayerNorm(w)
            return
        self.position_embedding = nn.Parameter(torch.zeros(config.max_tokens, config.width))
        nn.init.normal_(self.position_embedding, std=0.02)
        layer = nn.TransformerEncoderLayer(
            d_model=config.width,
            nhead=config.heads,
            dim_feedforward=4 * config.width,
            dropout=0.0,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.layers = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.final_norm = nn.LayerNorm(config.width)

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """ids (B, L) -> (context (B, L, width), mask (B, L) True where a real token stands).

        Id 0 is padding; every prompt starts with a <start> token, so no row is all padding.
        A bag-of-words encoder returns one vector a prompt: (B, 1, width), mask (B, 1).
        """
        if ids.ndim != 2 or ids.shape[1] > self.config.max_tokens:
            raise ValueError(
                f"token ids must have shape (batch, <= {self.config.max_tokens}), "
                f"got {tuple(ids.shape)}"
            )
        mask = ids != 0  # (B, L)
        if self.config.kind == "bag":
            words = self.token_embedding(ids) * mask[..., None]  # (B, L, D), padding zeroed
            mean = words.sum(1, keepdim=True) / mask.sum(1, keepdim=True)[..., None]  # (B, 1, D)
            return self.final_norm(mean + self.mlp(mean)), mask[:, :1]
        h = self.token_embedding(ids) + self.position_embedding[: ids.shape[1]]  # (B, L, D)
        h = self.layers(h, src_key_padding_mask=~mask)
        return self.final_norm(h), mask
