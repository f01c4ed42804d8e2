"""Zarr and OME-Zarr arrays opened lazily (nothing is read until sliced), and label arrays written as OME-Zarr.

* :func:`open_zarr_array` opens a ``.zarr`` / ``.ome.zarr`` store: a plain array, a group
  holding one array (or ``key``), or an OME-Zarr image (NGFF 0.4 ``multiscales`` attributes,
  or 0.5 under ``"ome"``), whose full-resolution level is used. It returns the array and its
  axis letters (from the OME metadata; ``""`` when the store does not say).
* :func:`create_ome_labels` creates an empty label image in an OME-Zarr 0.5 store (zarr
  format 3, one resolution level, chunks = the blocks that write it), which napari, Fiji
  (n5-viewer / MoBIE) and this module read.

Errors are :class:`~spoco_zoo.errors.DataError` naming the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from spoco_zoo.errors import DataError

__all__ = ["open_zarr_array", "create_ome_labels", "multiscales_of", "OME_VERSION"]

#: NGFF version of the stores this module writes.
OME_VERSION = "0.5"


def multiscales_of(attrs: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The ``multiscales`` list of an OME-Zarr group's attributes (NGFF 0.4, or 0.5 under ``"ome"``); ``None``."""
    if isinstance(attrs.get("ome"), dict) and "multiscales" in attrs["ome"]:
        return list(attrs["ome"]["multiscales"])
    if "multiscales" in attrs:
        return list(attrs["multiscales"])
    return None


def open_zarr_array(path: str | Path, key: str | None = None) -> tuple[Any, str]:
    """The array of a Zarr store and its axes (e.g. ``"czyx"``; ``""`` when unknown).

    Parameters
    ----------
    path:
        ``.zarr`` / ``.ome.zarr`` directory.
    key:
        Array path inside a group; default: the OME-Zarr full-resolution level, or the only array.

    Raises
    ------
    DataError
        Missing or unreadable store, unknown key, several arrays and no key, a time axis longer
        than 1.
    """
    import zarr

    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    try:
        node = zarr.open(str(path), mode="r")
    except Exception as err:  # zarr raises many types for broken stores
        raise DataError(f"{path}: cannot open Zarr store ({type(err).__name__}: {err})") from err
    if isinstance(node, zarr.Array):
        if key not in (None, ""):
            raise DataError(f"{path}: key {key!r} given but the store is a single array")
        return node, ""
    axes = ""
    multiscales = multiscales_of(dict(node.attrs))
    if key is None and multiscales:
        scale = multiscales[0]
        key = str(scale["datasets"][0]["path"])
        axes = "".join(str(a["name"] if isinstance(a, dict) else a)[0].lower() for a in scale.get("axes", []))
    if key is None:
        keys = sorted(name for name, member in node.members(max_depth=None) if isinstance(member, zarr.Array))
        if len(keys) != 1:
            raise DataError(f"{path}: the store holds {len(keys)} arrays, pass a key to choose one of: {keys}")
        key = keys[0]
    try:
        array = node[key]
    except KeyError as err:
        raise DataError(f"{path}: no array {key!r} in the store") from err
    if not isinstance(array, zarr.Array):
        raise DataError(f"{path}: {key!r} is a group, not an array")
    if axes and len(axes) != array.ndim:
        axes = ""
    if axes.startswith("t"):
        if array.shape[0] != 1:
            raise DataError(f"{path}: time series of {array.shape[0]} frames are not supported; store one frame")
        return _DropFirst(array), axes[1:]
    return array, axes


class _DropFirst:
    """A zarr array without its leading length-1 axis (reads only; picklable)."""

    def __init__(self, array: Any) -> None:
        self.array = array
        self.shape = tuple(array.shape[1:])
        self.dtype = array.dtype
        self.ndim = len(self.shape)

    def __getitem__(self, index: Any) -> Any:
        index = index if isinstance(index, tuple) else (index,)
        return self.array[(0,) + tuple(index)]


def create_ome_labels(
    path: str | Path,
    shape: Sequence[int],
    chunks: Sequence[int],
    dtype: str = "uint32",
    axes: str = "zyx",
    overwrite: bool = False,
) -> Any:
    """An empty (zero) label image ``[*shape]`` in a new OME-Zarr store; returns the writable array.

    Raises
    ------
    DataError
        The store exists (and not ``overwrite``), or ``axes`` does not match ``shape``.
    """
    import zarr

    path = Path(path)
    if len(axes) != len(shape):
        raise DataError(f"{path}: axes {axes!r} do not match the label shape {tuple(shape)}")
    if path.exists() and not overwrite:
        raise DataError(f"{path}: exists; remove it or choose another output")
    group = zarr.open_group(str(path), mode="w")
    array = group.create_array(
        "0", shape=tuple(int(s) for s in shape), chunks=tuple(int(c) for c in chunks), dtype=dtype, fill_value=0
    )
    group.attrs["ome"] = {
        "version": OME_VERSION,
        "multiscales": [
            {
                "name": path.name,
                "axes": [{"name": a, "type": "space"} for a in axes],
                "datasets": [
                    {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1.0] * len(axes)}]}
                ],
            }
        ],
        "image-label": {"version": OME_VERSION},
    }
    return array
