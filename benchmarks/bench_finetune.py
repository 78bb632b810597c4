"""Notebook 13's table: three ways to teach the shipped pixel model a new word, on a new object (the
cross) and a new style (sketched outlines), measured the same way.

    python benchmarks/bench_finetune.py --out benchmarks/results/finetune.json \\
        --ship minidiff/weights/concepts

For each concept (minidiff.concepts: 12 example pictures) and each method (minidiff.finetune), it
trains from the examples with the settings below, on 2 torch threads, then measures with
minidiff.evaluate_concepts: concept fidelity (30 familiar prompts x 4 pictures), prompt fidelity
(24 novel prompts x 4), drift (the judge's adherence on 297 ordinary prompts, before and after,
and the mean change of their pictures in grey levels), the trainable parameters, the seconds of
the whole run (prior pictures included) and the size of the file it writes. It also writes a few
pictures of each run (finetune.npz) and, with --ship, the small results (textual inversion and
LoRA folders) for the notebook.
"""

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from minidiff import adapters, concepts, load_pretrained
from minidiff.device import cpu_name
from minidiff.evaluate_concepts import concept_report, drift_report
from minidiff.finetune import FinetuneConfig, finetune
from minidiff.judge import load_judge
from minidiff.scaffold import Watch

RUNS = {  # name: settings (each one of the issue's <= 2 minutes on a 2-core laptop)
    "textual-inversion": {"method": "textual-inversion", "steps": 1000},
    "lora": {"method": "lora", "steps": 800},
    "lora+conv": {"method": "lora", "steps": 800, "lora_targets": "attention+conv"},
    "lora, prior": {"method": "lora", "steps": 600, "prior_weight": 1.0},
    "full": {"method": "full", "steps": 400},
    "full, no prior": {"method": "full", "steps": 400, "prior_weight": 0.0},
}
SHIPPED = ("textual-inversion", "lora", "lora, prior")  # small enough to ship (< 70 kB each)


def folder(kind: str, run: str) -> str:
    """The shipped folder of a run: "object-lora-prior" for ("object", "lora, prior")."""
    return f"{kind}-{run.replace(', ', '-').replace(' ', '-')}"


KEEP = 8  # pictures of each run kept for the notebook


