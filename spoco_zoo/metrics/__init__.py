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
:class:`ValueError`. :func:`evaluate_instances` lives in :mod:`spoco_zoo.metrics.evaluate`;
:func:`merges_and_splits` (which objects are falsely merged or split) in :mod:`spoco_zoo.metrics.merges`.
"""

from __future__ import annotations

from spoco_zoo.metrics.evaluate import METRIC_KEYS, evaluate_instances
from spoco_zoo.metrics.matching import (
    DEFAULT_THRESHOLDS,
    Contingency,
    average_precision,
    check_labels,
    contingency_table,
    iou_matrix,
    match_count,
    matched_f1,
)
from spoco_zoo.metrics.merges import MergesSplits, merges_and_splits
from spoco_zoo.metrics.rand_voi import adapted_rand_error, variation_of_information
from spoco_zoo.metrics.sbd import best_dice, symmetric_best_dice

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
    "MergesSplits",
    "merges_and_splits",
]
