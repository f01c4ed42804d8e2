"""The plugin's one door to the export code (:mod:`spoco_zoo.exporters`, :mod:`spoco_zoo.zoo`): packaging,
validation and the PCA colouring.

Every import of export code by the plugin is here, so moving the export package touches one file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ExportRequest", "CheckRow", "ExportSummary", "export_and_validate", "pixel_size_of", "embedding_rgb"]


class ExportRequest(BaseModel):
    """What the Export widget asks for (validated when the button is pressed).

    ``authors`` are ``"Name"`` or ``"Name;github_user=...;affiliation=..."`` strings (as
    ``spoco-zoo export --author``); ``formats`` a comma-separated list of weight formats;
    ``test_shape`` the test tensor's spatial shape (default: the exporter's); ``pixel_size``
    micrometres per pixel along the spatial axes (an Image layer's ``scale``), written as the scale of
    the package's space axes.
    """

    model_config = ConfigDict(extra="forbid")

    checkpoint: Path
    output: Path
    name: str | None = None
    authors: list[str] = Field(default_factory=list)
    license: str = "MIT"
    variant: Literal["full", "instances", "embeddings"] = "full"
    formats: str = "pytorch_state_dict,torchscript,onnx"
    validate_package: bool = True
    test_shape: list[int] | None = None
    pixel_size: list[float] | None = None
    devices: list[str] = Field(default_factory=lambda: ["cpu"])


@dataclass(frozen=True)
class CheckRow:
    """One validation row: ``rdf`` or a weight format, pass/fail and why."""

    name: str
    passed: bool
    message: str


@dataclass
class ExportSummary:
    """The written package and, when validated, one row per check."""

    path: Path
    formats: tuple[str, ...]
    seconds: float
    rows: list[CheckRow] = field(default_factory=list)
    validated: bool = False

    @property
    def passed(self) -> bool:
        """Every check passed (``True`` when validation was not asked for)."""
        return all(row.passed for row in self.rows)

    def table(self) -> str:
        """The rows as lines ``PASS pytorch_state_dict`` / ``FAIL onnx: why``."""
        lines = [
            f"{'PASS' if r.passed else 'FAIL'} {r.name}" + ("" if r.passed else f": {r.message}") for r in self.rows
        ]
        return "\n".join(lines) if lines else "not validated"


def pixel_size_of(text: str) -> list[float] | None:
    """The form's pixel size, parsed as ``spoco-zoo export --pixel-size`` parses it."""
    from spoco_zoo.exporters.plan import parse_pixel_size

    return parse_pixel_size(text)


def export_and_validate(request: ExportRequest, log: Callable[[str], None] | None = None) -> ExportSummary:
    """Export ``request.checkpoint`` as ``spoco-zoo export`` does and validate the package.

    Parameters
    ----------
    request:
        The export's settings.
    log:
        Called with one line per export step and per validation stage (from the calling thread).

    Raises
    ------
    spoco_zoo.errors.CheckpointError, spoco_zoo.errors.ExportError
        As :func:`spoco_zoo.exporters.package.export_package` (no package is written).
    """
    from spoco_zoo.exporters.package import export_package
    from spoco_zoo.zoo.formats import parse_formats
    from spoco_zoo.zoo.validate import validate_package

    say = log or (lambda text: None)
    result = export_package(
        request.checkpoint,
        request.output,
        formats=parse_formats(request.formats),
        variant=request.variant,
        name=request.name or None,
        authors=request.authors or None,
        license=request.license,
        test_shape=request.test_shape,
        pixel_size=request.pixel_size,
        log=say,
    )
    summary = ExportSummary(result.path, tuple(result.formats), result.seconds)
    if not request.validate_package:
        return summary
    say(f"validating {result.path.name} (bioimageio.core, {', '.join(result.formats)}) ...")
    report = validate_package(result.path, devices=request.devices, measure_errors=False)
    summary.rows = [CheckRow(c.name, c.passed, c.message) for c in report.checks]
    summary.validated = True
    return summary


def embedding_rgb(embeddings: np.ndarray) -> np.ndarray:
    """The embeddings' first three principal components as RGB ``[*S, 3]`` in ``[0, 1]`` (as the package cover)."""
    from spoco_zoo.exporters.cover import pca_rgb

    return pca_rgb(np.asarray(embeddings))
