"""Label validation, the contingency table and IoU-based one-to-one matching.

Everything here works on label images of any spatial rank (2D ``yx``, 3D ``zyx``):
the pixels are flattened once and all scores are computed from the
*contingency table* -- the number of pixels shared by every (gt label, pred label)
pair that actually co-occurs. The table is built in one vectorised pass over the
image (a label look-up table or ``np.unique`` on paired ids, then a sparse
matrix); no metric loops over objects on the full image.

Conventions (shared by all of :mod:`spoco_zoo.metrics`)
-------------------------------------------------------
* ``0`` is background in both ``pred`` and ``gt``; positive ids are objects.
  Object ids need not be consecutive.
* ``ignore_label`` (optional, a value of ``gt``): pixels where ``gt == ignore_label``
  are removed from **both** images before anything is counted, so a predicted
  object lying only in ignored pixels disappears and one that crosses into them
  is shortened. Other negative values are an error.
* ``pred`` must be non-negative; both must be integer (or boolean) arrays of the
  same shape, otherwise :class:`ValueError`.
* Matching (:func:`match_count`) is optimal one-to-one: the number of matched
  pairs with ``IoU >= threshold`` is maximised (``scipy.optimize.linear_sum_assignment``),
  ties broken towards higher total IoU -- the StarDist / DSB2018 convention.
  ``IoU >= threshold`` is tested with a tolerance of ``1e-9`` so that exact
  ratios such as ``12/20`` meet the threshold ``0.6``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse

__all__ = [
    "DEFAULT_THRESHOLDS",
    "Contingency",
    "check_labels",
    "contingency_table",
    "iou_matrix",
    "match_count",
    "average_precision",
    "matched_f1",
    "ap_from_table",
    "f1_from_table",
]

#: IoU thresholds 0.50, 0.55, ..., 0.95 (COCO / DSB2018 / StarDist).
DEFAULT_THRESHOLDS: tuple[float, ...] = tuple(float(t) for t in np.round(np.arange(0.5, 0.951, 0.05), 2))

_TOL = 1e-9


def _as_labels(array: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(array)
    if array.dtype == bool:
        return array.astype(np.int64)
    if np.issubdtype(array.dtype, np.integer):
        if array.dtype == np.uint64 and array.size and array.max() > np.iinfo(np.int64).max:
            raise ValueError(f"{name}: label ids exceed the int64 range")
        return array.astype(np.int64, copy=False)
    if (
        np.issubdtype(array.dtype, np.floating)
        and np.all(np.isfinite(array))
        and np.array_equal(array, np.round(array))
    ):
        return array.astype(np.int64)
    raise ValueError(f"{name}: expected an integer label image, got dtype {array.dtype}")


def check_labels(pred: np.ndarray, gt: np.ndarray, ignore_label: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Validate a prediction / ground-truth pair and return the counted pixels.

    Parameters
    ----------
    pred, gt:
        Integer label images of the same shape (2D or 3D; any rank works).
    ignore_label:
        Value of ``gt`` marking pixels that are not counted.

    Returns
    -------
    pred_flat, gt_flat:
        1-D int64 arrays of the labels at the counted pixels (``gt != ignore_label``).

    Raises
    ------
    ValueError
        Different shapes, non-integer dtype, negative ``pred`` values, negative
        ``gt`` values other than ``ignore_label``.
    """
    pred = _as_labels(pred, "pred")
    gt = _as_labels(gt, "gt")
    if pred.shape != gt.shape:
        raise ValueError(f"pred shape {pred.shape} does not match gt shape {gt.shape}")
    p = pred.reshape(-1)
    g = gt.reshape(-1)
    if ignore_label is not None:
        keep = g != int(ignore_label)
        if not keep.all():
            p, g = p[keep], g[keep]
    if p.size and p.min() < 0:
        raise ValueError(f"pred: negative label values (min {int(p.min())}); predictions must be >= 0")
    if g.size and g.min() < 0:
        hint = "" if ignore_label is not None else "; pass ignore_label to exclude unlabeled pixels"
        raise ValueError(f"gt: negative label values (min {int(g.min())}) other than ignore_label{hint}")
    return p, g


