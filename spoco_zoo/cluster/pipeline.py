"""The recommended segmentation, block by block: memory bounded by the block size.

:func:`segment_blocks` turns any source of per-window cluster labels into the instance labels
of :func:`spoco_zoo.cluster.instances.segment_embeddings` -- the *same* labels, ids included,
as clustering, stitching and post-processing the whole image at once -- while no step holds
more than one window plus tables with one entry per cluster. Each phase maps a function of
one block (or of one pair of blocks) over the grid; ``mapper`` runs them (in this process by
default; :mod:`spoco_zoo.blockwise` passes a Dask client's ``map`` and zarr stores, so the
same code segments volumes larger than memory on a cluster):

1. **cluster** every window (:func:`cluster_block`), keep its labels and the cluster sizes in
   its core;
2. **stitch**: match clusters where windows overlap (:func:`match_block_pair`), resolve the
   matches into one id per cluster (:func:`~spoco_zoo.cluster.blockwise.stitch_table`); the
   one that is the largest cluster of most block cores is the background (no mask,
   :func:`background_vote`);
3. **components**: connected components of each core (:func:`core_components`), joined
   across core faces where touching pixels carry the same object id (:func:`face_pairs`),
   numbered in raster order of their first pixel;
4. **small fragments**: border lengths between components (:func:`border_counts`) feed the
   merge rounds of :func:`~spoco_zoo.cluster.components.absorb_mapping`; the result is
   numbered in raster order of first pixels and written core by core (:func:`write_block`).

Imports numpy and torch only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from spoco_zoo.cluster.blockwise import (
    DEFAULT_MATCH_IOU,
    Block,
    block_neighbours,
    label_offsets,
    local_region,
    match_windows,
    overlapping_pairs,
    stitch_table,
)
from spoco_zoo.cluster.common import rank_groups
from spoco_zoo.cluster.components import (
    absorb_mapping,
    adjacency_counts,
    connected_components,
    graph_components,
    neighbour_slices,
)

__all__ = [
    "Mapper",
    "WindowStore",
    "MemoryWindows",
    "serial_map",
    "compact_labels",
    "cluster_block",
    "match_block_pair",
    "core_components",
    "face_pairs",
    "border_counts",
    "write_block",
    "background_vote",
    "segment_blocks",
]

#: ``mapper(function, items) -> [function(item) for item in items]`` (in any order of execution).
Mapper = Callable[[Callable[[Any], Any], Sequence[Any]], list[Any]]


class WindowStore(Protocol):
    """Where the block-local labels of every window are kept between phases."""

    def write(self, index: int, labels: np.ndarray) -> None:
        """Keep the labels of window ``index``."""

    def read(self, index: int) -> np.ndarray:
        """The labels of window ``index``."""


class MemoryWindows:
    """Window labels in a dict (one process)."""

    def __init__(self) -> None:
        self.labels: dict[int, np.ndarray] = {}

    def write(self, index: int, labels: np.ndarray) -> None:
        """Keep the labels of window ``index``."""
        self.labels[index] = labels

    def read(self, index: int) -> np.ndarray:
        """The labels of window ``index``."""
        return self.labels[index]


def serial_map(function: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
    """The default :data:`Mapper`: one item after the other, in this process."""
    return [function(item) for item in items]


def compact_labels(labels: np.ndarray) -> np.ndarray:
    """Non-negative labels in the smallest unsigned dtype that holds them.

    >>> compact_labels(np.array([0, 3, 300])).dtype
    dtype('uint16')
    """
    high = int(np.max(labels, initial=0))
    dtype = np.uint8 if high < 2**8 else np.uint16 if high < 2**16 else np.uint32
    return np.asarray(labels).astype(dtype)


def _core(block: Block) -> tuple[slice, ...]:
    return local_region(block.core, block.window)


def _global_index(local: np.ndarray, block: Block, shape: Sequence[int]) -> np.ndarray:
    """Flat image index of flat core-local indices."""
    core_shape = tuple(s.stop - s.start for s in block.core)
    coords = np.unravel_index(np.asarray(local, dtype=np.int64), core_shape)
    shifted = tuple(c + s.start for c, s in zip(coords, block.core))
    return np.ravel_multi_index(shifted, tuple(shape)).astype(np.int64)


@dataclass(frozen=True)
class _Context:
    shape: tuple[int, ...]
    blocks: Sequence[Block]
    windows: WindowStore


# ------------------------------------------------------------------------- phase functions
def cluster_block(
    index: int, blocks: Sequence[Block], windows: WindowStore, cluster_window: Callable[[int], np.ndarray]
) -> tuple[int, np.ndarray]:
    """Phase 1: cluster window ``index``; returns its largest local id and the sizes ``[max + 1]``
    of its clusters in its core."""
    labels = compact_labels(cluster_window(index))
    windows.write(index, labels)
    high = int(np.max(labels, initial=0))
    return high, np.bincount(labels[_core(blocks[index])].reshape(-1), minlength=high + 1)


def match_block_pair(
    pair: tuple[int, int], blocks: Sequence[Block], windows: WindowStore, offsets: np.ndarray, min_iou: float
) -> np.ndarray:
    """Phase 2: matched global id pairs ``[P, 2]`` of two overlapping windows."""
    i, j = pair
    return match_windows(
        blocks[i], blocks[j], windows.read(i), windows.read(j), int(offsets[i]), int(offsets[j]), min_iou
    )


def _objects(index: int, blocks: Sequence[Block], windows: WindowStore, offsets: np.ndarray, table: np.ndarray):
    """Object ids (after stitching and background) of block ``index``'s core."""
    core = windows.read(index)[_core(blocks[index])].astype(np.int64)
    return np.where(core > 0, table[np.where(core > 0, core + int(offsets[index]), 0)], 0)


