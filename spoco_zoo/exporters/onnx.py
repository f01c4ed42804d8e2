"""ONNX weights: ``torch.onnx.export`` with dynamic batch and spatial axes, checked with ONNX Runtime.

Exporter choice (torch >= 2.9 defaults to ``dynamo=True``):

* ``"dynamo"``: ``torch.export`` based. Spatial axes are declared as
  ``2**depth * Dim(...)``, so the graph is valid for every multiple of the
  U-Net's size step and ONNX Runtime shows them as e.g. ``4*y_blocks``.
  Weights are embedded in the single ``.onnx`` file (``external_data=False``).
* ``"legacy"``: the TorchScript-based exporter with ``dynamic_axes``
  (deprecated upstream, kept as a fallback).
* ``"auto"`` (default): below opset 18 legacy first (it writes opset 17 and IR version 8
  natively; the dynamo exporter works in opset 18 and keeps it when it cannot convert the in-graph
  clustering down), from opset 18 dynamo first; the other one is the fallback when the first fails
  or writes a higher opset than asked for.

Both have been verified with ONNX Runtime at spatial sizes other than the
traced one (see :func:`write_onnx`, whose parity check the package exporter always runs).

Version limits (deepImageJ)
---------------------------
deepImageJ runs ONNX weights with JDLL, whose newest ONNX Runtime engine is 1.13.1
(ONNX IR version <= 8, opset <= 17; JDLL picks its engine from the RDF's ``opset_version``,
and opset 17 maps to ONNX Runtime 1.12.1, which has the same limits). The default opset is
therefore :data:`DEFAULT_OPSET` = 17, and the file's IR version is lowered to
:data:`MAX_IR_VERSION` = 8 when the graph uses nothing newer (no model-local functions, no
operator set above 17 -- the dynamo exporter writes IR 10 regardless of the opset).
ONNX Runtime 1.15 already refuses IR 10 files ("max supported IR version: 9").
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from spoco_zoo.errors import ExportError
from spoco_zoo.exporters.weight_record import WeightJob, WrittenWeight

__all__ = [
    "write_onnx",
    "MIN_OPSET",
    "DEFAULT_OPSET",
    "MAX_IR_VERSION",
    "OnnxExport",
    "export_onnx",
    "lower_ir_version",
    "run_onnx",
]

#: Lowest opset we write (bioimage.io accepts >= 7; we need >= 17 for the ops used).
MIN_OPSET = 17
#: Default opset: the newest that ONNX Runtime 1.12/1.13 (deepImageJ's JDLL engines) run.
DEFAULT_OPSET = 17
#: Highest ONNX IR version ONNX Runtime 1.12/1.13 load.
MAX_IR_VERSION = 8
_AXES = ("z", "y", "x")


@dataclass
class OnnxExport:
    """What :func:`export_onnx` produced."""

    path: Path
    opset: int
    exporter: Literal["dynamo", "legacy"]
    notes: str = ""
    ir_version: int = 0


@contextlib.contextmanager
def _quiet():
    """Silence the exporters' progress prints and optional-dependency warnings."""
    loggers = [
        logging.getLogger(name) for name in ("torch.onnx", "torch.onnx._internal.exporter._registration", "onnxscript")
    ]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _export_with(name: str, model, example, path, spatial_dims, step, output_names, opset) -> None:
    """One ``torch.onnx.export`` call with exporter ``name`` (``"dynamo"`` or ``"legacy"``) and its
    spelling of the dynamic batch and spatial axes."""
    mode: dict[str, Any]
    if name == "dynamo":
        from torch.export import Dim

        shapes: dict[int, object] = {0: Dim("batch", min=1, max=4096)}
        for i, axis in enumerate(_AXES[-spatial_dims:]):
            shapes[2 + i] = step * Dim(f"{axis}_blocks", min=1, max=1 << 16)
        mode = dict(dynamo=True, dynamic_shapes=(shapes,), external_data=False, optimize=True, verbose=False)
    else:
        axes = {0: "batch", **{2 + i: a for i, a in enumerate(_AXES[-spatial_dims:])}}
        mode = dict(dynamo=False, dynamic_axes={n: axes for n in ["raw", *output_names]}, do_constant_folding=True)
    torch.onnx.export(
        model,
        (example,),
        str(path),
        input_names=["raw"],
        output_names=list(output_names),
        opset_version=opset,
        **mode,
    )


