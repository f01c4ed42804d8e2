"""Connected components of a label image, in torch (CPU or GPU).

Pixel embeddings separate *neighbouring* objects; two objects far apart in the
image may share an embedding and therefore a cluster. Splitting every cluster
into its spatially connected components gives each of them its own id.

Imports numpy and torch only (used by :mod:`spoco_zoo.postprocess`). The
algorithm is hook-and-compress label propagation (each pixel points at the
smallest index of its component; roots are hooked onto smaller neighbouring
roots and paths are compressed by pointer jumping), which needs a few dozen
vectorised passes even for long, winding objects.
"""

from __future__ import annotations

import numpy as np
import torch

from spoco_zoo.errors import DataError

__all__ = ["split_connected_components", "absorb_small_components"]


def _neighbour_pairs(flat: torch.Tensor, shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Index pairs of face-adjacent pixels with the same non-zero label."""
    index = torch.arange(flat.numel(), device=flat.device).reshape(shape)
    firsts, seconds = [], []
    for axis, extent in enumerate(shape):
        if extent < 2:
            continue
        a = index.narrow(axis, 0, extent - 1).reshape(-1)
        b = index.narrow(axis, 1, extent - 1).reshape(-1)
        same = (flat[a] == flat[b]) & (flat[a] != 0)
        firsts.append(a[same])
        seconds.append(b[same])
    if not firsts:
        empty = torch.zeros(0, dtype=torch.long, device=flat.device)
        return empty, empty
    return torch.cat(firsts), torch.cat(seconds)


def _compress(parent: torch.Tensor) -> torch.Tensor:
    """Pointer jumping until every pixel points at its root."""
    while True:
        grand = parent[parent]
        if torch.equal(grand, parent):
            return parent
        parent = grand


def split_connected_components(labels: np.ndarray | torch.Tensor) -> np.ndarray:
    """Give every face-connected component of every label its own id.

    Parameters
    ----------
    labels : numpy.ndarray or torch.Tensor
        Integer label image ``[*S]`` (any number of axes); 0 is background and stays 0.

    Returns
    -------
    numpy.ndarray
        ``int32`` labels ``[*S]``: consecutive ids ``1..K`` numbered in raster order of the
        components' first pixels; pixels of one component share an id, and pixels of two
        different input labels never do.

    Examples
    --------
    >>> labels = np.array([[1, 1, 0, 1],
    ...                    [0, 0, 0, 1],
    ...                    [2, 2, 1, 0]])
    >>> split_connected_components(labels).tolist()
    [[1, 1, 0, 2], [0, 0, 0, 2], [3, 3, 4, 0]]
    """
    tensor = torch.as_tensor(labels)
    if tensor.is_floating_point() or tensor.is_complex():
        raise DataError(f"labels: expected an integer label image, got dtype {tensor.dtype}")
    shape = tuple(tensor.shape)
    flat = tensor.reshape(-1).long()
    first, second = _neighbour_pairs(flat, shape)
    parent = torch.arange(flat.numel(), device=flat.device)
    while first.numel():
        root_a, root_b = parent[first], parent[second]
        low = torch.minimum(root_a, root_b)
        hooked = parent.scatter_reduce(0, root_a, low, reduce="amin").scatter_reduce(0, root_b, low, reduce="amin")
        hooked = _compress(hooked)
        if torch.equal(hooked, parent):
            break
        parent = hooked
    roots = torch.where(flat != 0, parent, torch.full_like(parent, -1))
    # sorted roots = raster order of the components' first pixels; the background's -1 sorts first
    _, ids = torch.unique(roots, return_inverse=True)
    if not bool((flat == 0).any()):
        ids = ids + 1
    return ids.reshape(shape).to(torch.int32).cpu().numpy()


def _border_pairs(labels: np.ndarray, small: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(a, b)`` for every face-adjacent pixel pair with ``a != b`` and ``a`` a small label (both directions)."""
    firsts, seconds = [], []
    for axis in range(labels.ndim):
        if labels.shape[axis] < 2:
            continue
        low = np.take(labels, np.arange(labels.shape[axis] - 1), axis=axis).reshape(-1)
        high = np.take(labels, np.arange(1, labels.shape[axis]), axis=axis).reshape(-1)
        for a, b in ((low, high), (high, low)):
            keep = (a != b) & small[a]
            firsts.append(a[keep])
            seconds.append(b[keep])
    return np.concatenate(firsts), np.concatenate(seconds)


def absorb_small_components(labels: np.ndarray, min_size: int, max_rounds: int = 8) -> np.ndarray:
    """Merge every object smaller than ``min_size`` into the neighbour it shares the longest border with.

    Clustering pixel embeddings leaves small fragments where pixels between two objects fall into
    a third cluster; splitting clusters into connected components turns them into objects of
    their own. Each fragment takes the label of its neighbour (the background included) with the
    most shared face-adjacent pixel pairs, preferring neighbours that are not small themselves;
    fragments that merge into another fragment are looked at again in the next round.

    Parameters
    ----------
    labels : numpy.ndarray
        Integer labels ``[*S]``, 0 = background.
    min_size : int
        Objects with fewer pixels are absorbed (``<= 1``: nothing changes).
    max_rounds : int
        Upper bound on merge rounds.

    Returns
    -------
    numpy.ndarray
        ``int64`` labels (ids not renumbered). An object with no neighbour at all is kept.

    Examples
    --------
    >>> labels = np.array([[1, 1, 1, 2, 2],
    ...                    [1, 3, 1, 2, 2],
    ...                    [1, 1, 1, 2, 4]])
    >>> absorb_small_components(labels, min_size=2).tolist()
    [[1, 1, 1, 2, 2], [1, 1, 1, 2, 2], [1, 1, 1, 2, 2]]
    """
    out = np.asarray(labels).astype(np.int64, copy=True)
    if min_size <= 1 or out.size == 0:
        return out
    if out.min() < 0:
        raise DataError("labels: negative ids are not supported")
    for _ in range(max_rounds):
        sizes = np.bincount(out.reshape(-1))
        small = sizes < min_size
        small[0] = False
        if not small[out].any():
            break
        first, second = _border_pairs(out, small)
        if first.size == 0:
            break
        width = np.int64(len(sizes))
        pairs, counts = np.unique(first * width + second, return_counts=True)
        source, target = pairs // width, pairs % width
        # rank the candidate targets of each fragment: not small first, then the longest border
        order = np.lexsort((-counts, small[target], source))
        best = np.ones(len(order), dtype=bool)
        best[1:] = source[order][1:] != source[order][:-1]
        mapping = np.arange(len(sizes), dtype=np.int64)
        mapping[source[order][best]] = target[order][best]
        out = mapping[out]
    return out
