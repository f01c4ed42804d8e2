"""matplotlib figures as pictures: render a :class:`~matplotlib.figure.Figure` and write it as PNG.

Figures are built with :class:`matplotlib.figure.Figure` and the Agg canvas directly (no pyplot, so
no global figure state and no GUI backend); :func:`figure_rgb` renders one to ``uint8 [H, W, 3]``
and :func:`write_figure` writes it with :func:`spoco_zoo.overlay.write_png`, the package's one PNG
writer.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from spoco_zoo.overlay import write_png

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["figure_rgb", "write_figure"]


def figure_rgb(fig: Figure) -> np.ndarray:
    """Render ``fig`` (on an Agg canvas) to ``uint8 [H, W, 3]``: its size in inches times its dpi.

    >>> from matplotlib.figure import Figure
    >>> figure_rgb(Figure(figsize=(2, 1), dpi=50)).shape
    (50, 100, 3)
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def write_figure(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` as an RGB PNG at ``path`` (see :func:`figure_rgb`); returns ``path``."""
    return write_png(path, figure_rgb(fig))
