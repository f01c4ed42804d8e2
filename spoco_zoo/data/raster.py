"""PNG, JPEG and BMP files as images and label images (read with :mod:`imageio.v3`, Pillow plugin).

These files always hold one 2D plane, stored channel-last: ``[y, x]`` (grey) or ``[y, x, c]``
(grey + alpha, RGB, RGBA). :mod:`spoco_zoo.data.io` reads them through the functions here.

Images (:func:`image_pixels`):

- 8-bit and 16-bit grey are read as stored; paletted files get their palette applied; CMYK/YCbCr
  JPEGs are converted to RGB;
- an alpha channel that is constant (opaque, or the unused byte of a 32-bit BMP) is dropped; one
  that is not (real transparency) is refused: what the transparent pixels show is not defined;
- RGB with ``R == G == B`` everywhere is grey and is read as one channel (many grey PNGs, e.g.
  the DSB2018 nuclei, are stored as RGB);
- 16-bit RGB(A) PNGs are read at 8 bits per channel (Pillow's PNG decoder keeps the high byte).

Label images (:func:`label_ids`):

- grey 8/16-bit (or 1-bit) files hold the ids as stored;
- paletted files hold the ids as palette indices (read as such, the colours are ignored);
- RGB(A) files hold RGB-encoded ids, ``id = R * 65536 + G * 256 + B`` (the CVPPP convention;
  black = 0 = background); fully transparent pixels of a file whose alpha is not constant are 0;
- JPEG is refused (lossy compression alters ids and object borders), and so are 16-bit colour PNGs
  (their low bytes are lost on reading).

Every problem raises :class:`~spoco_zoo.errors.DataError` whose message starts with the file path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from spoco_zoo.errors import DataError

__all__ = ["RASTER_SUFFIXES", "LOSSY_SUFFIXES", "read_raster", "image_pixels", "label_ids"]

#: File name endings read by :func:`read_raster`.
RASTER_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
#: The lossy ones (refused as label images).
LOSSY_SUFFIXES = (".jpg", ".jpeg")

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_COLOUR_TYPES = (2, 4, 6)  # RGB, grey + alpha, RGBA (0 = grey, 3 = paletted)
_TO_RGB = ("CMYK", "YCbCr", "LAB", "HSV")  # Pillow modes converted to RGB for images


def _png_header(path: Path) -> tuple[int, int] | None:
    """``(bit depth, colour type)`` from the PNG ``IHDR`` chunk, or ``None`` when not a PNG."""
    with open(path, "rb") as handle:
        head = handle.read(26)
    if len(head) < 26 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        return None
    return head[24], head[25]


def read_raster(path: Path, *, labels: bool = False) -> np.ndarray:
    """The pixels of a PNG/JPEG/BMP file, ``[y, x]`` or ``[y, x, c]`` (the first frame only).

    Parameters
    ----------
    path:
        The file.
    labels:
        Read for a label image: palette indices instead of palette colours, and 16-bit colour PNGs
        refused.

    Raises
    ------
    DataError
        A 16-bit colour PNG read as labels. Unreadable files raise the reader's own exceptions,
        which :func:`spoco_zoo.data.io.read_array` turns into :class:`DataError`.
    """
    import imageio.v3 as iio

    header = _png_header(path) if labels else None
    if header is not None and header[0] == 16 and header[1] in _PNG_COLOUR_TYPES:
        raise DataError(
            f"{path}: a 16-bit colour PNG cannot be read as labels without losing bits of the ids; "
            "save the labels as a grey (8/16-bit) PNG or a TIFF"
        )
    opened: Any = iio.imopen(path, "r", plugin="pillow")  # a PillowPlugin (its read takes a mode)
    with opened as file:
        mode = file.metadata(index=0).get("mode")
        if labels and mode in ("P", "PA"):
            read_mode: str | None = "P"
        elif not labels and mode in _TO_RGB:
            read_mode = "RGB"
        else:
            read_mode = None
        return np.asarray(file.read(index=0, mode=read_mode))


def _split_alpha(array: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """``(colour channels, alpha)``; alpha is ``None`` when absent or constant."""
    if array.shape[-1] not in (2, 4):
        return array, None
    alpha = array[..., -1]
    return array[..., :-1], None if alpha.min() == alpha.max() else alpha


def _check_layout(array: np.ndarray, path: Path) -> None:
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (1, 2, 3, 4)):
        raise DataError(f"{path}: unexpected pixel layout (shape {array.shape}); expected yx or yx + 1-4 channels")


def image_pixels(array: np.ndarray, path: Path) -> np.ndarray:
    """The image in ``array`` (from :func:`read_raster`) as ``[y, x]`` (grey) or ``[y, x, c]``.

    A constant alpha channel is dropped, RGB with ``R == G == B`` becomes grey (see the module
    docstring).

    Raises
    ------
    DataError
        An alpha channel that is not constant (transparency), or an unexpected layout.
    """
    _check_layout(array, path)
    if array.ndim == 2:
        return array
    colour, alpha = _split_alpha(array)
    if alpha is not None:
        raise DataError(
            f"{path}: the image has a transparency (alpha) channel that is not constant; "
            "save it without alpha (grey or RGB)"
        )
    if colour.shape[-1] == 3 and np.array_equal(colour[..., 0], colour[..., 1]):
        if np.array_equal(colour[..., 0], colour[..., 2]):
            return colour[..., 0]
    return colour[..., 0] if colour.shape[-1] == 1 else colour


def label_ids(array: np.ndarray, path: Path) -> np.ndarray:
    """The label ids in ``array`` (from :func:`read_raster` with ``labels=True``), ``[y, x]``.

    Grey values are the ids; RGB(A) pixels are decoded as ``R * 65536 + G * 256 + B`` (int64);
    transparent pixels (alpha 0, when alpha is not constant) are background.

    Raises
    ------
    DataError
        An unexpected layout.
    """
    _check_layout(array, path)
    if array.ndim == 2:
        return array
    colour, alpha = _split_alpha(array)
    if colour.shape[-1] == 1:
        ids = colour[..., 0].astype(np.int64)
    else:
        rgb = colour.astype(np.int64)
        ids = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    if alpha is not None:
        ids[alpha == 0] = 0
    return ids
