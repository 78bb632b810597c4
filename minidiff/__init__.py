"""minidiff: build, train, watch and break a tiny text-to-image diffusion model.

    import minidiff
    pipe = minidiff.load_pretrained()
    pictures = pipe.generate("a large red star in the top left", n=8, seed=0)

Modules, in the order a learner meets them (each depends only on those before it):
world, tokenizer -> schedules -> diffusion -> samplers -> text_encoder, unet, model -> checkpoint
-> train -> pipeline -> judge, evaluate -> widgets, diffusers_bridge.
"""

__version__ = "0.1.0"


def load_pretrained(path=None, device=None):
    """The shipped text-to-image model as a Pipeline (see minidiff.pipeline.load_pretrained)."""
    from .pipeline import load_pretrained as _load

    return _load(path, device)
