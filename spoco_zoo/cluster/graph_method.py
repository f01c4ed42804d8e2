"""Clustering method ``"graph"``: the in-graph local decoder (:class:`~spoco_zoo.cluster.graph.GraphInstances`)
run eagerly, on the CPU or a GPU.

The same module is compiled into exported packages, so ``spoco-zoo segment`` and every zoo consumer
(ilastik, deepImageJ, bioimageio.core, ONNX Runtime) get the same labels from the same embeddings.
Run here, it stops each propagation and growth once a round changes nothing (``GraphInstances.settle``,
no label changes; the end-of-training tuning's decodes take about a sixth less time).
:func:`ingraph_module` builds the in-graph stage of a package from its constructor arguments (the
RDF's ``config["spoco"]["clustering"]["ingraph"]``): this decoder, or the global mean-shift of
older packages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from spoco_zoo.cluster.checks import check_integer
from spoco_zoo.cluster.common import ArrayLike, check_common, empty_labels, relabel_sequential, validate_inputs
from spoco_zoo.cluster.settings import GRAPH_DECODER, graph_iterations
from spoco_zoo.devices import resolve_device
from spoco_zoo.errors import DataError

__all__ = ["graph_segmentation", "graph_segmentations_by_min_size", "ingraph_module", "GRAPH_DECODER"]


def graph_segmentation(
    embeddings: ArrayLike,
    mask: ArrayLike | None = None,
    *,
    split: str = "embedding",
    edge_threshold: float = 0.15,
    min_distance: int = 5,
    n_iter: int | None = None,
    min_size: int = 0,
    background: str = "largest",
    spacing: Sequence[float] | None = None,
    seed_size: int = 0,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Instances from the pixel-adjacency graph (the exported packages' in-graph decoder).

    Parameters
    ----------
    embeddings : numpy.ndarray or torch.Tensor
        ``[E, *S]`` embeddings (2D or 3D).
    mask : array, optional
        ``[*S]`` foreground: a model's foreground channel gives it (clustering parameter
        ``foreground="mask"``). Without one every pixel is clustered and, with
        ``background="largest"``, the largest component is the background.
    split : {"embedding", "shape"}
        ``"embedding"``: connected components of face neighbours whose embeddings are closer
        than ``edge_threshold``. ``"shape"``: the mask split by its distance transform (markers
        ``min_distance`` apart); needs ``mask``.
    edge_threshold : float
        Largest embedding distance between neighbouring pixels of one object.
    min_distance : int
        ``"shape"``: smallest distance between two object centres, in pixels.
    n_iter : int, optional
        Rounds of label propagation; default: 4 for images, 12 for volumes
        (:func:`spoco_zoo.cluster.settings.graph_iterations`).
    min_size : int
        Components with fewer pixels join a neighbouring component (or become background).
    background : {"largest", "none"}
        See above; with a mask nothing is removed for being the largest.
    spacing : sequence of float, optional
        Voxel size per spatial axis relative to their geometric mean (a z step of three pixel sizes:
        ``[2.08, 0.69, 0.69]``): neighbours along an axis may differ by that many ``edge_threshold``
        (:func:`spoco_zoo.cluster.settings.relative_spacing`). ``None``: the same threshold on every axis.
    seed_size : int
        ``"embedding"``: 0, the objects are the components; above 0, components of a stricter graph
        (:func:`spoco_zoo.cluster.graph.graph_seed_fraction` x ``edge_threshold``) with at least this many
        pixels are seeds that share out the component they lie in, so that objects touching through a few
        close pixels stay apart (the end-of-training tuning of a volume model tries the configured ``min_size``).
    device : str or torch.device, optional
        ``"auto"``/``None``: a GPU when available.

    Returns
    -------
    numpy.ndarray
        ``int32`` labels, objects ``1..K`` in raster order, 0 = background.

    Examples
    --------
    >>> emb = np.zeros((2, 6, 8), np.float32); emb[0, :, 4:] = 3.0
    >>> graph_segmentation(emb, np.ones((6, 8), bool), edge_threshold=0.5)[0].tolist()
    [1, 1, 1, 1, 2, 2, 2, 2]
    """
    return graph_segmentations_by_min_size(
        embeddings,
        mask,
        [min_size],
        split=split,
        edge_threshold=edge_threshold,
        min_distance=min_distance,
        n_iter=n_iter,
        background=background,
        spacing=spacing,
        seed_size=seed_size,
        device=device,
    )[0]


