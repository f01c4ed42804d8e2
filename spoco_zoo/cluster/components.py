"""Connected components of a label image and the merging of small fragments (numpy and torch).

Pixel embeddings separate *neighbouring* objects; two objects far apart in the
image may share an embedding and therefore a cluster. Splitting every cluster
into its spatially connected components gives each of them its own id
(:func:`split_connected_components`); fragments smaller than ``min_size`` then
merge into a neighbour (:func:`absorb_small_components`).

Both work on whole images here and, piece by piece, in the block-wise pipeline
(:mod:`spoco_zoo.cluster.pipeline`), which is why they are built from parts:

* :func:`connected_components` labels the *runs* of equal labels along the
  last axis, links runs of neighbouring rows that touch and carry the same
  label, and joins the run graph with :func:`graph_components` (vectorised
  hook-and-compress). Time and memory are a few passes over the pixels.
* :func:`adjacency_counts` counts face-adjacent pixel pairs between labels, and
  :func:`absorb_mapping` runs the merge rounds on that graph (sizes and border
  lengths add up when labels merge), so the pixels are visited once.

Imports numpy and torch only (used by :mod:`spoco_zoo.postprocess`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from spoco_zoo.errors import DataError

__all__ = [
    "Components",
    "graph_components",
    "connected_components",
    "split_connected_components",
    "adjacency_counts",
    "absorb_mapping",
    "absorb_small_components",
    "neighbour_slices",
]


def graph_components(n_nodes: int, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Root of every node of an undirected graph: the smallest node index of its component.

    Parameters
    ----------
    n_nodes : int
        Nodes ``0..n_nodes-1``.
    first, second : numpy.ndarray
        Edge end points (integer arrays of equal length).

    Returns
    -------
    numpy.ndarray
        ``int64`` ``[n_nodes]``.

    Examples
    --------
    >>> graph_components(5, np.array([3, 1]), np.array([4, 3])).tolist()
    [0, 1, 2, 1, 1]
    """
    parent = np.arange(int(n_nodes), dtype=np.int64)
    a = np.asarray(first, dtype=np.int64).reshape(-1)
    b = np.asarray(second, dtype=np.int64).reshape(-1)
    while a.size:
        root_a, root_b = parent[a], parent[b]
        low = np.minimum(root_a, root_b)
        hooked = parent.copy()
        np.minimum.at(hooked, root_a, low)
        np.minimum.at(hooked, root_b, low)
        while True:  # pointer jumping until every node points at a root
            grand = hooked[hooked]
            if np.array_equal(grand, hooked):
                break
            hooked = grand
        if np.array_equal(hooked, parent):
            break
        parent = hooked
        keep = parent[a] != parent[b]  # edges inside one finished tree are done
        a, b = a[keep], b[keep]
    return parent


@dataclass(frozen=True)
class Components:
    """Connected components of a label image (see :func:`connected_components`).

    Attributes
    ----------
    labels : numpy.ndarray
        ``int32`` ``[*S]``: components ``1..count`` in raster order of their first pixel, 0 where
        the input was 0.
    count : int
        Number of components.
    first : numpy.ndarray
        ``int64`` ``[count]``: flat (raster) index of each component's first pixel.
    sizes : numpy.ndarray
        ``int64`` ``[count]``: pixels per component.
    source : numpy.ndarray
        ``[count]``: the input label of each component.
    """

    labels: np.ndarray
    count: int
    first: np.ndarray
    sizes: np.ndarray
    source: np.ndarray


