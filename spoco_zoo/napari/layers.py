"""napari layers <-> spoco-zoo arrays: the plugin's conventions, in one place (no Qt, no napari import).

* An Image layer holds ``[y, x]`` or ``[z, y, x]`` (one channel), or ``[y, x, 3|4]`` with ``rgb``;
  :func:`image_array` turns it into the library's ``[C, *S]``.
* A Labels layer holds painted objects: positive ids are objects painted completely. With the
  default ``objects_only`` convention every other pixel is unknown (background included); with a
  *background label* ``b``, pixels painted ``b`` are annotated background and unpainted pixels are
  unknown (:func:`painted_labels` gives the library's ``objects_and_background`` labels, ``-1`` unknown).
* Results are Labels layers of ``uint32`` instance ids, 0 = background, named by :func:`layer_name`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from spoco_zoo.errors import DataError

__all__ = ["IGNORE_LABEL", "LayerKind", "layer_name", "image_array", "painted_labels", "as_instance_layer"]

#: The value of unknown pixels in the labels written for training (the library's default ``ignore_label``).
IGNORE_LABEL = -1

LayerKind = Literal["instances", "preview", "pca"]
_SUFFIX = {"instances": "instances", "preview": "instances (preview)", "pca": "embeddings (PCA)"}


def layer_name(image_name: str, kind: LayerKind) -> str:
    """Name of a result layer of the Image layer ``image_name``.

    >>> layer_name("cells", "preview")
    'cells instances (preview)'
    """
    return f"{image_name} {_SUFFIX[kind]}"


def image_array(data: Any, rgb: bool, layer: str) -> np.ndarray:
    """An Image layer's data as the library's ``float32 [C, *S]`` (``C`` = 1, or 3/4 for RGB(A)).

    Parameters
    ----------
    data:
        The layer's ``data`` (array-like; multiscale layers are refused).
    rgb:
        The layer's ``rgb`` flag: the last axis holds the colour channels.
    layer:
        The layer's name, for error messages.

    Raises
    ------
    DataError
        Not 2D or 3D, or a multiscale layer.

    Examples
    --------
    >>> image_array(np.zeros((4, 5)), False, "a").shape, image_array(np.zeros((4, 5, 3)), True, "b").shape
    ((1, 4, 5), (3, 4, 5))
    """
    if isinstance(data, (list, tuple)):
        raise DataError(f"layer {layer!r}: multiscale images are not supported; add its full-resolution level")
    array = np.asarray(data)
    if rgb:
        array = np.moveaxis(array, -1, 0)
    else:
        array = array[None]
    if array.ndim not in (3, 4) or min(array.shape) < 1:
        raise DataError(
            f"layer {layer!r}: expected a 2D or 3D image (optionally RGB), got shape {tuple(np.shape(data))}"
        )
    return array.astype(np.float32, copy=False)


def painted_labels(
    data: Any, spatial_shape: Sequence[int], layer: str, background_label: int | None = None
) -> tuple[np.ndarray, str]:
    """A Labels layer's painted objects as training labels and their convention.

    Parameters
    ----------
    data:
        The layer's ``data``: integer ids, 0 = unpainted.
    spatial_shape:
        The image's spatial shape; the labels must have the same.
    layer:
        The Labels layer's name, for error messages.
    background_label:
        ``None`` (default): convention ``objects_only``, every positive id is an object painted
        completely, every other pixel unknown. An id ``b``: pixels painted ``b`` are background,
        unpainted pixels unknown (``-1``), convention ``objects_and_background``.

    Returns
    -------
    labels, convention:
        ``int64 [*S]`` labels and ``"objects_only"`` or ``"objects_and_background"``.

    Raises
    ------
    DataError
        Naming the layer: a shape that is not the image's, non-integer or negative values, or no
        painted object.

    Examples
    --------
    >>> painted = np.array([[0, 2, 2], [5, 0, 1]])
    >>> painted_labels(painted, (2, 3), "p")[1]
    'objects_only'
    >>> painted_labels(painted, (2, 3), "p", background_label=5)[0].tolist()
    [[-1, 2, 2], [0, -1, 1]]
    """
    array = np.asarray(data)
    if tuple(array.shape) != tuple(spatial_shape):
        raise DataError(
            f"layer {layer!r}: labels have shape {tuple(array.shape)} but the image is {tuple(spatial_shape)}; "
            "paint on a Labels layer of the image's shape"
        )
    if not (np.issubdtype(array.dtype, np.integer) or array.dtype == bool):
        raise DataError(f"layer {layer!r}: labels must be integers, got dtype {array.dtype}")
    labels = array.astype(np.int64)
    if labels.size and int(labels.min()) < 0:
        raise DataError(f"layer {layer!r}: labels must not be negative (min {int(labels.min())})")
    if background_label is None:
        convention = "objects_only"
    else:
        if background_label <= 0:
            raise DataError(f"background label: must be a positive id, got {background_label}")
        unknown = labels == 0
        labels[labels == background_label] = 0
        labels[unknown] = IGNORE_LABEL
        convention = "objects_and_background"
    if not np.any(labels > 0):
        raise DataError(
            f"layer {layer!r}: no painted object"
            + ("" if background_label is None else f" (label {background_label} is the background)")
            + "; paint a few objects completely, each with its own label"
        )
    return labels, convention


def as_instance_layer(labels: np.ndarray) -> np.ndarray:
    """Instance labels as a Labels layer's data: ``uint32``, 0 = background.

    >>> as_instance_layer(np.array([[0, 3]], np.int32)).dtype
    dtype('uint32')
    """
    array = np.asarray(labels)
    if array.size and int(array.min()) < 0:
        raise DataError(f"instance labels: negative ids (min {int(array.min())})")
    return array.astype(np.uint32)
