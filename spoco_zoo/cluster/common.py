"""Shared plumbing of the clustering methods: validation, pixels <-> points, label post-processing.

Imports numpy and torch only (used by :mod:`spoco_zoo.postprocess`).

Every clustering method follows the same contract::

    method(embeddings, mask=None, **params) -> labels

* ``embeddings``: numpy array or torch tensor ``[E, y, x]`` or ``[E, z, y, x]`` (``E >= 1``),
  any real dtype (converted to ``float32``).
* ``mask``: optional ``[*spatial]`` foreground mask (bool; other dtypes are read as ``!= 0``).
  Pixels outside the mask get label 0 and are not clustered. A mask that selects no pixel is not
  an error: the result is all zeros.
* result: ``numpy.int32`` array ``[*spatial]``, ``0`` = background / unassigned, objects ``1..K``
  (consecutive, numbered in raster order of their first pixel).

Common parameters, applied by :func:`finalize`:

* ``background="largest"`` (default): **without a mask**, the cluster with most pixels is the
  background (SPOCO trains the background as one more instance) and becomes 0; with a mask, the
  mask is the background and every cluster inside it is an object. ``background="none"``: every
  clustered pixel gets an object id.
* ``min_size``: objects with fewer pixels are set to 0 (not merged into a neighbour).

Validation errors raise :class:`spoco_zoo.errors.DataError` (a ``ValueError``) whose message
starts with the argument name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np
import torch

from spoco_zoo.cluster.checks import check_integer
from spoco_zoo.devices import resolve_device
from spoco_zoo.errors import DataError

__all__ = [
    "ArrayLike",
    "BACKGROUND_MODES",
    "validate_inputs",
    "to_points",
    "sq_norms",
    "assign_to_nearest",
    "relabel_sequential",
    "rank_groups",
    "remove_small",
    "set_largest_to_background",
    "finalize",
    "empty_labels",
    "check_common",
    "check_integer",
    "split_foreground",
    "METHOD_DOC_PARTS",
    "method_docstring",
]

ArrayLike = np.ndarray | torch.Tensor

#: Accepted values of the ``background`` parameter.
BACKGROUND_MODES = ("largest", "none")

#: Docstring parts every clustering method shares, by the placeholder line that stands for each
#: (:func:`method_docstring`).
METHOD_DOC_PARTS: dict[str, str] = {
    "{embeddings and mask}": """embeddings:
    ``[E, y, x]`` or ``[E, z, y, x]`` numpy array or torch tensor.
mask:
    Optional ``[*spatial]`` foreground mask; pixels outside get 0 and are not clustered.""",
    "{min_size and background}": """min_size, background:
    Common post-processing, see :mod:`spoco_zoo.cluster.common`.""",
    "{device}": """device:
    Torch device; ``None`` -> CUDA when available, else CPU.""",
    "{labels}": """Returns
-------
numpy.ndarray
    ``int32`` labels ``[*spatial]``: 0 background, objects ``1..K``.""",
    "{errors}": """Raises
