"""matplotlib, the optional package every picture lightnets draws needs: one gate, one message.

Each plotting function imports matplotlib through `require_matplotlib` (a bare
`matplotlib.figure.Figure` leaves the user's pyplot state alone) or `pyplot` (the Agg backend:
files only, no display). When matplotlib is not installed both raise MissingDependencyError,
worded by lightnets.errors.import_optional: "<what> needs matplotlib: pip install lightnets[plot]".
A function that draws a picture on the side of other work (a run's curves, a confusion matrix, the
deploy chart, the charts of a comparison or a search) returns that message as a note instead of
failing the work.
"""

from __future__ import annotations

from lightnets.errors import import_optional

EXTRA = "plot"  # pyproject.toml: [project.optional-dependencies] plot = ["matplotlib>=3.7"]


def require_matplotlib(needed_by: str):
    """The matplotlib module; MissingDependencyError naming `needed_by` when it is missing."""
    return import_optional("matplotlib", EXTRA, needed_by)


def pyplot(needed_by: str):
    """matplotlib.pyplot on the Agg backend (files only, no display); MissingDependencyError
    naming `needed_by` when matplotlib is missing."""
    require_matplotlib(needed_by).use("Agg")
    return import_optional("matplotlib.pyplot", EXTRA, needed_by)


def save_png(figure, path) -> None:
    """`figure` as a PNG at `path` (a temporary path of lightnets.files.write_together)."""
    figure.savefig(path, format="png", dpi=120)
