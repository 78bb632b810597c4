"""The order of the layers, stated once: which minidiff module may import which.

Library below, course above. Each module may import only modules of lower layers, whether at the
top of the file or inside a function; the table below is the whole rule, read from the code by
`ast`, so it cannot drift from what the files do.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import minidiff

PACKAGE = Path(minidiff.__file__).parent

# Lowest first. A module may import modules of a lower layer only.
LAYERS = [
    # plain helpers: no minidiff imports at all
    {"minidiff.device", "minidiff.grid", "minidiff.distributed"},
    {"minidiff.world"},
    {"minidiff.scenes", "minidiff.concepts", "minidiff.coverage"},  # scenes; things to teach; modes
    {"minidiff.scene_prompts", "minidiff.scene_judge"},
    {"minidiff.concept_reader"},  # the scene judge's method, for a cross and outlines
    {"minidiff.geneval"},
    {"minidiff.pixels"},  # pictures <-> model space
    {"minidiff.tokenizer"},
    {
        "minidiff.text_encoder",
        "minidiff.unet",
        "minidiff.autoencoder",
    },  # the networks, below all diffusion code
    {"minidiff.model"},
    {"minidiff.checkpoint"},
    {"minidiff.adapters"},  # a taught word, on and off a model
    {"minidiff.scaffold"},  # the one training loop, below every training
    {"minidiff.schedules"},
    {"minidiff.diffusion"},
    {"minidiff.samplers"},
    {"minidiff.editing"},
    {"minidiff.train", "minidiff.train_autoencoder"},
    {"minidiff.pipeline"},
    # few-step students (the teacher draws its pairs with the pipeline); teaching a new word
    {"minidiff.distill", "minidiff.finetune", "minidiff.gan"},
    # telling generated pictures from real: a detector, a watermark in the noise, signed files
    {"minidiff.detector", "minidiff.watermark", "minidiff.provenance"},
    {"minidiff"},  # the package's own __init__: load_pretrained
    {"minidiff.judge"},
    {"minidiff.evaluate", "minidiff.evaluate_autoencoder", "minidiff.evaluate_scenes"},
    {"minidiff.evaluate_concepts"},
    {"minidiff.diffusers_bridge"},
    {"minidiff.cli"},
    {"minidiff.__main__"},  # python -m minidiff (and torchrun -m minidiff): the command line
    # the course: what exists only for the notebooks
    {"minidiff.course.paths", "minidiff.course.plotting"},  # no minidiff imports
    {"minidiff.course.blobs"},
    {"minidiff.course.explorer", "minidiff.course.exercises", "minidiff.course.measuring"},
    {
        "minidiff.course.probe",
        "minidiff.course.training",
        "minidiff.course.real_systems",
        "minidiff.course.scaling",
        "minidiff.course.latent",
        "minidiff.course.edits",
        "minidiff.course.bias",
        "minidiff.course.gallery",
        "minidiff.course.fewsteps",  # notebook 12
        "minidiff.course.teaching",  # notebook 13
        "minidiff.course.gans",  # notebook 14
        "minidiff.course.fakes",  # notebook 15
    },
    {"minidiff.course.binding"},  # notebook 11: uses the probes
    {"minidiff.course"},
    {"minidiff.course.widgets"},
    {"minidiff.course.figures"},
    {"minidiff.course.registry"},  # every figure and explorer, and make_figures
    {"minidiff.course.site"},  # runs the notebooks; imports no minidiff module itself
]
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}
COURSE = "minidiff.course"
# The command line is the library's top; its course commands (figures, site) reach up into
# the course, inside the command's function only, so `import minidiff.cli` never loads the course.
COMMANDS_INTO_THE_COURSE = {
    ("minidiff.cli", "minidiff.course.registry"),
    ("minidiff.cli", "minidiff.course.paths"),
    ("minidiff.cli", "minidiff.course.site"),
}
NETWORKS = {"minidiff.text_encoder", "minidiff.unet", "minidiff.autoencoder", "minidiff.model"}
DIFFUSION_CODE = {
    "minidiff.schedules",
    "minidiff.diffusion",
    "minidiff.samplers",
    "minidiff.train",
    "minidiff.pipeline",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path, name: str | None = None) -> list[tuple[str, bool]]:
    """(imported minidiff module, at the top of the file?) for every import statement in path,
    read as the module `name` (by default the one at that path)."""
    name = name or module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    known = modules()
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            # `from minidiff import world` imports the module minidiff.world
            targets = [
                f"{source}.{a.name}" if f"{source}.{a.name}" in known else source
                for a in node.names
            ]
        else:
            continue
        found += [(t, node.col_offset == 0) for t in targets if t.split(".")[0] == "minidiff"]
    return found


def test_every_module_has_a_layer():
    missing = sorted(set(modules()) - set(LAYER))
    assert not missing, f"add these modules to LAYERS: {missing}"


def violations(name: str, found: list[tuple[str, bool]]) -> list[str]:
    """What breaks the layering among the imports `found` in module `name`."""
    wrong = []
    for target, at_top in found:
        if (name, target) in COMMANDS_INTO_THE_COURSE:
            if at_top:
                wrong.append(f"{name} may import {target} only inside a command's function")
        elif LAYER[target] >= LAYER[name]:
            wrong.append(f"{name} (layer {LAYER[name]}) imports {target} (layer {LAYER[target]})")
    return wrong


@pytest.mark.parametrize("name", sorted(modules()))
def test_imports_point_down(name):
    assert violations(name, imports(modules()[name])) == []


def test_the_library_never_imports_the_course():
    library = [n for n in modules() if not (n == COURSE or n.startswith(COURSE + "."))]
    for name in library:
        for target, _ in imports(modules()[name]):
            if target == COURSE or target.startswith(COURSE + "."):
                assert (name, target) in COMMANDS_INTO_THE_COURSE, f"{name} imports {target}"


def test_the_networks_know_nothing_about_diffusion():
    for name in NETWORKS:
        touched = {t for t, _ in imports(modules()[name])} & DIFFUSION_CODE
        assert not touched, f"{name} imports diffusion code: {sorted(touched)}"


def test_training_does_not_import_the_pipeline():
    assert "minidiff.pipeline" not in {t for t, _ in imports(modules()["minidiff.train"])}


def test_importing_minidiff_loads_no_course_or_interop_libraries():
    code = (
        "import sys, minidiff, minidiff.pipeline, minidiff.cli; "
        "print(' '.join(m for m in ('ipywidgets', 'matplotlib', 'diffusers', 'minidiff.course')"
        " if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert loaded == []


def test_the_rule_catches_an_upward_import(tmp_path):
    """The checker itself: the library importing the course, at the top or inside a function,
    and a network importing the diffusion code, are each found and refused."""
    fake = tmp_path / "samplers.py"
    fake.write_text(
        "import torch\nfrom minidiff.course import probe\n\n\ndef f():\n"
        "    from minidiff import pipeline\n"
    )
    found = imports(fake, "minidiff.samplers")
    assert found == [("minidiff.course.probe", True), ("minidiff.pipeline", False)]
    assert len(violations("minidiff.samplers", found)) == 2
    fake.write_text("from .diffusion import q_sample\n")
    assert violations("minidiff.unet", imports(fake, "minidiff.unet")) != []
    fake.write_text("def f():\n    from .course.registry import make_figures\n")
    assert violations("minidiff.cli", imports(fake, "minidiff.cli")) == []
    fake.write_text("from .course.registry import make_figures\n")
    assert violations("minidiff.cli", imports(fake, "minidiff.cli")) != []


def test_no_module_imports_another_modules_private_names():
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (
                node.level or "minidiff" in (node.module or "")
            ):
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private, f"{name} imports private {private} from {node.module}"
