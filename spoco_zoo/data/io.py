"""Reading and writing images and label images: TIFF, HDF5, Zarr, PNG, JPEG and BMP.

Supported inputs (chosen by file extension):

- TIFF: ``.tif``, ``.tiff`` (:mod:`tifffile`; ``key`` is ignored);
- HDF5: ``.h5``, ``.hdf5``, ``.hdf`` (:mod:`h5py`; ``key`` = dataset path);
- Zarr: a ``.zarr`` directory or a ``.zarr.zip`` file (:mod:`zarr`; ``key`` = array path);
- PNG, JPEG, BMP: ``.png``, ``.jpg``, ``.jpeg``, ``.bmp`` (:mod:`imageio.v3`; ``key`` is ignored;
  always one 2D plane, 8 or 16 bits, grey or RGB; see :mod:`spoco_zoo.data.raster`).

For HDF5/Zarr, ``key=None`` works when the file holds exactly one array;
otherwise the error lists the keys to choose from.

Axis rule for images (the result is always ``[C, *S]``):

=========  ======================  ================================================
array      ``spatial_dims``        read as
=========  ======================  ================================================
2-D        ``None`` or 2           ``yx`` (a channel axis ``C = 1`` is added)
2-D        3                       refused: a 2D image for a 3D model
3-D        2                       ``yxc`` when the last axis has <= 4 entries and
                                   the first has more (RGB-like TIFF), else ``cyx``
                                   with <= 4 channels, else refused: a volume
3-D        3                       ``zyx`` (``C = 1`` is added)
3-D        ``None``                ``cyx`` if the first axis has <= 4 entries,
                                   else ``yxc`` if the last axis has <= 4 entries,
                                   else ``zyx``
4-D        ``None`` or 3           ``czyx``
PNG/JPEG/  ``None`` or 2           ``yx`` or ``yxc`` (always channel-last); a
BMP                                constant (opaque) alpha channel is dropped, a
                                   varying one is refused; RGB with ``R == G == B``
                                   everywhere is grey: ``yx`` (``C = 1``); with 3:
                                   refused (a 2D image for a 3D model)
=========  ======================  ================================================

Pass ``spatial_dims`` (the model's) whenever it is known: it removes the guess for 3-D arrays
and refuses, with a message that says so, inputs that do not fit the model.

Label images are ``yx`` or ``zyx`` (a leading singleton channel axis is dropped). PNG/BMP label
images hold ids as grey values or palette indices, or RGB-encoded: ``R * 65536 + G * 256 + B``
(CVPPP; black = 0 = background). JPEG is refused: lossy compression does not keep label ids.

Every problem raises :class:`~spoco_zoo.errors.DataError` whose message starts
with the file path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from spoco_zoo.atomic import atomic_path
from spoco_zoo.data.raster import LOSSY_SUFFIXES, RASTER_SUFFIXES, image_pixels, label_ids, read_raster
from spoco_zoo.errors import DataError

__all__ = [
    "read_array",
    "read_image",
    "read_labels",
    "check_pair",
    "check_has_objects",
    "write_tiff",
    "write_image",
]

PathLike = str | Path

_TIFF = (".tif", ".tiff")
_HDF5 = (".h5", ".hdf5", ".hdf")
_ZARR = (".zarr", ".zarr.zip")
_MAX_CHANNELS = 4  # a leading (or trailing) axis this short is read as channels when guessing


# ---------------------------------------------------------------------------- reading raw arrays
def _file_format(path: Path) -> str:
    name = path.name.lower()
    for fmt, suffixes in (("tiff", _TIFF), ("hdf5", _HDF5), ("zarr", _ZARR), ("raster", RASTER_SUFFIXES)):
        if name.endswith(suffixes):
            return fmt
    supported = ", ".join(_TIFF + _HDF5 + _ZARR + RASTER_SUFFIXES)
    raise DataError(f"{path}: unsupported file extension (supported: {supported})")


def _pick_key(path: Path, keys: list[str], key: str | None) -> str:
    """The array to read: ``key`` if given, else the only array in the file."""
    if key is not None:
        if key not in keys:
            raise DataError(f"{path}: no array {key!r} in the file (arrays: {', '.join(keys) or 'none'})")
        return key
    if len(keys) == 1:
        return keys[0]
    if not keys:
        raise DataError(f"{path}: the file holds no array")
    raise DataError(f"{path}: the file holds {len(keys)} arrays, pass a key to choose one of: {', '.join(keys)}")


def _check_dtype(path: Path, dtype: Any) -> None:
    """Refuse non-numeric stored arrays before their data is read (object arrays may hold pickles)."""
    kind = getattr(np.dtype(dtype) if not isinstance(dtype, np.dtype) else dtype, "kind", "O")
    if kind not in "biufc":
        raise DataError(f"{path}: unsupported data type {dtype} (numbers or booleans only)")


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    return np.asarray(tifffile.imread(path))


def _read_hdf5(path: Path, key: str | None) -> np.ndarray:
    import h5py

    with h5py.File(path, "r") as handle:
        keys: list[str] = []
        handle.visititems(lambda name, obj: keys.append(name) if isinstance(obj, h5py.Dataset) else None)
        dataset = handle[_pick_key(path, keys, key)]
        _check_dtype(path, dataset.dtype)
        return np.asarray(dataset[()])


def _read_zarr(path: Path, key: str | None) -> np.ndarray:
    import zarr

    store = None
    try:
        if path.name.lower().endswith(".zip"):
            from zarr.storage import ZipStore

            store = ZipStore(path, mode="r")
            node = zarr.open(store, mode="r")
        else:
            node = zarr.open(str(path), mode="r")
        if isinstance(node, zarr.Array):
            if key not in (None, ""):
                raise DataError(f"{path}: key {key!r} given but the file is a single array")
            _check_dtype(path, node.dtype)
            return np.asarray(node[...])
        keys = [name for name, member in node.members(max_depth=None) if isinstance(member, zarr.Array)]
        chosen = _pick_key(path, sorted(keys), key)
        member = node[chosen]
        if not isinstance(member, zarr.Array):
            raise DataError(f"{path}: {chosen!r} is a group, not an array")
        _check_dtype(path, member.dtype)
        return np.asarray(member[...])
    finally:
        if store is not None:
            store.close()


def read_array(path: PathLike, key: str | None = None) -> np.ndarray:
    """Read one array from a TIFF, HDF5, Zarr, PNG, JPEG or BMP file, as stored.

    PNG/JPEG/BMP files give ``[y, x]`` or ``[y, x, c]`` (palettes applied).

    Parameters
    ----------
    path:
        The file (``.zarr``: a directory).
    key:
        Dataset/array path inside HDF5/Zarr files; optional when the file holds
        exactly one array. Ignored for TIFF, PNG, JPEG and BMP.

    Raises
    ------
    DataError
        Missing file, unsupported extension, unreadable or corrupt content,
        ambiguous or unknown key, empty array.
    """
    return _read(Path(path), key, labels=False)


def _read(path: Path, key: str | None, labels: bool) -> np.ndarray:
    """:func:`read_array`; ``labels``: PNG/BMP palette indices instead of colours (:func:`read_raster`)."""
    fmt = _file_format(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    try:
        if fmt == "tiff":
            array = _read_tiff(path)
        elif fmt == "hdf5":
            array = _read_hdf5(path, key)
        elif fmt == "zarr":
            array = _read_zarr(path, key)
        else:
            array = read_raster(path, labels=labels)
    except DataError:
        raise
    except Exception as err:  # corrupt files raise many different types
        name = fmt.upper() if fmt != "raster" else path.suffix.lstrip(".").upper().replace("JPG", "JPEG")
        raise DataError(f"{path}: cannot read {name} file ({type(err).__name__}: {err})") from err
    if array.size == 0:
        raise DataError(f"{path}: the array is empty (shape {array.shape})")
    return array


# ---------------------------------------------------------------------------- images
def _image_axes(shape: tuple, spatial_dims: int | None) -> str:
    """Axis letters of a stored image of ``shape`` (see the module docstring)."""
    ndim = len(shape)
    if ndim == 2 and spatial_dims in (None, 2):
        return "yx"
    if ndim == 4 and spatial_dims in (None, 3):
        return "czyx"
    if ndim == 3:
        channels_last = shape[-1] <= _MAX_CHANNELS < shape[0]
        if spatial_dims == 3:
            return "zyx"
        if spatial_dims == 2:
            return "yxc" if channels_last else "cyx"
        if shape[0] <= _MAX_CHANNELS:
            return "cyx"
        return "yxc" if channels_last else "zyx"
    return ""


def read_image(path: PathLike, key: str | None = None, spatial_dims: int | None = None) -> np.ndarray:
    """Read an image as float32 ``[C, *S]``.

    Parameters
    ----------
    path:
        TIFF, HDF5, Zarr, PNG, JPEG or BMP file.
    key:
        Array inside HDF5/Zarr (see :func:`read_array`).
    spatial_dims:
        The model's, 2 or 3, when known; decides how a 3-D array is read and refuses a volume
        for a 2D model or a 2D image for a 3D model (see the module docstring).

    Returns
    -------
    numpy.ndarray
        float32 ``[C, y, x]`` or ``[C, z, y, x]``.

    Raises
    ------
    DataError
        Unreadable file, unsupported number of axes, non-numeric data, NaN or inf values,
        a volume for a 2D model, a 2D image for a 3D model.
    """
    if spatial_dims not in (None, 2, 3):
        raise DataError(f"spatial_dims: must be 2, 3 or None, got {spatial_dims}")
    path = Path(path)
    raster = _file_format(path) == "raster"
    array = read_array(path, key)
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool) or np.iscomplexobj(array):
        raise DataError(f"{path}: image has non-numeric dtype {array.dtype}")
    if raster:
        array = image_pixels(array, path)
    if spatial_dims == 3 and (raster or array.ndim == 2):
        raise DataError(
            f"{path}: is a 2D image (shape {array.shape}), but the model is 3D; "
            "use a 2D model, or pass a volume (zyx or czyx)"
        )
    axes = ("yx" if array.ndim == 2 else "yxc") if raster else _image_axes(array.shape, spatial_dims)
    if spatial_dims == 2 and axes == "cyx" and array.shape[0] > _MAX_CHANNELS:
        planes, height, width = array.shape
        raise DataError(
            f"{path}: looks like a 3D volume ({planes} planes of {height}x{width}, shape {array.shape}), but the "
            f"model is 2D; use a 3D model, or pass a single plane (a 2D image has at most {_MAX_CHANNELS} channels)"
        )
    if not axes:
        wanted = {None: "2, 3 or 4", 2: "2 (yx) or 3 (cyx)", 3: "3 (zyx) or 4 (czyx)"}[spatial_dims]
        raise DataError(f"{path}: image has {array.ndim} axes (shape {array.shape}), expected {wanted}")
    if axes == "yxc":
        array = np.moveaxis(array, -1, 0)
    elif not axes.startswith("c"):
        array = array[None]
    image = np.ascontiguousarray(array, dtype=np.float32)
    bad = int(np.count_nonzero(~np.isfinite(image)))
    if bad:
        raise DataError(f"{path}: image contains {bad} NaN or infinite values")
    return image


# ---------------------------------------------------------------------------- labels
def _as_int64_labels(array: np.ndarray, path: Path) -> np.ndarray:
    if array.dtype == bool:
        return array.astype(np.int64)
    if np.issubdtype(array.dtype, np.integer):
        if array.dtype == np.uint64 and array.max() > np.iinfo(np.int64).max:
            raise DataError(f"{path}: label ids exceed the int64 range")
        return array.astype(np.int64)
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)):
            raise DataError(f"{path}: labels contain NaN or infinite values")
        if not np.array_equal(array, np.round(array)):
            raise DataError(f"{path}: labels are not integer-valued (float labels with fractional values)")
        if array.size and float(np.abs(array).max()) >= 2.0**63:
            raise DataError(f"{path}: label ids exceed the int64 range")
        return array.astype(np.int64)
    raise DataError(f"{path}: labels have unsupported dtype {array.dtype}")


def read_labels(
    path: PathLike,
    key: str | None = None,
    spatial_dims: int | None = None,
    ignore_label: int = -1,
) -> np.ndarray:
    """Read a label image as int64 ``[*S]``.

    0 = background, positive ids = objects, ``ignore_label`` = not annotated.
    Float files are accepted when every value is a whole number; a leading
    singleton (channel) axis is dropped. PNG/BMP files hold ids as grey values
    (8/16-bit) or palette indices, or RGB-encoded ids ``R * 65536 + G * 256 + B``
    in RGB(A) files (the CVPPP convention; black = 0 = background).

    Parameters
    ----------
    path, key:
        See :func:`read_array`.
    spatial_dims:
        2 or 3 when known: the number of axes the labels must have.
    ignore_label:
        The only negative value allowed.

    Raises
    ------
    DataError
        Unreadable file, wrong number of axes, fractional values, negative values
        other than ``ignore_label``, a JPEG file (lossy compression alters ids).
    """
    if spatial_dims not in (None, 2, 3):
        raise DataError(f"spatial_dims: must be 2, 3 or None, got {spatial_dims}")
    path = Path(path)
    if path.name.lower().endswith(LOSSY_SUFFIXES):
        raise DataError(
            f"{path}: a JPEG file cannot hold label ids (lossy compression alters ids and object borders); "
            "save the labels as PNG or TIFF"
        )
    array = _read(path, key, labels=True)
    if _file_format(path) == "raster":
        array = label_ids(array, path)
    allowed = (2, 3) if spatial_dims is None else (spatial_dims,)
    if array.ndim == max(allowed) + 1 and array.shape[0] == 1:
        array = array[0]
    if array.ndim not in allowed:
        wanted = " or ".join(f"{n} ({'yx' if n == 2 else 'zyx'})" for n in allowed)
        raise DataError(f"{path}: labels have {array.ndim} axes (shape {array.shape}), expected {wanted}")
    labels = _as_int64_labels(array, path)
    bad = (labels < 0) & (labels != ignore_label)
    if bad.any():
        values = np.unique(labels[bad])[:5].tolist()
        raise DataError(f"{path}: labels contain negative values {values} other than ignore_label ({ignore_label})")
    return labels


# ---------------------------------------------------------------------------- checks
def check_pair(image: np.ndarray, labels: np.ndarray, image_path: PathLike, label_path: PathLike) -> None:
    """Raise :class:`DataError` unless ``labels.shape`` equals the spatial shape of ``image [C, *S]``."""
    if tuple(image.shape[1:]) != tuple(labels.shape):
        raise DataError(
            f"{label_path}: label shape {tuple(labels.shape)} does not match the spatial shape "
            f"{tuple(image.shape[1:])} of image {image_path} (image shape {tuple(image.shape)})"
        )


def check_has_objects(labels: np.ndarray, path: PathLike) -> None:
    """Raise :class:`DataError` when ``labels`` has no positive (object) id."""
    if not np.any(labels > 0):
        raise DataError(f"{path}: no labeled object at all (no positive label id)")


# ---------------------------------------------------------------------------- writing
def _write_tiff(path: Path, array: np.ndarray, **kwargs: Any) -> Path:
    """Write ``array`` to ``path`` atomically (:func:`spoco_zoo.atomic.atomic_path`)."""
    import tifffile

    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, array, **kwargs)
    return path


def write_tiff(path: PathLike, labels: np.ndarray, ignore_label: int | None = None) -> Path:
    """Write a label image to a TIFF file atomically (zlib-compressed).

    Non-negative labels are stored as uint16 when ``max < 65536``, else uint32.
    Negative values are refused unless ``ignore_label`` is given: sparse label
    images (values ``>= 0`` or ``== ignore_label``) are stored as int16 / int32.

    Parameters
    ----------
    path:
        Output ``.tif``/``.tiff`` file; parent folders are created.
    labels:
        Integer (or boolean) array ``[*S]``.
    ignore_label:
        The one negative value allowed, for sparse labels.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    labels = np.asarray(labels)
    if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool):
        raise DataError(f"{path}: write_tiff writes label images, got dtype {labels.dtype} (use write_image)")
    if labels.size == 0:
        raise DataError(f"{path}: cannot write an empty label image")
    low, high = int(labels.min()), int(labels.max())
    if low < 0:
        if ignore_label is None or ignore_label >= 0:
            raise DataError(f"{path}: label image has negative values (min {low}); pass ignore_label for sparse labels")
        if np.any((labels < 0) & (labels != ignore_label)):
            raise DataError(f"{path}: label image has negative values other than ignore_label ({ignore_label})")
        dtype = np.int16 if high < 2**15 and ignore_label >= -(2**15) else np.int32
    else:
        dtype = np.uint16 if high < 2**16 else np.uint32
    if high >= 2**32 or (low < 0 and high >= 2**31):
        raise DataError(f"{path}: label ids up to {high} do not fit a 32-bit TIFF")
    return _write_tiff(path, labels.astype(dtype), compression="zlib", photometric="minisblack")


def write_image(path: PathLike, image: np.ndarray) -> Path:
    """Write an image as a float32 TIFF atomically (any axes, e.g. ``[C, *S]`` or ``[*S]``).

    Raises
    ------
    DataError
        Non-numeric data, or NaN / infinite values.
    """
    path = Path(path)
    image = np.asarray(image)
    if not (np.issubdtype(image.dtype, np.number) or image.dtype == bool) or np.iscomplexobj(image):
        raise DataError(f"{path}: cannot write an image of dtype {image.dtype}")
    image = image.astype(np.float32)
    if not np.all(np.isfinite(image)):
        raise DataError(f"{path}: image contains NaN or infinite values")
    return _write_tiff(path, image, compression="zlib", photometric="minisblack")
