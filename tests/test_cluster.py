"""Tests of the embedding clustering methods (spoco_zoo.cluster)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import numpy as np
import pytest
import torch

from spoco_zoo.cluster import METHODS, cluster_embeddings
from spoco_zoo.cluster.common import (
    assign_to_nearest,
    finalize,
    relabel_sequential,
    remove_small,
    set_largest_to_background,
    to_points,
)
from spoco_zoo.cluster.consistency import anchor_cluster
from spoco_zoo.cluster.density import hdbscan_cluster
from spoco_zoo.cluster.mean_shift import mean_shift

DIM = 8
NOISE = 0.1


# ----------------------------------------------------------------------------- helpers
def sbd(pred: np.ndarray, gt: np.ndarray) -> float:
    """Symmetric Best Dice over foreground ids (0 ignored), CVPPP definition."""

    def best_dice(a: np.ndarray, b: np.ndarray) -> float:
        ids_a = [i for i in np.unique(a) if i > 0]
        if not ids_a:
            return 0.0
        size_b = np.bincount(b.ravel())
        scores = []
        for i in ids_a:
            inside = a == i
            overlap = np.bincount(b[inside], minlength=len(size_b))
            overlap[0] = 0
            dice = 2.0 * overlap / (inside.sum() + size_b)
            scores.append(dice[1:].max() if len(dice) > 1 else 0.0)
        return float(np.mean(scores))

    return min(best_dice(pred, gt), best_dice(gt, pred))


def centres(n: int, dim: int, rng: np.random.Generator, min_dist: float = 2.5) -> np.ndarray:
    """``n`` random points with pairwise distance >= min_dist."""
    out = []
    while len(out) < n:
        c = rng.normal(0.0, 2.0, dim)
        if all(np.linalg.norm(c - o) >= min_dist for o in out):
            out.append(c)
    return np.asarray(out, dtype=np.float32)


def embed(labels: np.ndarray, seed: int = 0, dim: int = DIM, noise: float = NOISE) -> np.ndarray:
    """``[E, *S]`` float32: one random point per label id plus isotropic Gaussian noise."""
    rng = np.random.default_rng(seed)
    points = centres(int(labels.max()) + 1, dim, rng)
    emb = points[labels] + rng.normal(0.0, noise, labels.shape + (dim,)).astype(np.float32)
    return np.ascontiguousarray(np.moveaxis(emb, -1, 0))


def blobs_2d() -> np.ndarray:
    """64x64 labels: 8 discs (radius 6-9) on a 3x3 grid (one cell empty) + background 0."""
    yy, xx = np.mgrid[:64, :64]
    labels = np.zeros((64, 64), np.int64)
    radii = [6, 9, 7, 8, 6, 9, 7, 8]
    cells = [(r, c) for r in range(3) for c in range(3) if (r, c) != (1, 1)]
    for obj, ((r, c), rad) in enumerate(zip(cells, radii), start=1):
        cy, cx = 11 + 21 * r, 11 + 21 * c
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= rad * rad] = obj
    return labels


def blobs_3d() -> np.ndarray:
    """16x32x32 labels: 4 balls (radius 5) + background 0."""
    zz, yy, xx = np.mgrid[:16, :32, :32]
    labels = np.zeros((16, 32, 32), np.int64)
    for obj, (cy, cx) in enumerate([(8, 8), (8, 24), (24, 8), (24, 24)], start=1):
        labels[(zz - 8) ** 2 + (yy - cy) ** 2 + (xx - cx) ** 2 <= 25] = obj
    return labels


def with_tiny(labels: np.ndarray) -> np.ndarray:
    """``labels`` plus a 3x3 object (9 pixels) in the empty centre cell."""
    out = labels.copy()
    out[31:34, 31:34] = out.max() + 1
    return out


METHOD_CASES: dict[str, tuple[Callable[..., np.ndarray], dict]] = {
    "mean_shift_flat": (mean_shift, {"kernel": "flat", "device": "cpu"}),
    "mean_shift_gaussian": (mean_shift, {"kernel": "gaussian", "device": "cpu"}),
    "hdbscan": (hdbscan_cluster, {}),
    "consistency": (anchor_cluster, {"device": "cpu"}),
}


def check_labels(out: np.ndarray, shape: tuple[int, ...]) -> None:
    assert isinstance(out, np.ndarray) and out.dtype == np.int32 and out.shape == shape
    ids = np.unique(out)
    assert ids.min() >= 0
    fg = ids[ids > 0]
    np.testing.assert_array_equal(fg, np.arange(1, len(fg) + 1))  # consecutive 1..K


# ----------------------------------------------------------------------------- recovery
@pytest.mark.parametrize("case", sorted(METHOD_CASES))
def test_recovers_2d_blobs(case: str) -> None:
    func, params = METHOD_CASES[case]
    gt = blobs_2d()
    out = func(embed(gt), **params)
    check_labels(out, gt.shape)
    assert out.max() == gt.max()
    assert sbd(out, gt) > 0.99
    assert (out[gt == 0] == 0).mean() > 0.99  # largest cluster = background -> 0


@pytest.mark.parametrize("func", [mean_shift, anchor_cluster], ids=["mean_shift", "consistency"])
def test_recovers_3d_blobs(func: Callable[..., np.ndarray]) -> None:
    gt = blobs_3d()
    out = func(embed(gt, seed=3), device="cpu")
    check_labels(out, gt.shape)
    assert out.max() == gt.max()
    assert sbd(out, gt) > 0.99


def test_method_variants_recover_blobs() -> None:
    gt = blobs_2d()
    emb = embed(gt, seed=6)
    variants = [
        mean_shift(emb, bin_seeding=False, n_seeds=16, device="cpu"),  # random seeds + coverage rounds
        mean_shift(emb, n_samples=1500, device="cpu"),  # modes found on a sample of 1500 pixels
        hdbscan_cluster(emb, assign="sample"),
        hdbscan_cluster(emb, n_samples=1500),
        anchor_cluster(emb, threshold=0.8, device="cpu"),  # tighter kernel: leftovers by nearest mean
    ]
    for out in variants:
        check_labels(out, gt.shape)
        assert sbd(out, gt) > 0.99


def test_mean_shift_sampled_large_image_is_memory_bounded() -> None:
    """147k pixels: an N x N float matrix would need 86 GB; the sampled, blocked version does not."""
    yy, xx = np.mgrid[:384, :384]
    gt = (yy // 96) * 4 + xx // 96  # 16 squares, id 0 is one of them
    emb = embed(gt, seed=5, dim=4)
    out = mean_shift(emb, n_samples=4000, background="none", device="cpu")
    assert out.max() == 16
    assert sbd(out, gt + 1) > 0.99


def test_torch_input_and_determinism() -> None:
    gt = blobs_2d()
    emb = embed(gt, seed=1)
    for func, params in METHOD_CASES.values():
        first = func(emb, seed=7, **params)
        again = func(torch.from_numpy(emb), seed=7, **params)
        np.testing.assert_array_equal(first, again)


# ----------------------------------------------------------------------------- common params
@pytest.mark.parametrize("case", sorted(METHOD_CASES))
def test_mask_outside_is_zero_and_inside_all_objects(case: str) -> None:
    func, params = METHOD_CASES[case]
    gt = blobs_2d()
    emb = embed(gt, seed=2)
    mask = gt > 0
    mask[:, :5] = False  # cut into objects 1, 4, 6 as well
    out = func(emb, mask, **params)
    check_labels(out, gt.shape)
    assert (out[~mask] == 0).all()
    assert (out[mask] > 0).all()  # with a mask, no cluster is taken for background
    assert sbd(out, np.where(mask, gt, 0)) > 0.99


@pytest.mark.parametrize("case", sorted(METHOD_CASES))
def test_empty_mask_gives_zeros(case: str) -> None:
    func, params = METHOD_CASES[case]
    gt = blobs_2d()
    out = func(embed(gt), np.zeros(gt.shape, bool), **params)
    check_labels(out, gt.shape)
    assert not out.any()


@pytest.mark.parametrize("case", sorted(METHOD_CASES))
def test_background_none_labels_every_pixel(case: str) -> None:
    func, params = METHOD_CASES[case]
    gt = blobs_2d()
    out = func(embed(gt), background="none", **params)
    assert out.min() == 1 and out.max() == gt.max() + 1
    assert sbd(out, gt + 1) > 0.99


@pytest.mark.parametrize("case", ["mean_shift_flat", "mean_shift_gaussian", "consistency"])
def test_min_size_removes_small_objects(case: str) -> None:
    func, params = METHOD_CASES[case]
    gt = with_tiny(blobs_2d())
    tiny = gt == gt.max()
    emb = embed(gt, seed=4)
    kept = func(emb, **params)
    assert kept.max() == gt.max() and len(np.unique(kept[tiny])) == 1 and kept[tiny][0] > 0
    removed = func(emb, min_size=20, **params)
    check_labels(removed, gt.shape)
    assert (removed[tiny] == 0).all()
    assert removed.max() == gt.max() - 1
    assert sbd(removed, np.where(tiny, 0, gt)) > 0.99


# ----------------------------------------------------------------------------- validation
BAD_INPUTS = [
    (np.zeros((4, 4), np.float32), None, "3 or 4 dimensions"),
    (np.zeros((2, 2, 4, 4, 4), np.float32), None, "3 or 4 dimensions"),
    (np.zeros((0, 4, 4), np.float32), None, "embedding axis"),
    (np.zeros((2, 0, 4), np.float32), None, "empty image"),
    (np.zeros((2, 4, 4), np.float32), np.ones((4, 5), bool), "mask: shape"),
    (np.array([[[0.0, np.nan]]], np.float32), None, "NaN or infinite"),
    (np.array([[[0.0, np.inf]]], np.float32), None, "NaN or infinite"),
    (np.array([[["a", "b"]]]), None, "numeric"),
]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("emb,mask,message", BAD_INPUTS)
def test_bad_input_raises_value_error(method: str, emb: np.ndarray, mask, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cluster_embeddings(emb, method, mask)


def test_nan_outside_mask_is_ignored() -> None:
    emb = np.zeros((2, 4, 4), np.float32)
    emb[:, :, 2:] = 3.0
    emb[:, 0, 0] = np.nan
    mask = np.ones((4, 4), bool)
    mask[0, 0] = False
    out = mean_shift(emb, mask, device="cpu")
    assert out[0, 0] == 0 and out.max() == 2


def test_bad_parameters_raise_value_error() -> None:
    emb = embed(blobs_2d())
    with pytest.raises(ValueError, match="bandwidth"):
        mean_shift(emb, bandwidth=0.0)
    with pytest.raises(ValueError, match="kernel"):
        mean_shift(emb, kernel="epanechnikov")
    with pytest.raises(ValueError, match="background"):
        anchor_cluster(emb, background="smallest")
    with pytest.raises(ValueError, match="min_size"):
        hdbscan_cluster(emb, min_size=-1)
    with pytest.raises(ValueError, match="threshold"):
        anchor_cluster(emb, threshold=1.5)


# ----------------------------------------------------------------------------- dispatcher
def test_dispatcher_methods_and_parameter_names() -> None:
    gt = blobs_2d()
    emb = embed(gt)
    assert METHODS == ("graph", "mean_shift", "hdbscan", "consistency", "watershed")
    direct = mean_shift(emb, bandwidth=0.6, device="cpu")
    np.testing.assert_array_equal(cluster_embeddings(emb, "mean_shift", bandwidth=0.6, device="cpu"), direct)
    np.testing.assert_array_equal(cluster_embeddings(emb, "mean_shift", delta_var=0.6, device="cpu"), direct)
    anchors = anchor_cluster(emb, delta_var=0.6, device="cpu")
    np.testing.assert_array_equal(cluster_embeddings(emb, "consistency", bandwidth=0.6, device="cpu"), anchors)
    # None means default (a ClusteringConfig with bandwidth=None); hdbscan ignores the kernel width
    out = cluster_embeddings(emb, "hdbscan", bandwidth=None, min_size=16, min_samples=None)
    np.testing.assert_array_equal(out, hdbscan_cluster(emb, min_size=16))
    np.testing.assert_array_equal(cluster_embeddings(emb, "hdbscan", bandwidth=0.5), hdbscan_cluster(emb))


def test_dispatcher_errors() -> None:
    emb = embed(blobs_2d())
    with pytest.raises(ValueError, match="mean_shift, hdbscan, consistency"):
        cluster_embeddings(emb, "kmeans")
    with pytest.raises(ValueError, match="n_clusters"):
        cluster_embeddings(emb, "mean_shift", n_clusters=3)
    with pytest.raises(ValueError, match="conflicting"):
        cluster_embeddings(emb, "consistency", bandwidth=0.5, delta_var=0.4)


def test_light_imports() -> None:
    """The package and the torch methods must not pull in hdbscan / scikit-learn / scipy."""
    code = (
        "import sys, spoco_zoo.cluster, spoco_zoo.cluster.common, spoco_zoo.cluster.mean_shift, "
        "spoco_zoo.cluster.consistency\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('hdbscan', 'sklearn', 'scipy', 'skimage'))\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ----------------------------------------------------------------------------- helpers of common
def test_relabel_remove_small_largest() -> None:
    labels = np.array([[5, 5, 5, 0], [2, 2, 9, 0], [5, 5, 0, 0]])
    np.testing.assert_array_equal(relabel_sequential(labels), [[1, 1, 1, 0], [2, 2, 3, 0], [1, 1, 0, 0]])
    assert relabel_sequential(labels).dtype == np.int32
    np.testing.assert_array_equal(remove_small(labels, 2), np.where(labels == 9, 0, labels))
    np.testing.assert_array_equal(set_largest_to_background(labels), np.where(labels == 5, 0, labels))


def test_assign_to_nearest_matches_brute_force() -> None:
    gen = torch.Generator().manual_seed(0)
    points = torch.randn(1000, 5, generator=gen)
    cents = torch.randn(7, 5, generator=gen)
    index, d2 = assign_to_nearest(points, cents, chunk=64)
    full = torch.cdist(points, cents).square()
    torch.testing.assert_close(index, full.argmin(dim=1))
    torch.testing.assert_close(d2, full.min(dim=1).values, atol=1e-4, rtol=1e-4)


def test_to_points_and_finalize_with_mask() -> None:
    emb = torch.arange(2 * 3 * 4, dtype=torch.float64).reshape(2, 3, 4)
    mask = np.zeros((3, 4), bool)
    mask[1, 1:3] = True
    points, index = to_points(emb, mask)
    assert points.dtype == torch.float32 and points.shape == (2, 2)
    assert index.tolist() == [5, 6]
    out = finalize(np.array([3, 1]), index, (3, 4))
    assert out[1, 1] == 1 and out[1, 2] == 2 and out.sum() == 3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu() -> None:
    gt = blobs_2d()
    emb = embed(gt)
    for func in (mean_shift, anchor_cluster):
        gpu = func(emb, device="cuda")
        assert sbd(gpu, func(emb, device="cpu")) > 0.99
