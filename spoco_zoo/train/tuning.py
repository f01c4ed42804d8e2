"""Post-processing parameters chosen on validation images, stored with the model.

Clustering turns embeddings into instances with two parameters that depend on
the trained model and the data: the kernel width (``bandwidth``) and the size
below which fragments merge into a neighbour (``min_size``). Like a detector
whose score thresholds are optimised after training, a spoco-zoo model picks
them on its dense validation images when training ends
(:func:`tune_clustering`) and ships them in its checkpoint and package.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from spoco_zoo.cluster.clustering_setting import ClusteringSetting
from spoco_zoo.cluster.settings import (
    DEFAULT_DELTA_VAR,
    EDGE_THRESHOLD_FRACTION,
    min_distance_from_size,
    spacing_to_power,
)
from spoco_zoo.errors import DataError

__all__ = [
    "TuningResult",
    "TUNE_MAX_VOXELS",
    "centre_crop",
    "tune_clustering",
    "score_segmentation",
    "BANDWIDTH_FACTORS",
    "MIN_SIZE_FACTORS",
    "MIN_DISTANCE_FACTORS",
    "EDGE_THRESHOLD_FACTORS",
    "SPACING_POWERS",
    "SEEDED_DIMS",
]

#: Kernel widths tried, as multiples of the configured one.
BANDWIDTH_FACTORS = (0.6, 0.8, 1.0, 1.2)
#: ``min_size`` values tried, as multiples of the configured one.
MIN_SIZE_FACTORS = (0.4, 0.7, 1.0, 1.4)
#: ``min_distance`` values of ``method="watershed"`` tried (models with a foreground mask), as multiples
#: of the one derived from ``min_size`` (:func:`spoco_zoo.cluster.settings.min_distance_from_size`).
MIN_DISTANCE_FACTORS = (0.7, 1.0, 1.4)
#: Largest image (pixels / voxels) the end-of-training grid decodes: larger validation images are
#: tuned on their centre (:func:`centre_crop`), whose objects cut by the crop favour a low ``min_size``.
#: The 3D preset's 64x128x128 validation volume (5 s per decode of method ``"graph"`` on 2 CPU cores,
#: 28 decodes) and 2D images up to 1024x1024 are tuned whole.
TUNE_MAX_VOXELS = 1 << 20
#: ``edge_threshold`` values of method ``"graph"`` (split ``"embedding"``) tried, as multiples of the
#: configured one (:data:`spoco_zoo.cluster.settings.EDGE_THRESHOLD_FRACTION` x ``delta_var``).
EDGE_THRESHOLD_FACTORS = (0.6, 0.8, 1.0, 1.2)
#: Powers of an anisotropic model's ``spacing`` tried with every ``edge_threshold`` of method ``"graph"``
#: (:func:`spoco_zoo.cluster.settings.spacing_to_power`; 1: the thresholds in proportion to the voxel size).
#: Below 1 a z step may differ less than its physical size says: on the z-step-3x benchmark volumes the
#: threshold in proportion lets objects stacked in z join through single voxels, more so the deeper the
#: volume (docs/benchmarks.md, "The z threshold chosen on validation volumes").
SPACING_POWERS = (1.0, 0.8, 0.6)
#: Spatial dimensionality whose ``edge_threshold`` rows of method ``"graph"`` are also tried with seeds
#: (``seed_size``: the configured ``min_size``, a quarter of the median annotated object). In a volume a
#: voxel has six face neighbours and an object a dozen touching ones: objects joined through a few close
#: voxels chain into components that grow with the volume (docs/benchmarks.md, "Seeds for the local
#: decoder"). Images keep their grid (their figures, the real image's included, were measured without).
SEEDED_DIMS = 3


def centre_crop(shape: Sequence[int], max_voxels: int) -> tuple[slice, ...]:
    """Slices of the centre of an image of ``shape`` with at most ``max_voxels`` pixels (the whole image
    when it is that small); the axes are shrunk in proportion.

    >>> centre_crop((64, 128, 128), 1 << 19)
    (slice(7, 57, None), slice(13, 114, None), slice(13, 114, None))
    >>> centre_crop((256, 256), 1 << 20)
    (slice(0, 256, None), slice(0, 256, None))
    """
    total = float(np.prod(shape))
    if total <= max_voxels:
        return tuple(slice(0, int(s)) for s in shape)
    factor = (max_voxels / total) ** (1.0 / len(shape))
    sizes = [max(1, int(s * factor)) for s in shape]
    return tuple(slice((int(s) - c) // 2, (int(s) - c) // 2 + c) for s, c in zip(shape, sizes))


@dataclass
class TuningResult:
    """The chosen parameters and every combination's scores.

    ``method`` is the configured method or ``"watershed"`` (the foreground split by shape, tried for
    models whose foreground channel masks the background); ``bandwidth`` belongs to the first,
    ``min_distance`` to the second (``None`` otherwise).
    """

    bandwidth: float | None
    min_size: int
    score: float
    table: list[dict[str, Any]] = field(default_factory=list)
    method: str = "mean_shift"
    min_distance: int | None = None
    #: Method ``"graph"``: the chosen ``split`` with its ``edge_threshold`` (and, for an anisotropic model, the
    #: ``spacing``) or ``min_distance``.
    params: dict[str, Any] = field(default_factory=dict)


def _score(result: Mapping[str, float]) -> float:
    """Higher is better: SBD plus mAP (the project's two instance targets) on dense labels, else
    :func:`spoco_zoo.metrics.partial.partial_score` on sparse ones."""
    if "sbd" in result:
        return float(result["sbd"]) + float(result["map"])
    from spoco_zoo.metrics.partial import partial_score

    return partial_score(result)


def _table_row(chosen: dict[str, Any], results: Sequence[Mapping[str, float]]) -> dict[str, Any]:
    """One grid row: the parameters ``chosen``, the mean of every score over the images and ``score``."""
    keys = sorted({key for result in results for key in result})
    row = dict(chosen)
    row.update({key: float(np.mean([r[key] for r in results if key in r])) for key in keys})
    row["score"] = float(np.mean([_score(r) for r in results]))
    return row


def score_segmentation(pred: np.ndarray, labels: np.ndarray, ignore_label: int = -1) -> dict[str, float]:
    """SBD / mAP / AP50 against dense labels; the partial scores against labels with unannotated pixels.

    >>> gt = np.zeros((4, 4), int); gt[:2, :2] = 1
    >>> sorted(score_segmentation(gt, gt)), sorted(score_segmentation(gt, np.where(gt > 0, 1, -1)))
    (['ap50', 'map', 'sbd'], ['false_foreground', 'object_ap50', 'object_dice'])
    """
    from spoco_zoo.metrics import evaluate_instances
    from spoco_zoo.metrics.partial import partial_scores

    if (np.asarray(labels) == ignore_label).any():
        return partial_scores(pred, labels, ignore_label)
    result = evaluate_instances(pred, labels)
    return {key: float(result[key]) for key in ("sbd", "map", "ap50")}


def tune_clustering(
    embeddings: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    clustering: ClusteringSetting | Mapping[str, Any],
    bandwidth_factors: Sequence[float] = BANDWIDTH_FACTORS,
    min_size_factors: Sequence[float] = MIN_SIZE_FACTORS,
    ignore_label: int = -1,
) -> TuningResult:
    """Grid search of ``bandwidth`` x ``min_size`` on validation images (and, for a model whose
    foreground channel masks the background, of ``method="watershed"``'s ``min_distance`` x ``min_size``).

    Parameters
    ----------
    embeddings : sequence of numpy.ndarray
        ``[E, *S]`` embeddings of each validation image.
    labels : sequence of numpy.ndarray
        Ground-truth labels ``[*S]`` of the same images: dense (scored by SBD + mAP), or sparse
        with ``ignore_label`` pixels (objects set aside from the training annotations, scored by
        :func:`spoco_zoo.metrics.partial.partial_score`).
    clustering : ClusteringSetting or mapping
        The recommended clustering (:meth:`spoco_zoo.config.TrainConfig.clustering_setting`, or its
        dict) with a kernel width: the grid is centred on its ``bandwidth`` and ``min_size``.
    bandwidth_factors, min_size_factors : sequence of float
        Multiples of the configured values to try.
    ignore_label : int
        Value of unannotated pixels in sparse ``labels``.

    Returns
    -------
    TuningResult
        The combination with the best mean score (ties: the configured values first) and a table
        of every combination's mean scores and ``score``.

    Raises
    ------
    DataError
        No images, or a method without a kernel width.
    """
    from spoco_zoo.cluster import cluster_setting
    from spoco_zoo.cluster.common import relabel_sequential
    from spoco_zoo.cluster.components import absorb_small_components

    if not embeddings or len(embeddings) != len(labels):
        raise DataError(f"tuning: need the same positive number of embeddings and labels, got {len(embeddings)}")
    setting = clustering if isinstance(clustering, ClusteringSetting) else ClusteringSetting.from_dict(clustering)
    if setting.method == "graph":
        return _tune_graph(embeddings, labels, setting, min_size_factors, ignore_label)
    if setting.bandwidth is None:
        raise DataError(f"tuning: method {setting.method!r} has no kernel width to tune")
    base_bandwidth = setting.bandwidth
    base_min_size = setting.min_size or 0
    bandwidths = sorted({round(base_bandwidth * f, 4) for f in bandwidth_factors} | {base_bandwidth})
    min_sizes = sorted({int(round(base_min_size * f)) for f in min_size_factors} | {base_min_size})
    base = replace(setting, split_components=True, min_size=0)  # min_size: applied to the raw labels below
    method = setting.method
    candidates: list[tuple[dict[str, Any], ClusteringSetting]] = [
        ({"method": method, "bandwidth": bandwidth}, replace(base, bandwidth=bandwidth)) for bandwidth in bandwidths
    ]
    if setting.foreground == "mask" and method != "watershed":
        dims = int(np.asarray(embeddings[0]).ndim) - 1
        derived = min_distance_from_size(base_min_size, dims)
        for distance in sorted({max(1, int(round(derived * f))) for f in MIN_DISTANCE_FACTORS}):
            chosen = {"method": "watershed", "min_distance": distance}
            candidates.append((chosen, replace(base, bandwidth=None, method="watershed", min_distance=distance)))
    table: list[dict[str, Any]] = []
    for chosen, call in candidates:
        raw = [cluster_setting(emb, call).astype(np.int64) for emb in embeddings]
        for min_size in min_sizes:
            results = [
                score_segmentation(relabel_sequential(absorb_small_components(pred, min_size)), gt, ignore_label)
                for pred, gt in zip(raw, labels)
            ]
            table.append(_table_row({**chosen, "min_size": float(min_size)}, results))

    def rank(row: dict[str, Any]) -> tuple[float, bool, bool, bool]:
        return (
            round(row["score"], 6),
            row["method"] == method,
            row.get("bandwidth") == base_bandwidth,
            row["min_size"] == base_min_size,
        )

    best = max(table, key=rank)
    return TuningResult(
        bandwidth=None if best.get("bandwidth") is None else float(best["bandwidth"]),
        min_size=int(best["min_size"]),
        score=best["score"],
        table=table,
        method=str(best["method"]),
        min_distance=None if best.get("min_distance") is None else int(best["min_distance"]),
    )


def _tune_graph(
    embeddings: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    setting: ClusteringSetting,
    min_size_factors: Sequence[float],
    ignore_label: int,
) -> TuningResult:
    """Grid of method ``"graph"``: split ``"embedding"`` x ``edge_threshold`` (x the ``spacing`` powers of
    :data:`SPACING_POWERS` for an anisotropic model) and, with a foreground mask, split ``"shape"`` x
    ``min_distance``; each x ``min_size`` (merged inside the decoder). A volume model's ``"embedding"`` rows
    are tried without and with seeds (:data:`SEEDED_DIMS`). The chosen ``spacing`` (when the model has one)
    and ``seed_size`` (volumes) are part of the result's ``params``."""
    from spoco_zoo.cluster.common import split_foreground
    from spoco_zoo.cluster.graph_method import graph_segmentations_by_min_size

    base_min_size = setting.min_size or 0
    base_edge = setting.edge_threshold or EDGE_THRESHOLD_FRACTION * DEFAULT_DELTA_VAR
    dims = int(np.asarray(embeddings[0]).ndim) - 1
    base_distance = setting.min_distance or min_distance_from_size(base_min_size, dims)
    min_sizes = sorted({int(round(base_min_size * f)) for f in min_size_factors} | {base_min_size})
    spacing = [float(v) for v in setting.params.get("spacing") or []]  # none: isotropic or 2D
    powers = SPACING_POWERS if len(set(spacing)) > 1 else (1.0,)
    seed_sizes = (0, base_min_size) if dims == SEEDED_DIMS and base_min_size > 0 else (0,)
    choices: list[dict[str, Any]] = [
        {
            "split": "embedding",
            "edge_threshold": edge,
            **({"spacing_power": power} if len(powers) > 1 else {}),
            **({"seed_size": seed_size} if seed_size else {}),
        }
        for edge in sorted({round(base_edge * f, 4) for f in EDGE_THRESHOLD_FACTORS} | {base_edge})
        for power in powers
        for seed_size in seed_sizes
    ]
    if setting.foreground == "mask":
        choices += [
            {"split": "shape", "min_distance": distance}
            for distance in sorted({max(1, int(round(base_distance * f))) for f in MIN_DISTANCE_FACTORS})
        ]
    masked = [split_foreground(emb, None, setting.foreground) for emb in embeddings]  # (embeddings, mask)
    table: list[dict[str, Any]] = []
    for choice in choices:
        fields = {k: v for k, v in choice.items() if k not in ("spacing_power", "seed_size")}
        kwargs = replace(setting, **fields).method_kwargs()
        kwargs.pop("min_size", None)
        if "spacing_power" in choice:
            kwargs["spacing"] = spacing_to_power(spacing, choice["spacing_power"])
        if choice.get("split") == "embedding":
            kwargs["seed_size"] = int(choice.get("seed_size", 0))
        # one split per image and choice, cleaned with every min_size (the split is nearly all the time)
        per_image = [graph_segmentations_by_min_size(emb, mask, min_sizes, **kwargs) for emb, mask in masked]
        for i, min_size in enumerate(min_sizes):
            results = [score_segmentation(preds[i], gt, ignore_label) for preds, gt in zip(per_image, labels)]
            table.append(_table_row({"method": "graph", **choice, "min_size": float(min_size)}, results))
    configured = setting.split or "embedding"

    def rank(row: dict[str, Any]) -> tuple[float, bool, bool, bool, bool, bool, bool]:
        return (
            round(row["score"], 6),
            row["split"] == configured,
            "seed_size" not in row,
            row.get("spacing_power", 1.0) == 1.0,
            row.get("edge_threshold") == base_edge,
            row.get("min_distance") == base_distance,
            row["min_size"] == base_min_size,
        )

    best = max(table, key=rank)  # ties: the configured split and values
    params = {"split": best["split"]}
    if best["split"] == "embedding":
        params["edge_threshold"] = float(best["edge_threshold"])
        if "spacing_power" in best:
            params["spacing"] = spacing_to_power(spacing, best["spacing_power"])
        if len(seed_sizes) > 1:  # stored either way: a retuned setting's earlier seeds do not linger
            params["seed_size"] = int(best.get("seed_size", 0))
    else:
        params["min_distance"] = int(best["min_distance"])
    return TuningResult(
        bandwidth=None,
        min_size=int(best["min_size"]),
        score=best["score"],
        table=table,
        method="graph",
        min_distance=params.get("min_distance"),
        params=params,
    )
