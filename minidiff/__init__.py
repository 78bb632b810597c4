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
    """The shipped text-to-image model as a Pipeline (see minidiff.pipeline.load_pretrained), or
    a GAN's file (the shipped "gan", or one `minidiff train-gan` wrote) as a gan.GanPipeline."""
    from .checkpoint import CheckpointError, read_file
    from .pipeline import load_pretrained as _load
    from .pipeline import weights_path

    where = weights_path(path)
    try:
        kind = read_file(where)[1].get("kind") if where.is_file() else None
    except CheckpointError:
        kind = None  # the pipeline's loader says why, in one sentence
    if kind == "gan":
        from .gan import load_pipeline

        return load_pipeline(where, device)
    return _load(path, device)
