"""How an anisotropic volume is pooled: the rule that turns a voxel size into ``UNet.anisotropic_levels``.

A stack whose ``z`` step is several times the pixel size holds few slices per object; pooling ``z``
as often as ``y`` and ``x`` throws them away in the first levels. The U-Net pools ``y`` and ``x``
only (``(1, 2, 2)``) while the ``z`` step is at least twice the in-plane one, halving the ratio each
time, and all three axes below (as the 3D U-Nets of the field do for anisotropic electron and light
microscopy stacks).

Imports the standard library only.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["anisotropy", "anisotropic_levels"]


def anisotropy(voxel_size: Sequence[float] | None) -> float:
    """``z`` step over the in-plane pixel size (the mean of ``y`` and ``x``); 1 without a 3D voxel size.

    >>> anisotropy([3.0, 1.0, 1.0]), anisotropy(None), anisotropy([0.5, 0.5])
    (3.0, 1.0, 1.0)
    """
    if voxel_size is None or len(voxel_size) != 3:
        return 1.0
    z, y, x = (float(v) for v in voxel_size)
    return z / ((y + x) / 2.0)


def anisotropic_levels(voxel_size: Sequence[float] | None, depth: int) -> int:
    """Down-sampling steps that pool ``y`` and ``x`` only: while the ``z`` step is at least twice the
    in-plane size (the ratio halves with each such step), at most ``depth``.

    >>> [anisotropic_levels([r, 1, 1], 4) for r in (1, 1.9, 2, 3, 4, 5, 8, 100)]
    [0, 0, 1, 1, 2, 2, 3, 4]
    """
    ratio = anisotropy(voxel_size)
    levels = 0
    while ratio >= 2.0 and levels < int(depth):
        ratio /= 2.0
        levels += 1
    return levels
