"""Pictures of a segmentation: instance outlines drawn over the image, written as PNG.

:func:`outline_mask` marks the pixels of each object that touch another label (the background
included; scikit-image's :func:`~skimage.segmentation.find_boundaries`); :func:`overlay_rgb` draws
them in one colour per object (:func:`~skimage.color.label2rgb`) over the contrast-stretched image;
:func:`write_overlay` writes the PNG (``spoco-zoo segment --overlay``). 3D label images are shown by
their middle z slice. :func:`write_png` is the one PNG writer of the package (imageio).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["OUTLINE_COLOURS", "outline_mask", "overlay_rgb", "write_png", "write_overlay"]

#: Outline colours, cycled over the objects (bright on a grey image; :func:`skimage.color.label2rgb` names).
OUTLINE_COLOURS = (
    "red",
    "yellow",
    "lime",
    "cyan",
    "magenta",
    "darkorange",
    "deepskyblue",
    "pink",
    "yellowgreen",
    "violet",
)


def outline_mask(labels: np.ndarray) -> np.ndarray:
    """``bool [*S]``: object pixels (label > 0) with a 4-neighbour (6 in 3D) of another label.

    >>> lab = np.zeros((5, 5), int); lab[1:4, 1:4] = 1
    >>> outline_mask(lab).astype(int)[2].tolist()
    [0, 1, 0, 1, 0]
    """
    from skimage.segmentation import find_boundaries

    lab = np.asarray(labels)
    return np.asarray(find_boundaries(lab, connectivity=1, mode="inner")) & (lab > 0)


def _stretch(image: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(image, [1.0, 99.8])
    return np.clip((image - lo) / (hi - lo + 1e-12), 0.0, 1.0)


def overlay_rgb(image: np.ndarray, labels: np.ndarray, scale: int = 1) -> np.ndarray:
    """``uint8 [y*scale, x*scale, 3]``: outlines of ``labels`` over the grey image.

    Parameters
    ----------
    image:
        ``[y, x]``, ``[C, y, x]`` (first channel shown) or 3D (``[z, y, x]`` / ``[C, z, y, x]``, with
        ``labels`` ``[z, y, x]``: the middle z slice).
    labels:
        Instance labels ``[y, x]`` or ``[z, y, x]``.
    scale:
        Integer up-scaling (nearest neighbour) so that thin outlines stay visible.
    """
    from skimage.color import label2rgb

    lab = np.asarray(labels)
    img = np.asarray(image, dtype=np.float64)
    if img.ndim == lab.ndim + 1:
        img = img[0]
    if img.shape != lab.shape:
        raise ValueError(f"image: shape {img.shape} does not match labels {lab.shape}")
    if lab.ndim == 3:
        mid = lab.shape[0] // 2
        img, lab = img[mid], lab[mid]
    if scale > 1:
        img = np.repeat(np.repeat(img, scale, 0), scale, 1)
        lab = np.repeat(np.repeat(lab, scale, 0), scale, 1)
    grey = np.repeat(_stretch(img)[..., None], 3, axis=-1) * 0.85
    colours = label2rgb(lab, bg_label=0, colors=OUTLINE_COLOURS)
    rgb = np.where(outline_mask(lab)[..., None], colours, grey)
    return (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)


def write_png(path: str | Path, rgb: np.ndarray) -> Path:
    """Write an ``uint8`` image ``[H, W, 3]`` (or ``[H, W, 4]``, ``[H, W]``) as PNG; returns ``path``."""
    import imageio.v3 as iio

    path = Path(path)
    iio.imwrite(path, np.asarray(rgb), extension=".png")
    return path


def write_overlay(path: str | Path, image: np.ndarray, labels: np.ndarray, max_side: int = 1024) -> Path:
    """Outlines of ``labels`` over ``image`` as a PNG; small images are enlarged up to ``max_side``."""
    side = max(np.asarray(labels).shape[-2:])
    scale = max(1, min(4, max_side // max(side, 1)))
    return write_png(path, overlay_rgb(image, labels, scale=scale))
