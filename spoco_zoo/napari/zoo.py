"""The plugin's one door to the export code (:mod:`spoco_zoo.exporters`, :mod:`spoco_zoo.zoo`): packaging,
validation and the PCA colouring.

Every import of export code by the plugin is here, so moving the export package touches one file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from spoco_zoo.exporters.options import ExportOptions

__all__ = ["ExportOptions", "ExportRequest", "CheckRow", "ExportSummary", "export_and_validate", "embedding_rgb"]


class ExportRequest(BaseModel):
    """What the Export widget asks for: the checkpoint, the package, the export's
    :class:`~spoco_zoo.exporters.options.ExportOptions` (as ``spoco-zoo export``'s flags), and whether to
    validate the package with bioimageio.core on ``devices``."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    checkpoint: Path
    output: Path
    options: ExportOptions = Field(default_factory=ExportOptions)
    validate_package: bool = True
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
    from spoco_zoo.zoo.validate import validate_package

    say = log or (lambda text: None)
    result = export_package(request.checkpoint, request.output, request.options, log=say)
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
