"""Mixed precision and compilation choices of the trainer.

* :func:`autocast_dtype`: bfloat16 where the GPU computes in it (Ampere and newer; no loss
  scaling needed), float16 with a gradient scaler on older GPUs; on the CPU only when asked
  (``TrainConfig.amp_cpu``) and the CPU computes in bfloat16 natively (:func:`cpu_computes_bfloat16`).
* :func:`compile_model`: ``torch.compile`` behind ``TrainConfig.compile`` (off by default:
  compiling takes a minute and pays off on long GPU runs; ``benchmarks/training.py --compile``
  measures it).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["autocast_dtype", "cpu_computes_bfloat16", "needs_grad_scaler", "compile_model"]


def autocast_dtype(device: torch.device, enabled: bool = True, cpu: bool = False) -> torch.dtype | None:
    """The autocast dtype for ``device``, or ``None`` for full float32.

    ``enabled`` governs CUDA devices, ``cpu`` the CPU: bfloat16 there only where the CPU computes in it
    natively (elsewhere PyTorch emulates it, slower than float32).

    >>> autocast_dtype(torch.device("cpu")) is None
    True
    >>> autocast_dtype(torch.device("cpu"), cpu=True) == (torch.bfloat16 if cpu_computes_bfloat16() else None)
    True
    """
    if device.type == "cpu":
        return torch.bfloat16 if cpu and cpu_computes_bfloat16() else None
    if not enabled or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def cpu_computes_bfloat16() -> bool:
    """Whether oneDNN has native bfloat16 kernels on this CPU (AVX512-BF16 or AMX).

    On such a CPU a 3D U-Net's training step under bfloat16 autocast takes about 0.6 of its
    float32 time (docs/benchmarks.md, "bfloat16 training steps on the CPU"); without them it is slower.
    """
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return False


def needs_grad_scaler(dtype: torch.dtype | None) -> bool:
    """float16 needs loss scaling against underflowing gradients; bfloat16 and float32 do not.

    >>> needs_grad_scaler(torch.bfloat16), needs_grad_scaler(torch.float16)
    (False, True)
    """
    return dtype == torch.float16


def compile_model(model: nn.Module, enabled: bool) -> nn.Module:
    """``torch.compile(model)`` when ``enabled`` (parameters are shared), else ``model``."""
    if not enabled:
        return model
    return torch.compile(model)  # type: ignore[return-value]
