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
    """Sizes declared in the RDF for a U-Net of a given depth.

    Attributes
    ----------
    step:
        ``2 ** depth``: every spatial extent must be a multiple of it (RDF ``ParameterizedSize.step``).
    halo:
        Output halo per side, a multiple of ``step``: tiles are predicted with this much context
        and it is cropped from their outputs. Measured on the network's weights
        (:func:`spoco_zoo.models.receptive_field.package_halo`): cutting the context beyond it changes
        the embeddings by at most 0.001.
    min_size:
        Smallest valid extent, ``2 * halo + step``: the spec requires ``min - 2 * halo >= 1`` and the
        U-Net requires a multiple of ``step``.
    """

    step: int
    halo: int
    min_size: int

    def valid(self, size: int) -> int:
        """Smallest valid extent ``>= size``."""
        return valid_size(size, self.step, self.min_size)


def package_geometry(depth: int, halo: int) -> PackageGeometry:
    """:class:`PackageGeometry` for a U-Net with ``depth`` pooling steps and a halo of ``halo`` pixels.

    ``halo`` is rounded up to a multiple of the size step ``2 ** depth``.

    >>> package_geometry(4, 40)
    PackageGeometry(step=16, halo=48, min_size=112)
    """
    step = 1 << int(depth)
    halo = -(-max(0, int(halo)) // step) * step
    return PackageGeometry(step=step, halo=halo, min_size=2 * halo + step)


def default_test_shape(
    spatial_dims: int, geometry: PackageGeometry, shape: Sequence[int] | None = None
) -> tuple[int, ...]:
    """Spatial shape of the test tensor: ``shape`` (or 128x128 / 48x64x64) rounded up to a valid size."""
    if shape is None:
        shape = (128, 128) if spatial_dims == 2 else (48, 64, 64)
    if len(shape) != spatial_dims:
        raise ExportError(f"test shape {tuple(shape)} has {len(shape)} axes, the model has {spatial_dims} spatial axes")
    return tuple(geometry.valid(s) for s in shape)


def json_safe(value: Any) -> Any:
    """``value`` as plain JSON types (numpy scalars -> numbers, other objects -> ``str``).

    >>> json_safe({"a": np.float32(0.5), "b": (1, 2)})
    {'a': 0.5, 'b': [1, 2]}
    """
    return json.loads(
        json.dumps(value, default=lambda v: float(v) if isinstance(v, (np.floating, np.integer)) else str(v))
    )
