"""ONNX weights: ``torch.onnx.export`` with dynamic batch and spatial axes, checked with ONNX Runtime.

Exporter choice (torch >= 2.9 defaults to ``dynamo=True``):

* ``"dynamo"``: ``torch.export`` based. Spatial axes are declared as
  ``2**depth * Dim(...)``, so the graph is valid for every multiple of the
  U-Net's size step and ONNX Runtime shows them as e.g. ``4*y_blocks``.
  Weights are embedded in the single ``.onnx`` file (``external_data=False``).
* ``"legacy"``: the TorchScript-based exporter with ``dynamic_axes``
  (deprecated upstream, kept as a fallback).
* ``"auto"`` (default): dynamo, falling back to legacy if it fails.

Both have been verified with ONNX Runtime at spatial sizes other than the
traced one (see :func:`onnx_parity`, which the package exporter always runs).
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from spoco_zoo.errors import ExportError
from spoco_zoo.export.parity import EMBEDDINGS_TOLERANCE, LABEL_MISMATCH_PPM, ParityResult, run_and_compare

__all__ = ["MIN_OPSET", "OnnxExport", "export_onnx", "run_onnx", "onnx_parity"]

#: Lowest opset we write (bioimage.io accepts >= 7; we need >= 17 for the ops used).
MIN_OPSET = 17
_AXES = ("z", "y", "x")


@dataclass
class OnnxExport:
    """What :func:`export_onnx` produced."""

    path: Path
    opset: int
    exporter: Literal["dynamo", "legacy"]
    notes: str = ""


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


def _export_dynamo(model, example, path, spatial_dims, step, output_names, opset) -> None:
    from torch.export import Dim

    shapes: dict[int, object] = {0: Dim("batch", min=1, max=4096)}
    for i, axis in enumerate(_AXES[-spatial_dims:]):
        shapes[2 + i] = step * Dim(f"{axis}_blocks", min=1, max=1 << 16)
    torch.onnx.export(
        model,
        (example,),
        str(path),
        input_names=["raw"],
        output_names=list(output_names),
        opset_version=opset,
        dynamo=True,
        dynamic_shapes=(shapes,),
        external_data=False,
        optimize=True,
        verbose=False,
    )


def _export_legacy(model, example, path, spatial_dims, output_names, opset) -> None:
    axes = {0: "batch", **{2 + i: a for i, a in enumerate(_AXES[-spatial_dims:])}}
    torch.onnx.export(
        model,
        (example,),
        str(path),
        input_names=["raw"],
        output_names=list(output_names),
        opset_version=opset,
        dynamo=False,
        dynamic_axes={name: axes for name in ["raw", *output_names]},
        do_constant_folding=True,
    )


def export_onnx(
    model: nn.Module,
    example: torch.Tensor,
    path: Path,
    *,
    spatial_dims: int,
    step: int,
    output_names: Sequence[str] = ("embeddings",),
    opset: int = 18,
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
    order: list[Literal["dynamo", "legacy"]] = ["dynamo", "legacy"] if exporter == "auto" else [exporter]
    for name in order:
        if path.exists():
            path.unlink()
        try:
            with _quiet(), torch.no_grad():
                if name == "dynamo":
                    _export_dynamo(model, example, path, spatial_dims, step, output_names, opset)
                else:
                    _export_legacy(model, example, path, spatial_dims, output_names, opset)
            used = name
            break
        except Exception as err:  # exporters raise many types
            errors.append(f"{name}: {type(err).__name__}: {str(err).strip()[:2000]}")
    if used is None:
        raise ExportError("ONNX export failed: " + " | ".join(errors))
    stray = sorted(p.name for p in path.parent.glob(path.name + "*") if p != path)
    if stray:
        raise ExportError(f"ONNX export wrote external data files {stray}; expected a single file")
    try:
        proto = onnx.load(str(path))
        onnx.checker.check_model(proto)
    except Exception as err:
        raise ExportError(f"{path}: exported ONNX model is invalid: {err}") from err
    written = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=opset)
    return OnnxExport(path=path, opset=int(written), exporter=used, notes="; ".join(errors))


def run_onnx(path: Path, inputs: Sequence[np.ndarray]) -> list[list[np.ndarray]]:
    """Run the ONNX file with ONNX Runtime (CPU) on each input."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return [list(session.run(None, {name: np.ascontiguousarray(x, dtype=np.float32)})) for x in inputs]


def onnx_parity(
    path: Path,
    reference: Sequence[Sequence[np.ndarray]],
    inputs: Sequence[np.ndarray],
    tolerance: float = EMBEDDINGS_TOLERANCE,
    label_ppm: float = LABEL_MISMATCH_PPM,
) -> ParityResult:
    """Compare ONNX Runtime outputs with the eager ``reference`` outputs on ``inputs``."""
    return run_and_compare(
        "onnx", run_onnx, path, reference, inputs, tolerance, label_ppm, "ONNX Runtime cannot run the exported model"
    )
