"""Annotation conventions: what the values of a sparse label image mean.

Users annotate sparsely in two ways, chosen by ``data.label_convention``:

``"objects_and_background"`` (default)
    ``0`` = background (annotated), positive ids = annotated objects,
    ``ignore_label`` (default ``-1``) = not annotated. This is the paper's
    protocol on dense ground truth: some objects and all background are kept.
``"objects_only"``
    Positive ids = annotated objects, everything else (``0``, and
    ``ignore_label`` if present) = unknown: background included. This is what
    painting a few objects in napari or ilastik gives.

Internally training always uses the first form with the unknown pixels set to
``ignore_label`` (:func:`to_training_labels`); :func:`from_training_labels`
writes labels back in a convention. This module owns that rule.
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np

from spoco_zoo.errors import DataError

__all__ = ["LabelConvention", "LABEL_CONVENTIONS", "check_convention", "to_training_labels", "from_training_labels"]

LabelConvention = Literal["objects_and_background", "objects_only"]
#: The accepted values of ``data.label_convention``.
LABEL_CONVENTIONS: tuple[str, ...] = get_args(LabelConvention)


def check_convention(convention: str) -> str:
    """Return ``convention`` if it is known, else raise :class:`DataError` listing the choices."""
    if convention not in LABEL_CONVENTIONS:
        raise DataError(f"label_convention: unknown value {convention!r}; choose one of {', '.join(LABEL_CONVENTIONS)}")
    return convention


def _int64_labels(labels: np.ndarray, ignore_label: int) -> np.ndarray:
    """``labels`` as a new int64 array; :class:`DataError` for anything that is not integer labels."""
    if not isinstance(ignore_label, (int, np.integer)) or not np.iinfo(np.int64).min <= int(ignore_label) <= 0:
        raise DataError(f"ignore_label: must be an integer <= 0 (positive values are object ids), got {ignore_label!r}")
    array = np.asarray(labels)
    if not (np.issubdtype(array.dtype, np.integer) or array.dtype == bool):
        raise DataError(f"labels: must be an integer array, got dtype {array.dtype}")
    if array.dtype == np.uint64 and array.size and int(array.max()) > np.iinfo(np.int64).max:
        raise DataError("labels: ids exceed the int64 range")
    out = array.astype(np.int64, copy=True)
    bad = (out < 0) & (out != ignore_label)
    if bad.any():
        values = np.unique(out[bad])[:5].tolist()
        raise DataError(f"labels: negative values {values} other than ignore_label ({ignore_label})")
    return out


def to_training_labels(labels: np.ndarray, convention: str, ignore_label: int = -1) -> np.ndarray:
    """Sparse labels in ``convention`` -> training labels (unknown pixels = ``ignore_label``).

    Parameters
    ----------
    labels : numpy.ndarray
        Integer label image as annotated.
    convention : {"objects_and_background", "objects_only"}
        How ``labels`` mark unknown pixels (see the module docstring).
    ignore_label : int
        Value of unknown pixels in the result (and in ``labels`` when present).

    Returns
    -------
    numpy.ndarray
        int64 labels: 0 annotated background, > 0 annotated objects, ``ignore_label`` unknown.

    Raises
    ------
    DataError
        An unknown convention, labels that are not an integer (or boolean) array, ids beyond
        int64, negative values other than ``ignore_label``, or an ``ignore_label`` that is not an
        integer ``<= 0``.

    Examples
    --------
    >>> painted = np.array([0, 3, 3, 0, 7])
    >>> to_training_labels(painted, "objects_only").tolist()
    [-1, 3, 3, -1, 7]
    >>> to_training_labels(painted, "objects_and_background").tolist()
    [0, 3, 3, 0, 7]
    """
    check_convention(convention)
    out = _int64_labels(labels, ignore_label)
    if convention == "objects_only":
        out[out <= 0] = ignore_label
    return out


def from_training_labels(labels: np.ndarray, convention: str, ignore_label: int = -1) -> np.ndarray:
    """Training labels -> labels in ``convention`` (the inverse of :func:`to_training_labels`).

    With ``"objects_only"`` the annotated background is dropped: every pixel
    that is not an annotated object becomes ``0``. Raises :class:`DataError` as
    :func:`to_training_labels` does.

    Examples
    --------
    >>> from_training_labels(np.array([-1, 3, 0, 7]), "objects_only").tolist()
    [0, 3, 0, 7]
    """
    check_convention(convention)
    out = _int64_labels(labels, ignore_label)
    if convention == "objects_only":
        out[out <= 0] = 0
    return out
