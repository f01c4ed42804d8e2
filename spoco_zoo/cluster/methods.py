"""The clustering methods by name: :func:`get_method` (the registry) and :func:`run_method` (one method on
a whole image with its own parameters). Imports the standard library only; a method's module loads
on first use."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from spoco_zoo.cluster.settings import check_method
from spoco_zoo.errors import DataError

if TYPE_CHECKING:
    import numpy as np

    from spoco_zoo.cluster.common import ArrayLike

__all__ = ["get_method", "run_method"]

_TARGETS: dict[str, tuple[str, str]] = {
    "mean_shift": ("spoco_zoo.cluster.mean_shift", "mean_shift"),
    "hdbscan": ("spoco_zoo.cluster.density", "hdbscan_cluster"),
    "consistency": ("spoco_zoo.cluster.consistency", "anchor_cluster"),
    "watershed": ("spoco_zoo.cluster.shape", "foreground_watershed"),
    "graph": ("spoco_zoo.cluster.graph_method", "graph_segmentation"),
}


def get_method(method: str) -> Callable[..., np.ndarray]:
    """The clustering function registered under ``method`` (imported on first use)."""
    module, name = _TARGETS[check_method(method)]
    return getattr(importlib.import_module(module), name)


def run_method(
    embeddings: ArrayLike, method: str = "mean_shift", mask: ArrayLike | None = None, **params: Any
) -> np.ndarray:
    """One clustering method on the whole image, with its own keyword arguments only (the names of its
    function, :meth:`~spoco_zoo.cluster.clustering_setting.ClusteringSetting.method_kwargs`; no local clustering).

    Raises
    ------
    DataError
        Unknown ``method`` or parameters the method does not take.
    """
    func = get_method(method)
    given = dict(params)
    accepted = [p.name for p in inspect.signature(func).parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    unknown = sorted(set(given) - set(accepted))
    if unknown:
        raise DataError(
            f"params: {', '.join(unknown)} not accepted by clustering method {method!r} "
            f"(accepted: {', '.join(accepted)})"
        )
    return func(embeddings, mask, **given)
