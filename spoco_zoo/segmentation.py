"""One image -> instance labels, from a checkpoint or an exported package: the code behind
``spoco-zoo segment`` (whole images; ``--blockwise`` lives in :mod:`spoco_zoo.blockwise`) and the
napari plugin's Segment widget, so both give the same labels.

* :func:`load_segmenter` reads a checkpoint once (network, config, halo, recommended clustering);
  :func:`segment_with_checkpoint` normalises an image like training did, predicts it in tiles
  (:mod:`spoco_zoo.inference`) and clusters the embeddings (:func:`spoco_zoo.cluster.cluster_embeddings`).
* :func:`package_weight_format` checks a package once; :func:`segment_with_package` runs a raw image
  through it (bioimageio.core) and clusters with the package's recommendation
  (:func:`spoco_zoo.postprocess.embeddings_to_instances`), or returns its in-graph labels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from spoco_zoo.cluster.clustering_setting import ClusteringSetting
from spoco_zoo.cluster.settings import TrainFields
from spoco_zoo.config import TrainConfig
from spoco_zoo.errors import DataError

__all__ = [
    "CheckpointSegmenter",
    "checkpoint_clustering",
    "package_clustering",
    "load_segmenter",
    "untuned_note",
    "segmenter_from_state",
    "segment_with_checkpoint",
    "package_weight_format",
    "segment_with_package",
]


def checkpoint_clustering(
    config: TrainFields, method: str | None, params: Mapping[str, Any], min_size: int | None
) -> ClusteringSetting:
    """The clustering of a checkpoint's ``TrainConfig`` with ``--method``, ``--param`` and ``--min-size``.

    Defaults: :meth:`ClusteringSetting.from_train_config` (a different ``method`` keeps ``min_size``
    and the local clustering and gets the kernel width ``config.loss.delta_var``); ``params`` and
    ``min_size`` override (:meth:`ClusteringSetting.updated`).
    """
    return ClusteringSetting.from_train_config(config, method).updated(params, min_size)


def package_clustering(
    config: Mapping[str, Any], method: str | None, params: Mapping[str, Any], min_size: int | None
) -> ClusteringSetting:
    """A package's clustering with ``--method``, ``--param`` and ``--min-size`` applied
    (:meth:`ClusteringSetting.from_rdf`), for ``embeddings_to_instances``.

    ``config`` is the clustering dict returned by ``zoo_embeddings`` (or any dict containing it
    under ``config`` / ``spoco`` / ``clustering``, so that ``spoco.loss.delta_var`` still provides
    the default kernel width).

    Raises
    ------
    DataError
        The package config has no clustering method and ``method`` is ``None``, or a bad value.
    """
    return ClusteringSetting.from_rdf(config, method=method, params=params, min_size=min_size)


@dataclass
class CheckpointSegmenter:
    """A checkpoint's network (eval mode), its config, the tile halo and the clustering to apply.

    Attributes
    ----------
    source:
        The checkpoint file (named in errors).
    net:
        The U-Net with the chosen weights.
    config:
        The checkpoint's :class:`~spoco_zoo.config.TrainConfig`.
    halo:
        Context per side of a tile, per spatial axis.
    clustering:
        The clustering to apply (:func:`checkpoint_clustering`).
    untuned:
        The run was to tune its clustering at the end of training (``clustering.tune``) and this
        checkpoint holds no tuning: its training was still running, stopped before the end, or had no
        validation images, so the clustering is the configured default (:func:`untuned_note`).
    """

    source: Path
    net: Any
    config: TrainConfig
    halo: tuple[int, ...]
    clustering: ClusteringSetting
    untuned: bool = False


def untuned_note(segmenter: CheckpointSegmenter) -> str | None:
    """What to tell a user whose checkpoint's clustering was not tuned (``None`` when it was, or needs not be).

    A ``best.pt`` read while its training runs has the default clustering: the tuning is written into it at
    the end. On one 3D model the defaults cost 0.054 SBD at 128x512x512 (0.779 against 0.833 tuned;
    docs/benchmarks.md, "The block-wise row from the benchmark").
    """
    if not segmenter.untuned:
        return None
    return (
        f"note: {segmenter.source}: the clustering was not tuned on validation images (training still running, "
        "stopped before its end, or without validation images); the configured defaults are used for every "
        "clustering setting not given explicitly"
    )


def load_segmenter(
    checkpoint: str | Path,
    weights: Literal["student", "teacher"] = "student",
    method: str | None = None,
    params: Mapping[str, Any] | None = None,
    min_size: int | None = None,
    halo: Sequence[int] | None = None,
) -> CheckpointSegmenter:
    """Read a checkpoint for segmenting: network, config, halo and the recommended clustering.

    Parameters
    ----------
    checkpoint:
        A spoco-zoo checkpoint (``best.pt`` / ``last.pt``).
    weights:
        ``"student"`` or ``"teacher"`` (EMA) weights.
    method, params, min_size:
        Clustering overrides (:func:`checkpoint_clustering`); default: the checkpoint's recommendation.
    halo:
        Context per side of a tile, per axis; default: stored at the end of training, else measured
        on the weights (:func:`spoco_zoo.models.receptive_field.package_halo`).

    Raises
    ------
    spoco_zoo.errors.CheckpointError
        Missing, unreadable or not a spoco-zoo checkpoint (names the file).
    """
    from spoco_zoo.train.checkpoint import load_checkpoint

    path = Path(checkpoint)
    return segmenter_from_state(
        load_checkpoint(path, map_location="cpu"), path, weights, method, params, min_size, halo
    )


def segmenter_from_state(
    state: Mapping[str, Any],
    path: Path,
    weights: Literal["student", "teacher"] = "student",
    method: str | None = None,
    params: Mapping[str, Any] | None = None,
    min_size: int | None = None,
    halo: Sequence[int] | None = None,
) -> CheckpointSegmenter:
    """:func:`load_segmenter` of a checkpoint already read with
    :func:`~spoco_zoo.train.checkpoint.load_checkpoint` from ``path`` (named in errors)."""
    from spoco_zoo.train.checkpoint import model_from_state, stored_halo

    net, config = model_from_state(state, path, weights)
    dims = config.model.spatial_dims
    if halo is None:
        from spoco_zoo.models.receptive_field import package_halo

        known = stored_halo(state, weights)
        halo = package_halo(net, dims, config.model.in_channels) if known is None else known
    clustering = checkpoint_clustering(config, method, params or {}, min_size)
    untuned = bool(config.clustering.tune) and "tuning" not in state
    return CheckpointSegmenter(path, net, config, tuple(int(h) for h in halo), clustering, untuned)


def segment_with_checkpoint(
    segmenter: CheckpointSegmenter,
    image: np.ndarray,
    tile_shape: Sequence[int] | None = None,
    device: Any = "cpu",
    progress: bool = False,
    source: str | Path = "image",
) -> tuple[np.ndarray, np.ndarray]:
    """Instance labels and embeddings of one raw image ``[C, *S]`` with a checkpoint's network.

    The image is normalised with the checkpoint's ``data.normalization``, predicted in tiles of
    ``tile_shape`` (default: whole images up to 2048x2048, tiled above) with the segmenter's halo,
    and clustered with its method.

    Returns
    -------
    labels, embeddings:
        ``[*S]`` instance ids (0 background) and ``float32 [E, *S]``.

    Raises
    ------
    DataError
        The image's channel count is not the model's (names ``source``).
    """
    from spoco_zoo.cluster import cluster_setting
    from spoco_zoo.data.normalize import normalize
    from spoco_zoo.inference import automatic_tile_shape, predict_embeddings

    config, net = segmenter.config, segmenter.net
    if image.ndim != config.model.spatial_dims + 1 or image.shape[0] != config.model.in_channels:
        raise DataError(
            f"{source}: image has {image.shape[0]} channel(s) (shape {image.shape}) but the model expects "
            f"{config.model.in_channels} ({config.model.spatial_dims}D, {segmenter.source})"
        )
    normalized = normalize(image, config.data.normalization)
    tiles = tile_shape or automatic_tile_shape(normalized.shape[1:], net.size_step)  # bounded memory
    emb = predict_embeddings(net, normalized, tiles, segmenter.halo, net.size_step, device, progress)
    return np.asarray(cluster_setting(emb, segmenter.clustering)), emb


def package_weight_format(
    package: str | Path, weight_format: str | None = None, trust_package_code: bool = False
) -> str:
    """Check a package before predicting with it; the weight format that will run.

    Raises
    ------
    spoco_zoo.errors.PackageError
        Naming the package: not a spoco-zoo package, no such weight format, or code that is not the
        installed spoco-zoo's without ``trust_package_code``.
    """
    from spoco_zoo.zoo.predict import check_package

    return check_package(package, weight_format, trust_package_code=trust_package_code)


def segment_with_package(
    package: str | Path,
    image: np.ndarray,
    weight_format: str,
    tile_shape: Sequence[int] | None = None,
    device: str = "cpu",
    trust_package_code: bool = False,
    method: str | None = None,
    params: Mapping[str, Any] | None = None,
    min_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Instance labels (and embeddings, when the package has them) of one raw image ``[C, *S]``.

    The package does its own preprocessing (bioimageio.core); its embeddings are clustered with
    its ``config["spoco"]["clustering"]`` (with the overrides); a package of the ``instances``
    variant gives its in-graph labels (whole images only) and no embeddings.

    Raises
    ------
    spoco_zoo.errors.PackageError
        The package cannot be used safely.
    ValueError
        An image that does not fit, or tiles asked of an ``instances``-only package.
    """
    from spoco_zoo.postprocess import embeddings_to_instances
    from spoco_zoo.zoo.predict import zoo_predict

    pred = zoo_predict(
        package,
        image,
        tile_shape=tile_shape,
        devices=[str(device)],
        weight_format=weight_format,
        trust_package_code=trust_package_code,
    )
    if pred.embeddings is None:  # the single-output 'instances' variant
        if pred.instances is None or tile_shape is not None:
            raise ValueError(
                f"{package}: the package has no 'embeddings' output; its in-graph labels come from whole "
                "images only (drop --tile, or export --variant full)"
            )
        return np.asarray(pred.instances), None
    clustering = package_clustering(pred.clustering or {}, method, params or {}, min_size)
    return embeddings_to_instances(pred.embeddings, clustering), pred.embeddings