------
DataError
    Invalid input (see :func:`spoco_zoo.cluster.common.to_points`) or parameters.""",
}

_Method = TypeVar("_Method", bound=Callable[..., np.ndarray])


def method_docstring(method: _Method) -> _Method:
    """Decorator: the shared parts into a clustering method's docstring -- a line that holds only a
    placeholder of :data:`METHOD_DOC_PARTS` becomes that part, at the line's indentation.

    >>> @method_docstring
    ... def cluster(embeddings, mask=None):
    ...     \"\"\"Labels.
    ...
    ...     {device}
    ...     \"\"\"
    >>> cluster.__doc__.splitlines()[2:4]
    ['    device:', '        Torch device; ``None`` -> CUDA when available, else CPU.']
    """
    lines = []
    for line in (method.__doc__ or "").splitlines():
        part = METHOD_DOC_PARTS.get(line.strip())
        if part is None:
            lines.append(line)
            continue
        indent = line[: len(line) - len(line.lstrip())]
        lines.extend(indent + text if text else text for text in part.splitlines())
    method.__doc__ = "\n".join(lines)
    return method


#: Bytes one distance block may take (rows x columns x 4); keeps every method memory-bounded.
BLOCK_BYTES = 64 * 1024 * 1024


def _as_tensor(value: ArrayLike, name: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach()
    try:
        array = np.asarray(value)
    except Exception as err:  # pragma: no cover - exotic inputs
        raise DataError(f"{name}: cannot convert {type(value).__name__} to an array: {err}") from err
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.bool_)):
        raise DataError(f"{name}: expected a numeric array, got dtype {array.dtype}")
    if np.iscomplexobj(array):
        raise DataError(f"{name}: complex values are not supported")
    return torch.from_numpy(np.ascontiguousarray(array))


def validate_inputs(embeddings: ArrayLike, mask: ArrayLike | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Check shapes and dtypes; return ``(embeddings [E,*S] float32 (CPU or its device), mask bool or None)``.

    Raises
    ------
    DataError
        ``embeddings`` is not 3D/4D (``[E, y, x]`` / ``[E, z, y, x]``), has ``E == 0`` or zero
        pixels, is complex / non-numeric; ``mask`` does not have the spatial shape.
        (Non-finite values are checked by :func:`to_points`, on the selected pixels only.)
    """
    emb = _as_tensor(embeddings, "embeddings")
    if emb.dim() not in (3, 4):
        raise DataError(
            "embeddings: expected [E, y, x] or [E, z, y, x] (3 or 4 dimensions, embedding axis first), "
            f"got shape {tuple(emb.shape)}"
        )
    if emb.is_complex():
        raise DataError("embeddings: complex values are not supported")
    if emb.shape[0] < 1:
        raise DataError(f"embeddings: the embedding axis (axis 0) is empty, shape {tuple(emb.shape)}")
    spatial = tuple(emb.shape[1:])
    if min(spatial) < 1:
        raise DataError(f"embeddings: empty image (spatial shape {spatial} has no pixel)")
    emb = emb.to(torch.float32)
    if mask is None:
        return emb, None
    m = _as_tensor(mask, "mask")
    if tuple(m.shape) != spatial:
        raise DataError(
            f"mask: shape {tuple(m.shape)} does not match the spatial shape {spatial} of the embeddings "
            f"{tuple(emb.shape)}"
        )
    if m.dtype != torch.bool:
        m = m != 0
    return emb, m.cpu()