def export_onnx(
    model: nn.Module,
    example: torch.Tensor,
    path: Path,
    *,
    spatial_dims: int,
    step: int,
    output_names: Sequence[str] = ("embeddings",),
    opset: int = DEFAULT_OPSET,
    exporter: Literal["auto", "dynamo", "legacy"] = "auto",
) -> OnnxExport:
    """Export ``model`` to a single ONNX file with input ``raw`` and the given outputs.

    Parameters
    ----------
    model:
        Eager module in eval mode; ``forward(raw [B, C, *S])``.
    example:
        Example input used for tracing.
    spatial_dims, step:
        Number of spatial axes; every spatial extent is a multiple of ``step`` (``2 ** depth``).
    opset:
        ONNX opset (>= :data:`MIN_OPSET`).
    exporter:
        See the module docstring.

    Raises
    ------
    ExportError
        The requested exporter(s) failed, the opset is too low or the file does not pass
        :func:`onnx.checker.check_model`.
    """
    import onnx

    if opset < MIN_OPSET:
        raise ExportError(f"ONNX opset {opset} is too old; use >= {MIN_OPSET}")
    if exporter not in ("auto", "dynamo", "legacy"):
        raise ExportError(f"unknown ONNX exporter {exporter!r}; use 'auto', 'dynamo' or 'legacy'")
    path = Path(path)
    model = model.eval()
    errors: list[str] = []
    used: Literal["dynamo", "legacy"] | None = None
    order: list[Literal["dynamo", "legacy"]] = [exporter] if exporter != "auto" else ["dynamo", "legacy"]
    if exporter == "auto" and opset < 18:
        order = ["legacy", "dynamo"]  # the legacy exporter writes opset 17 / IR 8 natively, dynamo converts down
    for name in order:
        if path.exists():
            path.unlink()
        try:
            with _quiet(), torch.no_grad():
                _export_with(name, model, example, path, spatial_dims, step, output_names, opset)
        except Exception as err:  # exporters raise many types
            errors.append(f"{name}: {type(err).__name__}: {str(err).strip()[:2000]}")
            continue
        written = _default_opset(onnx.load(str(path), load_external_data=False))
        if written > opset:  # the dynamo exporter keeps opset 18 when it cannot convert a graph down
            errors.append(f"{name}: wrote opset {written} instead of {opset}")
            continue
        used = name
        break
    if used is None:
        raise ExportError("ONNX export failed: " + " | ".join(errors))
    stray = sorted(p.name for p in path.parent.glob(path.name + "*") if p != path)
    if stray:
        raise ExportError(f"ONNX export wrote external data files {stray}; expected a single file")
    try:
        proto = lower_ir_version(onnx.load(str(path)))
        onnx.checker.check_model(proto, full_check=True)
        onnx.save(proto, str(path))
    except Exception as err:
        raise ExportError(f"{path}: exported ONNX model is invalid: {err}") from err
    written = _default_opset(proto) or opset
    return OnnxExport(
        path=path, opset=int(written), exporter=used, notes="; ".join(errors), ir_version=int(proto.ir_version)
    )


def _default_opset(proto: Any) -> int:
    return max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0)


def lower_ir_version(proto: Any, target: int = MAX_IR_VERSION) -> Any:
    """``proto`` with its IR version lowered to ``target`` when nothing in it needs a newer one.

    Model-local functions, operator sets other than the default one above opset 17, and any
    IR version below ``target`` are left as they are (the caller's checker then decides).
    """
    opsets_ok = all(o.domain in ("", "ai.onnx") and o.version <= DEFAULT_OPSET for o in proto.opset_import)
    if proto.ir_version > target and opsets_ok and not len(proto.functions):
        proto.ir_version = target
    return proto


def run_onnx(path: Path, inputs: Sequence[np.ndarray]) -> list[list[np.ndarray]]:
    """Run the ONNX file with ONNX Runtime (CPU) on each input."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return [list(session.run(None, {name: np.ascontiguousarray(x, dtype=np.float32)})) for x in inputs]


def write_onnx(job: WeightJob) -> WrittenWeight:
    """Export ``job.model`` to ``weights.onnx`` (:func:`export_onnx`) and check it in ONNX Runtime.

    Raises
    ------
    spoco_zoo.errors.ExportError
        Both exporters failed or the file's outputs differ from eager PyTorch.
    """
    options = job.plan.options
    info = export_onnx(
        job.model,
        torch.from_numpy(job.tensors.inputs[0]),
        job.stage / "weights.onnx",
        spatial_dims=job.plan.spatial_dims,
        step=job.plan.geometry.step,
        output_names=job.tensors.outputs,
        opset=options.opset,
        exporter=options.onnx_exporter,
    )
    parity = job.check_parity("onnx", run_onnx, info.path, "ONNX Runtime cannot run the exported model")
    notes = (f"ONNX: fell back to the {info.exporter} exporter ({info.notes})",) if info.notes else ()
    return WrittenWeight(
        "onnx",
        info.path,
        parity,
        comment=(
            f"torch.onnx.export ({info.exporter} exporter), opset {info.opset}, ONNX IR version {info.ir_version}, "
            "dynamic batch and spatial axes"
        ),
        summary=f"onnx ({info.exporter}, opset {info.opset}): max |diff| {parity.max_abs:.2e}",
        details={"exporter": info.exporter, "opset": info.opset, "ir_version": info.ir_version},
        notes=notes,
    )
