"""What one export is asked to make: :class:`ExportOptions`, every option checked once, where it is made.

The ``spoco-zoo export`` command, the napari plugin and Python callers build one :class:`ExportOptions`
and hand it to :func:`spoco_zoo.exporters.package.export_package`. What can only be checked against the
checkpoint (a pixel size per spatial axis of the model, the in-graph clustering's parameters) is checked
by :func:`spoco_zoo.exporters.plan.plan_export`, the one place that reads the checkpoint.

A bad option raises :class:`~spoco_zoo.errors.ExportError` naming the command-line flag, e.g.
``--opset 13: ONNX weights need opset >= 17``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from spoco_zoo.errors import ExportError
from spoco_zoo.exporters.metadata import Publication, check_name, make_publication
from spoco_zoo.exporters.parity import EMBEDDINGS_TOLERANCE, LABEL_MISMATCH_PPM
from spoco_zoo.exporters.variants import get_variant
from spoco_zoo.zoo.formats import WEIGHT_FORMATS, parse_formats

__all__ = ["ExportOptions", "flag_of", "parse_numbers"]

Person = str | dict[str, str]

#: The ``spoco-zoo export`` flag of each option whose flag is not ``--`` + its name with dashes.
FLAGS = {"authors": "--author", "maintainers": "--maintainer", "tags": "--tag", "version": "--model-version"}


def flag_of(option: str) -> str:
    """The command-line flag of an :class:`ExportOptions` field.

    >>> flag_of("onnx_exporter"), flag_of("authors")
    ('--onnx-exporter', '--author')
    """
    return FLAGS.get(option, "--" + option.replace("_", "-"))


def parse_numbers(text: str, flag: str, example: str) -> list[float]:
    """``"2,0.5,0.5"`` or ``"48x64x64"`` -> numbers (blank -> ``[]``).

    Raises
    ------
    ExportError
        A part that is not a number (the message names ``flag`` and shows ``example``).

    >>> parse_numbers("2, 0.5,0.5", "--pixel-size", "2,0.5,0.5"), parse_numbers("48x64x64", "--test-shape", "")
    ([2.0, 0.5, 0.5], [48.0, 64.0, 64.0])
    """
    parts = [p for p in text.replace("x", ",").split(",") if p.strip()]
    try:
        return [float(p) for p in parts]
    except ValueError as err:
        raise ExportError(f"{flag} {text!r}: give numbers like {example}") from err


class ExportOptions(BaseModel):
    """The options of one export (``spoco-zoo export``'s flags), checked when the object is made.

    Attributes
    ----------
    formats:
        Weight formats, canonical order (:func:`spoco_zoo.zoo.formats.parse_formats`; a comma-separated
        string is accepted); default all three.
    weights:
        ``"student"`` or ``"teacher"`` (EMA) weights of the checkpoint.
    variant:
        ``"full"`` (embeddings + instances), ``"instances"`` (one output, for ilastik and deepImageJ) or
        ``"embeddings"`` (:mod:`spoco_zoo.exporters.variants`).
    name, description, tags:
        RDF metadata; ``None``: made from the training config. Extra ``tags`` are appended.
    authors, maintainers, license, git_repo, version:
        Publishing metadata (:func:`~spoco_zoo.exporters.metadata.make_publication`): people as
        ``"Name;github_user=...;affiliation=...;orcid=..."`` strings or dicts, an SPDX license id, the
        source repository URL and a SemVer version. Maintainers need a ``github_user``.
    ingraph:
        Overrides for the in-graph clustering (``n_seeds``, ``max_instances``, ``kernel``, ...; see
        :meth:`spoco_zoo.cluster.clustering_setting.ClusteringSetting.ingraph_kwargs`).
    test_shape:
        Spatial shape of the test tensors (rounded up to a valid size; ``"128,128"`` or ``"48x64x64"``
        accepted); ``None``: 128x128 / 48x64x64.
    halo:
        Package halo in pixels (rounded up to the size step); ``None``: measured on the weights.
    pixel_size:
        Micrometres per pixel along the spatial axes (``z, y, x`` / ``y, x``; ``"2,0.5,0.5"`` accepted),
        the ``scale`` of the package's space axes; ``None``: the training data's ``data.voxel_size``.
    seed:
        Seed of the synthetic test image.
    onnx_exporter, opset:
        See :func:`spoco_zoo.exporters.onnx.export_onnx` (opset >= 17 when ONNX weights are written).
    torchscript_method:
        See :func:`spoco_zoo.exporters.torchscript.to_torchscript`.
    tolerance, label_mismatch_ppm:
        Parity limits for embeddings (max abs) and labels (pixels per million; also the RDF's
        reproducibility allowance of ``instances``).
    card_template:
        Model-card template (Markdown); ``None``: the packaged ``model_cards/spoco_model.md``.

    Examples
    --------
    >>> ExportOptions(formats="onnx, pytorch_state_dict", test_shape="64x64").formats
    ('pytorch_state_dict', 'onnx')
    >>> ExportOptions(formats="onnx", opset=13)
    Traceback (most recent call last):
    ...
    spoco_zoo.errors.ExportError: --opset 13: ONNX weights need opset >= 17
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as err:  # a value of the wrong kind, or an unknown option: one line naming the flag
            first = err.errors()[0]
            field = str(first["loc"][0]) if first["loc"] else "options"
            if first["type"] == "extra_forbidden":
                known = ", ".join(type(self).model_fields)
                raise ExportError(f"unknown export option {field!r}; the options are {known}") from None
            raise ExportError(f"{flag_of(field)} {first.get('input')!r}: {first['msg']}") from None

    formats: tuple[str, ...] = WEIGHT_FORMATS
    weights: Literal["student", "teacher"] = "student"
    variant: str = "full"
    name: str | None = None
    description: str | None = None
    tags: tuple[str, ...] = ()
    authors: tuple[Person, ...] = ()
    maintainers: tuple[Person, ...] = ()
    license: str = "MIT"
    git_repo: str | None = None
    version: str | None = None
    ingraph: dict[str, Any] = Field(default_factory=dict)
    test_shape: tuple[int, ...] | None = None
    halo: int | None = None
    pixel_size: tuple[float, ...] | None = None
    seed: int = 0
    onnx_exporter: Literal["auto", "dynamo", "legacy"] = "auto"
    opset: int = 17
    torchscript_method: Literal["auto", "script", "trace"] = "auto"
    tolerance: float = EMBEDDINGS_TOLERANCE
    label_mismatch_ppm: float = LABEL_MISMATCH_PPM
    card_template: Path | None = None

    @field_validator("formats", mode="before")
    @classmethod
    def _formats(cls, value: None | str | Sequence[str]) -> tuple[str, ...]:
        return parse_formats(value)

    @field_validator("weights", mode="before")
    @classmethod
    def _weights(cls, value: Any) -> Any:
        if value not in ("student", "teacher"):
            raise ExportError(f"--weights {value!r}: use 'student' or 'teacher'")
        return value

    @field_validator("onnx_exporter", "torchscript_method", mode="before")
    @classmethod
    def _choice(cls, value: Any, info: Any) -> Any:
        choices = {"onnx_exporter": ("auto", "dynamo", "legacy"), "torchscript_method": ("auto", "script", "trace")}
        if value not in choices[info.field_name]:
            raise ExportError(f"{flag_of(info.field_name)} {value!r}: use {', '.join(choices[info.field_name])}")
        return value

    @field_validator("variant")
    @classmethod
    def _variant(cls, value: str) -> str:
        return get_variant(value).name

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return None if value is None else check_name(value)

    @field_validator("test_shape", mode="before")
    @classmethod
    def _test_shape(cls, value: Any) -> Any:
        if isinstance(value, str):
            numbers = parse_numbers(value, "--test-shape", "128,128 or 48,64,64")
            if not all(n.is_integer() for n in numbers):
                raise ExportError(f"--test-shape {value!r}: give whole numbers like 128,128 or 48,64,64")
            value = [int(n) for n in numbers] or None
        if value is not None and (len(value) not in (2, 3) or any(int(n) < 1 for n in value)):
            raise ExportError(f"--test-shape {value!r}: give two or three positive sizes, e.g. 128,128 or 48,64,64")
        return value

    @field_validator("halo")
    @classmethod
    def _halo(cls, value: int | None) -> int | None:
        if value is not None and value < 0:
            raise ExportError(f"--halo {value}: must be >= 0")
        return value

    @field_validator("pixel_size", mode="before")
    @classmethod
    def _pixel_size(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = parse_numbers(value, "--pixel-size", "0.5,0.5 or 2,0.5,0.5 (micrometres)") or None
        if value is None:
            return None
        try:
            numbers = [float(v) for v in value]
        except (TypeError, ValueError) as err:
            raise ExportError(f"--pixel-size {value!r}: give numbers (micrometres per pixel)") from err
        if not numbers or not all(math.isfinite(v) and v > 0 for v in numbers):
            raise ExportError(f"--pixel-size {numbers}: every value must be a positive number of micrometres")
        return numbers

    @field_validator("tolerance")
    @classmethod
    def _tolerance(cls, value: float) -> float:
        if not math.isfinite(value) or value <= 0:
            raise ExportError(f"--tolerance {value}: must be a positive number")
        return value

    @field_validator("label_mismatch_ppm")
    @classmethod
    def _label_mismatch(cls, value: float) -> float:
        if not math.isfinite(value) or value < 0:
            raise ExportError(f"--label-mismatch-ppm {value}: must be a number >= 0 (0: labels must match exactly)")
        return value

    @field_validator("card_template")
    @classmethod
    def _card_template(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ExportError(f"--card-template {value}: no such file")
        return value

    @model_validator(mode="after")
    def _together(self) -> ExportOptions:
        if "onnx" in self.formats and self.opset < 17:
            raise ExportError(f"--opset {self.opset}: ONNX weights need opset >= 17")
        self.publication()  # people, license and repository are checked now, not after the conversions
        return self

    def publication(self) -> Publication:
        """The checked publishing metadata (:func:`~spoco_zoo.exporters.metadata.make_publication`)."""
        return make_publication(self.authors or None, self.maintainers, self.license, self.git_repo, self.version)
