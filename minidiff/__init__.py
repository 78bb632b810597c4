"""minidiff: build, train, watch and break a tiny text-to-image diffusion model.

    import minidiff
    pipe = minidiff.load_pretrained()
    pictures = pipe.generate("a large red star in the top left", n=8, seed=0)

The library is flat (`from minidiff import diffusion, samplers`); what exists only for the course
notebooks (explorers, probes, exercises, figures) lives above it in `minidiff.course`, which the
library never imports. The order of the layers is stated once, as a test: tests/test_layers.py.
"""

__version__ = "0.1.0"


def load_pretrained(path=None, device=None):
    """The shipped text-to-image model as a Pipeline (see minidiff.pipeline.load_pretrained)."""
    from .pipeline import load_pretrained as _load

    return _load(path, device)
