"""Memory order of a network's convolution weights.

PyTorch's CPU convolutions (oneDNN) run faster on channels-last tensors (``[B, *S, C]`` in memory,
``torch.channels_last`` in 2D, ``torch.channels_last_3d`` in 3D) than on the default ``[B, C, *S]``
order. With its weights in channels-last order, a network's convolutions return channels-last
activations whatever the order of its input, so the forward and backward pass stay in it; the tensors
keep their shape, only their strides change. (Where PyTorch takes its own slower route instead of
oneDNN's, for a small 3D input of batch 1, the output stays in the default order.) Measured on 2 AVX2
cores (docs/benchmarks.md, "Channels-last training steps"): the 3D CPU preset's float32 training step
2.28 -> 1.77 s, a depth-4 2D U-Net's forward pass at 1024x1024 1.88 -> 1.20 s.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["channels_last_format", "to_channels_last"]


def channels_last_format(spatial_dims: int) -> torch.memory_format:
    """The channels-last memory format of a ``spatial_dims``-D network's activations and weights.

    >>> channels_last_format(2), channels_last_format(3)
    (torch.channels_last, torch.channels_last_3d)
    """
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
    return torch.channels_last if spatial_dims == 2 else torch.channels_last_3d


def to_channels_last(model: nn.Module, spatial_dims: int) -> nn.Module:
    """``model`` itself, its ``spatial_dims``-D convolution weights put in channels-last order (in place).

    Parameters keep their identity (an optimiser built before or after sees the same tensors),
    their values and their shapes; other parameters (biases, norms) are left as they are.

    >>> conv = to_channels_last(torch.nn.Conv3d(4, 8, 3), 3)
    >>> conv.weight.shape, conv.weight.is_contiguous(), conv.weight.is_contiguous(memory_format=torch.channels_last_3d)
    (torch.Size([8, 4, 3, 3, 3]), False, True)
    >>> conv(torch.zeros(2, 4, 6, 6, 6)).is_contiguous(memory_format=torch.channels_last_3d)  # oneDNN's route
    True
    """
    fmt = channels_last_format(spatial_dims)
    for param in model.parameters():
        if param.dim() == spatial_dims + 2:
            param.data = param.data.contiguous(memory_format=fmt)
    return model
