"""Embeddings -> instance labels, exactly as spoco-zoo does it (numpy + torch only).

A Python consumer of an exported spoco-zoo package (bioimageio.core, a notebook,
a pipeline) gets the package's ``embeddings`` output and its recommended
clustering from the RDF (``config["spoco"]["clustering"]``); one call turns them
into the instances we report::

    from spoco_zoo.postprocess import embeddings_to_instances
    labels = embeddings_to_instances(embeddings, rdf_config)   # int32 [*spatial]

Importing this module pulls in numpy and torch only; the clustering code is
imported when it is used (``hdbscan`` additionally needs the ``hdbscan`` package).
See ``docs/instances.md`` for the config schema and the in-graph alternative.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np
import torch

from spoco_zoo.cluster.clustering_setting import ClusteringSetting
from spoco_zoo.cluster.settings import INGRAPH

__all__ = ["embeddings_to_instances"]


def _as_array(embeddings: Any) -> np.ndarray | torch.Tensor:
    """numpy / torch as they are; xarray-like objects (``.values``) and sequences via numpy."""
    if isinstance(embeddings, (np.ndarray, torch.Tensor)):
        return embeddings
    values = getattr(embeddings, "values", None)  # xarray.DataArray
    if values is not None and not callable(values):
        return np.asarray(values)
    data = getattr(embeddings, "data", None)  # bioimageio.core.Tensor wraps a DataArray in .data
    if data is not None and not callable(data) and not isinstance(data, (bytes, memoryview)):
        return _as_array(data)
    try:
        return np.asarray(embeddings)
    except Exception as err:  # pragma: no cover - exotic inputs
        raise ValueError(f"embeddings: cannot convert {type(embeddings).__name__} to an array: {err}") from err


def _squeeze_batch(emb: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """``[E,y,x]``, ``[E,z,y,x]``, ``[1,E,y,x]`` or ``[1,E,z,y,x]`` -> ``[E,*S]``.

    A leading axis of length 1 on a 4D array is a batch axis: the embedding axis
    always has at least 2 channels, so ``[1, z, y, x]`` cannot be ``[E, z, y, x]``.
    """
    shape = tuple(emb.shape)
    if isinstance(emb, np.ndarray) and (emb.dtype == object or not np.issubdtype(emb.dtype, np.number)):
        raise ValueError(f"embeddings: expected a numeric array, got dtype {emb.dtype}")
    if len(shape) == 5 or (len(shape) == 4 and shape[0] == 1):
        if shape[0] != 1:
            raise ValueError(
                f"embeddings: shape {shape} has a batch of {shape[0]} images; pass one image "
                "([E, *spatial] or [1, E, *spatial]) per call"
            )
        emb = emb[0]
        shape = shape[1:]
    if len(shape) not in (3, 4):
        raise ValueError(
            f"embeddings: expected [E, y, x], [E, z, y, x] or the same with a leading batch axis of 1, "
            f"got shape {tuple(emb.shape)}"
        )
    if shape[0] < 2:
        raise ValueError(
            f"embeddings: the embedding axis (axis 0 after the batch) has {shape[0]} channel(s); need >= 2"
        )
    if min(shape[1:]) < 1:
        raise ValueError(f"embeddings: empty image, shape {shape}")
    finite = torch.isfinite(emb).all() if isinstance(emb, torch.Tensor) else np.isfinite(emb).all()
    if not bool(finite):
        raise ValueError("embeddings: contains NaN or infinite values")
    return emb


def _run_ingraph(emb: np.ndarray | torch.Tensor, setting: ClusteringSetting) -> np.ndarray:
    from spoco_zoo.cluster.graph_method import ingraph_module

    module = ingraph_module(setting.ingraph_kwargs())
    tensor = torch.as_tensor(emb).detach().to(device="cpu", dtype=torch.float32)
    with torch.no_grad():
        return module(tensor[None])[0, 0].numpy().astype(np.int32)


def embeddings_to_instances(embeddings: Any, config: Any) -> np.ndarray:
    """Cluster one image's pixel embeddings into an instance label image.

    Parameters
    ----------
    embeddings:
        numpy array or torch tensor ``[E, y, x]`` / ``[E, z, y, x]``, or the same with a leading
        batch axis of length 1 (as a bioimage.io ``embeddings`` output); xarray-like objects
        (``.values``) are read through numpy.
    config:
        A :class:`~spoco_zoo.cluster.clustering_setting.ClusteringSetting`, or the package's
        ``config["spoco"]["clustering"]`` dict (read by
        :meth:`~spoco_zoo.cluster.clustering_setting.ClusteringSetting.from_rdf`), e.g.
        ``{"method": "mean_shift", "bandwidth": 0.5, "kernel": "flat", "min_size": 16,
        "background": "largest", "seed": 0}``; or any dict containing it (``config["spoco"]``, the
        RDF ``config``, the whole RDF), in which case a missing ``bandwidth`` defaults to
        ``spoco.loss.delta_var``. ``method`` is one of ``mean_shift`` and ``consistency``
        (:mod:`spoco_zoo.cluster`, numpy + torch), ``ingraph`` (the clustering stage compiled into
        the package, :class:`spoco_zoo.cluster.ingraph.InGraphClustering`) or ``hdbscan`` (needs
        the ``hdbscan`` package). Other keys are the method's keyword arguments; ``params`` (a
        dict) is merged in first; for ``consistency``, ``bandwidth`` is its ``delta_var``.

    Returns
    -------
    numpy.ndarray
        ``int32`` labels ``[*spatial]``: 0 background, positive ids objects.

    Raises
    ------
    ValueError
        Unknown method, parameters the method does not take, a bad shape or non-finite values.
    ImportError
        ``method="hdbscan"`` without the ``hdbscan`` package installed.

    Examples
    --------
    >>> emb = np.zeros((2, 4, 6), np.float32); emb[0, :, 3:] = 3.0
    >>> embeddings_to_instances(emb, {"method": "ingraph", "n_seeds": 16})[0].tolist()
    [0, 0, 0, 1, 1, 1]
    """
    setting = config if isinstance(config, ClusteringSetting) else ClusteringSetting.from_rdf(config)
    emb = _squeeze_batch(_as_array(embeddings))
    if setting.method == INGRAPH:
        return _run_ingraph(emb, setting)
    if setting.method == "hdbscan" and importlib.util.find_spec("hdbscan") is None:
        raise ImportError(
            "clustering method 'hdbscan' needs the `hdbscan` package (pip install hdbscan); "
            "methods 'mean_shift', 'consistency' and 'ingraph' need numpy and torch only"
        )
    # the dispatcher used by training, evaluation and `spoco-zoo segment`: same code, same instances
    from spoco_zoo.cluster import cluster_setting

    return np.asarray(cluster_setting(emb, setting), dtype=np.int32)
