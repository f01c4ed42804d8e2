"""Side-by-side picture of a segmentation against ground truth, its false merges and splits outlined.

:func:`comparison_figure` draws ``image | ground truth | prediction`` (matplotlib, no pyplot; the
image panel when an image is given): objects filled in colours over the grey image with thin white
outlines (scikit-image's :func:`~skimage.color.label2rgb` and
:func:`~skimage.segmentation.mark_boundaries`), and thick outlines on the errors that
:func:`spoco_zoo.metrics.merges.merges_and_splits` finds -- a *false merge* (one predicted object
covering >= 50 % of each of two or more ground-truth objects) in :data:`MERGE_COLOUR` on the
prediction and on the objects it merges, a *false split* (a ground-truth object of which two or more
predicted objects each cover >= 20 %) in :data:`SPLIT_COLOUR` on the ground truth and on its pieces.
A legend below the panels counts both. :func:`write_comparison` writes it as PNG
(``spoco-zoo evaluate --figures``). 3D label images are shown by their middle z slice (the errors
are found in 3D).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from spoco_zoo.figures import write_figure
from spoco_zoo.metrics.merges import MergesSplits, merges_and_splits

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "MERGE_COLOUR",
    "SPLIT_COLOUR",
    "PANEL_PX",
    "LEGEND_PX",
    "error_outline",
    "comparison_figure",
    "write_comparison",
]

#: Outline colour of false merges (RGB in [0, 1]).
MERGE_COLOUR = (1.0, 0.1, 0.1)
#: Outline colour of false splits.
SPLIT_COLOUR = (0.15, 0.55, 1.0)
#: Width of one panel in pixels (height in proportion to the image).
PANEL_PX = 400
#: Height added below the panels for the titles and the legend.
LEGEND_PX = 95
_DPI = 100
#: Object fill colours (pale, so that the error outlines stand out).
_FILL = ("wheat", "palegreen", "plum", "khaki", "aquamarine", "thistle", "peachpuff", "lightgreen", "lemonchiffon")


def error_outline(labels: np.ndarray, ids: Sequence[int] | np.ndarray, width: int = 1) -> np.ndarray:
    """``bool [y, x]``: the boundary pixels of the objects ``ids`` of ``labels``, ``width`` pixels thick.

    >>> lab = np.zeros((6, 6), int); lab[1:5, 1:5] = 2; lab[0, 0] = 1
    >>> error_outline(lab, [2]).astype(int)[2].tolist()
    [0, 1, 0, 0, 1, 0]
    """
    from scipy import ndimage as ndi
    from skimage.segmentation import find_boundaries

    chosen = np.where(np.isin(labels, np.asarray(ids, dtype=np.int64)), labels, 0)
    edge = np.asarray(find_boundaries(chosen, connectivity=1, mode="inner")) & (chosen > 0)
    if width > 1:
        edge = ndi.binary_dilation(edge, iterations=width - 1) & (chosen > 0)
    return edge


def _middle(array: np.ndarray, spatial_dims: int) -> np.ndarray:
    return array[array.shape[0] // 2] if spatial_dims == 3 else array


def _grey(image: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(image, [1.0, 99.8])
    return np.clip((image - lo) / (hi - lo + 1e-12), 0.0, 1.0)


def _labels_rgb(
    labels: np.ndarray, grey: np.ndarray, marks: Sequence[tuple[np.ndarray, tuple[float, float, float]]], width: int
) -> np.ndarray:
    from skimage.color import label2rgb
    from skimage.segmentation import mark_boundaries

    rgb = label2rgb(labels, image=grey, bg_label=0, alpha=0.45, colors=_FILL, image_alpha=1.0)
    rgb = mark_boundaries(rgb, labels, color=(1.0, 1.0, 1.0), mode="inner")
    for ids, colour in marks:
        if len(ids):
            rgb[error_outline(labels, ids, width)] = colour
    return np.clip(rgb, 0.0, 1.0)


def comparison_figure(
    gt: np.ndarray,
    pred: np.ndarray,
    image: np.ndarray | None = None,
    found: MergesSplits | None = None,
    title: str = "",
    ignore_label: int | None = None,
) -> Figure:
    """``image | ground truth | prediction`` with false merges and splits outlined (module docstring).

    Parameters
    ----------
    gt, pred:
        Label images ``[y, x]`` or ``[z, y, x]`` of the same shape.
    image:
        The raw image (``[y, x]``, ``[C, y, x]`` or the 3D equivalents; first channel shown), or
        ``None``: two panels only, drawn over a black background.
    found:
        The errors (default: :func:`~spoco_zoo.metrics.merges.merges_and_splits` of ``pred``, ``gt``).
    title:
        Figure title (e.g. the image name and its scores).
    ignore_label:
        ``gt`` value of unannotated pixels (drawn as background, not counted).

    Returns
    -------
    matplotlib.figure.Figure
        ``PANEL_PX`` pixels wide per panel, ``PANEL_PX * y / x + LEGEND_PX`` high.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    gt = np.asarray(gt)
    pred = np.asarray(pred)
    if gt.shape != pred.shape:
        raise ValueError(f"pred shape {pred.shape} does not match gt shape {gt.shape}")
    if found is None:
        found = merges_and_splits(pred, gt, ignore_label)
    dims = gt.ndim
    gt2 = _middle(np.where(gt == ignore_label, 0, gt) if ignore_label is not None else gt, dims).astype(np.int64)
    pred2 = _middle(pred, dims).astype(np.int64)
    if image is None:
        grey = np.zeros(gt2.shape)
    else:
        img = np.asarray(image, dtype=np.float64)
        img = img[0] if img.ndim == dims + 1 else img
        if img.shape != gt.shape:
            raise ValueError(f"image: shape {img.shape} does not match the labels' {gt.shape}")
        grey = _grey(_middle(img, dims))
    width = max(1, round(max(gt2.shape) / PANEL_PX * 2))  # about 2 screen pixels
    panels = [] if image is None else [("image", np.repeat(grey[..., None], 3, axis=-1))]
    n_gt, n_pred = len(np.unique(gt2[gt2 > 0])), len(np.unique(pred2[pred2 > 0]))
    panels.append(
        (
            f"ground truth ({n_gt} objects)",
            _labels_rgb(gt2, grey, [(found.merged, MERGE_COLOUR), (found.splits, SPLIT_COLOUR)], width),
        )
    )
    panels.append(
        (
            f"prediction ({n_pred} objects)",
            _labels_rgb(pred2, grey, [(found.merges, MERGE_COLOUR), (found.pieces, SPLIT_COLOUR)], width),
        )
    )
    height_px = round(PANEL_PX * gt2.shape[0] / gt2.shape[1])
    fig = Figure(
        figsize=(PANEL_PX * len(panels) / _DPI, (height_px + LEGEND_PX) / _DPI), dpi=_DPI, layout="constrained"
    )
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels))
    for ax, (name, rgb) in zip(np.atleast_1d(axes), panels):
        ax.imshow(rgb, interpolation="nearest")
        ax.set_title(name, fontsize="medium")
        ax.set_axis_off()
    handles = [
        Patch(facecolor="none", edgecolor=MERGE_COLOUR, linewidth=2.5, label=f"false merge ({len(found.merges)})"),
        Patch(facecolor="none", edgecolor=SPLIT_COLOUR, linewidth=2.5, label=f"false split ({len(found.splits)})"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=2, frameon=False)
    if title:
        fig.suptitle(title, fontsize="medium")
    return fig


def write_comparison(
    path: str | Path,
    gt: np.ndarray,
    pred: np.ndarray,
    image: np.ndarray | None = None,
    title: str = "",
    ignore_label: int | None = None,
) -> Path:
    """Write :func:`comparison_figure` as a PNG at ``path``; returns ``path``."""
    return write_figure(comparison_figure(gt, pred, image, title=title, ignore_label=ignore_label), path)
