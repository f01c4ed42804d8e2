"""Adapted Rand error and variation of information (scikit-image), on our contingency table.

Both treat each image as a partition of the counted pixels, **background (0)
included as one segment** of each image: a predicted object over gt background,
or background over a gt object, is an error like any other. Pixels with
``gt == ignore_label`` are removed first. The scikit-image functions are called
with a precomputed table (rows = gt, columns = pred), so the image is scanned
once.

* :func:`adapted_rand_error` -- ``skimage.metrics.adapted_rand_error`` with
  ``image_true = gt``, ``alpha = 0.5``, no further ignored labels:
  ``1 - F`` of the Rand pair precision/recall (SNEMI3D). 0 is perfect, at most 1.
* :func:`variation_of_information` -- ``skimage.metrics.variation_of_information``
  with ``image0 = gt``, ``image1 = pred``, in bits (log base 2), returned as
  ``(split, merge)``: ``split = H(pred | gt)`` (over-segmentation: a gt object cut
  into pieces) and ``merge = H(gt | pred)`` (under-segmentation: gt objects fused).
  ``VI = split + merge``; ``(0, 0)`` is perfect.

Both images without any object: ``are = 0`` and ``voi = (0, 0)``.
"""

from __future__ import annotations

import numpy as np

from spoco_zoo.metrics.matching import Contingency, contingency_table

__all__ = ["adapted_rand_error", "variation_of_information", "are_from_table", "voi_from_table"]


def _identical(c: Contingency) -> bool:
    """The two partitions are equal up to renaming (the table is a permutation matrix)."""
    return c.table.nnz == c.gt_ids.size == c.pred_ids.size


def are_from_table(c: Contingency) -> float:
    """:func:`adapted_rand_error` from a contingency table."""
    if c.n_pixels == 0 or _identical(c):
        return 0.0
    from skimage.metrics import adapted_rand_error as _sk_are

    table = c.table.astype(np.float64)
    # pixel pairs: a table of singletons only has none -> no same-segment pair to score
    if float(table.data @ table.data) - c.n_pixels == 0:
        return 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        are, _, _ = _sk_are(table=table)
    are = float(are)
    return 1.0 if not np.isfinite(are) else are


def voi_from_table(c: Contingency) -> tuple[float, float]:
    """:func:`variation_of_information` ``(split, merge)`` from a contingency table."""
    if c.n_pixels == 0 or _identical(c):
        return 0.0, 0.0
    from skimage.metrics import variation_of_information as _sk_voi

    table = (c.table.astype(np.float64) / float(c.n_pixels)).tocsr()
    # the images are ignored when a table is given, but scikit-image still compares their shapes
    dummy = np.zeros(0, np.int64)
    split, merge = _sk_voi(dummy, dummy, table=table)
    # clip tiny negative round-off
    return max(float(split), 0.0), max(float(merge), 0.0)


def adapted_rand_error(pred: np.ndarray, gt: np.ndarray, ignore_label: int | None = None) -> float:
    """Adapted Rand error (SNEMI3D), background counted as a segment.

    Parameters
    ----------
    pred, gt:
        Label images of the same shape.
    ignore_label:
        ``gt`` value whose pixels are not counted.

    Returns
    -------
    float
        ``1 - 2 P R / (P + R)`` of the Rand pair precision ``P`` and recall ``R``;
        0 for identical partitions.
    """
    return are_from_table(contingency_table(pred, gt, ignore_label))


def variation_of_information(pred: np.ndarray, gt: np.ndarray, ignore_label: int | None = None) -> tuple[float, float]:
    """Variation of information split into ``(split, merge)`` (bits).

    Parameters
    ----------
    pred, gt:
        Label images of the same shape.
    ignore_label:
        ``gt`` value whose pixels are not counted.

    Returns
    -------
    split, merge:
        ``H(pred | gt)`` (false splits) and ``H(gt | pred)`` (false merges).
    """
    return voi_from_table(contingency_table(pred, gt, ignore_label))
