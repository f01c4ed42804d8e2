"""Clustering of pixel embeddings ``[E, *spatial]`` into instance labels ``[*spatial]``.

Methods (all ``(embeddings, mask=None, **params) -> numpy.int32 labels``, see
:mod:`spoco_zoo.cluster.common` for the shared contract, ``min_size`` and ``background``):

* ``"mean_shift"`` -- :func:`spoco_zoo.cluster.mean_shift.mean_shift` (torch, CPU/GPU, default).
* ``"hdbscan"`` -- :func:`spoco_zoo.cluster.density.hdbscan_cluster` (``hdbscan`` package).
* ``"consistency"`` -- :func:`spoco_zoo.cluster.consistency.anchor_cluster` (SPOCO kernel anchors).

Importing this package imports numpy and torch only; a method's module (and, for ``"hdbscan"``,
the ``hdbscan`` / scikit-learn packages) is imported on first use.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from spoco_zoo.cluster.common import ArrayLike
from spoco_zoo.errors import DataError

# ``mean_shift`` is not re-exported: ``spoco_zoo.cluster.mean_shift`` is the module of that name.
__all__ = ["METHODS", "cluster_embeddings", "get_method", "hdbscan_cluster", "anchor_cluster"]

#: Names accepted by :func:`cluster_embeddings` (``ClusteringConfig.method``).
METHODS: tuple[str, ...] = ("mean_shift", "hdbscan", "consistency")

_TARGETS: dict[str, tuple[str, str]] = {
    "mean_shift": ("spoco_zoo.cluster.mean_shift", "mean_shift"),
    "hdbscan": ("spoco_zoo.cluster.density", "hdbscan_cluster"),
    "consistency": ("spoco_zoo.cluster.consistency", "anchor_cluster"),
}

#: The kernel width has one name in the config (``bandwidth``) and one per method.
_WIDTH_NAME = {"mean_shift": "bandwidth", "consistency": "delta_var", "hdbscan": None}


def get_method(method: str) -> Callable[..., np.ndarray]:
    """The clustering function registered under ``method`` (imported on first use)."""
    if method not in _TARGETS:
        raise DataError(f"method: unknown clustering method {method!r}; choose one of {', '.join(METHODS)}")
    module, name = _TARGETS[method]
    return getattr(importlib.import_module(module), name)


def cluster_embeddings(
    embeddings: ArrayLike, method: str = "mean_shift", mask: ArrayLike | None = None, **params: Any
) -> np.ndarray:
    """Cluster ``embeddings [E, *spatial]`` with ``method``; returns ``int32`` labels ``[*spatial]``.

    ``params`` are the method's keyword parameters. Values ``None`` mean "the method's default"
    (so a ``ClusteringConfig`` with ``bandwidth=None`` can be passed as is). The kernel width may
    be given under either name: ``bandwidth`` (the config's name; mean-shift's parameter) or
    ``delta_var`` (the anchor clustering's parameter) -- it is passed on under the method's own
    name; HDBSCAN has no kernel width and ignores both.

    Raises
    ------
    DataError
        Unknown ``method`` (the message lists :data:`METHODS`), unknown or conflicting parameters,
        invalid input (see :mod:`spoco_zoo.cluster.common`).

    Examples
    --------
    >>> emb = np.zeros((2, 4, 6), np.float32); emb[0, :, 4:] = 3.0
    >>> cluster_embeddings(emb, "mean_shift", bandwidth=0.5, device="cpu")[0].tolist()
    [0, 0, 0, 0, 1, 1]
    """
    func = get_method(method)
    given = {k: v for k, v in params.items() if v is not None}
    widths = {k: given.pop(k) for k in ("bandwidth", "delta_var") if k in given}
    target = _WIDTH_NAME[method]
    if target is not None and widths:
        values = set(float(v) for v in widths.values())
        if len(values) > 1:
            raise DataError(f"bandwidth/delta_var: conflicting kernel widths {widths} for method {method!r}")
        given[target] = values.pop()
    accepted = [p.name for p in inspect.signature(func).parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    unknown = sorted(set(given) - set(accepted))
    if unknown:
        raise DataError(
            f"params: {', '.join(unknown)} not accepted by clustering method {method!r} "
            f"(accepted: {', '.join(accepted)})"
        )
    return func(embeddings, mask, **given)


def __getattr__(name: str) -> Any:
    """Lazy access to ``hdbscan_cluster`` and ``anchor_cluster`` (their modules load on first use)."""
    lazy = {"hdbscan_cluster": "hdbscan", "anchor_cluster": "consistency"}
    if name in lazy:
        return get_method(lazy[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
