"""ImageJ/Fiji-friendly outputs: label TIFFs with axes and pixel size, and ImageJ ROI sets.

* :func:`read_pixel_size` reads the pixel size of a TIFF input (ImageJ metadata, OME-XML or the
  TIFF resolution tags); :func:`write_label_tiff` writes a label image as an ImageJ hyperstack
  TIFF (``axes`` YX or ZYX, the pixel size and unit carried over), atomically;
* :func:`write_roi_zip` writes one polygon ROI per object (its outer boundary) into a ``.zip``
  that ImageJ's ROI Manager opens; :func:`read_roi` reads one back (the format of ImageJ's
  ``RoiDecoder``: a 64-byte big-endian header, then the x and the y coordinates as int16
  relative to the bounding box).
"""

from __future__ import annotations

import re
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spoco_zoo.atomic import atomic_path
from spoco_zoo.errors import DataError

__all__ = ["PixelSize", "read_pixel_size", "write_label_tiff", "roi_polygons", "write_roi_zip", "read_roi"]

_UNITS = {2: "inch", 3: "cm"}


@dataclass(frozen=True)
class PixelSize:
    """Physical size of a pixel: ``x``, ``y`` (and ``z`` for stacks) in ``unit``."""

    x: float
    y: float
    z: float | None = None
    unit: str = "pixel"


def read_pixel_size(path: str | Path) -> PixelSize | None:
    """The pixel size stored in a TIFF file, or ``None`` (not a TIFF, or nothing stored).

    Looks at OME-XML (``PhysicalSizeX/Y/Z``), ImageJ metadata (``spacing``, ``unit``) and the TIFF
    ``XResolution``/``YResolution``/``ResolutionUnit`` tags, in this order.
    """
    path = Path(path)
    if not path.name.lower().endswith((".tif", ".tiff")):
        return None
    import tifffile

    with tifffile.TiffFile(path) as tif:
        ome = tif.ome_metadata
        if ome:
            sizes = {k: re.search(rf'PhysicalSize{k}="([0-9.eE+-]+)"', ome) for k in "XYZ"}
            ome_unit = re.search(r'PhysicalSizeXUnit="([^"]+)"', ome)
            if sizes["X"] and sizes["Y"]:
                z = float(sizes["Z"].group(1)) if sizes["Z"] else None
                return PixelSize(
                    float(sizes["X"].group(1)), float(sizes["Y"].group(1)), z, ome_unit.group(1) if ome_unit else "µm"
                )
        page = tif.pages.first
        tags = page.tags
        ij = tif.imagej_metadata or {}
        if "XResolution" not in tags or "YResolution" not in tags:
            return None
        xr, yr = tags["XResolution"].value, tags["YResolution"].value
        x_per, y_per = xr[0] / xr[1], yr[0] / yr[1]
        if x_per <= 0 or y_per <= 0:
            return None
        unit = str(ij.get("unit") or _UNITS.get(int(getattr(tags.get("ResolutionUnit"), "value", 1)), "pixel"))
        if unit == "pixel" and x_per == 1 and y_per == 1:
            return None
        spacing = ij.get("spacing")
        return PixelSize(1.0 / x_per, 1.0 / y_per, float(spacing) if spacing else None, unit.replace("\\u00B5", "µ"))


def write_label_tiff(path: str | Path, labels: np.ndarray, pixel_size: PixelSize | None = None) -> Path:
    """Write a label image (``[y, x]`` or ``[z, y, x]``, ids >= 0) as an ImageJ TIFF, atomically.

    Up to 65535 objects the file is a 16-bit ImageJ hyperstack with ``axes`` ``YX``/``ZYX`` and the
    pixel size (``resolution``, ``spacing``, ``unit``); more objects need 32 bits, which ImageJ
    hyperstacks do not have: the file is then a plain uint32 TIFF with the resolution tags.
    Compression: zlib.

    Raises
    ------
    DataError
        Not an integer label image, negative ids or an unsupported number of axes.
    """
    import tifffile

    path = Path(path)
    lab = np.asarray(labels)
    if not (np.issubdtype(lab.dtype, np.integer) or lab.dtype == bool) or lab.ndim not in (2, 3) or lab.size == 0:
        raise DataError(f"{path}: expected an integer label image [y, x] or [z, y, x], got {lab.dtype} {lab.shape}")
    if int(lab.min()) < 0:
        raise DataError(f"{path}: label image has negative ids (min {int(lab.min())})")
    high = int(lab.max())
    if high >= 2**32:
        raise DataError(f"{path}: label ids up to {high} do not fit a 32-bit TIFF")
    kwargs: dict = {"compression": "zlib"}
    metadata: dict = {"axes": "ZYX" if lab.ndim == 3 else "YX"}
    if pixel_size is not None:
        kwargs["resolution"] = (1.0 / pixel_size.x, 1.0 / pixel_size.y)
        metadata["unit"] = pixel_size.unit.replace("µ", "\\u00B5")  # ImageJ's header is ASCII: Fiji writes µ so
        if lab.ndim == 3 and pixel_size.z is not None:
            metadata["spacing"] = pixel_size.z
    with atomic_path(path) as tmp:
        if high < 2**16:
            tifffile.imwrite(tmp, lab.astype(np.uint16), imagej=True, metadata=metadata, **kwargs)
        else:
            tifffile.imwrite(tmp, lab.astype(np.uint32), photometric="minisblack", **kwargs)
    return path


