"""Notebook 09, model size against quality: the numbers of benchmarks/train_size_ladder.py.

    from minidiff.course import scaling
    ladder = scaling.read_ladder()
    scaling.ladder_plot(ladder)

Three models, about 4x apart in parameters, trained with the same recipe for the same 5 minutes
of a laptop CPU, each measured by minidiff.evaluate at guidance 1 and 1.5. The training runs take
15 minutes, longer than a notebook may; the notebook reads the committed results file, and one
command regenerates it.
"""

from minidiff.course.paths import read_results


def read_ladder() -> dict:
    """benchmarks/results/size_ladder.json."""
    return read_results("size_ladder.json", "python benchmarks/train_size_ladder.py")


def ladder_table(ladder: dict) -> str:
    """Markdown: one row per size."""
    lines = [
        (
            "| size | parameters | U-Net MFLOP / picture | steps in 5 min | training PFLOP | "
            "seen (g 1 / 1.5) | held-out (g 1 / 1.5) | FD (g 1) | lowest diversity (g 1) |"
        ),
        "| --- |" + " --- |" * 8,
    ]
    for row in ladder["rows"]:
        g1, g15 = row["guidance_1.0"], row["guidance_1.5"]
        lines.append(
            f"| {row['size']} | {row['parameters'] / 1e6:.2f}M | {row['unet_mflop_per_picture']} "
            f"| {row['steps']:,} | {row['train_pflop']} | "
            f"{g1['adherence']['seen']['all']:.3f} / {g15['adherence']['seen']['all']:.3f} | "
            f"{g1['adherence']['held_out']['all']:.3f} / "
            f"{g15['adherence']['held_out']['all']:.3f} | {g1['frechet_distance']:.1f} | "
            f"{min(v for k, v in g1['diversity'].items() if k != 'mean'):.3f} |"
        )
    return "\n".join(lines)


def ladder_plot(ladder: dict):
    """Adherence, Frechet distance and diversity against parameters and against training
    compute, at guidance 1 and 1.5."""
    from matplotlib.figure import Figure

    rows = ladder["rows"]
    fig = Figure(figsize=(11, 5.8), layout="constrained")
    axes = fig.subplots(2, 3)
    for r, (xkey, xlabel) in enumerate(
        (("parameters", "parameters"), ("train_pflop", "training compute (PFLOP)"))
    ):
        x = [row[xkey] for row in rows]
        for g, style in (("1.0", "o-"), ("1.5", "s--")):
            reports = [row[f"guidance_{g}"] for row in rows]
            axes[r, 0].plot(
                x,
                [p["adherence"]["seen"]["all"] for p in reports],
                style,
                label=f"seen, guidance {g}",
            )
            axes[r, 0].plot(
                x,
                [p["adherence"]["held_out"]["all"] for p in reports],
                style,
                alpha=0.6,
                label=f"held-out, guidance {g}",
            )
            axes[r, 1].plot(
                x, [p["frechet_distance"] for p in reports], style, label=f"guidance {g}"
            )
            axes[r, 2].plot(
                x,
                [min(v for k, v in p["diversity"].items() if k != "mean") for p in reports],
                style,
                label=f"guidance {g}",
            )
        for c, title in enumerate(
            (
                "adherence (all four attributes)",
                ("Frechet distance (lower is better)"),
                "lowest diversity of an attribute",
            )
        ):
            ax = axes[r, c]
            ax.set_xscale("log")
            ax.set(xlabel=xlabel, title=title if r == 0 else "")
            ax.minorticks_off()  # label the three models, not the decades
            unit, scale = ("M", 1e6) if xkey == "parameters" else ("", 1)
            ax.set_xticks(x, [f"{row['size']}\n{v / scale:.3g}{unit}" for row, v in zip(rows, x)])
        axes[r, 0].set_ylim(0, 1.02)
        axes[r, 0].legend(fontsize=7)
        axes[r, 1].legend(fontsize=7)
    fig.suptitle(
        f"three model sizes, the same recipe, {ladder['budget_minutes']:g} minutes each",
        fontsize=11,
    )
    return fig
