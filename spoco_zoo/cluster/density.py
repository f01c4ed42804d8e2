"""HDBSCAN clustering of pixel embeddings on a pixel sample, then assignment of every pixel.

HDBSCAN's cost grows faster than linearly with the number of points, so it runs on
``n_samples`` random pixels; every pixel (sampled or not) then goes to the nearest cluster:
the nearest cluster centroid (``assign="centroid"``, torch, chunked) or the cluster of the nearest
clustered sample (``assign="sample"``, scikit-learn KD-tree, chunked). Samples HDBSCAN calls
noise are not used for the assignment.

The ``hdbscan`` package (a dependency) is imported inside :func:`hdbscan_cluster` only; without
it, :class:`sklearn.cluster.HDBSCAN` is used. (The module is not called ``hdbscan.py`` so that it
can never shadow the ``hdbscan`` package.)
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from spoco_zoo.cluster.common import (
    ArrayLike,
    assign_to_nearest,
    check_common,
    check_integer,
    empty_labels,
    finalize,
    method_docstring,
    to_points,
)
from spoco_zoo.errors import DataError

__all__ = ["hdbscan_cluster"]

_QUERY_CHUNK = 65536


def _run_hdbscan(x: np.ndarray, min_cluster_size: int, min_samples: int | None) -> np.ndarray:
    """Labels (``-1`` = noise) of ``x [M, E]`` by the ``hdbscan`` package, else scikit-learn."""
    try:
        import hdbscan  # noqa: PLC0415 - heavy optional import, on purpose here
    except ImportError:  # pragma: no cover - hdbscan is a declared dependency
        from sklearn.cluster import HDBSCAN  # noqa: PLC0415

        return HDBSCAN(min_cluster_size=min_cluster_size, min_samples=min_samples, copy=True).fit(x).labels_
    model = hdbscan.HDBSCAN(min_cluster_size=min_cluster_size, min_samples=min_samples, core_dist_n_jobs=1)
    return model.fit(x).labels_


@method_docstring
def hdbscan_cluster(
    embeddings: ArrayLike,
    mask: ArrayLike | None = None,
    *,
    min_cluster_size: int = 15,
    min_samples: int | None = None,
    n_samples: int = 20000,
    assign: Literal["centroid", "sample"] = "centroid",
    min_size: int = 0,
    background: Literal["none", "largest"] = "largest",
    seed: int = 0,
) -> np.ndarray:
    """Cluster pixel embeddings into instances with HDBSCAN on a random pixel sample.

    Parameters
    ----------
    {embeddings and mask}
    min_cluster_size, min_samples:
        HDBSCAN parameters, counted in *sampled* pixels (``min_samples=None``: equal to
        ``min_cluster_size``). Objects with fewer sampled pixels than ``min_cluster_size``
        (about ``min_cluster_size * N / n_samples`` pixels) are not found.
    n_samples:
        Pixels clustered by HDBSCAN (all when fewer).
    assign:
        ``"centroid"``: every pixel goes to the nearest cluster mean; ``"sample"``: to the cluster
        of the nearest clustered (non-noise) sample.
    {min_size and background}
    seed:
        Seed of the pixel sample.

    Returns
    -------
    numpy.ndarray
        ``int32`` labels ``[*spatial]``: 0 background, objects ``1..K``. When HDBSCAN finds no
        cluster (all samples noise) all clustered pixels form one cluster (which, without a mask
        and with ``background="largest"``, is background: all zeros).

    {errors}
    """
    for name, value in (("min_cluster_size", min_cluster_size), ("n_samples", n_samples)):
        check_integer(name, value, 2)
    if min_samples is not None:
        check_integer("min_samples", min_samples, 1)
    if assign not in ("centroid", "sample"):
        raise DataError(f"assign: must be 'centroid' or 'sample', got {assign!r}")
    check_common(min_size, background)
    points, index = to_points(embeddings, mask, "cpu")
    shape = tuple(embeddings.shape)
    n = points.shape[0]
    if n == 0:
        return empty_labels(shape)
    rng = np.random.default_rng(int(seed))
    if n > n_samples:
        sel = np.sort(rng.choice(n, size=int(n_samples), replace=False))
    else:
        sel = np.arange(n)
    x = points.numpy()[sel]
    if len(sel) > int(min_cluster_size):
        sample_labels = np.asarray(_run_hdbscan(x, int(min_cluster_size), min_samples), dtype=np.int64)
    else:
        sample_labels = np.full(len(sel), -1, dtype=np.int64)
    clustered = sample_labels >= 0
    assignment: np.ndarray | torch.Tensor
    if not clustered.any():
        assignment = np.zeros(n, dtype=np.int64)
    elif assign == "centroid":
        ids = torch.from_numpy(sample_labels[clustered])
        k = int(ids.max()) + 1
        members = torch.from_numpy(x[clustered])
        sums = torch.zeros(k, points.shape[1]).index_put_((ids,), members, accumulate=True)
        counts = torch.bincount(ids, minlength=k).clamp_min(1).unsqueeze(1).to(sums.dtype)
        with torch.no_grad():
            assignment, _ = assign_to_nearest(points, sums / counts)
    else:
        from sklearn.neighbors import KDTree  # noqa: PLC0415 - heavy optional import

        tree = KDTree(x[clustered])
        owner = sample_labels[clustered]
        data = points.numpy()
        assignment = np.empty(n, dtype=np.int64)
        for start in range(0, n, _QUERY_CHUNK):
            nearest = tree.query(data[start : start + _QUERY_CHUNK], k=1, return_distance=False)[:, 0]
            assignment[start : start + _QUERY_CHUNK] = owner[nearest]
    return finalize(assignment, index, shape[1:], min_size=min_size, background=background)
