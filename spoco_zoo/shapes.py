"""Valid network input sizes and padding to them (numpy only).

A U-Net of depth ``d`` needs every spatial extent to be a multiple of ``2**d``; an exported
package declares ``min + n * step``. :func:`valid_size` gives the smallest valid extent and
:func:`pad_to_shape` / :func:`pad_spatial` pad an image the same way everywhere (training
validation, tiled inference, package prediction).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

__all__ = ["valid_size", "valid_shape", "pad_spatial", "pad_to_shape"]


def valid_size(size: int, step: int, minimum: int = 0) -> int:
    """Smallest ``minimum + n * step >= size`` with ``n >= 0``.

    >>> valid_size(37, 4), valid_size(37, 4, minimum=36), valid_size(10, 4, minimum=36)
    (40, 40, 36)
    """
    step = int(step)
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    size, minimum = int(size), int(minimum)
    return minimum + max(0, -(-(size - minimum) // step)) * step


def valid_shape(shape: Sequence[int], step: int, minimum: int = 0) -> tuple[int, ...]:
    """:func:`valid_size` of every extent in ``shape``.

    >>> valid_shape((70, 66), 4, minimum=36)
    (72, 68)
    """
    return tuple(valid_size(s, step, minimum) for s in shape)


def pad_spatial(
    array: np.ndarray, widths: Sequence[tuple[int, int]], mode: Literal["reflect", "symmetric"] = "reflect"
) -> np.ndarray:
    """Pad the last ``len(widths)`` axes of ``array`` by ``(before, after)`` each.

    ``mode`` is numpy's ``"reflect"`` or ``"symmetric"``; padding longer than an axis repeats the
    reflection, so the padded values do not depend on how much padding is asked for (tiles and
    a whole-image pass see the same context). An axis of length 1 is repeated. Leading axes
    (batch, channel) are not padded; ``array`` itself is returned when nothing is padded.

    >>> pad_spatial(np.array([[1, 2, 3]]), [(0, 2)]).tolist()
    [[1, 2, 3, 2, 1]]
    >>> pad_spatial(np.array([[1, 2, 3]]), [(1, 2)], mode="symmetric").tolist()
    [[1, 1, 2, 3, 3, 2]]
    """
    if mode not in ("reflect", "symmetric"):
        raise ValueError(f"mode must be 'reflect' or 'symmetric', got {mode!r}")
    array = np.asarray(array)
    lead = array.ndim - len(widths)
    if lead < 0:
        raise ValueError(f"{len(widths)} padding widths for an array of shape {array.shape}")
    out = array
    for axis, (before, after) in enumerate(widths, start=lead):
        if before < 0 or after < 0:
            raise ValueError(f"padding widths must be >= 0, got {list(widths)}")
        if before == 0 and after == 0:
            continue
        pad = [(0, 0)] * array.ndim
        pad[axis] = (before, after)
        out = np.pad(out, pad, mode=mode if array.shape[axis] > 1 else "edge")
    return out


def pad_to_shape(
    array: np.ndarray, shape: Sequence[int], mode: Literal["reflect", "symmetric"] = "reflect"
) -> np.ndarray:
    """Pad the trailing (spatial) axes of ``array`` at their far end up to ``shape``.

    The original image stays at the origin, so ``out[..., :s0, :s1]`` crops back. See
    :func:`pad_spatial` for ``mode``.

    >>> pad_to_shape(np.zeros((1, 5, 6)), (8, 8)).shape
    (1, 8, 8)
    """
    array = np.asarray(array)
    spatial = array.shape[array.ndim - len(shape) :]
    missing = [int(t) - int(s) for s, t in zip(spatial, shape)]
    if min(missing, default=0) < 0:
        raise ValueError(f"cannot pad spatial shape {tuple(spatial)} to the smaller {tuple(shape)}")
    return pad_spatial(array, [(0, m) for m in missing], mode)
