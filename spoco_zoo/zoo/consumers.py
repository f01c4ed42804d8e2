"""What each zoo consumer accepts, checked on an exported package.

The rules are those the consumers state in their own code (looked up in their repositories;
the citations say where), so an export can say which tools will load it -- and only what
was checked:

* **ilastik** (neural-network workflow, ``ilastik/applets/neuralNetwork/``):
  ``modelStateControl.py`` refuses models without exactly one input and one output tensor, an
  output without a channel axis or with fewer than two spatial axes; ``tiktorchController.py``
  raises on several outputs; ``bioimageiodl.py`` repackages the model keeping only
  ``torchscript`` or ``pytorch_state_dict`` weights (its ``BIOIMAGEIO_WEIGHTS_PRIORITY``);
  ``lazyflow/operators/tiktorch/classifier.py`` reorders the output with the *input's* axes and
  treats the output channels as classes (a float32 map per channel).
* **deepImageJ** (JDLL engines): the newest ONNX Runtime engine is 1.13.1 (ONNX IR version <= 8,
  opset <= 17) and the newest libtorch engine 2.0.0, which reads TorchScript archives up to file
  format version 10.

Imports the standard library only (the ONNX file is read with ``onnx`` on use).
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any, BinaryIO

__all__ = [
    "ILASTIK_WEIGHTS",
    "ILASTIK_AXES",
    "MAX_ONNX_IR_VERSION",
    "MAX_ONNX_OPSET",
    "MAX_TORCHSCRIPT_FILE_VERSION",
    "ilastik_problems",
    "onnx_problems",
    "torchscript_problems",
    "traced_decoder",
    "consumer_report",
]

#: Weight formats ilastik keeps when it repackages a model (in this order of preference).
ILASTIK_WEIGHTS = ("torchscript", "pytorch_state_dict")
#: Axis ids ilastik maps to its own axis tags.
ILASTIK_AXES = ("batch", "time", "channel", "z", "y", "x")
#: deepImageJ / JDLL: newest ONNX Runtime engine 1.13.1.
MAX_ONNX_IR_VERSION = 8
MAX_ONNX_OPSET = 17
#: deepImageJ / JDLL: newest libtorch engine 2.0.0 (PyTorch's kMaxSupportedFileFormatVersion).
MAX_TORCHSCRIPT_FILE_VERSION = 10


def _axes(tensor: Any) -> list[tuple[str, str]]:
    return [(str(a.id), str(getattr(a, "type", ""))) for a in tensor.axes]


def ilastik_problems(descr: Any) -> list[str]:
    """Reasons ilastik's neural-network workflow would refuse (or misread) the model; empty if none.

    Parameters
    ----------
    descr:
        A ``bioimageio.spec`` model description (format 0.5).
    """
    problems: list[str] = []
    if len(descr.inputs) != 1:
        problems.append(f"ilastik supports only models with one input tensor, this one has {len(descr.inputs)}")
    if len(descr.outputs) != 1:
        problems.append(f"ilastik supports only models with one output tensor, this one has {len(descr.outputs)}")
    if not descr.outputs or not descr.inputs:
        return problems
    out, raw = descr.outputs[0], descr.inputs[0]
    out_axes, in_axes = _axes(out), _axes(raw)
    if not any(i == "channel" and t == "channel" for i, t in out_axes):
        problems.append("ilastik needs a channel axis (id 'channel') in the output")
    if sum(t == "space" for _, t in out_axes) < 2:
        problems.append("ilastik needs at least two spatial axes in the output")
    unknown = [i for i, _ in in_axes + out_axes if i not in ILASTIK_AXES]
    if unknown:
        problems.append(f"ilastik knows the axes {ILASTIK_AXES}, not {sorted(set(unknown))}")
    if [i for i, _ in out_axes] != [i for i, _ in in_axes]:
        problems.append(
            f"ilastik reads the output with the input's axes {[i for i, _ in in_axes]}, "
            f"but the output has {[i for i, _ in out_axes]}"
        )
    if not any(getattr(descr.weights, wf, None) is not None for wf in ILASTIK_WEIGHTS):
        problems.append(f"ilastik runs only {' or '.join(ILASTIK_WEIGHTS)} weights")
    return problems


def onnx_problems(path: Path) -> list[str]:
    """Reasons ONNX Runtime 1.13 (deepImageJ's newest ONNX engine) would refuse the file; empty if none."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    problems = []
    if proto.ir_version > MAX_ONNX_IR_VERSION:
        problems.append(f"ONNX IR version {proto.ir_version} > {MAX_ONNX_IR_VERSION}")
    for entry in proto.opset_import:
        if entry.domain not in ("", "ai.onnx"):
            problems.append(f"operator set {entry.domain!r} (version {entry.version}) is not a standard one")
        elif entry.version > MAX_ONNX_OPSET:
            problems.append(f"opset {entry.version} > {MAX_ONNX_OPSET}")
    if len(proto.functions):
        problems.append(f"{len(proto.functions)} model-local function(s)")
    return problems


def torchscript_problems(path: Path) -> list[str]:
    """Reasons libtorch 2.0 (deepImageJ's newest PyTorch engine) would refuse the archive's format."""
    with zipfile.ZipFile(path) as zf:
        name = next((n for n in zf.namelist() if n.endswith("/version") or n == "version"), None)
        if name is None:
            return ["no version record in the TorchScript archive"]
        version = int(zf.read(name).decode().strip())
    if version > MAX_TORCHSCRIPT_FILE_VERSION:
        return [f"TorchScript file format version {version} > {MAX_TORCHSCRIPT_FILE_VERSION}"]
    return []


def traced_decoder(path: Path | BinaryIO) -> bool:
    """Whether the TorchScript file's in-graph local decoder (a ``clustering`` submodule that is
    :class:`~spoco_zoo.cluster.graph.GraphInstances`) was traced rather than scripted: its label
    propagation is then unrolled instead of a loop, which PyTorch's default (profiling) executor runs
    with about twice the memory. spoco-zoo's exports of 2026-12-05/06 traced by mistake. ``False`` for
    a file without that decoder.
    """
    import torch

    module = torch.jit.load(str(path) if isinstance(path, Path) else path, map_location="cpu")
    names = dict(module.named_children())
    decoder = names.get("clustering")
    if decoder is None or getattr(decoder, "original_name", "") != "GraphInstances":
        return False
    return "prim::Loop" not in str(decoder.inlined_graph)


def consumer_report(descr: Any, written: Any, stage: Path) -> dict[str, str]:
    """One line per consumer: what it gets from this package and what was checked at export.

    Parameters
    ----------
    descr:
        The package's model description.
    written:
        :class:`spoco_zoo.exporters.weights.WrittenWeights` of the export.
    stage:
        The package folder (unused; the weight paths are in ``written``).
    """
    outputs = [str(t.id) for t in descr.outputs]
    report: dict[str, str] = {}
    ilastik = ilastik_problems(descr)
    if ilastik:
        report["ilastik"] = "does not load this package: " + "; ".join(ilastik) + " (export --variant instances)"
    else:
        fmt = next(wf for wf in ILASTIK_WEIGHTS if getattr(descr.weights, wf, None) is not None)
        report["ilastik"] = (
            f"loads it (checked against the rules of ilastik's neural-network workflow) and runs the {fmt} weights; "
            f"the output `{outputs[0]}` appears as a {descr.outputs[0].axes[1].size}-channel prediction map"
        )
    files = written.files
    dij: list[str] = []
    if files.onnx is not None:
        problems = onnx_problems(files.onnx)
        dij.append(
            "ONNX: "
            + (
                "; ".join(problems)
                if problems
                else f"IR version <= {MAX_ONNX_IR_VERSION} and opset "
                f"<= {MAX_ONNX_OPSET}, within the limits of ONNX Runtime 1.13 (checked in the file)"
            )
        )
    if files.torchscript is not None:
        problems = torchscript_problems(files.torchscript)
        dij.append(
            "TorchScript: "
            + ("; ".join(problems) if problems else "archive format readable by libtorch 2.0 (checked in the file)")
        )
    report["deepImageJ"] = f"gets the output(s) {', '.join(outputs)}; " + (
        "; ".join(dij) if dij else "no ONNX or TorchScript weights"
    )
    report["bioimageio.core"] = f"runs every weight format and returns {', '.join(outputs)}"
    return report
