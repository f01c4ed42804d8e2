"""Write the package's weight files, each checked against eager PyTorch before it is kept.

* ``pytorch_state_dict``: the state dict of the model built from the architecture file,
  reloaded into a fresh instance and compared (must be identical);
* ``torchscript``: scripted (or traced) and frozen, run with ``torch.jit.load``;
* ``onnx``: ``torch.onnx.export`` (dynamo, or legacy as fallback), run with ONNX Runtime.

Converted formats are compared on both test inputs (:mod:`spoco_zoo.export.tensors`);
a failure raises :class:`~spoco_zoo.errors.ExportError` with the numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spoco_zoo.export.architecture import ArchitectureSource
from spoco_zoo.export.common import json_safe
from spoco_zoo.export.parity import ParityResult, compare_outputs
from spoco_zoo.export.plan import ExportPlan, WeightOptions
from spoco_zoo.export.rdf import WeightsFiles
from spoco_zoo.export.tensors import ExportTensors, model_outputs

__all__ = ["WrittenWeights", "write_weights"]


@dataclass
class WrittenWeights:
    """The weight files for the RDF, the parity per format and what the ONNX export used."""

    files: WeightsFiles
    parity: dict[str, ParityResult] = field(default_factory=dict)
    onnx_exporter: str | None = None
    onnx_opset: int | None = None
    onnx_ir_version: int | None = None
    torchscript_file_version: int | None = None
    notes: list[str] = field(default_factory=list)


def _state_dict(
    stage: Path,
    model: Any,
    cls: type,
    arch: ArchitectureSource,
    tensors: ExportTensors,
    options: WeightOptions,
    out: WrittenWeights,
    comment: str,
) -> str:
    import torch

    path = stage / "weights_pytorch_state_dict.pt"
    torch.save({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, path)
    reloaded = cls(**arch.kwargs).eval()
    reloaded.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    candidate = [model_outputs(reloaded, tensors.inputs[0])]
    parity = compare_outputs(
        "pytorch_state_dict", tensors.reference[:1], candidate, options.tolerance, options.label_mismatch_ppm
    )
    parity.raise_if_failed()
    out.parity["pytorch_state_dict"] = parity
    out.files.pytorch_state_dict, out.files.architecture = path, stage / arch.filename
    out.files.comments["pytorch_state_dict"] = comment
    return f"pytorch_state_dict: {path.stat().st_size / 1e6:.2f} MB, architecture {arch.filename}:{arch.callable}"


def _torchscript(stage: Path, model: Any, tensors: ExportTensors, options: WeightOptions, out: WrittenWeights) -> str:
    import torch

    from spoco_zoo.export.torchscript import file_format_version, save_torchscript, to_torchscript, torchscript_parity

    example = torch.from_numpy(tensors.inputs[0])
    # not frozen: freezing folds convolution + BatchNorm, which moves embeddings by ~3e-5 -- enough to
    # flip whole clusters of the in-graph labels on near-tie embeddings; unfrozen, the file repeats eager
    scripted = to_torchscript(model, example, method=options.torchscript_method, freeze=False)
    path = save_torchscript(scripted, stage / "weights_torchscript.pt")
    parity = torchscript_parity(path, tensors.reference, tensors.inputs, options.tolerance, options.label_mismatch_ppm)
    parity.raise_if_failed()
    out.parity["torchscript"] = parity
    out.files.torchscript = path
    out.torchscript_file_version = file_format_version(path)
    out.files.comments["torchscript"] = (
        f"scripted with torch.jit (PyTorch {torch.__version__.split('+')[0]}) from the eager model; "
        f"TorchScript file format version {out.torchscript_file_version}"
    )
    return f"torchscript: max |diff| {parity.max_abs:.2e}, file format version {out.torchscript_file_version}"


def _onnx(
    stage: Path,
    model: Any,
    tensors: ExportTensors,
    spatial_dims: int,
    step: int,
    options: WeightOptions,
    out: WrittenWeights,
) -> str:
    import torch

    from spoco_zoo.export.onnx import export_onnx, onnx_parity

    info = export_onnx(
        model,
        torch.from_numpy(tensors.inputs[0]),
        stage / "weights.onnx",
        spatial_dims=spatial_dims,
        step=step,
        output_names=tensors.outputs,
        opset=options.opset,
        exporter=options.onnx_exporter,
    )
    parity = onnx_parity(info.path, tensors.reference, tensors.inputs, options.tolerance, options.label_mismatch_ppm)
    parity.raise_if_failed()
    out.parity["onnx"] = parity
    out.onnx_exporter, out.onnx_opset, out.onnx_ir_version = info.exporter, info.opset, info.ir_version
    out.files.onnx, out.files.onnx_opset = info.path, info.opset
    out.files.comments["onnx"] = (
        f"torch.onnx.export ({info.exporter} exporter), opset {info.opset}, ONNX IR version {info.ir_version}, "
        "dynamic batch and spatial axes"
    )
    if info.notes:
        out.notes.append(f"ONNX: fell back to the {info.exporter} exporter ({info.notes})")
    return f"onnx ({info.exporter}, opset {info.opset}): max |diff| {parity.max_abs:.2e}"


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
    options = plan.options
    out = WrittenWeights(WeightsFiles(architecture_callable=arch.callable, architecture_kwargs=json_safe(arch.kwargs)))
    if "pytorch_state_dict" in plan.formats:
        comment = f"spoco-zoo {plan.weights} weights after {plan.state.get('step', '?')} steps"
        log(_state_dict(stage, model, cls, arch, tensors, options, out, comment))
    if "torchscript" in plan.formats:
        log(_torchscript(stage, model, tensors, options, out))
    if "onnx" in plan.formats:
        log(_onnx(stage, model, tensors, plan.spatial_dims, plan.geometry.step, options, out))
    return out