def core_components(
    index: int,
    ctx: _Context,
    offsets: np.ndarray,
    table: np.ndarray,
    split: bool,
    components: Any,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Phase 3: number the parts of block ``index``'s core (connected components of each object, or
    the objects themselves without ``split``) ``1..m`` into ``components``; returns per part its
    object id, first pixel (flat image index) and size."""
    block = ctx.blocks[index]
    objects = _objects(index, ctx.blocks, ctx.windows, offsets, table)
    if split:
        parts = connected_components(objects)
        local, first, sizes, source = parts.labels, parts.first, parts.sizes, parts.source
    else:
        ids, first, inverse, sizes = np.unique(
            objects.reshape(-1), return_index=True, return_inverse=True, return_counts=True
        )
        local = inverse.reshape(objects.shape).astype(np.int32) + (0 if ids[0] == 0 else 1)
        keep = ids > 0
        first, sizes, source = first[keep], sizes[keep], ids[keep]
    components[block.core] = local
    return source.astype(np.int64), _global_index(first, block, ctx.shape), sizes.astype(np.int64)


def _face(array: np.ndarray, axis: int, last: bool) -> np.ndarray:
    index = [slice(None)] * array.ndim
    index[axis] = slice(-1, None) if last else slice(0, 1)
    return array[tuple(index)]


def face_pairs(
    index: int,
    ctx: _Context,
    neighbours: Sequence[Sequence[tuple[int, int]]],
    offsets: np.ndarray,
    table: np.ndarray,
    part_offsets: np.ndarray,
    components: Any,
) -> np.ndarray:
    """Phase 3b: part id pairs ``[P, 2]`` that touch across block ``index``'s far core faces with the
    same object id (the same connected component)."""
    mine = _objects(index, ctx.blocks, ctx.windows, offsets, table)
    my_parts = np.asarray(components[ctx.blocks[index].core]).astype(np.int64) + int(part_offsets[index])
    found = [np.zeros((0, 2), np.int64)]
    for axis, j in neighbours[index]:
        theirs = _face(_objects(j, ctx.blocks, ctx.windows, offsets, table), axis, last=False)
        their_parts = _face(np.asarray(components[ctx.blocks[j].core]), axis, last=False).astype(np.int64)
        same = (_face(mine, axis, last=True) == theirs) & (theirs != 0)
        pairs = np.stack([_face(my_parts, axis, last=True)[same], their_parts[same] + int(part_offsets[j])], axis=1)
        found.append(np.unique(pairs, axis=0))
    return np.concatenate(found)


def border_counts(
    index: int,
    blocks: Sequence[Block],
    neighbours: Sequence[Sequence[tuple[int, int]]],
    part_to_component: np.ndarray,
    part_offsets: np.ndarray,
    small: np.ndarray,
    components: Any,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Phase 4: border lengths ``(source, target, count)`` between components in block ``index``'s
    core and across its far faces, for small sources only."""

    def component_image(j: int, region: tuple[slice, ...]) -> np.ndarray:
        parts = np.asarray(components[region]).astype(np.int64)
        return np.where(parts > 0, part_to_component[np.where(parts > 0, parts + int(part_offsets[j]), 0)], 0)

    mine = component_image(index, blocks[index].core)
    found = [adjacency_counts(*neighbour_slices(mine, axis), sources=small) for axis in range(mine.ndim)]
    for axis, j in neighbours[index]:
        theirs = _face(component_image(j, blocks[j].core), axis, last=False)
        found.append(adjacency_counts(_face(mine, axis, last=True), theirs, sources=small))
    source, target, count = (np.concatenate(column) for column in zip(*found))
    return source, target, count


