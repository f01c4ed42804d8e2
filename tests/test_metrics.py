"""Instance metrics on hand-made label images with hand-computed scores."""

from __future__ import annotations

import numpy as np
import pytest

from spoco_zoo.metrics import (
    METRIC_KEYS,
    adapted_rand_error,
    average_precision,
    best_dice,
    contingency_table,
    evaluate_instances,
    iou_matrix,
    matched_f1,
    symmetric_best_dice,
    variation_of_information,
)

PERFECT = {
    "sbd": 1.0,
    "ap50": 1.0,
    "ap75": 1.0,
    "map": 1.0,
    "f1": 1.0,
    "precision": 1.0,
    "recall": 1.0,
    "are": 0.0,
    "voi_split": 0.0,
    "voi_merge": 0.0,
}


def _square() -> np.ndarray:
    """10 x 10 image, one 4 x 4 object (16 px) at rows 2:6, cols 2:6; 84 background pixels."""
    gt = np.zeros((10, 10), np.int64)
    gt[2:6, 2:6] = 1
    return gt


def test_keys_and_perfect_scores_with_renamed_ids() -> None:
    gt = np.zeros((12, 12), np.int64)
    gt[1:5, 1:5] = 1
    gt[6:11, 2:9] = 2
    gt[1:4, 7:11] = 3
    pred = np.select([gt == 1, gt == 2, gt == 3], [70, 5, 1000], 0)  # same partition, other ids
    scores = evaluate_instances(pred, gt)
    assert tuple(scores) == METRIC_KEYS
    assert scores == PERFECT
    assert all(isinstance(v, float) for v in scores.values())
    ap = average_precision(pred, gt)
    assert [ap[f"ap@{t:.2f}"] for t in np.arange(0.5, 0.96, 0.05)] == [1.0] * 10


def test_shifted_object_exact_iou_and_dice() -> None:
    gt = _square()
    pred = np.zeros_like(gt)
    pred[2:6, 3:7] = 9  # shifted one column to the right
    # |gt ∩ pred| = 4 rows x 3 cols = 12, |gt ∪ pred| = 16 + 16 - 12 = 20
    # IoU = 12 / 20 = 0.6, Dice = 2 * 12 / (16 + 16) = 0.75
    iou, gt_ids, pred_ids = iou_matrix(pred, gt)
    assert iou.tolist() == [[0.6]] and gt_ids.tolist() == [1] and pred_ids.tolist() == [9]
    assert symmetric_best_dice(pred, gt) == 0.75
    # matched at IoU thresholds 0.50, 0.55, 0.60 (AP = 1/(1+0+0)), unmatched above (AP = 0/(0+1+1))
    ap = average_precision(pred, gt)
    assert [ap[f"ap@{t:.2f}"] for t in (0.5, 0.55, 0.6, 0.65, 0.95)] == [1.0, 1.0, 1.0, 0.0, 0.0]
    assert ap["ap50"] == 1.0 and ap["ap75"] == 0.0
    assert ap["map"] == pytest.approx(3 / 10)
    assert matched_f1(pred, gt, threshold=0.7)["f1"] == 0.0
    # adapted Rand error, background a segment. Contingency (gt rows bg/obj, pred cols bg/obj):
    # [[80, 4], [4, 12]]; pair sums: sum n_ij^2 - N = 6400 + 16 + 16 + 144 - 100 = 6476,
    # gt: 84^2 + 16^2 - 100 = 7212, pred: the same 7212 -> ARE = 1 - 6476 / 7212 = 736 / 7212
    assert adapted_rand_error(pred, gt) == pytest.approx(736 / 7212, abs=1e-12)


def test_split_object() -> None:
    gt = _square()
    pred = np.zeros_like(gt)
    pred[2:6, 2:4] = 1  # left half, 8 px
    pred[2:6, 4:6] = 2  # right half, 8 px
    # each half: IoU = 8 / 16 = 0.5, Dice = 2 * 8 / (8 + 16) = 2/3
    # BD(pred, gt) = mean(2/3, 2/3); BD(gt, pred) = 2/3 -> SBD = 2/3
    assert symmetric_best_dice(pred, gt) == pytest.approx(2 / 3)
    assert best_dice(pred, gt) == pytest.approx(2 / 3)
    # AP50: one half matched (IoU 0.5 >= 0.5): TP=1, FP=1, FN=0 -> 1/2; nothing matches at 0.55+
    scores = evaluate_instances(pred, gt)
    assert scores["ap50"] == 0.5 and scores["ap75"] == 0.0
    assert scores["map"] == pytest.approx(0.05)
    assert (scores["precision"], scores["recall"]) == (0.5, 1.0)
    assert scores["f1"] == pytest.approx(2 / 3)  # 2 TP / (n_pred + n_gt) = 2 / 3
    # VOI split = H(pred | gt): the object (p = 16/100) is cut in two equal halves (1 bit) -> 0.16
    split, merge = variation_of_information(pred, gt)
    assert split == pytest.approx(0.16) and merge == 0.0
    assert scores["voi_split"] == pytest.approx(0.16) and scores["voi_merge"] == 0.0
    # ARE: sum n_ij^2 - N = 84^2 + 8^2 + 8^2 - 100 = 7084; gt 7212, pred 7084
    # -> 1 - 7084 / ((7084 + 7212) / 2) = 64 / 7148
    assert scores["are"] == pytest.approx(64 / 7148, abs=1e-12)


