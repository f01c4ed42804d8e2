"""False merges and false splits: which predicted objects join ground-truth objects, which split them.

Both are read from the contingency table (:func:`~spoco_zoo.metrics.matching.contingency_table`)
by how much of a ground-truth object a predicted object *covers* (shared pixels / pixels of the
ground-truth object):

* a **merge** is a predicted object that covers two or more ground-truth objects each by at least
  ``merge_cover`` (default 50 %);
* a **split** is a ground-truth object covered by two or more predicted objects each by at least
  ``split_cover`` (default 20 %).

``ignore_label`` pixels are not counted (as in every metric of :mod:`spoco_zoo.metrics`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spoco_zoo.metrics.matching import contingency_table

__all__ = ["MERGE_COVER", "SPLIT_COVER", "MergesSplits", "merges_and_splits"]

#: Share of a ground-truth object a predicted object must cover to count in a merge.
MERGE_COVER = 0.5
#: Share of a ground-truth object each of its pieces must cover to count as a split.
SPLIT_COVER = 0.2


@dataclass(frozen=True)
class MergesSplits:
    """Label ids of the false merges and false splits of a prediction.

    Attributes
    ----------
    merges:
        Predicted ids that merge two or more ground-truth objects.
    merged:
        Ground-truth ids merged by them.
    splits:
        Ground-truth ids split into two or more predicted objects.
    pieces:
        Predicted ids that are pieces of them.
    """

    merges: np.ndarray
    merged: np.ndarray
    splits: np.ndarray
    pieces: np.ndarray


def merges_and_splits(
    pred: np.ndarray,
    gt: np.ndarray,
    ignore_label: int | None = None,
    merge_cover: float = MERGE_COVER,
    split_cover: float = SPLIT_COVER,
) -> MergesSplits:
    """Find the false merges and splits of ``pred`` against ``gt`` (see the module docstring).

    Parameters
    ----------
    pred, gt:
        Label images of the same shape (0 = background).
    ignore_label:
        ``gt`` value of pixels that are not counted.
    merge_cover, split_cover:
        Smallest covered share of a ground-truth object for a merge / a split piece.

    Returns
    -------
    MergesSplits
        Sorted ``int64`` id arrays.

    Examples
    --------
    >>> gt = np.array([[1, 1, 0, 2, 2], [3, 3, 3, 3, 0]])
    >>> pred = np.array([[5, 5, 5, 5, 5], [6, 6, 7, 7, 0]])
    >>> found = merges_and_splits(pred, gt)
    >>> found.merges.tolist(), found.merged.tolist(), found.splits.tolist(), found.pieces.tolist()
    ([5], [1, 2], [3], [6, 7])
    """
    c = contingency_table(pred, gt, ignore_label)
    pairs = c.object_pairs()
    gt_ids = c.gt_ids[c.gt_ids > 0].astype(np.int64)
    pred_ids = c.pred_ids[c.pred_ids > 0].astype(np.int64)
    cover = pairs["intersection"] / pairs["gt_size"]  # share of the gt object covered by the pred object

    merging = cover >= merge_cover
    per_pred = np.bincount(pairs["pred"][merging], minlength=len(pred_ids))
    merge_pairs = merging & (per_pred[pairs["pred"]] >= 2)

    piece = cover >= split_cover
    per_gt = np.bincount(pairs["gt"][piece], minlength=len(gt_ids))
    split_pairs = piece & (per_gt[pairs["gt"]] >= 2)

    return MergesSplits(
        merges=np.unique(pred_ids[pairs["pred"][merge_pairs]]),
        merged=np.unique(gt_ids[pairs["gt"][merge_pairs]]),
        splits=np.unique(gt_ids[pairs["gt"][split_pairs]]),
        pieces=np.unique(pred_ids[pairs["pred"][split_pairs]]),
    )
