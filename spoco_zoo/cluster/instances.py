"""Embeddings -> instance labels: the segmentation spoco-zoo recommends.

:func:`segment_embeddings` chains the steps every route to instances shares:

1. **cluster** the embeddings with a method of :mod:`spoco_zoo.cluster`, either
   in one piece or -- with ``block_shape`` -- locally, in overlapping blocks
   stitched across block borders (:mod:`spoco_zoo.cluster.blockwise`); every
   cluster is kept at this stage;
2. **background**: without a mask, the cluster that is the largest one of
   most blocks (after stitching; with one block: the cluster with most pixels)
   is the background (SPOCO trains the background as one more instance) and
   becomes 0 (:func:`~spoco_zoo.cluster.pipeline.background_vote`);
3. **split** every cluster into its connected components
   (:func:`~spoco_zoo.cluster.components.split_connected_components`):
   embeddings separate neighbouring objects, so two far-apart objects that
   share a cluster become two instances;
4. **min_size**: smaller objects -- mostly fragments of pixels between two objects that fell
   into a third cluster -- merge into the neighbour they share the longest border with (the
   background included, :func:`~spoco_zoo.cluster.components.absorb_small_components`); ids are
   made consecutive.

The steps run block by block (:func:`spoco_zoo.cluster.pipeline.segment_blocks`): memory
is bounded by the block size (plus the input and the labels), and the out-of-core path of
:mod:`spoco_zoo.blockwise` runs the same code on volumes larger than memory.

Imports numpy and torch only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from spoco_zoo.cluster.blockwise import Block, block_grid, largest_window
from spoco_zoo.cluster.clustering_setting import ClusteringSetting
from spoco_zoo.cluster.common import ArrayLike
from spoco_zoo.cluster.pipeline import segment_blocks
from spoco_zoo.errors import DataError

__all__ = ["segment_embeddings", "segment_setting", "WindowClustering"]


def segment_embeddings(
    embeddings: ArrayLike,
    method: str = "mean_shift",
    mask: ArrayLike | None = None,
    *,
    block_shape: int | Sequence[int] | None = None,
    overlap: int | Sequence[int] = 0,
    split_components: bool = True,
    background: str = "largest",
    min_size: int = 0,
    **params: Any,
) -> np.ndarray:
    """Instance labels ``[*S]`` (``int32``, 0 = background) of embeddings ``[E, *S]``.

    Parameters
    ----------
    embeddings : numpy.ndarray or torch.Tensor
        ``[E, y, x]`` or ``[E, z, y, x]`` pixel embeddings.
    method : str
        Clustering method (see :data:`spoco_zoo.cluster.METHODS`).
    mask : array, optional
        ``[*S]`` foreground mask; pixels outside are background and never clustered.
    block_shape : int or sequence of int, optional
        Cluster locally in blocks of this core size (per spatial axis); ``None``: the whole
        image at once.
    overlap : int or sequence of int
        Context added on every side of a block; objects cut by a block border are matched
        across it in this region, so make it larger than the objects' radius.
    split_components : bool
        Split each cluster into connected components.
    background : {"largest", "none"}
        ``"largest"``: without a mask, the largest cluster (of most blocks) is the background.
    min_size : int
        Objects with fewer pixels merge into their neighbour with the longest shared border.
    **params
        Parameters of the clustering method (e.g. ``bandwidth``).

    Returns
    -------
    numpy.ndarray
        ``int32`` labels, objects ``1..K`` in raster order of their first pixel.

    Examples
    --------
    >>> emb = np.zeros((2, 6, 12), np.float32)
    >>> emb[0, 1:3, 1:4] = 3.0; emb[0, 1:3, 8:11] = 3.0  # two far-apart objects, one embedding
    >>> labels = segment_embeddings(emb, bandwidth=0.5, device="cpu")
    >>> int(labels.max()), int(labels[1, 2]), int(labels[1, 9])
    (2, 1, 2)
    """
    local = {"block_shape": block_shape, "overlap": overlap, "split_components": split_components}
    generic = {"method": method, "background": background, "min_size": min_size}
    return segment_setting(embeddings, ClusteringSetting.from_dict({**params, **local, **generic}), mask)


class WindowClustering:
    """The method of a local clustering on one window, every cluster kept (picklable: a task of
    :mod:`spoco_zoo.blockwise`).

    ``blocks``: the block grid, whose largest window sets the per-window defaults
    (:meth:`~spoco_zoo.cluster.clustering_setting.ClusteringSetting.window_kwargs`); ``None``: one window, the
    whole image.
    """

    def __init__(self, setting: ClusteringSetting, blocks: Sequence[Block] | None = None) -> None:
        self.method = setting.method
        self.kwargs = setting.window_kwargs(None if blocks is None else largest_window(blocks))

    def __call__(self, window: ArrayLike, mask: ArrayLike | None = None) -> np.ndarray:
        """Labels of ``window [E, *W]`` (``mask``: its foreground), 0 outside the mask."""
        from spoco_zoo.cluster.methods import run_method

        return run_method(window, self.method, mask, **self.kwargs)


def segment_setting(embeddings: ArrayLike, setting: ClusteringSetting, mask: ArrayLike | None = None) -> np.ndarray:
    """:func:`segment_embeddings` with a :class:`~spoco_zoo.cluster.clustering_setting.ClusteringSetting`
    (``foreground`` aside: the caller has split it off, :func:`spoco_zoo.cluster.cluster_setting`).

    Unset values take :func:`segment_embeddings`'s defaults: no blocks, no overlap, clusters split,
    ``background="largest"``, ``min_size=0``.
    """
    block_shape = setting.block_shape
    min_size = setting.min_size or 0
    background = setting.background or "largest"
    emb = embeddings if isinstance(embeddings, np.ndarray) else np.asarray(embeddings.detach().cpu())
    mask_array = None if mask is None else np.asarray(mask) != 0

    if emb.ndim not in (3, 4):
        raise DataError(f"embeddings: expected [E, y, x] or [E, z, y, x], got shape {tuple(emb.shape)}")
    spatial = tuple(int(s) for s in emb.shape[1:])
    if mask_array is not None and mask_array.shape != spatial:
        raise DataError(f"mask: shape {mask_array.shape} does not match the spatial shape {spatial} of the embeddings")
    overlap = setting.overlap or 0
    grid = block_grid(spatial, spatial if block_shape is None else block_shape, 0 if block_shape is None else overlap)
    cluster = WindowClustering(setting, None if block_shape is None else grid)

    def cluster_window(index: int) -> np.ndarray:
        window = grid[index].window
        return cluster(emb[(slice(None),) + tuple(window)], None if mask_array is None else mask_array[window])

    labels = np.zeros(spatial, dtype=np.int32)
    segment_blocks(
        spatial,
        grid,
        cluster_window,
        labels,
        masked=mask_array is not None,
        background=background,
        split_components=setting.split_components is not False,
        min_size=int(min_size),
    )
    return labels