def graph_segmentations_by_min_size(
    embeddings: ArrayLike,
    mask: ArrayLike | None,
    min_sizes: Sequence[int],
    *,
    split: str = "embedding",
    edge_threshold: float = 0.15,
    min_distance: int = 5,
    n_iter: int | None = None,
    background: str = "largest",
    spacing: Sequence[float] | None = None,
    seed_size: int = 0,
    device: str | torch.device | None = None,
) -> list[np.ndarray]:
    """:func:`graph_segmentation` for each of ``min_sizes``, splitting the image once.

    The split and the label propagation (nearly all of the decoder's time) do not depend on
    ``min_size``; only the clean-up does. The end-of-training tuning tries several ``min_size``
    values per split this way. Each result equals ``graph_segmentation(..., min_size=m)``.

    Examples
    --------
    >>> emb = np.zeros((2, 1, 8), np.float32); emb[0, :, 6:] = 3.0
    >>> [labels[0].tolist() for labels in graph_segmentations_by_min_size(emb, None, [0, 3], background="none")]
    [[1, 1, 1, 1, 1, 1, 2, 2], [1, 1, 1, 1, 1, 1, 1, 1]]
    """
    from spoco_zoo.cluster.graph import GraphInstances

    if len(min_sizes) == 0:
        raise DataError("min_sizes: give at least one min_size")
    for min_size in min_sizes:
        check_common(min_size, background)
    emb, fg = validate_inputs(embeddings, mask)
    try:  # the decoder checks its own parameters (it ships in packages)
        module = GraphInstances(
            split=split,
            edge_threshold=edge_threshold,
            min_distance=check_integer("min_distance", min_distance, 1),
            n_iter=graph_iterations(emb.dim() - 1) if n_iter is None else check_integer("n_iter", n_iter, 1),
            foreground="mask",
            background_largest=background == "largest",
            spacing=None if spacing is None else [float(v) for v in spacing],
            seed_size=check_integer("seed_size", seed_size, 0),
        )
    except (TypeError, ValueError) as err:
        raise DataError(f"graph: {err}") from err
    module.settle = True  # the packages' labels, stopping early where they stop changing
    if spacing is not None and len(module.spacing) != emb.dim() - 1:
        raise DataError(f"spacing: {list(spacing)} has {len(module.spacing)} values for {emb.dim() - 1} spatial axes")
    if not bool(torch.isfinite(emb).all()):
        raise DataError("embeddings: contain NaN or infinite values")
    if split == "shape" and fg is None:
        raise DataError(
            "mask: split 'shape' splits the foreground and needs one (a model with a foreground channel, "
            "clustering parameter foreground='mask', or an explicit mask)"
        )
    if fg is not None and not bool(fg.any()):
        return [empty_labels(tuple(emb.shape)) for _ in min_sizes]
    dev = resolve_device(device)
    inside = torch.ones(emb.shape[1:], dtype=torch.bool, device=dev) if fg is None else fg.bool().to(dev)
    inside = inside[None, None]
    out: list[np.ndarray] = []
    with torch.no_grad():
        split_labels = module.components(emb.to(dev)[None], inside)
        for min_size in min_sizes:
            labels = module.clean(split_labels, inside, fg is not None, int(min_size))[0, 0].cpu().numpy()
            # every object's pixels hold its first pixel's index (an outside value elsewhere): ids 1..K
            out.append(relabel_sequential(np.where(labels < labels.size, labels + 1, 0)))
    return out


def ingraph_module(kwargs: Mapping[str, Any]) -> nn.Module:
    """The in-graph clustering stage for its constructor arguments (``decoder="graph"``: the local decoder).

    >>> type(ingraph_module({"decoder": "graph", "edge_threshold": 0.2})).__name__
    'GraphInstances'
    >>> type(ingraph_module({"n_seeds": 64})).__name__
    'InGraphClustering'
    """
    from spoco_zoo.cluster.graph import GraphInstances
    from spoco_zoo.cluster.ingraph import InGraphClustering

    options = dict(kwargs)
    if options.pop("decoder", None) == GRAPH_DECODER:
        return GraphInstances(**options)
    return InGraphClustering(**options)
