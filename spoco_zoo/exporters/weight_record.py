"""What every weight-format writer takes (:class:`WeightJob`) and returns (:class:`WrittenWeight`).

The writers -- :func:`spoco_zoo.exporters.state_dict.write_state_dict`,
:func:`spoco_zoo.exporters.torchscript.write_torchscript` and
:func:`spoco_zoo.exporters.onnx.write_onnx` -- share one signature,
``writer(job: WeightJob) -> WrittenWeight``; :mod:`spoco_zoo.exporters.weights` calls the ones the plan
asks for. Imports the standard library only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from spoco_zoo.exporters.parity import ParityResult
    from spoco_zoo.exporters.plan import ExportPlan
    from spoco_zoo.exporters.tensors import ExportTensors
    from spoco_zoo.zoo.architecture import ArchitectureSource

__all__ = ["WeightJob", "WrittenWeight"]


@dataclass(frozen=True)
class WeightJob:
    """One export's inputs to every weight writer.

    Attributes
    ----------
    stage:
        The package folder being filled (holds the architecture file already).
    plan:
        The export's formats, conversion options and parity limits.
    arch, cls, model:
        The architecture source, the class imported from it and the eager model.
    tensors:
        Parity inputs and eager reference outputs.
    """

    stage: Path
    plan: ExportPlan
    arch: ArchitectureSource
    cls: type
    model: Any
    tensors: ExportTensors

    def check_parity(
        self,
        name: str,
        run: Callable[[Path, Sequence[np.ndarray]], list[list[np.ndarray]]],
        path: Path,
        cannot_run: str,
    ) -> ParityResult:
        """Run the saved weights at ``path`` with ``run`` on the parity inputs (as a consumer would) and
        compare with the eager outputs within the plan's limits
        (:func:`spoco_zoo.exporters.parity.run_and_compare`).

        Raises
        ------
        spoco_zoo.errors.ExportError
            The file cannot be run (``"{path}: {cannot_run}: ..."``) or its outputs differ.
        """
        from spoco_zoo.exporters.parity import run_and_compare

        options = self.plan.options
        tensors = self.tensors
        limits = (options.tolerance, options.label_mismatch_ppm)
        parity = run_and_compare(name, run, path, tensors.reference, tensors.inputs, *limits, cannot_run)
        parity.raise_if_failed()
        return parity


@dataclass(frozen=True)
class WrittenWeight:
    """One weight file, checked against eager PyTorch.

    Attributes
    ----------
    weight_format:
        ``pytorch_state_dict``, ``torchscript`` or ``onnx``.
    path:
        The file in the package folder.
    parity:
        Its comparison with eager PyTorch (passed: a failure raises instead).
    comment:
        The RDF's comment on these weights (how they were made).
    summary:
        One line for the export's log.
    details:
        Format-specific facts for the RDF and the model card (ONNX: ``exporter``, ``opset``,
        ``ir_version``; TorchScript: ``file_version``).
    notes:
        Things the user should know (e.g. a fallback exporter was used).
    """

    weight_format: str
    path: Path
    parity: ParityResult
    comment: str
    summary: str
    details: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