def to_points(
    embeddings: ArrayLike,
    mask: ArrayLike | None = None,
    device: None | str | torch.device = "cpu",
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Validate and flatten to ``(points [N, E] float32 on device, index)``.

    ``index`` is ``None`` without a mask (the points are all pixels in raster order) and otherwise
    the ``int64`` flat raster indices ``[N]`` (CPU) of the masked pixels. ``N == 0`` when the mask
    selects nothing.

    Raises
    ------
    DataError
        See :func:`validate_inputs`; also when a selected pixel has a NaN or infinite embedding.
    """
    emb, m = validate_inputs(embeddings, mask)
    dev = resolve_device(device)
    dims = emb.shape[0]
    flat = emb.reshape(dims, -1)
    if m is None:
        index = None
        points = flat.to(dev).t().contiguous()
    else:
        index = torch.nonzero(m.reshape(-1), as_tuple=False).reshape(-1)
        points = flat.to(dev)[:, index.to(dev)].t().contiguous()
    if points.numel() and not _all_finite(points):  # rows counted on failure only
        bad = int((~torch.isfinite(points).all(dim=1)).sum())
        raise DataError(f"embeddings: {bad} of {points.shape[0]} clustered pixels have NaN or infinite values")
    return points, index


def _all_finite(x: torch.Tensor) -> bool:
    """Whether every value is finite (numpy's check on CPU: several times faster than torch's)."""
    if x.device.type == "cpu":
        return bool(np.isfinite(x.numpy()).all())
    return bool(torch.isfinite(x).all())


def sq_norms(x: torch.Tensor) -> torch.Tensor:
    """Row-wise squared norms ``[N]``."""
    return (x * x).sum(dim=1)


def rows_per_block(columns: int, factor: int = 3) -> int:
    """How many rows of a ``[rows, columns]`` float32 block fit ``BLOCK_BYTES`` (with ``factor`` temporaries)."""
    return max(1, BLOCK_BYTES // (4 * factor * max(1, columns)))


def assign_to_nearest(
    points: torch.Tensor, centres: torch.Tensor, chunk: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Index ``[N]`` (int64) of the nearest centre of every point and the squared distance ``[N]``.

    Computed in row chunks (``chunk`` rows, default: blocks of at most ``BLOCK_BYTES``) with the
    expansion ``|p|^2 - 2 p.c + |c|^2``, so memory is ``chunk x K``, never ``N x N``.
    """
    if centres.shape[0] == 0:
        raise ValueError("assign_to_nearest: no centres")
    n = points.shape[0]
    step = int(chunk) if chunk else rows_per_block(centres.shape[0])
    cn = sq_norms(centres)
    index = torch.empty(n, dtype=torch.long, device=points.device)
    dist = torch.empty(n, dtype=points.dtype, device=points.device)
    ct = centres.t().contiguous()
    k = centres.shape[0]
    buffer = torch.empty(min(step, n) * k, dtype=points.dtype, device=points.device)  # reused
    for start in range(0, n, step):
        p = points[start : start + step]
        score = torch.addmm(cn.unsqueeze(0), p, ct, beta=1.0, alpha=-2.0, out=buffer[: p.shape[0] * k].view(-1, k))
        best, idx = score.min(dim=1)
        index[start : start + step] = idx
        dist[start : start + step] = (best + sq_norms(p)).clamp_min(0.0)
    return index, dist


def relabel_sequential(labels: np.ndarray) -> np.ndarray:
    """Ids ``1..K`` (int32) numbered in raster order of each object's first pixel; 0 stays 0.

    >>> relabel_sequential(np.array([[0, 7, 7], [3, 0, 9]])).tolist()
    [[0, 1, 1], [2, 0, 3]]
    """
    labels = np.asarray(labels)
    flat = labels.reshape(-1)
    if flat.size and np.issubdtype(flat.dtype, np.integer) and 0 <= flat.min() and flat.max() <= 4 * flat.size:
        return _relabel_small_ids(flat).reshape(labels.shape)  # no sort: a table indexed by id
    ids, first, inverse = np.unique(flat, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    new = np.zeros(len(ids), dtype=np.int32)
    positive = ids[order] > 0
    new[order[positive]] = np.arange(1, int(positive.sum()) + 1, dtype=np.int32)
    new[ids == 0] = 0
    new[ids < 0] = 0
    return new[inverse.reshape(-1)].reshape(labels.shape)


def rank_groups(keys: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """``[n_groups]``: 1-based rank of every group by the smallest key of its members (0: no member).

    >>> rank_groups(np.array([5, 1, 3]), np.array([2, 0, 2]), 4).tolist()
    [1, 0, 2, 0]
    """
    none = np.iinfo(np.int64).max
    smallest = np.full(n_groups, none, dtype=np.int64)
    np.minimum.at(smallest, groups, keys)
    present = smallest < none
    rank = np.zeros(n_groups, dtype=np.int64)
    order = np.argsort(smallest, kind="stable")
    rank[order[: int(present.sum())]] = np.arange(1, int(present.sum()) + 1)
    return rank


def _relabel_small_ids(flat: np.ndarray) -> np.ndarray:
    """:func:`relabel_sequential` of non-negative integer ids not much larger than their count."""
    objects = np.flatnonzero(flat)
    table = rank_groups(objects, flat[objects].astype(np.int64), int(flat.max()) + 1).astype(np.int32)
    return table[flat]


def remove_small(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Objects (ids > 0) with fewer than ``min_size`` pixels become 0 (a copy; ids not renumbered)."""
    labels = np.asarray(labels)
    if min_size <= 1 or labels.size == 0:
        return labels.copy()
    flat = labels.reshape(-1)
    counts = np.bincount(np.clip(flat, 0, None).astype(np.int64))
    small = counts < min_size
    small[0] = False
    out = flat.copy()
    out[small[np.clip(flat, 0, None)] & (flat > 0)] = 0
    return out.reshape(labels.shape)


def set_largest_to_background(labels: np.ndarray) -> np.ndarray:
    """The object id with most pixels (lowest id on ties) becomes 0 (a copy)."""
    labels = np.asarray(labels)
    flat = labels.reshape(-1)
    out = flat.copy()
    if flat.size == 0 or flat.max(initial=0) <= 0:
        return out.reshape(labels.shape)
    counts = np.bincount(np.clip(flat, 0, None).astype(np.int64))
    counts[0] = 0
    out[flat == int(np.argmax(counts))] = 0
    return out.reshape(labels.shape)


def split_foreground(
    embeddings: ArrayLike, mask: ArrayLike | None, foreground: str | None
) -> tuple[ArrayLike, ArrayLike | None]:
    """Embeddings without a network's foreground channel, and the mask it gives.

    ``foreground`` (the clustering parameter of that name,
    :data:`spoco_zoo.cluster.settings.FOREGROUND_MODES`): ``None`` -- ``embeddings`` has no such
    channel, returned as they are; ``"mask"`` -- the last channel is a foreground logit and pixels
    whose logit is not above 0 (probability 0.5) are background (combined with ``mask``);
    ``"drop"`` -- the last channel is removed unused.

    Examples
    --------
    >>> emb = np.zeros((3, 2, 2), np.float32); emb[2, 0] = 4.0  # two embedding channels + a logit
    >>> rest, fg = split_foreground(emb, None, "mask")
    >>> rest.shape, fg.tolist()
    ((2, 2, 2), [[True, True], [False, False]])
    """
    if foreground is None:
        return embeddings, mask
    if foreground not in ("mask", "drop"):
        raise DataError(f"foreground: must be 'mask', 'drop' or None, got {foreground!r}")
    if embeddings.shape[0] < 2:
        raise DataError(f"embeddings: a foreground channel needs at least 2 channels, got shape {embeddings.shape}")
    rest = embeddings[:-1]
    if foreground == "drop":
        return rest, mask
    logit = embeddings[-1]
    inside = np.asarray(logit.detach().cpu() if isinstance(logit, torch.Tensor) else logit) > 0
    if mask is not None:
        inside &= np.asarray(mask.detach().cpu() if isinstance(mask, torch.Tensor) else mask) != 0
    return rest, inside


def check_common(min_size: int, background: str) -> None:
    """Validate the common parameters ``min_size`` and ``background``."""
    check_integer("min_size", min_size, 0)
    if background not in BACKGROUND_MODES:
        raise DataError(f"background: must be one of {BACKGROUND_MODES}, got {background!r}")


def empty_labels(embeddings_shape: Sequence[int]) -> np.ndarray:
    """All-zero int32 labels for the spatial part of ``[E, *spatial]``."""
    return np.zeros(tuple(embeddings_shape[1:]), dtype=np.int32)


def finalize(
    assignment: np.ndarray | torch.Tensor,
    index: torch.Tensor | None,
    spatial_shape: Sequence[int],
    *,
    min_size: int = 0,
    background: str = "largest",
) -> np.ndarray:
    """Cluster index per point (``-1`` = unassigned) -> label image ``[*spatial]`` int32.

    Applies, in order: background removal (``background == "largest"`` and ``index is None``, i.e.
    no mask), ``min_size``, and consecutive renumbering (:func:`relabel_sequential`).
    """
    if isinstance(assignment, torch.Tensor):
        assignment = assignment.detach().cpu().numpy()
    ids = np.asarray(assignment).astype(np.int64) + 1  # 0 = unassigned
    if background == "largest" and index is None:
        ids = set_largest_to_background(ids)
    ids = remove_small(ids, int(min_size))
    if index is None:
        return relabel_sequential(ids.reshape(tuple(spatial_shape)))
    full = np.zeros(int(np.prod(spatial_shape)), dtype=np.int64)
    full[index.cpu().numpy()] = ids
    return relabel_sequential(full.reshape(tuple(spatial_shape)))
