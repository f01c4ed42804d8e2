"""Shared pieces of the export: package geometry, the paper citation, JSON-safe values.

Imports numpy and the standard library only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from spoco_zoo.errors import ExportError
from spoco_zoo.shapes import valid_size

__all__ = [
    "PackageGeometry",
    "package_geometry",
    "default_test_shape",
    "PAPER_DOI",
    "PAPER_ARXIV_DOI",
    "PAPER_CITATION",
    "json_safe",
]

#: SPOCO paper, CVPR 2022 proceedings (IEEE Xplore), pages 4402-4411.
PAPER_DOI = "10.1109/CVPR52688.2022.00436"
#: The same paper on arXiv (2103.14572); arXiv DOIs avoid URL checks during validation.
PAPER_ARXIV_DOI = "10.48550/arXiv.2103.14572"
PAPER_CITATION = (
    "Wolny, A., Yu, Q., Pape, C., Kreshuk, A. Sparse Object-level Supervision for Instance "
    "Segmentation with Pixel Embeddings. CVPR 2022, pp. 4402-4411."
)


@dataclass(frozen=True)
class PackageGeometry:
    """Sizes declared in the RDF for a U-Net of a given depth, per spatial axis (``z`` first).

    Attributes
    ----------
    step:
        ``2 ** depth``: every spatial extent must be a multiple of it (RDF ``ParameterizedSize.step``).
    halo:
        Output halo per side and axis, each a multiple of ``step``: tiles are predicted with this
        much context and it is cropped from their outputs. Measured on the network's weights
        (:func:`spoco_zoo.models.receptive_field.package_halo`): cutting the context beyond it changes
        the embeddings by at most 0.001 -- but never so large that the declared minimum input
        exceeds the training patch along that axis (see :func:`package_geometry`).
    min_size:
        Smallest valid extent per axis, ``2 * halo + step``: the spec requires ``min - 2 * halo >= 1``
        and the U-Net requires a multiple of ``step``.
    """

    step: int
    halo: tuple[int, ...]
    min_size: tuple[int, ...]

    def valid(self, size: int, axis: int) -> int:
        """Smallest valid extent ``>= size`` along spatial axis ``axis``."""
        return valid_size(size, self.step, self.min_size[axis])

    @property
    def halo_text(self) -> str:
        """``"80"`` when every axis has the same halo, else ``"0x16x16"`` (``z, y, x``).

        >>> PackageGeometry(16, (0, 16, 16), (16, 48, 48)).halo_text
        '0x16x16'
        """
        return str(self.halo[0]) if len(set(self.halo)) == 1 else "x".join(str(h) for h in self.halo)

    def sizes_text(self, axes: Sequence[str]) -> str:
        """The valid extents in words, for the model card.

        >>> PackageGeometry(16, (0, 16, 16), (16, 48, 48)).sizes_text(["z", "y", "x"])
        'z = 16 + n * 16, y = 48 + n * 16, x = 48 + n * 16'
        >>> PackageGeometry(16, (80, 80), (176, 176)).sizes_text(["y", "x"])
        'every spatial extent = 176 + n * 16'
        """
        if len(set(self.min_size)) == 1:
            return f"every spatial extent = {self.min_size[0]} + n * {self.step}"
        return ", ".join(f"{a} = {m} + n * {self.step}" for a, m in zip(axes, self.min_size))


def package_geometry(
    depth: int, halo: int | Sequence[int], spatial_dims: int = 2, patch_shape: Sequence[int] | None = None
) -> PackageGeometry:
    """:class:`PackageGeometry` for a U-Net with ``depth`` pooling steps and a halo of ``halo`` pixels.

    ``halo`` (one number for every axis, or one per axis) is rounded up to a multiple of the size
    step ``2 ** depth``. With ``patch_shape`` (the training patch) the halo of an axis is lowered
    until the declared minimum input ``2 * halo + step`` fits in the patch: the network never saw
    more context than its patch while training, and a consumer must be able to run a volume as
    thin as the ones it was trained on without padding it with invented context (a 32-deep stack
    mirror-padded to 144 slices lost 0.11 SBD, ``docs/benchmarks.md``).

    >>> package_geometry(4, 40)
    PackageGeometry(step=16, halo=(48, 48), min_size=(112, 112))
    >>> package_geometry(4, 64, 3, patch_shape=[32, 64, 64])
    PackageGeometry(step=16, halo=(0, 16, 16), min_size=(16, 48, 48))
    """
    step = 1 << int(depth)
    halos = [int(halo)] * spatial_dims if isinstance(halo, (int, np.integer)) else [int(h) for h in halo]
    if len(halos) != spatial_dims:
        raise ExportError(f"halo {halos}: need one value per spatial axis ({spatial_dims})")
    halos = [-(-max(0, h) // step) * step for h in halos]
    if patch_shape is not None:
        halos = [min(h, max(0, (int(p) - step) // 2) // step * step) for h, p in zip(halos, patch_shape)]
    return PackageGeometry(step=step, halo=tuple(halos), min_size=tuple(2 * h + step for h in halos))


def default_test_shape(
    spatial_dims: int, geometry: PackageGeometry, shape: Sequence[int] | None = None
) -> tuple[int, ...]:
    """Spatial shape of the test tensor: ``shape`` (or 128x128 / 48x64x64) rounded up to a valid size."""
    if shape is None:
        shape = (128, 128) if spatial_dims == 2 else (48, 64, 64)
    if len(shape) != spatial_dims:
        raise ExportError(f"test shape {tuple(shape)} has {len(shape)} axes, the model has {spatial_dims} spatial axes")
    return tuple(geometry.valid(s, axis) for axis, s in enumerate(shape))


def json_safe(value: Any) -> Any:
    """``value`` as plain JSON types (numpy scalars -> numbers, other objects -> ``str``).

    >>> json_safe({"a": np.float32(0.5), "b": (1, 2)})
    {'a': 0.5, 'b': [1, 2]}
    """
    return json.loads(
        json.dumps(value, default=lambda v: float(v) if isinstance(v, (np.floating, np.integer)) else str(v))
    )
