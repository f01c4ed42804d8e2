"""TorchScript weights: script (or trace), freeze, save, and check parity.

Scripting keeps every shape symbolic (any batch size, any valid spatial size)
and keeps the clustering loops as loops; tracing is the fallback for modules
TorchScript cannot compile (it fixes Python control flow at trace time, which
is harmless for the U-Net). The scripted module is frozen
(:func:`torch.jit.freeze`: parameters become constants, attribute look-ups are
inlined, conv+batch-norm pairs are folded). We deliberately do not call
:func:`torch.jit.optimize_for_inference`: on CPU it rewrites convolutions to
MKL-DNN ops that are slower to load elsewhere and not portable to CUDA.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from spoco_zoo.errors import ExportError
from spoco_zoo.exporters.weight_record import WeightJob, WrittenWeight

__all__ = [
    "write_torchscript",
    "to_torchscript",
    "save_torchscript",
    "file_format_version",
    "run_torchscript",
]


def to_torchscript(
    model: nn.Module,
    example: torch.Tensor,
    method: Literal["auto", "script", "trace"] = "auto",
    freeze: bool = True,
) -> torch.jit.ScriptModule:
    """Compile ``model`` (eval mode, CPU) to TorchScript.

    Parameters
    ----------
    model:
        The eager module (the one built from the shipped architecture file).
    example:
        An input ``[B, C, *S]`` for tracing and a smoke test.
    method:
        ``"script"``, ``"trace"`` or ``"auto"`` (script, fall back to trace).
    freeze:
        Freeze the compiled module for inference.

    Raises
    ------
    ExportError
        Neither scripting nor tracing works, or the compiled module fails on ``example``.
    """
    model = model.eval()
    errors: list[str] = []
    compiled = None
    if method in ("auto", "script"):
        try:
            compiled = torch.jit.script(model)
        except Exception as err:  # torch raises many error types here
            errors.append(f"script: {type(err).__name__}: {err}")
    if compiled is None and method in ("auto", "trace"):
        if errors:  # "auto" after a failed script: a trace unrolls loops, so the reason must not vanish
            warnings.warn(f"TorchScript: tracing instead of scripting ({errors[0]})", stacklevel=2)
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                compiled = torch.jit.trace(model, (example,), check_trace=False)
        except Exception as err:
            errors.append(f"trace: {type(err).__name__}: {err}")
    if compiled is None:
        raise ExportError("TorchScript conversion failed: " + " | ".join(errors))
    compiled = compiled.eval()
    if freeze:
        compiled = torch.jit.freeze(compiled)
    try:
        with torch.no_grad():
            compiled(example)
    except Exception as err:
        raise ExportError(f"TorchScript module fails on an input of shape {tuple(example.shape)}: {err}") from err
    return compiled


def save_torchscript(module: torch.jit.ScriptModule, path: Path) -> Path:
    """Save ``module`` to ``path`` and return it."""
    path = Path(path)
    buffer = io.BytesIO()
    torch.jit.save(module, buffer)
    path.write_bytes(buffer.getvalue())
    return path


def file_format_version(path: Path) -> int:
    """The TorchScript file format version recorded in a saved module (its ``version`` record).

    A PyTorch build reads files up to its own maximum version (10 in PyTorch 1.13 - 2.x); the
    version rises above 3 only when an operator with a newer schema is used.
    """
    import zipfile

    with zipfile.ZipFile(path) as zf:
        name = next((n for n in zf.namelist() if n.split("/")[-1] in (".data/version", "version")), None)
        if name is None:
            name = next((n for n in zf.namelist() if n.endswith("/version")), None)
        if name is None:
            raise ExportError(f"{path}: no version record in the TorchScript archive")
        return int(zf.read(name).decode().strip())


def _as_list(out) -> list[np.ndarray]:
    if isinstance(out, (tuple, list)):
        return [o.detach().cpu().numpy() for o in out]
    return [out.detach().cpu().numpy()]


def run_torchscript(path: Path, inputs: Sequence[np.ndarray]) -> list[list[np.ndarray]]:
    """Load a saved TorchScript file and run it on each input; outputs as numpy lists."""
    module = torch.jit.load(str(path), map_location="cpu").eval()
    results = []
    with torch.no_grad():
        for x in inputs:
            results.append(_as_list(module(torch.from_numpy(np.ascontiguousarray(x)))))
    return results


def write_torchscript(job: WeightJob) -> WrittenWeight:
    """Script ``job.model`` to ``weights_torchscript.pt`` and check it on both test inputs.

    Not frozen: freezing folds convolution + BatchNorm, which moves embeddings by ~3e-5 -- enough to
    flip whole clusters of the in-graph labels on near-tie embeddings; unfrozen, the file repeats eager.

    Raises
    ------
    spoco_zoo.errors.ExportError
        Scripting failed or the file's outputs differ from eager PyTorch.
    """
    options = job.plan.options
    example = torch.from_numpy(job.tensors.inputs[0])
    scripted = to_torchscript(job.model, example, method=options.torchscript_method, freeze=False)
    # "auto" traces when scripting fails: a trace unrolls the decoder's loops, so say which it is
    how = "traced" if isinstance(scripted, torch.jit.TopLevelTracedModule) else "scripted"
    path = save_torchscript(scripted, job.stage / "weights_torchscript.pt")
    parity = job.check_parity("torchscript", run_torchscript, path, "saved TorchScript module cannot be run")
    version = file_format_version(path)
    return WrittenWeight(
        "torchscript",
        path,
        parity,
        comment=(
            f"{how} with torch.jit (PyTorch {torch.__version__.split('+')[0]}) from the eager model; "
            f"TorchScript file format version {version}"
        ),
        summary=f"torchscript ({how}): max |diff| {parity.max_abs:.2e}, file format version {version}",
        details={"file_version": version, "method": how},
    )
