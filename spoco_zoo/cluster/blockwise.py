"""Local clustering: cluster overlapping blocks, stitch their labels across block borders.

Pixel embeddings are trained to separate the objects *within a training
patch*; an embedding space of a few dimensions cannot hold hundreds of
distinct clusters, so the embeddings of a large image are clustered locally:

1. :func:`block_grid` cuts the image into *cores* of ``block_shape`` that
   tile it; each block clusters a *window*: its core grown by ``overlap`` on
   every side (clipped to the image).
2. Each window is clustered on its own (any method of
   :func:`spoco_zoo.cluster.cluster_embeddings`, every cluster kept).
3. Stitching gives every block's clusters globally unique ids
   (:func:`label_offsets`) and merges two clusters of overlapping blocks when
   each is the other's best match, by intersection over union, in the region
   the two windows share (:func:`match_windows`, :func:`match_overlap`); the
   merges are resolved at once (:func:`stitch_table`: every id -> the smallest
   id of its group). Every pixel takes the label of the block whose core holds it.

These parts are the one stitching implementation: :mod:`spoco_zoo.cluster.pipeline` runs
them block by block (in memory or, with Dask, out of core). Imports numpy (and, through
:mod:`spoco_zoo.cluster.components`, torch) only.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from spoco_zoo.cluster.components import graph_components
from spoco_zoo.errors import DataError

__all__ = [
    "Block",
    "block_grid",
    "overlapping_pairs",
    "block_neighbours",
    "local_region",
    "match_overlap",
    "largest_window",
    "label_offsets",
    "match_windows",
    "stitch_table",
]

#: Two clusters of neighbouring blocks merge when their IoU in the shared region reaches this.
DEFAULT_MATCH_IOU = 0.5
#: Label pairs are counted in a dense table (no sort) when ``(max_a + 1) * (max_b + 1)`` is at most this.
DENSE_PAIR_TABLE = 1 << 22


@dataclass(frozen=True)
class Block:
    """One block of a grid: the ``window`` it clusters and the ``core`` whose labels it owns."""

    window: tuple[slice, ...]
    core: tuple[slice, ...]


def _per_axis(value: int | Sequence[int], ndim: int, name: str) -> tuple[int, ...]:
    values = (int(value),) * ndim if isinstance(value, (int, np.integer)) else tuple(int(v) for v in value)
    if len(values) == 1:
        values = values * ndim
    if len(values) != ndim:
        raise DataError(f"{name}: expected 1 or {ndim} values (one per spatial axis), got {list(values)}")
    return values


def block_grid(shape: Sequence[int], block_shape: int | Sequence[int], overlap: int | Sequence[int]) -> list[Block]:
    """Blocks whose cores tile ``shape``, each with a window grown by ``overlap``.

    Cores have ``block_shape`` (the last one along an axis may be smaller); an
    axis shorter than its block size is one core. Windows are clipped to the image.

    Examples
    --------
    >>> [(b.window, b.core) for b in block_grid((10,), 4, 1)]  # doctest: +NORMALIZE_WHITESPACE
    [((slice(0, 5, None),), (slice(0, 4, None),)),
     ((slice(3, 9, None),), (slice(4, 8, None),)),
     ((slice(7, 10, None),), (slice(8, 10, None),))]
    """
    shape = tuple(int(s) for s in shape)
    ndim = len(shape)
    blocks_ = _per_axis(block_shape, ndim, "block_shape")
    overlaps = _per_axis(overlap, ndim, "overlap")
    if min(blocks_) < 1:
        raise DataError(f"block_shape: must be positive, got {list(blocks_)}")
    if min(overlaps) < 0:
        raise DataError(f"overlap: must be >= 0, got {list(overlaps)}")
    starts = [range(0, extent, size) for extent, size in zip(shape, blocks_)]
    grid = []
    for corner in itertools.product(*starts):
        core = tuple(slice(c, min(c + b, e)) for c, b, e in zip(corner, blocks_, shape))
        window = tuple(slice(max(0, s.start - o), min(e, s.stop + o)) for s, o, e in zip(core, overlaps, shape))
        grid.append(Block(window=window, core=core))
    return grid


def _intersection(a: tuple[slice, ...], b: tuple[slice, ...]) -> tuple[slice, ...] | None:
    region = tuple(slice(max(x.start, y.start), min(x.stop, y.stop)) for x, y in zip(a, b))
    return region if all(s.start < s.stop for s in region) else None


def local_region(region: tuple[slice, ...], window: tuple[slice, ...]) -> tuple[slice, ...]:
    """``region`` (image coordinates) relative to the start of ``window``.

    >>> local_region((slice(4, 6),), (slice(3, 9),))
    (slice(1, 3, None),)
    """
    return tuple(slice(r.start - w.start, r.stop - w.start) for r, w in zip(region, window))


def overlapping_pairs(blocks: Sequence[Block]) -> list[tuple[int, int]]:
    """Index pairs ``i < j`` of blocks whose windows intersect.

    >>> overlapping_pairs(block_grid((10,), 4, 1))
    [(0, 1), (1, 2)]
    """
    starts = np.array([[s.start for s in b.window] for b in blocks])
    stops = np.array([[s.stop for s in b.window] for b in blocks])
    pairs: list[tuple[int, int]] = []
    for i in range(len(blocks)):
        hit = np.all((starts[i + 1 :] < stops[i]) & (stops[i + 1 :] > starts[i]), axis=1)
        pairs.extend((i, i + 1 + int(k)) for k in np.flatnonzero(hit))
    return pairs


def match_overlap(
    labels_a: np.ndarray, labels_b: np.ndarray, min_iou: float = DEFAULT_MATCH_IOU
) -> list[tuple[int, int]]:
    """Pairs of labels that are each other's best match in a region both label images cover.

    Parameters
    ----------
    labels_a, labels_b : numpy.ndarray
        Integer labels of the *same* pixels from two blocks (0 = unlabeled, never matched).
    min_iou : float
        Smallest intersection over union (within the region) for a match.

    Returns
    -------
    list of (int, int)
        ``(label in a, label in b)``, mutual best matches by IoU with ``IoU >= min_iou``.

    Examples
    --------
    >>> a = np.array([1, 1, 1, 2, 2, 0])
    >>> b = np.array([5, 5, 7, 7, 7, 7])
    >>> match_overlap(a, b)
    [(1, 5), (2, 7)]
    """
    if labels_a.shape != labels_b.shape:
        raise DataError(f"labels: shapes {labels_a.shape} and {labels_b.shape} differ")
    a, b = labels_a.reshape(-1), labels_b.reshape(-1)
    both = (a != 0) & (b != 0)
    if not both.any():
        return []
    low = min(int(a.min()), int(b.min()))
    n_a, n_b = int(a.max()) + 1, int(b.max()) + 1
    if low >= 0 and n_a * n_b <= DENSE_PAIR_TABLE:  # small ids (window labels): count, no sort
        size_a, size_b = np.bincount(a, minlength=n_a), np.bincount(b, minlength=n_b)
        joint = np.bincount(a[both].astype(np.int64) * n_b + b[both], minlength=n_a * n_b)
        pair_keys = np.flatnonzero(joint)
        counts = joint[pair_keys]
        ids_a, ids_b = np.arange(n_a), np.arange(n_b)
    else:
        ids_a, inv_a, size_a = np.unique(a.astype(np.int64), return_inverse=True, return_counts=True)
        ids_b, inv_b, size_b = np.unique(b.astype(np.int64), return_inverse=True, return_counts=True)
        n_b = len(ids_b)
        pair_keys, counts = np.unique(inv_a.reshape(-1)[both] * n_b + inv_b.reshape(-1)[both], return_counts=True)
    ia, ib = pair_keys // n_b, pair_keys % n_b
    iou = counts / (size_a[ia] + size_b[ib] - counts)
    best_for_a = np.full(len(ids_a), -1.0)
    np.maximum.at(best_for_a, ia, iou)
    best_for_b = np.full(len(ids_b), -1.0)
    np.maximum.at(best_for_b, ib, iou)
    keep = (iou >= min_iou) & (iou == best_for_a[ia]) & (iou == best_for_b[ib])
    return [(int(x), int(y)) for x, y in zip(ids_a[ia[keep]], ids_b[ib[keep]])]


def block_neighbours(blocks: Sequence[Block]) -> list[list[tuple[int, int]]]:
    """For every block, ``(axis, j)`` of the blocks whose core starts where its core ends along ``axis``.

    Cores must come from one grid (:func:`block_grid`); these are the face neighbours whose
    pixels touch the block's pixels across a core border.

    >>> block_neighbours(block_grid((8, 6), 4, 0))
    [[(0, 2), (1, 1)], [(0, 3)], [(1, 3)], []]
    """
    starts = {tuple(s.start for s in b.core): i for i, b in enumerate(blocks)}
    out: list[list[tuple[int, int]]] = []
    for block in blocks:
        found = []
        for axis, extent in enumerate(block.core):
            key = [s.start for s in block.core]
            key[axis] = extent.stop
            j = starts.get(tuple(key))
            if j is not None:
                found.append((axis, j))
        out.append(found)
    return out


def largest_window(blocks: Sequence[Block]) -> int:
    """Pixels (voxels) of the largest window of a grid.

    >>> largest_window(block_grid((10,), 4, 1))
    6
    """
    return max((math.prod(s.stop - s.start for s in b.window) for b in blocks), default=0)


def label_offsets(maxima: Sequence[int]) -> tuple[np.ndarray, int]:
    """Offsets that make the block-local ids ``1..max`` of every block globally unique.

    Block ``i``'s local id ``l > 0`` becomes ``offsets[i] + l``; ``total`` is one more than the
    largest global id.

    >>> offsets, total = label_offsets([2, 0, 3])
    >>> offsets.tolist(), total
    ([1, 4, 5], 9)
    """
    sizes = np.asarray([int(m) + 1 for m in maxima], dtype=np.int64)
    offsets = 1 + np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    return offsets, int(1 + sizes.sum())


def match_windows(
    block_a: Block,
    block_b: Block,
    labels_a: np.ndarray,
    labels_b: np.ndarray,
    offset_a: int,
    offset_b: int,
    min_iou: float = DEFAULT_MATCH_IOU,
) -> np.ndarray:
    """Global id pairs ``[P, 2]`` of two blocks' clusters that match where their windows overlap.

    ``labels_a`` and ``labels_b`` are the block-local labels of the two whole windows (0 =
    unassigned); see :func:`match_overlap` for the rule.
    """
    region = _intersection(block_a.window, block_b.window)
    if region is None:
        return np.zeros((0, 2), dtype=np.int64)
    a = np.asarray(labels_a[local_region(region, block_a.window)]).astype(np.int64)
    b = np.asarray(labels_b[local_region(region, block_b.window)]).astype(np.int64)
    pairs = match_overlap(a, b, min_iou)
    if not pairs:
        return np.zeros((0, 2), dtype=np.int64)
    return np.asarray(pairs, dtype=np.int64) + np.array([offset_a, offset_b], dtype=np.int64)


def stitch_table(total: int, pairs: np.ndarray) -> np.ndarray:
    """Every global id -> the smallest id of the clusters it is (transitively) matched with.

    >>> stitch_table(6, np.array([[4, 2], [5, 4]])).tolist()
    [0, 1, 2, 3, 2, 2]
    """
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    return graph_components(int(total), pairs[:, 0], pairs[:, 1])