def write_block(
    index: int,
    blocks: Sequence[Block],
    part_to_label: np.ndarray,
    part_offsets: np.ndarray,
    components: Any,
    out: Any,
) -> None:
    """Phase 5: final labels of block ``index``'s core into ``out``."""
    core = blocks[index].core
    parts = np.asarray(components[core]).astype(np.int64)
    out[core] = np.where(parts > 0, part_to_label[np.where(parts > 0, parts + int(part_offsets[index]), 0)], 0)


# ------------------------------------------------------------------------------ pipeline
def background_vote(clustered: Sequence[tuple[int, np.ndarray]], offsets: np.ndarray, table: np.ndarray) -> int:
    """The stitched id of the background: the one that is the largest cluster of most block cores
    (each vote weighted by that cluster's pixels in the core).

    Stitched ids are not objects: a window may put far-apart objects with similar embeddings in
    one cluster, so matching chains them across windows into groups that the connected-component
    step splits again. On a large image such a chain can hold more pixels than the background
    (4096x4096: 54 % of the pixels lost to it), but it is rarely the largest cluster of a window.
    With one window this is the largest cluster.

    Three blocks, each with a background cluster of 40 pixels (local id 1) and two clusters of 30
    (ids 2, 3) that stitching chains into one group of 180 pixels:

    >>> clustered = [(3, np.array([0, 40, 30, 30]))] * 3
    >>> offsets, total = label_offsets([3, 3, 3])  # block-local id l -> offsets[block] + l
    >>> table = np.arange(total)
    >>> table[[6, 10]] = 2  # the background clusters of blocks 1 and 2 joined block 0's (id 2)
    >>> table[[4, 7, 8, 11, 12]] = 3  # the chain
    >>> background_vote(clustered, offsets, table)  # not the chain, though it has more pixels
    2
    """
    votes = np.zeros(len(table), dtype=np.int64)
    for (high, counts), offset in zip(clustered, offsets):
        if high > 0 and counts[1:].any():
            local = int(np.argmax(counts[1:])) + 1
            votes[table[int(offset) + local]] += int(counts[local])
    return int(np.argmax(votes))