def test_merged_prediction() -> None:
    gt = np.zeros((10, 10), np.int64)
    gt[2:6, 2:4] = 1
    gt[2:6, 4:6] = 2
    pred = (gt > 0).astype(np.int64) * 3  # both objects predicted as one 16 px object
    # IoU with each gt object = 8 / 16 = 0.5 -> at t=0.5 only one can be matched (one-to-one):
    # TP=1, FP=0, FN=1 -> AP50 = 1 / 2
    ap = average_precision(pred, gt)
    assert ap["ap@0.50"] == 0.5 and ap["ap50"] == 0.5 and ap["ap@0.55"] == 0.0
    f1 = matched_f1(pred, gt)
    assert (f1["tp"], f1["fp"], f1["fn"]) == (1.0, 0.0, 1.0)
    assert (f1["precision"], f1["recall"]) == (1.0, 0.5)
    split, merge = variation_of_information(pred, gt)
    assert split == 0.0 and merge == pytest.approx(0.16)  # H(gt | pred): 16% of pixels, 1 bit each
    assert symmetric_best_dice(pred, gt) == pytest.approx(2 / 3)


def test_matching_is_optimal_not_greedy() -> None:
    # one row of 20 px: gt1 = [0, 10), gt2 = [10, 20); pred B = [0, 3), pred A = [3, 14)
    gt = np.zeros((1, 20), np.int64)
    gt[0, :10] = 1
    gt[0, 10:] = 2
    pred = np.zeros_like(gt)
    pred[0, :3] = 1
    pred[0, 3:14] = 2
    # IoU(A, gt1) = 7 / 14 = 0.5, IoU(A, gt2) = 4 / 17 ~ 0.235, IoU(B, gt1) = 3 / 10 = 0.3.
    # Greedy (best IoU first) takes A-gt1 and leaves B unmatched; the optimal matching at
    # t = 0.2 is A-gt2 + B-gt1 -> 2 true positives.
    f1 = matched_f1(pred, gt, threshold=0.2)
    assert f1["tp"] == 2.0 and f1["f1"] == 1.0
    assert average_precision(pred, gt, thresholds=(0.2, 0.4))["ap@0.20"] == 1.0
    assert average_precision(pred, gt, thresholds=(0.2, 0.4))["ap@0.40"] == pytest.approx(1 / 3)


def test_3d_volume() -> None:
    gt = np.zeros((4, 6, 6), np.int64)
    gt[1:3, 1:4, 1:4] = 1  # 2 x 3 x 3 = 18 voxels
    gt[0:2, 4:6, 4:6] = 2  # 2 x 2 x 2 = 8 voxels
    pred = np.zeros_like(gt)
    pred[2:4, 1:4, 1:4] = 4  # object 1 shifted by one slice: overlap 9, union 27
    pred[gt == 2] = 7  # object 2 exact
    # IoU = 9 / 27 = 1/3, Dice = 18 / 36 = 0.5; BD either way = (0.5 + 1) / 2 = 0.75
    assert symmetric_best_dice(pred, gt) == pytest.approx(0.75)
    scores = evaluate_instances(pred, gt)
    # at every threshold >= 0.5 only object 2 matches: TP=1, FP=1, FN=1 -> 1/3
    assert scores["ap50"] == pytest.approx(1 / 3) and scores["map"] == pytest.approx(1 / 3)
    assert scores["voi_split"] > 0 and scores["voi_merge"] > 0
    assert evaluate_instances(gt, gt) == PERFECT


def test_empty_images() -> None:
    empty = np.zeros((8, 8), np.int64)
    assert evaluate_instances(empty, empty) == PERFECT  # nothing to find, nothing found: perfect
    gt = empty.copy()
    gt[2:5, 2:5] = 1
    for pred, truth in ((empty, gt), (gt, empty)):  # one side empty: object scores are 0
        scores = evaluate_instances(pred, truth)
        for key in ("sbd", "ap50", "ap75", "map", "f1", "precision", "recall"):
            assert scores[key] == 0.0, key
        assert scores["are"] > 0
    # missing object = merge with background; spurious object = split of background
    missing, spurious = evaluate_instances(empty, gt), evaluate_instances(gt, empty)
    assert missing["voi_merge"] > 0 and missing["voi_split"] == 0
    assert spurious["voi_split"] > 0 and spurious["voi_merge"] == 0


