"""Kernels that turn embedding distances into soft instance masks.

Shared by the instance/consistency losses, the anchor clustering and the
in-graph clustering, so training and inference use one definition. Imports
torch only.

The Gaussian kernel is parameterised by the pull margin ``delta_var``: its
width is chosen so that a pixel at embedding distance ``delta_var`` from the
anchor gets the value 0.5, i.e. ``kernel > 0.5`` <=> ``distance < delta_var``.
"""

from __future__ import annotations

import math

import torch

__all__ = ["gaussian_sigma", "gaussian_kernel", "KERNEL_THRESHOLD"]

#: Kernel value at distance ``delta_var``; pixels above it belong to the anchor's object.
KERNEL_THRESHOLD = 0.5


def gaussian_sigma(delta_var: float) -> float:
    """Width of the Gaussian kernel whose value at ``delta_var`` is 0.5.

    >>> round(gaussian_sigma(0.5), 4)
    0.4247
    """
    if delta_var <= 0:
        raise ValueError(f"delta_var must be positive, got {delta_var}")
    return delta_var / math.sqrt(-2.0 * math.log(KERNEL_THRESHOLD))


def gaussian_kernel(sq_distance: torch.Tensor, delta_var: float) -> torch.Tensor:
    """``exp(-d^2 / (2 sigma^2))`` of squared embedding distances ``d^2``.

    >>> float(gaussian_kernel(torch.tensor(0.25), 0.5))  # d = delta_var
    0.5
    """
    sigma = gaussian_sigma(delta_var)
    return torch.exp(-sq_distance / (2.0 * sigma * sigma))
