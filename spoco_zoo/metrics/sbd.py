"""Symmetric best Dice (SBD), the CVPPP leaf-segmentation score.

``BD(A, B) = 1/|A| * sum_{a in A} max_{b in B} 2 |a ∩ b| / (|a| + |b|)`` averages,
over the objects ``a`` of the first image, the Dice of the best-overlapping
object of the second; ``SBD = min(BD(pred, gt), BD(gt, pred))``. Background (0)
is not an object. Both images without objects: 1; exactly one without objects: 0.
"""

from __future__ import annotations

import numpy as np

from spoco_zoo.metrics.matching import Contingency, contingency_table

__all__ = ["best_dice", "symmetric_best_dice", "sbd_from_table"]


def _best_dice(c: Contingency, over: str) -> float:
    """BD with the average taken over the objects of ``over`` (``"pred"`` or ``"gt"``)."""
    n_over = c.n_pred if over == "pred" else c.n_gt
    n_other = c.n_gt if over == "pred" else c.n_pred
    if n_over == 0 and n_other == 0:
        return 1.0
    if n_over == 0 or n_other == 0:
        return 0.0
    pairs = c.object_pairs()
    best = np.zeros(n_over, np.float64)  # objects without any overlap score 0
    np.maximum.at(best, pairs[over], pairs["dice"])
    return float(best.mean())


def best_dice(a: np.ndarray, b: np.ndarray, ignore_label: int | None = None) -> float:
    """``BD(a, b)``: best Dice averaged over the objects of ``a``.

    Parameters
    ----------
    a, b:
        Label images of the same shape; ``ignore_label`` refers to ``b``
        (the ground truth in ``best_dice(pred, gt)``).
    """
    return _best_dice(contingency_table(a, b, ignore_label), "pred")


def symmetric_best_dice(pred: np.ndarray, gt: np.ndarray, ignore_label: int | None = None) -> float:
    """CVPPP symmetric best Dice: ``min(BD(pred, gt), BD(gt, pred))``.

    Parameters
    ----------
    pred, gt:
        Label images of the same shape (0 = background).
    ignore_label:
        ``gt`` value whose pixels are not counted (removed from both images).

    Returns
    -------
    float
        In ``[0, 1]``, 1 for a perfect segmentation.
    """
    return sbd_from_table(contingency_table(pred, gt, ignore_label))


def sbd_from_table(c: Contingency) -> float:
    """:func:`symmetric_best_dice` from a contingency table."""
    return min(_best_dice(c, "pred"), _best_dice(c, "gt"))
