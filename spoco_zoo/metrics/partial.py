"""Scores against sparse annotations: complete objects and (optionally) annotated background.

With sparse labels only some objects are known, each completely. A predicted segment that
overlaps an annotated object is therefore judged on all its pixels: whatever it covers outside
the object is wrong (another object or background), so the IoU of the object with its best
segment penalises merges and splits as on dense ground truth. Predicted segments elsewhere are
unknown -- except where the background is annotated (label 0): foreground predicted there is a
false detection.

:func:`partial_scores` is what the trainer validates and tunes the clustering on when no dense
validation images exist (objects set aside from the training annotations,
:func:`spoco_zoo.data.dataset.hold_out_objects`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = ["PARTIAL_KEYS", "partial_scores", "partial_score"]

#: Keys of :func:`partial_scores`.
PARTIAL_KEYS = ("object_dice", "object_ap50", "false_foreground")


def partial_scores(pred: np.ndarray, labels: np.ndarray, ignore_label: int = -1) -> dict[str, float]:
    """How well ``pred`` segments the annotated objects of sparse ``labels``.

    Parameters
    ----------
    pred : numpy.ndarray
        Integer instance labels ``[*S]`` (0 = background).
    labels : numpy.ndarray
        Sparse labels ``[*S]``: ids > 0 complete objects, 0 annotated background,
        ``ignore_label`` not annotated.
    ignore_label : int
        Value of unannotated pixels.

    Returns
    -------
    dict
        ``object_dice``: mean over annotated objects of the Dice with their best segment (the
        ground-truth half of SBD); ``object_ap50``: share of annotated objects whose best segment
        has IoU > 0.5; ``false_foreground``: share of annotated background pixels predicted as
        objects (0 without annotated background).

    Examples
    --------
    >>> labels = np.full((6, 8), -1); labels[:, :2] = 0; labels[1:4, 3:6] = 5
    >>> pred = np.zeros((6, 8), int); pred[1:4, 3:6] = 1; pred[0, 0] = 2
    >>> scores = partial_scores(pred, labels)
    >>> scores["object_dice"], scores["object_ap50"], round(scores["false_foreground"], 3)
    (1.0, 1.0, 0.083)
    """
    pred = np.asarray(pred).astype(np.int64).ravel()
    labels = np.asarray(labels).astype(np.int64).ravel()
    if pred.shape != labels.shape:
        raise ValueError(f"pred and labels must have one shape, got {pred.size} and {labels.size} pixels")
    background = labels == 0
    false_fg = float((pred[background] > 0).mean()) if background.any() else 0.0
    objects = labels > 0
    if not objects.any():
        return {"object_dice": 0.0, "object_ap50": 0.0, "false_foreground": false_fg}
    ids, gt = np.unique(labels[objects], return_inverse=True)
    segments, seg = np.unique(pred, return_inverse=True)
    seg_sizes = np.bincount(seg, minlength=len(segments))
    gt_sizes = np.bincount(gt, minlength=len(ids))
    overlap = np.zeros((len(ids), len(segments)), np.int64)
    np.add.at(overlap, (gt, seg[objects]), 1)
    overlap[:, segments == 0] = 0  # background is no segment of an object
    dice = 2 * overlap / (gt_sizes[:, None] + seg_sizes[None, :])
    iou = overlap / (gt_sizes[:, None] + seg_sizes[None, :] - overlap)
    return {
        "object_dice": float(dice.max(axis=1).mean()),
        "object_ap50": float((iou.max(axis=1) > 0.5).mean()),
        "false_foreground": false_fg,
    }


def partial_score(scores: Mapping[str, float]) -> float:
    """One number to rank segmentations by (higher is better): object Dice + AP50 - false foreground.

    >>> partial_score({"object_dice": 0.8, "object_ap50": 0.5, "false_foreground": 0.1})
    1.2
    """
    return float(scores["object_dice"] + scores["object_ap50"] - scores["false_foreground"])