def test_ignore_label_excludes_pixels() -> None:
    gt = np.full((10, 10), -1, np.int64)  # sparse gt: only the left half annotated
    gt[:, :5] = 0
    gt[2:6, 1:4] = 1
    pred = np.zeros((10, 10), np.int64)
    pred[2:6, 1:4] = 3
    pred[1:8, 6:9] = 4  # an object in unannotated pixels does not count
    assert evaluate_instances(pred, gt, ignore_label=-1) == PERFECT
    with pytest.raises(ValueError, match="ignore_label"):
        evaluate_instances(pred, gt)
    c = contingency_table(pred, gt, ignore_label=-1)
    assert c.n_pixels == 50 and c.n_pred == 1 and c.n_gt == 1


def test_validation_errors() -> None:
    with pytest.raises(ValueError, match=r"\(10, 10\).*\(10, 11\)"):
        evaluate_instances(np.zeros((10, 10), int), np.zeros((10, 11), int))
    with pytest.raises(ValueError, match="shape"):
        symmetric_best_dice(np.zeros((2, 3, 4), int), np.zeros((3, 4), int))
    with pytest.raises(ValueError, match="integer"):
        evaluate_instances(np.full((4, 4), 0.5), np.zeros((4, 4), int))
    with pytest.raises(ValueError, match="pred"):
        evaluate_instances(-np.ones((4, 4), int), np.zeros((4, 4), int))


def test_large_ids_and_many_objects_are_fast() -> None:
    rng = np.random.default_rng(0)
    gt = np.kron(np.arange(1, 401).reshape(20, 20), np.ones((10, 10), np.int64))  # 400 squares, 200 x 200
    pred = gt * 1_000_003  # huge, sparse ids (np.unique path)
    flip = rng.random(gt.shape) < 0.01
    pred[flip] = 0
    scores = evaluate_instances(pred, gt)
    assert scores["ap50"] == 1.0 and scores["sbd"] > 0.98


def _random_labels(rng: np.random.Generator, shape: tuple, n: int) -> np.ndarray:
    """Touching random objects: nearest of ``n`` random seeds, some seeds made background."""
    grid = np.stack(np.meshgrid(*(np.arange(s) for s in shape), indexing="ij"), -1)
    seeds = rng.uniform(0, shape, size=(n, len(shape)))
    nearest = np.argmin(((grid[..., None, :] - seeds) ** 2).sum(-1), -1)
    ids = rng.permutation(n) * 3 + 1
    ids[rng.random(n) < 0.25] = 0
    return ids[nearest]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_brute_force_per_object_loops(seed: int) -> None:
    from scipy.optimize import linear_sum_assignment

    rng = np.random.default_rng(seed)
    shape = (24, 30) if seed < 2 else (6, 12, 10)
    gt, pred = _random_labels(rng, shape, 12), _random_labels(rng, shape, 15)
    gts = [g for g in np.unique(gt) if g > 0]
    preds = [p for p in np.unique(pred) if p > 0]
    inter = np.array([[np.sum((gt == g) & (pred == p)) for p in preds] for g in gts], float)
    gs = np.array([np.sum(gt == g) for g in gts], float)[:, None]
    ps = np.array([np.sum(pred == p) for p in preds], float)[None, :]
    iou, dice = inter / (gs + ps - inter), 2 * inter / (gs + ps)
    sbd = min(dice.max(0).mean(), dice.max(1).mean())
    assert symmetric_best_dice(pred, gt) == pytest.approx(sbd)
    np.testing.assert_allclose(iou_matrix(pred, gt)[0], iou)
    for t in (0.3, 0.5, 0.75):
        r, c = linear_sum_assignment(-(iou >= t).astype(float))  # maximise the matches
        tp = int(np.sum(iou[r, c] >= t))
        expected = tp / (len(preds) + len(gts) - tp)
        assert average_precision(pred, gt, thresholds=(t,))[f"ap@{t:.2f}"] == pytest.approx(expected)
    import skimage.metrics as skm

    assert adapted_rand_error(pred, gt) == pytest.approx(skm.adapted_rand_error(gt, pred, ignore_labels=())[0])
    np.testing.assert_allclose(variation_of_information(pred, gt), skm.variation_of_information(gt, pred), atol=1e-12)
