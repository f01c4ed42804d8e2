"""Cover image: input | 3-channel PCA of the embeddings | instance labels (numpy + imageio)."""

from __future__ import annotations

import numpy as np

from spoco_zoo.overlay import write_png

__all__ = ["pca_rgb", "label_rgb", "make_cover", "write_png"]


def _middle(array: np.ndarray, spatial_dims: int) -> np.ndarray:
    """The middle z slice of a 3D array ``[..., z, y, x]`` (2D arrays unchanged)."""
    if spatial_dims == 3:
        return array[..., array.shape[-3] // 2, :, :]
    return array


def _stretch(x: np.ndarray, low: float = 1.0, high: float = 99.0) -> np.ndarray:
    lo, hi = np.percentile(x, [low, high])
    return np.clip((x - lo) / (hi - lo + 1e-12), 0.0, 1.0)


def pca_rgb(embeddings: np.ndarray) -> np.ndarray:
    """First three principal components of ``[E, y, x]`` embeddings as an RGB image in ``[0, 1]``."""
    e = embeddings.shape[0]
    flat = embeddings.reshape(e, -1).T.astype(np.float64)
    flat = flat - flat.mean(axis=0, keepdims=True)
    try:
        _, _, vt = np.linalg.svd(flat, full_matrices=False)
        comps = flat @ vt[: min(3, e)].T
    except np.linalg.LinAlgError:  # pragma: no cover - degenerate input
        comps = flat[:, :3]
    if comps.shape[1] < 3:
        comps = np.concatenate([comps, np.zeros((comps.shape[0], 3 - comps.shape[1]))], axis=1)
    rgb = np.stack([_stretch(comps[:, i]) for i in range(3)], axis=-1)
    return rgb.reshape(*embeddings.shape[1:], 3)


def label_rgb(labels: np.ndarray, seed: int = 7) -> np.ndarray:
    """Labels ``[y, x]`` -> RGB in ``[0, 1]``; background (0) black, objects random bright colours."""
    labels = np.asarray(labels).astype(np.int64)
    ids, inverse = np.unique(labels, return_inverse=True)
    rng = np.random.default_rng(seed)
    colours = rng.uniform(0.25, 1.0, size=(len(ids), 3))
    colours[ids == 0] = 0.0
    return colours[inverse.reshape(labels.shape)]


def _resize_nearest(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    rows = (np.arange(size[0]) * img.shape[0] / size[0]).astype(int)
    cols = (np.arange(size[1]) * img.shape[1] / size[1]).astype(int)
    return img[rows][:, cols]


def make_cover(image: np.ndarray, embeddings: np.ndarray, labels: np.ndarray, panel: int = 256) -> np.ndarray:
    """Compose the cover as ``uint8 [H, 2H, 3]`` (aspect 2:1, as bioimage.io recommends).

    Parameters
    ----------
    image:
        Raw input ``[C, *S]`` (first channel shown, contrast-stretched).
    embeddings:
        ``[E, *S]``.
    labels:
        ``[*S]`` instance labels.
    panel:
        Height of each of the three panels in pixels.
    """
    spatial_dims = labels.ndim
    img = _middle(np.asarray(image, dtype=np.float64)[0], spatial_dims)
    emb = _middle(np.asarray(embeddings, dtype=np.float64), spatial_dims)
    lab = _middle(np.asarray(labels), spatial_dims)
    h, w = img.shape
    width = max(1, int(round(panel * w / h)))
    panels = [
        np.repeat(_stretch(img)[..., None], 3, axis=-1),
        pca_rgb(emb),
        label_rgb(lab),
    ]
    panels = [_resize_nearest(p, (panel, width)) for p in panels]
    gap = max(2, panel // 32)
    row_w = 3 * width + 4 * gap
    height = max(panel + 2 * gap, (row_w + 1) // 2)
    canvas = np.ones((height, 2 * height, 3)) * 0.12
    top = (height - panel) // 2
    left = (2 * height - row_w) // 2 + gap
    for i, p in enumerate(panels):
        x0 = left + i * (width + gap)
        canvas[top : top + panel, x0 : x0 + width] = p
    return (np.clip(canvas, 0, 1) * 255).round().astype(np.uint8)
