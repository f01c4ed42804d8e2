"""The plan of one export: options checked, checkpoint loaded, geometry and clustering derived.

Everything :func:`spoco_zoo.exporters.package.export_package` needs to know is decided here,
before any file is written; a bad option or checkpoint fails fast.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from spoco_zoo.errors import CheckpointError, ExportError
from spoco_zoo.exporters.common import PackageGeometry, default_test_shape, package_geometry
from spoco_zoo.exporters.metadata import (
    check_name,
    clustering_config,
    default_description,
    default_name,
    ingraph_settings,
)
from spoco_zoo.exporters.parity import EMBEDDINGS_TOLERANCE, LABEL_MISMATCH_PPM
from spoco_zoo.exporters.variants import Variant, get_variant
from spoco_zoo.zoo.formats import parse_formats

__all__ = [
    "WeightOptions",
    "ExportPlan",
    "plan_export",
    "check_options",
    "check_pixel_size",
    "parse_pixel_size",
    "load_weights",
]


@dataclass
class WeightOptions:
    """How to convert and how strictly to compare (see :func:`spoco_zoo.exporters.package.export_package`)."""

    opset: int = 17
    onnx_exporter: Literal["auto", "dynamo", "legacy"] = "auto"
    torchscript_method: Literal["auto", "script", "trace"] = "auto"
    tolerance: float = EMBEDDINGS_TOLERANCE
    label_mismatch_ppm: float = LABEL_MISMATCH_PPM


def check_options(
    output: Path,
    formats: None | str | Sequence[str],
    options: WeightOptions,
) -> tuple[str, ...]:
    """Validate the export options before any work; returns the weight formats.

    Raises
    ------
    ExportError
        A target that is not a ``.zip`` (or is a folder), an unknown format, exporter or TorchScript method, a
        non-positive tolerance or an ONNX opset below 17.
    """
    fmts = parse_formats(formats)
    if output.suffix.lower() != ".zip":
        raise ExportError(f"--output {output}: a bioimage.io package must be a .zip file")
    if output.is_dir():
        raise ExportError(f"--output {output}: is a folder; give the package's file name, e.g. {output / 'model.zip'}")
    if not math.isfinite(options.tolerance) or options.tolerance <= 0:
        raise ExportError(f"tolerance must be positive, got {options.tolerance}")
    if options.onnx_exporter not in ("auto", "dynamo", "legacy"):
        raise ExportError(f"--onnx-exporter {options.onnx_exporter!r}: use auto, dynamo or legacy")
    if "onnx" in fmts and options.opset < 17:
        raise ExportError(f"--opset {options.opset}: ONNX weights need opset >= 17")
    if options.torchscript_method not in ("auto", "script", "trace"):
        raise ExportError(f"torchscript_method {options.torchscript_method!r}: use auto, script or trace")
    return fmts


def parse_pixel_size(text: str | None) -> list[float] | None:
    """``"2,0.5,0.5"`` -> ``[2.0, 0.5, 0.5]``; ``None`` or blank -> ``None`` (:func:`check_pixel_size` checks
    count and sign).

    Raises
    ------
    ExportError
        A part that is not a number.

    >>> parse_pixel_size("0.5, 0.5"), parse_pixel_size(" ")
    ([0.5, 0.5], None)
    """
    parts = [p for p in (text or "").split(",") if p.strip()]
    if not parts:
        return None
    try:
        return [float(p) for p in parts]
    except ValueError as err:
        raise ExportError(f"--pixel-size {text!r}: give numbers like 0.5,0.5 or 2,0.5,0.5 (micrometres)") from err


def check_pixel_size(pixel_size: Sequence[float] | None, spatial_dims: int) -> tuple[float, ...] | None:
    """``pixel_size`` as a tuple of positive finite micrometres, one per spatial axis (``None``: not given).

    Raises
    ------
    ExportError
        A value that is not a positive finite number, or not one per spatial axis.

    >>> check_pixel_size([2, 0.5, 0.5], 3)
    (2.0, 0.5, 0.5)
    """
    if pixel_size is None:
        return None
    try:
        values = tuple(float(v) for v in pixel_size)
    except (TypeError, ValueError) as err:
        raise ExportError(f"--pixel-size {pixel_size!r}: give numbers (micrometres per pixel)") from err
    axes = "z, y, x" if spatial_dims == 3 else "y, x"
    if len(values) != spatial_dims:
        raise ExportError(f"--pixel-size {list(values)}: give one value per spatial axis of the model ({axes})")
    if not all(math.isfinite(v) and v > 0 for v in values):
        raise ExportError(f"--pixel-size {list(values)}: every value must be a positive number of micrometres")
    return values


def load_weights(checkpoint: Path, weights: str) -> tuple[dict[str, Any], Any, dict[str, Any]]:
    """``(checkpoint dict, TrainConfig, state dict of the chosen weights)``.

    Raises
    ------
    ExportError
        ``weights`` is neither ``"student"`` nor ``"teacher"``.
    CheckpointError
        Missing, corrupt or incompatible checkpoint, or one without the chosen weights.
    """
    from spoco_zoo.train.checkpoint import load_checkpoint

    if weights not in ("student", "teacher"):
        raise ExportError(f"--weights {weights!r}: use 'student' or 'teacher'")
    state = load_checkpoint(Path(checkpoint))
    key = "model_state" if weights == "student" else "teacher_state"
    if key not in state:
        raise CheckpointError(f"{checkpoint}: checkpoint has no {weights} weights ({key})")
    return state, state["config"], state[key]


@dataclass(frozen=True)
class ExportPlan:
    """What one export makes, decided before any file is written (see :func:`plan_export`)."""

    checkpoint: Path
    output: Path
    formats: tuple[str, ...]
    weights: str
    state: dict[str, Any]
    config: Any
    model_state: dict[str, Any]
    variant: Variant
    ingraph: dict[str, Any] | None
    clustering: dict[str, Any]
    geometry: PackageGeometry
    shape: tuple[int, ...]
    options: WeightOptions = field(default_factory=WeightOptions)
    name: str = ""
    description: str = ""
    tags: tuple[str, ...] = ()
    publication: Any = None
    pixel_size: tuple[float, ...] | None = None

    @property
    def spatial_dims(self) -> int:
        return int(self.config.model.spatial_dims)

    @property
    def instances(self) -> bool:
        """Whether the model contains the in-graph clustering."""
        return self.variant.has_instances

    @property
    def outputs(self) -> tuple[str, ...]:
        return self.variant.outputs

    def summary(self) -> str:
        model = self.config.model
        return (
            f"{model.spatial_dims}D U-Net depth {model.depth}, E={model.embedding_dim}, {self.weights} weights, "
            f"variant {self.variant.name} ({', '.join(self.outputs)}), halo {self.geometry.halo_text}"
        )


def plan_export(
    checkpoint: Path,
    output: Path,
    formats: None | str | Sequence[str],
    weights: str,
    options: WeightOptions,
    variant: str,
    ingraph_options: Mapping[str, Any] | None,
    test_shape: Sequence[int] | None,
    halo: int | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    tags: Sequence[str] = (),
    publication: Any = None,
    pixel_size: Sequence[float] | None = None,
) -> ExportPlan:
    """Check the options, load the checkpoint and derive geometry, test shape, clustering and the
    package's name and description: the plan is final once made (frozen).

    ``halo`` overrides the measured one (:func:`spoco_zoo.models.receptive_field.package_halo`; the
    measured one is lowered, per axis, until the declared minimum input fits in the training patch:
    :func:`~spoco_zoo.exporters.common.package_geometry`);
    ``pixel_size`` (micrometres per pixel along the spatial axes, ``z, y, x`` / ``y, x``; default: the
    training config's ``data.voxel_size``) becomes the scale of the package's space axes
    (:func:`check_pixel_size`);
    ``name`` and ``description`` default to ones made from the config
    (:func:`~spoco_zoo.exporters.metadata.default_name`, :func:`~spoco_zoo.exporters.metadata.default_description`).
    """
    chosen = get_variant(variant)
    fmts = check_options(output, formats, options)
    if halo is not None and halo < 0:
        raise ExportError(f"--halo {halo}: must be >= 0")
    from spoco_zoo.train.checkpoint import stored_halo

    state, config, model_state = load_weights(checkpoint, weights)
    given = pixel_size if pixel_size is not None else config.data.voxel_size  # the training data's, when known
    scale = check_pixel_size(given, config.model.spatial_dims)
    geometry = package_geometry(
        config.model.depth,
        _halo(config, model_state, halo, stored_halo(state, weights)),
        config.model.spatial_dims,
        config.data.patch_shape if halo is None else None,  # a --halo is the user's: not lowered to fit the patch
    )
    ingraph = ingraph_settings(config, ingraph_options) if chosen.has_instances else None
    return ExportPlan(
        checkpoint=checkpoint,
        output=output,
        formats=fmts,
        weights=weights,
        state=state,
        config=config,
        model_state=model_state,
        variant=chosen,
        ingraph=ingraph,
        clustering=clustering_config(config, ingraph),
        geometry=geometry,
        shape=default_test_shape(config.model.spatial_dims, geometry, test_shape),
        options=options,
        name=check_name(name or default_name(config.model.spatial_dims, chosen.outputs)),
        description=description or default_description(config, chosen.outputs),
        tags=tuple(tags),
        publication=publication,
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
