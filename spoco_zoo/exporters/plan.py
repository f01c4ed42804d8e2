"""The plan of one export: options checked, checkpoint loaded, geometry and clustering derived.

Everything :func:`spoco_zoo.exporters.package.export_package` needs to know is decided here,
before any file is written; a bad option or checkpoint fails fast.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spoco_zoo.errors import CheckpointError, ExportError
from spoco_zoo.exporters.common import PackageGeometry, default_test_shape, package_geometry
from spoco_zoo.exporters.metadata import (
    Publication,
    check_name,
    clustering_config,
    default_description,
    default_name,
    ingraph_settings,
)
from spoco_zoo.exporters.options import ExportOptions
from spoco_zoo.exporters.variants import Variant, get_variant

__all__ = ["ExportPlan", "plan_export", "check_output", "check_pixel_size", "load_weights"]


def check_output(output: Path) -> None:
    """Refuse a target that is not a ``.zip`` file, before any work.

    Raises
    ------
    ExportError
        ``output`` does not end in ``.zip``, or is a folder.
    """
    if output.suffix.lower() != ".zip":
        raise ExportError(f"--output {output}: a bioimage.io package must be a .zip file")
    if output.is_dir():
        raise ExportError(f"--output {output}: is a folder; give the package's file name, e.g. {output / 'model.zip'}")


def check_pixel_size(pixel_size: Sequence[float] | None, spatial_dims: int) -> tuple[float, ...] | None:
    """``pixel_size`` as a tuple, one value per spatial axis (``None``: not given); the values themselves
    are checked where they are given (:class:`~spoco_zoo.exporters.options.ExportOptions`, the training config).

    Raises
    ------
    ExportError
        Not one value per spatial axis.

    >>> check_pixel_size([2, 0.5, 0.5], 3)
    (2.0, 0.5, 0.5)
    """
    if pixel_size is None:
        return None
    values = tuple(float(v) for v in pixel_size)
    axes = "z, y, x" if spatial_dims == 3 else "y, x"
    if len(values) != spatial_dims:
        raise ExportError(f"--pixel-size {list(values)}: give one value per spatial axis of the model ({axes})")
    return values


def load_weights(checkpoint: Path, weights: str) -> tuple[dict[str, Any], Any, dict[str, Any]]:
    """``(checkpoint dict, TrainConfig, state dict of the chosen weights)``.

    Raises
    ------
    CheckpointError
        Missing, corrupt or incompatible checkpoint, or one without the chosen weights.
    """
    from spoco_zoo.train.checkpoint import load_checkpoint

    state = load_checkpoint(Path(checkpoint))
    key = "model_state" if weights == "student" else "teacher_state"
    if key not in state:
        raise CheckpointError(f"{checkpoint}: checkpoint has no {weights} weights ({key})")
    return state, state["config"], state[key]


@dataclass(frozen=True)
class ExportPlan:
    """What one export makes, decided before any file is written (see :func:`plan_export`).

    ``options`` are the export's options as given; the other fields are what they decide once the
    checkpoint is read (the final name, description, clustering, geometry, test shape and axis scale).
    """

    checkpoint: Path
    output: Path
    options: ExportOptions
    state: dict[str, Any]
    config: Any
    model_state: dict[str, Any]
    variant: Variant
    ingraph: dict[str, Any] | None
    clustering: dict[str, Any]
    geometry: PackageGeometry
    shape: tuple[int, ...]
    name: str
    description: str
    publication: Publication
    pixel_size: tuple[float, ...] | None = None

    @property
    def formats(self) -> tuple[str, ...]:
        return self.options.formats

    @property
    def weights(self) -> str:
        """``"student"`` or ``"teacher"``: which weights of the checkpoint are packaged."""
        return self.options.weights

    @property
    def tags(self) -> tuple[str, ...]:
        """Tags the user added (the package's own come from :func:`~spoco_zoo.exporters.metadata.package_tags`)."""
        return self.options.tags

    @property
    def spatial_dims(self) -> int:
        return int(self.config.model.spatial_dims)

    @property
    def outputs(self) -> tuple[str, ...]:
        return self.variant.outputs

    def summary(self) -> str:
        model = self.config.model
        return (
            f"{model.spatial_dims}D U-Net depth {model.depth}, E={model.embedding_dim}, {self.weights} weights, "
            f"variant {self.variant.name} ({', '.join(self.outputs)}), halo {self.geometry.halo_text}"
        )


def plan_export(checkpoint: Path, output: Path, options: ExportOptions) -> ExportPlan:
    """Load the checkpoint and derive, from it and ``options``, geometry, test shape, clustering and the
    package's name and description: the plan is final once made (frozen).

    ``options.halo`` overrides the measured one (:func:`spoco_zoo.models.receptive_field.package_halo`; the
    measured one is lowered, per axis, until the declared minimum input fits in the training patch:
    :func:`~spoco_zoo.exporters.common.package_geometry`); ``options.pixel_size`` (default: the training
    config's ``data.voxel_size``) becomes the scale of the package's space axes (:func:`check_pixel_size`);
    the name and description default to ones made from the config
    (:func:`~spoco_zoo.exporters.metadata.default_name`, :func:`~spoco_zoo.exporters.metadata.default_description`).

    Raises
    ------
    ExportError
        ``output`` is not a ``.zip``, a pixel size or test shape does not fit the model's spatial axes, or an
        in-graph clustering option the model's clustering refuses.
    CheckpointError
        Missing, corrupt or incompatible checkpoint.
    """
    from spoco_zoo.train.checkpoint import stored_halo

    check_output(output)
    chosen = get_variant(options.variant)
    state, config, model_state = load_weights(checkpoint, options.weights)
    dims = int(config.model.spatial_dims)
    given = options.pixel_size if options.pixel_size is not None else config.data.voxel_size
    scale = check_pixel_size(given, dims)
    halo = options.halo
    geometry = package_geometry(
        config.model.depth,
        _halo(config, model_state, halo, stored_halo(state, options.weights)),
        dims,
        config.data.patch_shape if halo is None else None,  # a --halo is the user's: not lowered to fit the patch
    )
    ingraph = ingraph_settings(config, options.ingraph or None) if chosen.has_instances else None
    return ExportPlan(
        checkpoint=checkpoint,
        output=output,
        options=options,
        state=state,
        config=config,
        model_state=model_state,
        variant=chosen,
        ingraph=ingraph,
        clustering=clustering_config(config, ingraph),
        geometry=geometry,
        shape=default_test_shape(dims, geometry, options.test_shape),
        name=check_name(options.name or default_name(dims, chosen.outputs)),
        description=options.description or default_description(config, chosen.outputs),
        publication=options.publication(),
        pixel_size=scale,
    )


def _halo(
    config: Any, model_state: Mapping[str, Any], halo: int | None, stored: tuple[int, ...] | None
) -> tuple[int, ...]:
    """The package halo: ``halo`` rounded up to the size step, else the one ``stored`` with the
    weights at the end of training, else measured on the weights."""
    from spoco_zoo.models.receptive_field import package_halo, round_halo
    from spoco_zoo.train.checkpoint import build_model

    step = 1 << int(config.model.depth)
    if halo is not None:
        return (round_halo(int(halo), step),) * config.model.spatial_dims
    if stored is not None:
        return stored
    model = build_model(config)
    try:
        model.load_state_dict(dict(model_state))
    except RuntimeError as err:
        raise CheckpointError(f"weights do not fit the stored model config: {err}") from err
    return package_halo(model.eval(), config.model.spatial_dims, config.model.in_channels)
