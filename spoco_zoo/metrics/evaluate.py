"""Every instance score of one prediction from one contingency table: :func:`evaluate_instances`."""

from __future__ import annotations

import numpy as np

from spoco_zoo.metrics.matching import DEFAULT_THRESHOLDS, ap_from_table, contingency_table, f1_from_table
from spoco_zoo.metrics.rand_voi import are_from_table, voi_from_table
from spoco_zoo.metrics.sbd import sbd_from_table

__all__ = ["METRIC_KEYS", "evaluate_instances"]

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
    ap = ap_from_table(c, DEFAULT_THRESHOLDS)
    f1 = f1_from_table(c, 0.5)
    split, merge = voi_from_table(c)
    scores = {
        "sbd": sbd_from_table(c),
        "ap50": ap["ap50"],
        "ap75": ap["ap75"],
        "map": ap["map"],
        "f1": f1["f1"],
        "precision": f1["precision"],
        "recall": f1["recall"],
        "are": are_from_table(c),
        "voi_split": split,
        "voi_merge": merge,
    }
    return {key: float(scores[key]) for key in METRIC_KEYS}