#: Largest dense bincount (entries) used instead of sorting; 4M int64 = 32 MB.
_MAX_BINCOUNT = 1 << 22


def _unique_counts(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct values and their counts.

    A stable sort (timsort for int64) exploits the long runs of equal values in
    label images and is several times faster there than ``np.unique``'s quicksort.
    """
    xs = np.sort(x, kind="stable")
    starts = np.flatnonzero(np.concatenate(([True], xs[1:] != xs[:-1])))
    counts = np.diff(np.append(starts, xs.size))
    return xs[starts], counts


def _relabel(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ids, index, sizes)``: sorted distinct ids, ``x`` as indices into ``ids``, pixel counts.

    Uses an O(N) look-up table when the ids are not much larger than the image,
    else a sort.
    """
    if x.size == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty
    top = int(x.max())
    if top < max(_MAX_BINCOUNT, 2 * x.size):
        counts = np.bincount(x, minlength=top + 1)
        ids = np.flatnonzero(counts)
        lut = np.zeros(top + 1, np.int64)
        lut[ids] = np.arange(ids.size)
        return ids.astype(np.int64), lut[x], counts[ids].astype(np.int64)
    ids, sizes = _unique_counts(x)
    return ids.astype(np.int64), np.searchsorted(ids, x).astype(np.int64), sizes.astype(np.int64)


@dataclass(frozen=True)
class Contingency:
    """Pixel counts shared by every co-occurring (gt label, pred label) pair.

    Attributes
    ----------
    gt_ids, pred_ids:
        Sorted distinct labels (background 0 included when present) of the counted pixels.
    gt_sizes, pred_sizes:
        Pixel count of each label.
    table:
        ``scipy.sparse.csr_array`` ``[len(gt_ids), len(pred_ids)]`` of shared pixel counts
        (rows = gt, columns = pred, the scikit-image orientation).
    n_pixels:
        Number of counted pixels (after removing ``ignore_label``).
    """

    gt_ids: np.ndarray
    pred_ids: np.ndarray
    gt_sizes: np.ndarray
    pred_sizes: np.ndarray
    table: sparse.csr_array
    n_pixels: int

    # ---------------------------------------------------------------- objects only
    def _object_slices(self) -> tuple[int, int]:
        g0 = int(self.gt_ids.size > 0 and self.gt_ids[0] == 0)
        p0 = int(self.pred_ids.size > 0 and self.pred_ids[0] == 0)
        return g0, p0

    @property
    def n_gt(self) -> int:
        """Number of ground-truth objects (positive ids)."""
        return int(self.gt_ids.size - self._object_slices()[0])

    @property
    def n_pred(self) -> int:
        """Number of predicted objects (positive ids)."""
        return int(self.pred_ids.size - self._object_slices()[1])

    def object_pairs(self) -> dict[str, np.ndarray]:
        """Overlapping (gt object, pred object) pairs, background excluded.

        Returns
        -------
        dict
            ``gt`` / ``pred``: object indices (0-based, into the object ids
            ``gt_ids[gt_ids > 0]`` / ``pred_ids[pred_ids > 0]``); ``intersection``,
            ``gt_size``, ``pred_size`` (pixels), ``iou`` and ``dice`` of each pair.
        """
        g0, p0 = self._object_slices()
        coo = self.table[g0:, p0:].tocoo()
        rows = coo.row.astype(np.int64)
        cols = coo.col.astype(np.int64)
        inter = coo.data.astype(np.int64)
        gs = self.gt_sizes[g0:][rows]
        ps = self.pred_sizes[p0:][cols]
        union = gs + ps - inter
        return {
            "gt": rows,
            "pred": cols,
            "intersection": inter,
            "gt_size": gs,
            "pred_size": ps,
            "iou": inter / union,
            "dice": 2.0 * inter / (gs + ps),
        }


def contingency_table(pred: np.ndarray, gt: np.ndarray, ignore_label: int | None = None) -> Contingency:
    """Contingency table of two label images, computed in one vectorised pass.

    Parameters
    ----------
    pred, gt:
        Label images of the same shape (see :func:`check_labels`).
    ignore_label:
        ``gt`` value whose pixels are not counted.

    Returns
    -------
    Contingency
        Label ids, sizes and the sparse table of shared pixel counts.

    Examples
    --------
    >>> gt = np.array([[1, 1, 0], [2, 2, 0]])
    >>> pred = np.array([[3, 3, 3], [3, 3, 0]])
    >>> c = contingency_table(pred, gt)
    >>> c.table.toarray().tolist()   # rows gt 0,1,2; columns pred 0,3
    [[1, 1], [0, 2], [0, 2]]
    """
    p, g = check_labels(pred, gt, ignore_label)
    gt_ids, gi, gt_sizes = _relabel(g)
    pred_ids, pi, pred_sizes = _relabel(p)
    n_g, n_p = gt_ids.size, pred_ids.size
    if p.size == 0:
        table = sparse.csr_array((n_g, n_p), dtype=np.int64)
    else:
        key = gi * n_p + pi
        if n_g * n_p <= min(_MAX_BINCOUNT, 4 * key.size):
            counts = np.bincount(key, minlength=n_g * n_p)
            key = np.flatnonzero(counts)
            counts = counts[key]
        else:
            key, counts = _unique_counts(key)
        table = sparse.csr_array((counts.astype(np.int64), (key // n_p, key % n_p)), shape=(n_g, n_p), dtype=np.int64)
    return Contingency(gt_ids, pred_ids, gt_sizes, pred_sizes, table, int(p.size))


def iou_matrix(
    pred: np.ndarray, gt: np.ndarray, ignore_label: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dense IoU of every (gt object, pred object) pair.

    Memory is ``n_gt * n_pred`` floats; the metrics themselves only use the
    sparse overlapping pairs (:meth:`Contingency.object_pairs`).

    Returns
    -------
    iou, gt_object_ids, pred_object_ids:
        float64 ``[n_gt, n_pred]`` and the object ids of its rows / columns.
    """
    c = contingency_table(pred, gt, ignore_label)
    g0, p0 = c._object_slices()
    pairs = c.object_pairs()
    iou = np.zeros((c.n_gt, c.n_pred), np.float64)
    iou[pairs["gt"], pairs["pred"]] = pairs["iou"]
    return iou, c.gt_ids[g0:], c.pred_ids[p0:]


def match_count(pairs: dict[str, np.ndarray], threshold: float) -> int:
    """Size of the optimal one-to-one matching with ``IoU >= threshold``.

    Parameters
    ----------
    pairs:
        :meth:`Contingency.object_pairs` of a prediction / ground-truth pair.
    threshold:
        IoU threshold in ``(0, 1]``.

    Notes
    -----
    Only pairs meeting the threshold are candidates. When no object takes part
    in two candidate pairs (always the case for ``threshold > 0.5``) every
    candidate is a match; otherwise ``linear_sum_assignment`` runs on the
    candidate block with costs ``-(IoU >= t) - IoU / (2 n)`` which maximises
    the number of matches first and the summed IoU second.
    """
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    ok = pairs["iou"] >= threshold - _TOL
    rows, cols, iou = pairs["gt"][ok], pairs["pred"][ok], pairs["iou"][ok]
    if rows.size == 0:
        return 0
    ur, ri = np.unique(rows, return_inverse=True)
    uc, ci = np.unique(cols, return_inverse=True)
    if ur.size == rows.size and uc.size == cols.size:
        return int(rows.size)
    from scipy.optimize import linear_sum_assignment

    n = min(ur.size, uc.size)
    cost = np.zeros((ur.size, uc.size), np.float64)
    cost[ri, ci] = -1.0 - iou / (2.0 * n)
    r, c = linear_sum_assignment(cost)
    return int(np.count_nonzero(cost[r, c] < 0))


def _ap_from_counts(tp: int, n_pred: int, n_gt: int) -> float:
    if n_pred == 0 and n_gt == 0:
        return 1.0
    return tp / float(n_pred + n_gt - tp)  # TP / (TP + FP + FN)


def _threshold_key(t: float) -> str:
    return f"ap@{t:.2f}"


def ap_from_table(c: Contingency, thresholds: Sequence[float]) -> dict[str, float]:
    """:func:`average_precision` from a contingency table."""
    thresholds = tuple(float(t) for t in thresholds)
    if not thresholds:
        raise ValueError("thresholds: need at least one IoU threshold")
    pairs = c.object_pairs()
    cache: dict[float, float] = {}

    def ap_at(t: float) -> float:
        if t not in cache:
            cache[t] = _ap_from_counts(match_count(pairs, t), c.n_pred, c.n_gt)
        return cache[t]

    out = {_threshold_key(t): ap_at(t) for t in thresholds}
    out["ap50"] = ap_at(0.5)
    out["ap75"] = ap_at(0.75)
    out["map"] = float(np.mean([ap_at(t) for t in thresholds]))
    return out


def average_precision(
    pred: np.ndarray,
    gt: np.ndarray,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    ignore_label: int | None = None,
) -> dict[str, float]:
    """Average precision at IoU thresholds, DSB2018 / StarDist convention.

    At each threshold ``t``: ``AP(t) = TP / (TP + FP + FN)`` where ``TP`` is the
    size of the optimal one-to-one matching of predicted and ground-truth
    objects with ``IoU >= t`` (:func:`match_count`), ``FP`` the unmatched
    predictions and ``FN`` the unmatched ground-truth objects.

    Parameters
    ----------
    pred, gt:
        Label images (0 = background).
    thresholds:
        IoU thresholds; default ``0.50, 0.55, ..., 0.95``.
    ignore_label:
        ``gt`` value whose pixels are not counted.

    Returns
    -------
    dict
        ``"ap@0.50"``, ``"ap@0.55"``, ... (one per threshold), ``"ap50"`` and
        ``"ap75"`` (AP at 0.5 and 0.75, always included) and ``"map"`` (mean over
        ``thresholds``). Both images without objects: every AP is 1; exactly one
        without objects: every AP is 0.
    """
    return ap_from_table(contingency_table(pred, gt, ignore_label), thresholds)


def f1_from_table(c: Contingency, threshold: float) -> dict[str, float]:
    """:func:`matched_f1` (plus ``tp``, ``fp``, ``fn``) from a contingency table."""
    tp = match_count(c.object_pairs(), threshold)
    n_pred, n_gt = c.n_pred, c.n_gt
    if n_pred == 0 and n_gt == 0:
        precision = recall = f1 = 1.0
    else:
        precision = tp / n_pred if n_pred else 0.0
        recall = tp / n_gt if n_gt else 0.0
        f1 = 2.0 * tp / (n_pred + n_gt)
    return {
        "f1": float(f1),
        "precision": float(precision),
        "recall": float(recall),
        "tp": float(tp),
        "fp": float(n_pred - tp),
        "fn": float(n_gt - tp),
    }


def matched_f1(
    pred: np.ndarray, gt: np.ndarray, threshold: float = 0.5, ignore_label: int | None = None
) -> dict[str, float]:
    """F1, precision and recall of the optimal one-to-one matching at ``IoU >= threshold``.

    ``precision = TP / n_pred``, ``recall = TP / n_gt``, ``f1 = 2 TP / (n_pred + n_gt)``.
    Both images without objects: all three are 1. One side without objects: all
    three are 0 (precision without predictions is defined as 0).

    Returns
    -------
    dict
        ``f1``, ``precision``, ``recall`` and the counts ``tp``, ``fp``, ``fn`` (as floats).
    """
    return f1_from_table(contingency_table(pred, gt, ignore_label), threshold)
