"""Mixed precision and compilation choices of the trainer.

* :func:`autocast_dtype`: bfloat16 where the GPU computes in it (Ampere and newer; no loss
  scaling needed), float16 with a gradient scaler on older GPUs; no autocast on the CPU.
* :func:`compile_model`: ``torch.compile`` behind ``TrainConfig.compile`` (off by default:
  compiling takes a minute and pays off on long GPU runs; ``benchmarks/training.py --compile``
  measures it).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["autocast_dtype", "needs_grad_scaler", "compile_model"]


def autocast_dtype(device: torch.device, enabled: bool = True) -> torch.dtype | None:
    """The autocast dtype for ``device``, or ``None`` for full float32.

    >>> autocast_dtype(torch.device("cpu")) is None
    True
    """
    if not enabled or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


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