def write_card(dest: Path, row: dict, commit: str, machine: str) -> None:
    """The card of a shipped result: how it was made and what it measured."""
    info = json.loads((dest / adapters.INFO_FILE).read_text())
    settings = " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in row["settings"].items() if k != "method"
    )
    lines = [
        f"# {dest.name}: {row['method']} of the word {row['word']!r}",
        "",
        "Taught to the shipped pixel model by `benchmarks/bench_finetune.py` (notebook 13),",
        f"from the 12 example pictures `minidiff dataset --concept {row['concept']}` writes.",
        "",
        "| | |",
        "| --- | --- |",
        f"| command | `minidiff finetune --method {info['method']} --word {row['word']} "
        f"--images EXAMPLES --out DIR {settings}` |",
        f"| seed | {info['settings']['seed']} |",
        f"| code | commit `{commit}` |",
        f"| hardware | {machine}, 2 torch threads, no GPU |",
        f"| time | {row['seconds']:.0f} s for the whole run |",
        f"| trainable numbers | {row['trainable_parameters']:,} |",
        f"| concept fidelity | {row['concept_fidelity']:.2f} (30 familiar prompts x 4 pictures) |",
        f"| prompt fidelity | {row['prompt_fidelity']:.2f} (24 novel prompts x 4 pictures) |",
        f"| adherence on 297 ordinary prompts | {row['adherence_before']:.3f} before, "
        f"{row['adherence_after']:.3f} with it |",
        "",
    ]
    (dest / "card.md").write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/finetune.json")
    parser.add_argument("--ship", default=None, help="copy the small results into this folder")
    parser.add_argument("--kinds", nargs="*", default=list(concepts.KINDS))
    parser.add_argument("--runs", nargs="*", default=list(RUNS))
    parser.add_argument(
        "--cards", default=None, metavar="COMMIT", help="only write the shipped results' cards"
    )
    args = parser.parse_args()
    if args.cards:
        measured = json.loads(Path(args.out).read_text())
        for row in measured["rows"]:
            dest = Path(args.ship) / folder(row["concept"], row["method"])
            if row["method"] in SHIPPED and dest.is_dir():
                write_card(dest, row, args.cards, measured["machine"])
        return
    torch.set_num_threads(2)
    judge = load_judge()
    base = load_pretrained("pixel")
    t0 = time.perf_counter()
    before = drift_report(base, judge)
    print(f"base: adherence {before['adherence']:.3f} ({time.perf_counter() - t0:.0f} s)")
    rows, pictures = [], {}
    work = Path(tempfile.mkdtemp(prefix="bench_finetune."))
    for kind in args.kinds:
        word = concepts.WORDS[kind]
        examples = concepts.export_examples(kind, work / f"examples-{kind}")
        pictures[f"{kind}/examples"] = concepts.examples(kind)[0]
        for name in args.runs:
            out = work / f"{kind}-{name.replace(' ', '').replace(',', '-')}"
            cfg = FinetuneConfig(word=word, **RUNS[name])
            t = time.perf_counter()
            finetune(examples, out, cfg, watch=Watch(progress=False))
            seconds = time.perf_counter() - t
            info = json.loads((out / adapters.INFO_FILE).read_text())
            pipe = load_pretrained("pixel")
            pipe.load_adapter(out)
            report = concept_report(pipe, kind, word)
            drift = drift_report(pipe, judge, before["pixels"])
            row = {
                "concept": kind,
                "word": word,
                "method": name,
                "settings": RUNS[name],
                "concept_fidelity": report["concept_fidelity"],
                "prompt_fidelity": report["prompt_fidelity"],
                "adherence_before": before["adherence"],
                "adherence_after": drift["adherence"],
                "pixels_moved": drift["moved"],
                "trainable_parameters": info["trainable_parameters"],
                "seconds": round(seconds, 1),
                "file_bytes": sum(info["files"].values()),
            }
            rows.append(row)
            print(json.dumps(row))
            pictures[f"{kind}/{name}/concept"] = report["concept_pictures"][::4][:KEEP]
            pictures[f"{kind}/{name}/prompt"] = report["prompt_pictures"][::4][:KEEP]
            if args.ship and name in SHIPPED:
                dest = Path(args.ship) / folder(kind, name)
                shutil.rmtree(dest, ignore_errors=True)
                dest.mkdir(parents=True)
                for f in [adapters.INFO_FILE, *info["files"]]:
                    shutil.copy(out / f, dest / f)
    out_file = Path(args.out)
    partial = set(args.runs) != set(RUNS) or set(args.kinds) != set(concepts.KINDS)
    if out_file.exists() and partial:  # some measured again: replace those rows, keep the rest
        old = json.loads(out_file.read_text())
        redone = {(r["concept"], r["method"]) for r in rows}
        kept = [r for r in old["rows"] if (r["concept"], r["method"]) not in redone]
        order = {name: i for i, name in enumerate(RUNS)}
        rows = sorted(kept + rows, key=lambda r: (r["concept"], order.get(r["method"], 99)))
        with np.load(out_file.with_suffix(".npz")) as stored:
            pictures = {**{k: stored[k] for k in stored.files}, **pictures}
    result = {
        "machine": cpu_name(),
        "threads": 2,
        "torch": torch.__version__,
        "note": "seconds: the whole minidiff finetune run (prior pictures included), 2 threads",
        "rows": rows,
        "familiar_prompts": {
            k: [p for p, _ in concepts.familiar_prompts(k)] for k in concepts.KINDS
        },
        "novel_prompts": {k: [p for p, _ in concepts.novel_prompts(k)] for k in concepts.KINDS},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    np.savez_compressed(Path(args.out).with_suffix(".npz"), **pictures)
    shutil.rmtree(work)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