def roi_polygons(labels: np.ndarray) -> dict[int, np.ndarray]:
    """Outer boundary of every object of a 2D label image: id -> ``[n, 2]`` (x, y) polygon vertices.

    The boundary follows pixel corners (``skimage.measure.find_contours`` on the object mask at
    level 0.5, rounded); the longest contour of an object is its outer boundary.
    """
    from skimage.measure import find_contours

    lab = np.asarray(labels)
    out: dict[int, np.ndarray] = {}
    for obj in np.unique(lab[lab > 0]):
        mask = np.pad(lab == obj, 1)
        contours = find_contours(mask.astype(np.float32), 0.5)
        if not contours:
            continue
        longest = max(contours, key=len)
        yx = np.round(longest - 1 + 0.5).astype(np.int64)  # back to image coordinates, pixel corners
        keep = np.ones(len(yx), bool)
        keep[1:] = np.any(yx[1:] != yx[:-1], axis=1)
        xy = yx[keep][:, ::-1]
        if len(xy) > 1 and np.all(xy[0] == xy[-1]):
            xy = xy[:-1]
        out[int(obj)] = xy
    return out


def _roi_bytes(xy: np.ndarray, name: str) -> bytes:
    left, top = int(xy[:, 0].min()), int(xy[:, 1].min())
    right, bottom = int(xy[:, 0].max()), int(xy[:, 1].max())
    n = len(xy)
    if n >= 2**16 or right >= 2**15 or bottom >= 2**15:
        raise DataError(f"ROI {name}: polygon too large for an ImageJ ROI ({n} vertices, extent {right}x{bottom})")
    header = bytearray(64)
    header[0:4] = b"Iout"
    struct.pack_into(">h", header, 4, 227)  # format version
    header[6] = 0  # polygon
    struct.pack_into(">hhhhH", header, 8, top, left, bottom, right, n)
    coords = np.concatenate([xy[:, 0] - left, xy[:, 1] - top]).astype(">i2")
    return bytes(header) + coords.tobytes()


def write_roi_zip(path: str | Path, labels: np.ndarray) -> tuple[Path, int]:
    """One ImageJ polygon ROI per object of a 2D label image (3D: the middle z slice), in a zip.

    Entries are named ``<id>.roi`` (zero-padded), so ROI Manager lists them by label id.
    Returns the path and the number of ROIs.
    """
    path = Path(path)
    lab = np.asarray(labels)
    if lab.ndim == 3:
        lab = lab[lab.shape[0] // 2]
    polygons = roi_polygons(lab)
    width = max(4, len(str(max(polygons, default=0))))
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for obj, xy in polygons.items():
            name = f"{obj:0{width}d}"
            zf.writestr(f"{name}.roi", _roi_bytes(xy, name))
    return path, len(polygons)


def read_roi(data: bytes) -> tuple[int, np.ndarray]:
    """``(type, [n, 2] absolute x, y vertices)`` of one ImageJ ROI as written by :func:`write_roi_zip`."""
    if data[:4] != b"Iout":
        raise DataError("not an ImageJ ROI (no 'Iout' magic)")
    kind = data[6]
    top, left, _bottom, _right, n = struct.unpack_from(">hhhhH", data, 8)
    coords = np.frombuffer(data, dtype=">i2", count=2 * n, offset=64).astype(np.int64)
    return kind, np.stack([coords[:n] + left, coords[n:] + top], axis=1)
