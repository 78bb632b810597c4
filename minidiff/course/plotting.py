"""Small matplotlib helpers the course's figures and notebooks share."""


def bare(ax) -> None:
    """A matplotlib axis that shows only its picture: no ticks, no frame."""
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
