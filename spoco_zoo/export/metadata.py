"""What an exported package says about itself: name, description, tags, training details, ``config.spoco``.

Everything here is derived from the checkpoint's ``TrainConfig`` (and its stored step and
metrics); :mod:`spoco_zoo.export.rdf` turns it into the bioimage.io description.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from spoco_zoo.cluster.settings import recommended_clustering, recommended_ingraph
from spoco_zoo.errors import ExportError
from spoco_zoo.export.common import PackageGeometry, json_safe

__all__ = [
    "default_name",
    "check_name",
    "default_description",
    "clustering_config",
    "ingraph_settings",
    "spoco_section",
    "training_details",
    "package_tags",
]

_NAME_CHARS = re.compile(r"^[A-Za-z0-9_+\- ()]+$")


def default_name(spatial_dims: int, instances: bool) -> str:
    """``"SPOCO 2D embeddings and instances"`` and the like.

    >>> default_name(3, False)
    'SPOCO 3D embeddings'
    """
    return f"SPOCO {spatial_dims}D embeddings" + (" and instances" if instances else "")


def check_name(name: str) -> str:
    """A bioimage.io model name (whitespace normalised): 5-128 letters, digits, spaces and ``_+-()``.

    Raises
    ------
    ExportError
        The name does not qualify.
    """
    name = " ".join(str(name).split())
    if not 5 <= len(name) <= 128 or not _NAME_CHARS.match(name):
        raise ExportError(
            f"--name {name!r}: a bioimage.io model name has 5-128 characters from letters, digits, spaces and _+-()"
        )
    return name


def default_description(config: Any, instances: bool) -> str:
    """One paragraph: what the network is, how it was trained, how to get instances."""
    dims, fraction = config.model.spatial_dims, config.data.object_fraction
    return (
        f"SPOCO pixel-embedding U-Net ({dims}D, {config.model.embedding_dim} channels) trained from sparse "
        f"object annotations ({100 * fraction:g}% of objects labelled) with spoco-zoo. Cluster the embeddings "
        "with config.spoco.clustering" + (" or use the in-graph 'instances' output." if instances else ".")
    )


def clustering_config(config: Any, ingraph: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The RDF's ``config["spoco"]["clustering"]`` for a ``TrainConfig``.

    :func:`spoco_zoo.cluster.settings.recommended_clustering` plus, when the package has the
    in-graph output, ``"ingraph"``: the constructor arguments compiled into the model. The dict
    is accepted as is by :func:`spoco_zoo.postprocess.embeddings_to_instances`.
    """
    out = recommended_clustering(config.clustering, config.loss, patch_shape=config.data.patch_shape)
    if ingraph is not None:
        out["ingraph"] = dict(ingraph)
    return json_safe(out)


def ingraph_settings(config: Any, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Constructor arguments of the in-graph clustering (:func:`~spoco_zoo.cluster.settings.recommended_ingraph`).

    Raises
    ------
    ExportError
        ``options`` holds an unknown parameter or a value of the wrong kind.
    """
    try:
        return recommended_ingraph(config.clustering, config.loss, options)
    except ValueError as err:
        raise ExportError(f"in-graph clustering options: {err}") from err


def spoco_section(
    config: Any,
    state: Mapping[str, Any],
    *,
    weights: str,
    clustering: Mapping[str, Any],
    outputs: Sequence[str],
    geometry: PackageGeometry,
) -> dict[str, Any]:
    """The RDF's ``config["spoco"]``: clustering, loss, normalisation, model, training summary, metrics."""
    from spoco_zoo import __version__

    data = config.data
    return json_safe(
        {
            "clustering": dict(clustering),
            "loss": config.loss.model_dump(mode="json"),
            "normalization": data.normalization.model_dump(mode="json"),
            "model": config.model.model_dump(mode="json"),
            "training": {
                "steps": state.get("step"),
                "weights": weights,
                "object_fraction": data.object_fraction,
                "labels_are_sparse": data.labels_are_sparse,
                "patch_shape": list(data.patch_shape),
                "batch_size": data.batch_size,
                "data": "synthetic" if data.train_images is None else "files",
            },
            "metrics": dict(state.get("metrics") or {}),
            "outputs": list(outputs),
            "geometry": {"min": geometry.min_size, "step": geometry.step, "halo": geometry.halo},
            "spoco_zoo_version": __version__,
        }
    )


def training_details(config: Any) -> dict[str, Any]:
    """Keyword arguments of bioimage.io's ``TrainingDetails``."""
    return {
        "training_preprocessing": f"{config.data.normalization.mode} normalisation per image and channel",
        "training_batch_size": float(config.data.batch_size),
        "initial_learning_rate": float(config.lr),
        "loss_function": "SPOCO (pull/push + instance Dice + consistency)",
        "loss_function_kwargs": json_safe(config.loss.model_dump(mode="json")),
        "optimizer": "AdamW",
        "optimizer_kwargs": {"lr": float(config.lr), "weight_decay": float(config.weight_decay)},
    }


def package_tags(spatial_dims: int, formats: Sequence[str], extra: Sequence[str] = ()) -> list[str]:
    """The package's tags: SPOCO, task, dimensionality, frameworks, then ``extra``.

    >>> package_tags(2, ["pytorch_state_dict", "onnx"], ["nuclei"])[-3:]
    ['pytorch', 'onnx', 'nuclei']
    """
    tags = ["spoco", "instance-segmentation", "pixel-embeddings", "embeddings", "sparse-annotation"]
    tags += [f"{spatial_dims}d", "unet", "pytorch"]
    tags += [t for t in ("torchscript", "onnx") if t in formats]
    return [*tags, *extra]
