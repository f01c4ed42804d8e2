"""Sparse annotations from dense ground truth: the SPOCO paper's protocol.

A fixed fraction of the objects of each image is kept, chosen uniformly at
random; everything else is marked as not annotated in the requested
annotation convention (:mod:`spoco_zoo.data.conventions`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from spoco_zoo.data.conventions import check_convention
from spoco_zoo.errors import DataError

__all__ = ["sparsify", "n_kept", "check_object_fraction"]


def n_kept(n_objects: int, object_fraction: float) -> int:
    """Number of objects kept: ``round(object_fraction * n_objects)``, at least 1 if any exist.

    Python's ``round`` rounds halves to even (``round(2.5) == 2``).

    >>> n_kept(40, 0.1), n_kept(3, 0.1), n_kept(0, 0.5)
    (4, 1, 0)
    """
    if n_objects <= 0:
        return 0
    return int(min(n_objects, max(1, round(object_fraction * n_objects))))


def check_object_fraction(object_fraction: float) -> float:
    """Return ``object_fraction`` if it is in ``(0, 1]``, else raise :class:`DataError`.

    Examples
    --------
    >>> check_object_fraction(0.1)
    0.1
    >>> check_object_fraction(2)
    Traceback (most recent call last):
    ...
    spoco_zoo.errors.DataError: object_fraction: must be in (0, 1], got 2
    """
    if not 0 < object_fraction <= 1:
        raise DataError(f"object_fraction: must be in (0, 1], got {object_fraction}")
    return object_fraction


def sparsify(
    labels: np.ndarray,
    object_fraction: float,
    seed: int | Sequence[int],
    ignore_label: int = -1,
    convention: str = "objects_and_background",
) -> np.ndarray:
    """Keep a random fraction of the objects of a label image annotated.

    Parameters
    ----------
    labels:
        Integer label image ``[*S]``: 0 = background, positive ids = objects.
        Pixels already equal to ``ignore_label`` stay unlabeled (they are
        neither objects nor background).
    object_fraction:
        Fraction in ``(0, 1]`` of the objects kept; see :func:`n_kept` (at least
        one object is kept when the image has any).
    seed:
        Seed of :func:`numpy.random.default_rng` (int or sequence of ints):
        the same seed keeps the same objects.
    ignore_label:
        Value of not-annotated pixels (must be <= 0).
    convention:
        ``"objects_and_background"``: background stays 0 (annotated, as in the
        paper), dropped objects become ``ignore_label``. ``"objects_only"``:
        only the kept objects are marked, every other pixel is 0 (unknown), as
        if a user had painted the kept objects.

    Returns
    -------
    numpy.ndarray
        int64 ``[*S]`` in ``convention``: kept objects with their original ids.

    Examples
    --------
    >>> lab = np.repeat(np.arange(11), 3)  # background + 10 objects
    >>> sparse = sparsify(lab, 0.2, seed=0)
    >>> len(np.unique(sparse[sparse > 0])), int((sparse == -1).sum()), int((sparse == 0).sum())
    (2, 24, 3)
    >>> painted = sparsify(lab, 0.2, seed=0, convention="objects_only")
    >>> bool((painted[sparse > 0] == sparse[sparse > 0]).all()), int((painted == 0).sum())
    (True, 27)
    """
    check_convention(convention)
    check_object_fraction(object_fraction)
    if ignore_label > 0:
        raise DataError(f"ignore_label: must be <= 0 (positive values are object ids), got {ignore_label}")
    labels = np.asarray(labels)
    if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool):
        raise DataError(f"labels: must be an integer array, got dtype {labels.dtype}")
    labels = labels.astype(np.int64)

    ids = np.unique(labels[labels > 0])
    rng = np.random.default_rng(seed)
    kept = rng.choice(ids, size=n_kept(len(ids), object_fraction), replace=False) if len(ids) else ids

    objects_only = convention == "objects_only"
    out = np.full_like(labels, 0 if objects_only else ignore_label)
    keep = np.isin(labels, kept)
    out[keep] = labels[keep]
    if not objects_only:
        out[labels == 0] = 0
    return out