def connected_components(labels: np.ndarray | torch.Tensor) -> Components:
    """Face-connected components of every non-zero label (the run-graph algorithm of the module docstring).

    Parameters
    ----------
    labels : numpy.ndarray or torch.Tensor
        Integer label image ``[*S]`` (any number of axes); 0 is background.

    Returns
    -------
    Components

    Examples
    --------
    >>> parts = connected_components(np.array([[1, 1, 0, 1], [0, 0, 0, 1], [2, 2, 1, 0]]))
    >>> parts.labels.tolist(), parts.count, parts.first.tolist(), parts.sizes.tolist()
    ([[1, 1, 0, 2], [0, 0, 0, 2], [3, 3, 4, 0]], 4, [0, 3, 8, 10], [2, 2, 2, 1])
    """
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    array = np.asarray(labels)
    if not (np.issubdtype(array.dtype, np.integer) or array.dtype == bool):
        raise DataError(f"labels: expected an integer label image, got dtype {array.dtype}")
    shape = array.shape
    if array.ndim == 0 or array.size == 0:
        empty = np.zeros(0, np.int64)
        return Components(np.zeros(shape, np.int32), 0, empty, empty, empty)
    array = np.ascontiguousarray(array)
    flat = array.reshape(-1)
    rows = array.reshape(-1, shape[-1])
    start = np.empty(rows.shape, dtype=bool)  # a run starts at a row start or where the label changes
    start[:, 0] = True
    np.not_equal(rows[:, 1:], rows[:, :-1], out=start[:, 1:])
    start_flat = start.reshape(-1)
    run_start = np.flatnonzero(start_flat)
    run_label = flat[run_start]
    n_runs = len(run_start)
    run_length = np.diff(np.append(run_start, flat.size))
    run_of = np.repeat(np.arange(n_runs, dtype=np.int64 if n_runs >= 2**31 else np.int32), run_length)
    firsts, seconds = [], []
    for axis in range(array.ndim - 1):  # runs of neighbouring rows that touch and share a label
        inner = int(np.prod(shape[axis + 1 :]))
        view = array.reshape(-1, shape[axis], inner)
        starts = start.reshape(view.shape)
        touch = view[:, :-1] == view[:, 1:]
        touch &= view[:, :-1] != 0
        touch &= starts[:, :-1] | starts[:, 1:]  # each overlap of two runs begins at a run start
        index = np.flatnonzero(touch.reshape(-1))
        outer, rest = np.divmod(index, (shape[axis] - 1) * inner)
        position = outer * shape[axis] * inner + rest
        firsts.append(run_of[position])
        seconds.append(run_of[position + inner])
    first = np.concatenate(firsts) if firsts else np.zeros(0, np.int64)
    second = np.concatenate(seconds) if seconds else np.zeros(0, np.int64)
    root = graph_components(n_runs, first, second)
    foreground = run_label != 0
    roots, run_component = np.unique(root[foreground], return_inverse=True)
    table = np.zeros(n_runs, dtype=np.int32)
    table[foreground] = run_component.astype(np.int32) + 1
    count = len(roots)
    sizes = np.bincount(run_component, weights=run_length[foreground], minlength=count).astype(np.int64)
    out = table[run_of].reshape(shape)
    # a component's root is its first run (hooks go to the smaller index), whose start is its first pixel
    return Components(out, count, run_start[roots].astype(np.int64), sizes, run_label[roots])


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
    if isinstance(labels, torch.Tensor) and (labels.is_floating_point() or labels.is_complex()):
        raise DataError(f"labels: expected an integer label image, got dtype {labels.dtype}")
    return connected_components(labels).labels


