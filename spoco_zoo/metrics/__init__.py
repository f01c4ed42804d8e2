"""Instance-segmentation metrics for 2D and 3D label images.

All functions take ``(pred, gt)`` label images of the same shape (0 = background
in both, positive ids = objects; ``ignore_label`` optionally marks gt pixels
that are not counted -- they are removed from both images). One contingency
table (:func:`contingency_table`, one vectorised pass over the image) feeds
every score; see the submodules for the exact conventions:

=====================  ===========================================================
key                    meaning
=====================  ===========================================================
``sbd``                symmetric best Dice (CVPPP), :mod:`~spoco_zoo.metrics.sbd`
``ap50``, ``ap75``     ``TP / (TP + FP + FN)`` at IoU 0.5 / 0.75 (DSB2018, StarDist)
``map``                mean AP over IoU 0.50:0.05:0.95
``f1``, ``precision``, matched F1 / precision / recall at IoU 0.5
``recall``
``are``                adapted Rand error (background is a segment; 0 = perfect)
``voi_split``,         variation of information ``H(pred|gt)``, ``H(gt|pred)`` in bits
``voi_merge``
=====================  ===========================================================

Edge cases: when neither image has an object the segmentation is perfect
(``sbd = ap* = map = f1 = precision = recall = 1``, ``are = voi_* = 0``); when
exactly one has none, the object scores (``sbd``, APs, ``f1``, precision,
recall) are 0 while ``are`` / ``voi_*`` are still computed on the pixel
partitions (background being one segment). Shape mismatches raise
:class:`ValueError`.
"""

from __future__ import annotations

import numpy as np

from spoco_zoo.metrics.matching import (
    DEFAULT_THRESHOLDS,
    Contingency,
    _ap_scores,
    _f1_scores,
    average_precision,
    check_labels,
    contingency_table,
    iou_matrix,
    match_count,
    matched_f1,
)
from spoco_zoo.metrics.rand_voi import _are, _voi, adapted_rand_error, variation_of_information
from spoco_zoo.metrics.sbd import _sbd, best_dice, symmetric_best_dice

__all__ = [
    "METRIC_KEYS",
    "DEFAULT_THRESHOLDS",
    "Contingency",
    "check_labels",
    "contingency_table",
    "iou_matrix",
    "match_count",
    "best_dice",
    "symmetric_best_dice",
    "average_precision",
    "matched_f1",
    "adapted_rand_error",
    "variation_of_information",
    "evaluate_instances",
]

#: Keys of :func:`evaluate_instances`, in display order.
METRIC_KEYS = ("sbd", "ap50", "ap75", "map", "f1", "precision", "recall", "are", "voi_split", "voi_merge")


def evaluate_instances(pred: np.ndarray, gt: np.ndarray, ignore_label: int | None = None) -> dict[str, float]:
    """Every instance score of one prediction against its ground truth.

    Parameters
    ----------
    pred, gt:
        Integer label images of the same shape, 2D or 3D (0 = background).
    ignore_label:
        ``gt`` value whose pixels are not counted (e.g. ``-1`` for unannotated).

    Returns
    -------
    dict
        Keys :data:`METRIC_KEYS`: ``sbd``, ``ap50``, ``ap75``, ``map``, ``f1``,
        ``precision``, ``recall`` (higher is better, in ``[0, 1]``), ``are``,
        ``voi_split``, ``voi_merge`` (lower is better, 0 = perfect).

    Raises
    ------
    ValueError
        Different shapes, non-integer labels, negative values other than ``ignore_label``.

    Examples
    --------
    >>> gt = np.zeros((8, 8), int); gt[1:4, 1:4] = 1; gt[5:8, 5:8] = 2
    >>> scores = evaluate_instances(gt * 7, gt)
    >>> scores["sbd"], scores["map"], scores["are"]
    (1.0, 1.0, 0.0)
    """
    c = contingency_table(pred, gt, ignore_label)
    if c.n_pred == 0 and c.n_gt == 0:
        return {key: (0.0 if key in ("are", "voi_split", "voi_merge") else 1.0) for key in METRIC_KEYS}
    ap = _ap_scores(c, DEFAULT_THRESHOLDS)
    f1 = _f1_scores(c, 0.5)
    split, merge = _voi(c)
    scores = {
        "sbd": _sbd(c),
        "ap50": ap["ap50"],
        "ap75": ap["ap75"],
        "map": ap["map"],
        "f1": f1["f1"],
        "precision": f1["precision"],
        "recall": f1["recall"],
        "are": _are(c),
        "voi_split": split,
        "voi_merge": merge,
    }
    return {key: float(scores[key]) for key in METRIC_KEYS}