def segment_blocks(
    shape: Sequence[int],
    blocks: Sequence[Block],
    cluster_window: Callable[[int], np.ndarray],
    components: Any,
    out: Any | None = None,
    *,
    windows: WindowStore | None = None,
    mapper: Mapper = serial_map,
    masked: bool = False,
    background: str = "largest",
    split_components: bool = True,
    min_size: int = 0,
    min_iou: float = DEFAULT_MATCH_IOU,
) -> int:
    """Instance labels of an image, block by block (the phases of the module docstring).

    Parameters
    ----------
    shape : sequence of int
        Spatial shape of the image.
    blocks : sequence of Block
        The grid (:func:`~spoco_zoo.cluster.blockwise.block_grid`).
    cluster_window : callable
        ``cluster_window(i) -> labels`` of block ``i``'s window (every cluster kept; 0 =
        unassigned, e.g. outside a mask).
    components : array-like
        ``int32`` ``[*shape]`` scratch array (numpy or zarr; written core by core).
    out : array-like, optional
        ``[*shape]`` integer array for the labels (default: ``components``, overwritten).
    windows : WindowStore, optional
        Where window labels wait between phases (default: in memory).
    mapper : Mapper
        Runs each phase over the blocks.
    masked : bool
        The windows were clustered inside a foreground mask: no background cluster is removed.
    background, split_components, min_size, min_iou
        As in :func:`spoco_zoo.cluster.instances.segment_embeddings`.

    Returns
    -------
    int
        Number of objects; ``out`` holds ids ``1..K`` in raster order of their first pixel.
    """
    shape = tuple(int(s) for s in shape)
    windows = MemoryWindows() if windows is None else windows
    out = components if out is None else out
    ctx = _Context(shape, blocks, windows)
    neighbours = block_neighbours(blocks)
    items = list(range(len(blocks)))

    # 1-2: cluster, stitch, background
    clustered = mapper(lambda i: cluster_block(i, blocks, windows, cluster_window), items)
    offsets, total = label_offsets([high for high, _ in clustered])
    pairs = mapper(lambda p: match_block_pair(p, blocks, windows, offsets, min_iou), overlapping_pairs(blocks))
    table = stitch_table(total, np.concatenate([np.zeros((0, 2), np.int64), *pairs]))
    if background == "largest" and not masked and any(counts[1:].any() for _, counts in clustered):
        table = np.where(table == background_vote(clustered, offsets, table), 0, table)

    # 3: parts of every core, joined into components
    parts = mapper(lambda i: core_components(i, ctx, offsets, table, split_components, components), items)
    part_offsets, n_parts = label_offsets([len(source) for source, _, _ in parts])
    source = np.zeros(n_parts, np.int64)
    first = np.zeros(n_parts, np.int64)
    part_sizes = np.zeros(n_parts, np.int64)
    real = np.zeros(n_parts, dtype=bool)
    for (src, fst, siz), offset in zip(parts, part_offsets):
        real[offset + 1 : offset + 1 + len(src)] = True
        source[offset + 1 : offset + 1 + len(src)] = src
        first[offset + 1 : offset + 1 + len(src)] = fst
        part_sizes[offset + 1 : offset + 1 + len(src)] = siz
    if split_components:
        joins = mapper(lambda i: face_pairs(i, ctx, neighbours, offsets, table, part_offsets, components), items)
        edges = np.concatenate([np.zeros((0, 2), np.int64), *joins])
    else:  # parts of one object are one component, wherever they are
        order = np.argsort(np.where(real, source, -1), kind="stable")
        order = order[real[order]]
        same = source[order][1:] == source[order][:-1]
        edges = np.stack([order[:-1][same], order[1:][same]], axis=1)
    root = graph_components(n_parts, edges[:, 0], edges[:, 1])
    # components numbered like split_connected_components (first pixel) or by object id (no split)
    component = rank_groups(first[real] if split_components else source[real], root[real], n_parts)[root]
    component[~real] = 0
    n_components = int(component.max(initial=0))
    component_sizes = np.bincount(component, weights=part_sizes, minlength=n_components + 1).astype(np.int64)
    component_first = np.full(n_components + 1, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(component_first, component[real], first[real])

    # 4: small fragments merge into their neighbours; final ids by first pixel
    final = np.arange(n_components + 1, dtype=np.int64)
    small = component_sizes < min_size
    small[0] = False
    if min_size > 1 and small.any():
        counted = mapper(
            lambda i: border_counts(i, blocks, neighbours, component, part_offsets, small, components), items
        )
        src, dst, cnt = (np.concatenate(column) for column in zip(*counted))
        width = np.int64(n_components + 1)
        keys, inverse = np.unique(src * width + dst, return_inverse=True)
        cnt = np.bincount(inverse.reshape(-1), weights=cnt).astype(np.int64)
        final = absorb_mapping(component_sizes, keys // width, keys % width, cnt, int(min_size))
    kept = final[1:] != 0  # fragments absorbed by the background are not objects
    labels = rank_groups(component_first[1:][kept], final[1:][kept], n_components + 1)
    part_to_label = labels[final[component]]
    part_to_label[0] = 0
    mapper(lambda i: write_block(i, blocks, part_to_label, part_offsets, components, out), items)
    return int(labels.max(initial=0))