def adjacency_counts(
    first: np.ndarray, second: np.ndarray, sources: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Face-adjacent pixel pairs between different labels, counted per ``(source, target)`` label pair.

    ``first`` and ``second`` are label arrays of equal shape whose pixels are neighbours
    element by element (e.g. ``labels[:-1]`` and ``labels[1:]``). Both directions are counted.

    Parameters
    ----------
    first, second : numpy.ndarray
        Non-negative integer labels.
    sources : numpy.ndarray, optional
        Boolean ``[max label + 1]``: only pairs whose source is marked are kept.

    Returns
    -------
    source, target, count : numpy.ndarray
        ``int64`` arrays, sorted by ``(source, target)``.

    Examples
    --------
    >>> labels = np.array([[1, 1, 2], [3, 3, 2]])
    >>> src, dst, n = adjacency_counts(labels[:, :-1], labels[:, 1:])
    >>> src.tolist(), dst.tolist(), n.tolist()
    ([1, 2, 2, 3], [2, 1, 3, 2], [1, 1, 1, 1])
    """
    a = np.asarray(first).reshape(-1)
    b = np.asarray(second).reshape(-1)
    differ = a != b
    a, b = a[differ].astype(np.int64), b[differ].astype(np.int64)
    src, dst = np.concatenate([a, b]), np.concatenate([b, a])
    if sources is not None:
        keep = sources[src]
        src, dst = src[keep], dst[keep]
    if src.size == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty.copy(), empty.copy()
    width = np.int64(max(int(src.max()), int(dst.max())) + 1)
    keys, counts = np.unique(src * width + dst, return_counts=True)
    return keys // width, keys % width, counts.astype(np.int64)


def absorb_mapping(
    sizes: np.ndarray,
    source: np.ndarray,
    target: np.ndarray,
    count: np.ndarray,
    min_size: int,
    max_rounds: int = 8,
) -> np.ndarray:
    """The merge rounds of :func:`absorb_small_components` on a label graph.

    Parameters
    ----------
    sizes : numpy.ndarray
        Pixels per label ``[n]`` (label 0, the background, is never small).
    source, target, count : numpy.ndarray
        Border lengths: ``count`` face-adjacent pixel pairs between ``source`` and ``target``
        (both directions listed; pairs whose source is not small may be left out).
    min_size, max_rounds : int
        See :func:`absorb_small_components`.

    Returns
    -------
    numpy.ndarray
        ``int64`` ``[n]``: the label every label ends up as.

    Examples
    --------
    >>> absorb_mapping(np.array([5, 9, 1]), np.array([2, 2]), np.array([0, 1]), np.array([1, 3]), 2).tolist()
    [0, 1, 1]
    """
    n = len(sizes)
    current = np.arange(n, dtype=np.int64)
    if min_size <= 1 or n == 0:
        return current
    sizes = np.asarray(sizes, dtype=np.int64)
    source, target, count = (np.asarray(x, dtype=np.int64) for x in (source, target, count))
    width = np.int64(n)
    for _ in range(max_rounds):
        merged_sizes = np.bincount(current, weights=sizes, minlength=n)
        small = merged_sizes < min_size
        small[0] = False
        if not (small & (merged_sizes > 0)).any():
            break
        a, b = current[source], current[target]
        keep = (a != b) & small[a]
        if not keep.any():
            break
        pairs, inverse = np.unique(a[keep] * width + b[keep], return_inverse=True)
        border = np.bincount(inverse.reshape(-1), weights=count[keep]).astype(np.int64)
        src, dst = pairs // width, pairs % width
        # rank the candidate targets of each fragment: not small first, then the longest border
        order = np.lexsort((-border, small[dst], src))
        best = np.ones(len(order), dtype=bool)
        best[1:] = src[order][1:] != src[order][:-1]
        mapping = np.arange(n, dtype=np.int64)
        mapping[src[order][best]] = dst[order][best]
        current = mapping[current]
    return current


def absorb_small_components(labels: np.ndarray, min_size: int, max_rounds: int = 8) -> np.ndarray:
    """Merge every object smaller than ``min_size`` into the neighbour it shares the longest border with.

    Clustering pixel embeddings leaves small fragments where pixels between two objects fall into
    a third cluster; splitting clusters into connected components turns them into objects of
    their own. Each fragment takes the label of its neighbour (the background included) with the
    most shared face-adjacent pixel pairs, preferring neighbours that are not small themselves;
    fragments that merge into another fragment are looked at again in the next round
    (:func:`absorb_mapping` on the border graph of :func:`adjacency_counts`).

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
    sizes = np.bincount(out.reshape(-1))
    small = sizes < min_size
    small[0] = False
    if not small[out].any():
        return out
    parts = [adjacency_counts(*neighbour_slices(out, axis), sources=small) for axis in range(out.ndim)]
    source, target, count = (np.concatenate(column) for column in zip(*parts))
    return absorb_mapping(sizes, source, target, count, min_size, max_rounds)[out]


def neighbour_slices(labels: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """``labels[..., :-1, ...]`` and ``labels[..., 1:, ...]`` along ``axis`` (views).

    >>> a, b = neighbour_slices(np.arange(6).reshape(2, 3), 1)
    >>> a.tolist(), b.tolist()
    ([[0, 1], [3, 4]], [[1, 2], [4, 5]])
    """
    low = [slice(None)] * labels.ndim
    high = [slice(None)] * labels.ndim
    low[axis], high[axis] = slice(0, -1), slice(1, None)
    return labels[tuple(low)], labels[tuple(high)]
