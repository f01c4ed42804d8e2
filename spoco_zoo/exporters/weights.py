"""Write the package's weight files, each checked against eager PyTorch before it is kept.

One module per format, every writer with the signature ``writer(job: WeightJob) -> WrittenWeight``
(:mod:`spoco_zoo.exporters.weight_record`):

* ``pytorch_state_dict`` (:mod:`spoco_zoo.exporters.state_dict`): the state dict of the model built
  from the architecture file, reloaded into a fresh instance and compared (must be identical);
* ``torchscript`` (:mod:`spoco_zoo.exporters.torchscript`): scripted (or traced), run with
  ``torch.jit.load``;
* ``onnx`` (:mod:`spoco_zoo.exporters.onnx`): ``torch.onnx.export`` (legacy or dynamo), run with
  ONNX Runtime.

Converted formats are compared on both test inputs (:mod:`spoco_zoo.exporters.tensors`);
a failure raises :class:`~spoco_zoo.errors.ExportError` with the numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spoco_zoo.exporters.common import json_safe
from spoco_zoo.exporters.parity import ParityResult
from spoco_zoo.exporters.plan import ExportPlan
from spoco_zoo.exporters.rdf import WeightsFiles
from spoco_zoo.exporters.tensors import ExportTensors
from spoco_zoo.exporters.weight_record import WeightJob, WrittenWeight
from spoco_zoo.zoo.architecture import ArchitectureSource

__all__ = ["WrittenWeights", "weight_writer", "write_weights"]


@dataclass
class WrittenWeights:
    """Every written format: the files for the RDF, the parity per format and the format's facts."""

    files: WeightsFiles
    parity: dict[str, ParityResult] = field(default_factory=dict)
    onnx_exporter: str | None = None
    onnx_opset: int | None = None
    onnx_ir_version: int | None = None
    torchscript_file_version: int | None = None
    notes: list[str] = field(default_factory=list)

    def add(self, record: WrittenWeight) -> None:
        """Take one writer's record."""
        self.parity[record.weight_format] = record.parity
        self.files.comments[record.weight_format] = record.comment
        self.notes.extend(record.notes)
        if record.weight_format == "pytorch_state_dict":
            self.files.pytorch_state_dict = record.path
        elif record.weight_format == "torchscript":
            self.files.torchscript = record.path
            self.torchscript_file_version = record.details["file_version"]
        else:
            self.files.onnx, self.files.onnx_opset = record.path, record.details["opset"]
            self.onnx_exporter = record.details["exporter"]
            self.onnx_opset = record.details["opset"]
            self.onnx_ir_version = record.details["ir_version"]


def weight_writer(weight_format: str) -> Callable[[WeightJob], WrittenWeight]:
    """The writer of ``weight_format`` (imported on use: each pulls in its own converter)."""
    if weight_format == "pytorch_state_dict":
        from spoco_zoo.exporters.state_dict import write_state_dict

        return write_state_dict
    if weight_format == "torchscript":
        from spoco_zoo.exporters.torchscript import write_torchscript

        return write_torchscript
    if weight_format == "onnx":
        from spoco_zoo.exporters.onnx import write_onnx

        return write_onnx
    raise ValueError(f"unknown weight format {weight_format!r}")


def write_weights(
    stage: Path,
    plan: ExportPlan,
    arch: ArchitectureSource,
    cls: type,
    model: Any,
    tensors: ExportTensors,
    log: Callable[[str], None] = print,
) -> WrittenWeights:
    """Write every weight format of ``plan`` into ``stage`` and check it (see the module docstring).

    Parameters
    ----------
    stage:
        Package folder (holds the architecture file already).
    plan:
        The export's formats, conversion options and parity limits.
    arch, cls, model:
        The architecture source, the class imported from it and the eager model.
    tensors:
        Parity inputs and eager reference outputs.
    log:
        Called with one line per format.

    Raises
    ------
    spoco_zoo.errors.ExportError
        A conversion failed or does not match eager PyTorch.
    """
    job = WeightJob(stage, plan, arch, cls, model, tensors)
    out = WrittenWeights(WeightsFiles(architecture_callable=arch.callable, architecture_kwargs=json_safe(arch.kwargs)))
    if "pytorch_state_dict" in plan.formats:
        out.files.architecture = stage / arch.filename
    for weight_format in plan.formats:
        record = weight_writer(weight_format)(job)
        out.add(record)
        log(record.summary)
    return out
