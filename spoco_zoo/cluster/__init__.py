"""Clustering of pixel embeddings ``[E, *spatial]`` into instance labels ``[*spatial]``.

Methods (all ``(embeddings, mask=None, **params) -> numpy.int32 labels``, see
:mod:`spoco_zoo.cluster.common` for the shared contract, ``min_size`` and ``background``):

* ``"graph"`` -- :func:`spoco_zoo.cluster.graph_method.graph_segmentation` (the local decoder every
  exported package compiles in; torch, CPU/GPU; the default for models with a foreground mask).
* ``"mean_shift"`` -- :func:`spoco_zoo.cluster.mean_shift.mean_shift` (torch, CPU/GPU; the default
  for models without one).
* ``"hdbscan"`` -- :func:`spoco_zoo.cluster.density.hdbscan_cluster` (``hdbscan`` package).
* ``"consistency"`` -- :func:`spoco_zoo.cluster.consistency.anchor_cluster` (SPOCO kernel anchors).
* ``"watershed"`` -- :func:`spoco_zoo.cluster.shape.foreground_watershed` (the foreground channel split
  by distance-transform watershed; embeddings unused).

Importing this package imports the standard library only; a method's module (numpy and torch,
and for ``"hdbscan"`` the ``hdbscan`` / scikit-learn packages) is imported on first use. Method
names, parameter names and defaults come from :mod:`spoco_zoo.cluster.settings`
(:class:`~spoco_zoo.cluster.clustering_setting.ClusteringSetting`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from spoco_zoo.cluster.clustering_setting import ClusteringSetting
from spoco_zoo.cluster.methods import get_method, run_method
from spoco_zoo.cluster.settings import METHODS

if TYPE_CHECKING:
    import numpy as np

    from spoco_zoo.cluster.common import ArrayLike

# ``mean_shift`` is not re-exported: ``spoco_zoo.cluster.mean_shift`` is the module of that name.
__all__ = [
    "METHODS",
    "ClusteringSetting",
    "cluster_embeddings",
    "cluster_setting",
    "run_method",
    "get_method",
    "hdbscan_cluster",
    "anchor_cluster",
]


def cluster_embeddings(
    embeddings: ArrayLike, method: str = "mean_shift", mask: ArrayLike | None = None, **params: Any
) -> np.ndarray:
    """Cluster ``embeddings [E, *spatial]`` with ``method``; returns ``int32`` labels ``[*spatial]``.

    ``params`` are a clustering dict's keys, parsed once into a
    :class:`~spoco_zoo.cluster.clustering_setting.ClusteringSetting`
    (:meth:`~spoco_zoo.cluster.clustering_setting.ClusteringSetting.from_dict`): the method's keyword
    parameters, where ``None`` means "the method's default" and the kernel width may be given as
    ``bandwidth`` or ``delta_var``, plus ``foreground`` and the local-clustering parameters (see
    :func:`cluster_setting`). ``ClusteringSetting.as_dict()`` can be passed as ``**params``.

    Raises
    ------
    DataError
        Unknown ``method`` (the message lists :data:`METHODS`), unknown or conflicting parameters,
        invalid input (see :mod:`spoco_zoo.cluster.common`).

    Examples
    --------
    >>> import numpy as np
    >>> emb = np.zeros((2, 4, 6), np.float32); emb[0, :, 4:] = 3.0
    >>> cluster_embeddings(emb, "mean_shift", bandwidth=0.5, device="cpu")[0].tolist()
    [0, 0, 0, 0, 1, 1]
    """
    return cluster_setting(embeddings, ClusteringSetting.from_dict({**params, "method": method}), mask)


def cluster_setting(embeddings: ArrayLike, setting: ClusteringSetting, mask: ArrayLike | None = None) -> np.ndarray:
    """Cluster ``embeddings [E, *spatial]`` as ``setting`` says; returns ``int32`` labels ``[*spatial]``.

    ``setting.foreground`` (``"mask"`` / ``"drop"``, :func:`spoco_zoo.cluster.common.split_foreground`)
    says that the last channel of ``embeddings`` is a network's foreground logit: with ``"mask"`` only
    the pixels it calls foreground are clustered (the rest is background, 0). A local setting
    (``block_shape`` or ``split_components``, :attr:`~spoco_zoo.cluster.clustering_setting.ClusteringSetting.local`)
    runs inside :func:`spoco_zoo.cluster.instances.segment_setting`: block by block, stitched, and with
    clusters split into connected components -- except ``"graph"``, local by construction, which
    decodes the whole image in one pass.

    Examples
    --------
    >>> import numpy as np
    >>> emb = np.zeros((2, 4, 6), np.float32); emb[0, :, 4:] = 3.0
    >>> cluster_setting(emb, ClusteringSetting("consistency", 0.5, params={"device": "cpu"}))[0].tolist()
    [0, 0, 0, 0, 1, 1]
    """
    from spoco_zoo.cluster.common import split_foreground

    embeddings, mask = split_foreground(embeddings, mask, setting.foreground)
    if setting.local:
        from spoco_zoo.cluster.instances import segment_setting

        return segment_setting(embeddings, setting, mask)
    return run_method(embeddings, setting.method, mask, **setting.method_kwargs())


def __getattr__(name: str) -> Any:
    """Lazy access to ``hdbscan_cluster`` and ``anchor_cluster`` (their modules load on first use)."""
    lazy = {"hdbscan_cluster": "hdbscan", "anchor_cluster": "consistency"}
    if name in lazy:
        return get_method(lazy[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
