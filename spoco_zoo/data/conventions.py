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

    Examples
    --------
    >>> painted = np.array([0, 3, 3, 0, 7])
    >>> to_training_labels(painted, "objects_only").tolist()
    [-1, 3, 3, -1, 7]
    >>> to_training_labels(painted, "objects_and_background").tolist()
    [0, 3, 3, 0, 7]
    """
    check_convention(convention)
    out = np.asarray(labels).astype(np.int64, copy=True)
    if convention == "objects_only":
        out[out <= 0] = ignore_label
    return out


def from_training_labels(labels: np.ndarray, convention: str, ignore_label: int = -1) -> np.ndarray:
    """Training labels -> labels in ``convention`` (the inverse of :func:`to_training_labels`).

    With ``"objects_only"`` the annotated background is dropped: every pixel
    that is not an annotated object becomes ``0``.

    Examples
    --------
    >>> from_training_labels(np.array([-1, 3, 0, 7]), "objects_only").tolist()
    [0, 3, 0, 7]
    """
    check_convention(convention)
    out = np.asarray(labels).astype(np.int64, copy=True)
    if convention == "objects_only":
        out[out <= 0] = 0
    return out
