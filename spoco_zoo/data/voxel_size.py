"""The voxel size of an input file: what ``data.voxel_size`` is when the config leaves it out.

TIFF files carry it in OME-XML, ImageJ metadata (``spacing`` for ``z``) or the resolution tags
(:func:`spoco_zoo.data.imagej.read_pixel_size`); OME-Zarr images in the ``scale`` transformation of
their full-resolution level. Sizes are converted to micrometres when the file names a unit this
module knows, else kept as stored (their ratios still tell the anisotropy).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["to_micrometres", "read_voxel_size", "first_voxel_size"]

_MICROMETRES = {
    "µm": 1.0,
    "um": 1.0,
    "micron": 1.0,
    "micrometer": 1.0,
    "micrometre": 1.0,
    "nm": 1e-3,
    "nanometer": 1e-3,
    "mm": 1e3,
    "millimeter": 1e3,
    "cm": 1e4,
    "inch": 25400.0,
}


def to_micrometres(values: Sequence[float], unit: str | None) -> list[float]:
    """``values`` in micrometres when ``unit`` is known, else unchanged.

    >>> to_micrometres([0.2, 100], "nm"), to_micrometres([2, 1], "pixel")
    ([0.0002, 0.1], [2.0, 1.0])
    """
    factor = _MICROMETRES.get(str(unit or "").strip().lower().replace("\\u00b5", "µ"), 1.0)
    return [float(v) * factor for v in values]


def _zarr_voxel_size(path: Path, spatial_dims: int) -> list[float] | None:
    import zarr

    from spoco_zoo.data.ome_zarr import multiscales_of

    try:
        node = zarr.open(str(path), mode="r")
    except Exception:  # zarr raises many types; a store it cannot open has no voxel size to read
        return None
    if isinstance(node, zarr.Array):
        return None
    multiscales = multiscales_of(dict(node.attrs))
    if not multiscales:
        return None
    first = multiscales[0]
    axes: list[Any] = list(first.get("axes") or [])
    transforms = (first.get("datasets") or [{}])[0].get("coordinateTransformations") or []
    scale = next((t.get("scale") for t in transforms if t.get("type") == "scale"), None)
    if not scale or len(scale) < spatial_dims:
        return None
    units = [a.get("unit") for a in axes if isinstance(a, dict) and a.get("type") == "space"]
    spatial = [float(v) for v in scale[-spatial_dims:]]
    return to_micrometres(spatial, units[-1] if units else None)


def read_voxel_size(path: str | Path, spatial_dims: int) -> list[float] | None:
    """The voxel size (``z, y, x`` / ``y, x``, micrometres where the unit is known) stored in ``path``,
    or ``None`` when the file stores none (or, for a volume, no ``z`` step).

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from spoco_zoo.data.imagej import PixelSize, write_label_tiff
    >>> path = Path(tempfile.mkdtemp()) / "stack.tif"
    >>> _ = write_label_tiff(path, np.ones((4, 8, 8), np.uint16), PixelSize(0.25, 0.25, 1.0, "µm"))
    >>> read_voxel_size(path, 3), read_voxel_size(path, 2)
    ([1.0, 0.25, 0.25], [0.25, 0.25])
    """
    from spoco_zoo.data.imagej import read_pixel_size

    path = Path(path)
    if path.suffix.lower() == ".zarr" or path.name.lower().endswith(".ome.zarr"):
        return _zarr_voxel_size(path, spatial_dims)
    size = read_pixel_size(path)
    if size is None or (spatial_dims == 3 and size.z is None):
        return None
    values = [size.y, size.x] if spatial_dims == 2 else [float(size.z or 0.0), size.y, size.x]
    return to_micrometres(values, size.unit)


def first_voxel_size(paths: Sequence[str | Path] | None, spatial_dims: int) -> list[float] | None:
    """The voxel size of the first of ``paths`` that stores one (``None``: none does, or no paths)."""
    for path in paths or []:
        found = read_voxel_size(path, spatial_dims)
        if found is not None:
            return found
    return None
