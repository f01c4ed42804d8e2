"""Where an annotated object's negatives are taken: its bounding box grown by a margin per axis.

The instance term and the unlabeled push treat every pixel outside an annotated object as a negative
of it. Over the whole training patch that asks every object's embedding to differ from every other
object of the patch, however far: objects that look alike can then only be told apart by where they
are, which a network can read from the zero padding of the patch border -- and a larger volume at
inference has no border within reach of its interior. A decoder that compares neighbouring pixels
(the graph decoder) needs objects told apart from their neighbours only, so the negatives may be
restricted to a window around each object (docs/benchmarks.md, "Negatives near each object").
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["object_boxes", "object_windows"]


def object_boxes(labels: Tensor, ids: Tensor) -> tuple[Tensor, Tensor]:
    """First and last index per spatial axis of each object, ``[K, D]`` each.

    Parameters
    ----------
    labels : Tensor
        ``[*S]`` integer labels of one image (2D or 3D).
    ids : Tensor
        ``[K]`` label values; each must occur in ``labels``.

    Examples
    --------
    >>> low, high = object_boxes(torch.tensor([[0, 1, 1], [0, 0, 1]]), torch.tensor([1]))
    >>> low.tolist(), high.tolist()
    ([[0, 1]], [[1, 2]])
    """
    lows, highs = [], []
    present_all = labels[None] == ids.reshape(-1, *[1] * labels.ndim)  # [K, *S]
    for axis, size in enumerate(labels.shape):
        other = tuple(a + 1 for a in range(labels.ndim) if a != axis)
        present = present_all.any(dim=other) if other else present_all  # [K, size]
        coords = torch.arange(size, device=labels.device)
        lows.append(torch.where(present, coords, size).amin(dim=1))
        highs.append(torch.where(present, coords, -1).amax(dim=1))
    return torch.stack(lows, dim=1), torch.stack(highs, dim=1)


def object_windows(labels: Tensor, ids: Tensor, margin: Sequence[int]) -> Tensor:
    """``[K, N]`` mask of the pixels within ``margin`` of each object's bounding box.

    Parameters
    ----------
    labels : Tensor
        ``[*S]`` integer labels of one image (2D or 3D).
    ids : Tensor
        ``[K]`` label values whose windows are wanted; each must occur in ``labels``.
    margin : sequence of int
        Pixels added to both sides of the bounding box, one per spatial axis of ``labels``.

    Returns
    -------
    Tensor
        Bool ``[K, N]``, ``N = labels.numel()`` in ``labels.reshape(-1)`` order.

    Examples
    --------
    >>> labels = torch.tensor([[0, 1, 1, 0, 0, 2]])
    >>> object_windows(labels, torch.tensor([1, 2]), [0, 1]).int().tolist()
    [[1, 1, 1, 1, 0, 0], [0, 0, 0, 0, 1, 1]]
    """
    if len(margin) != labels.ndim:
        raise ValueError(f"margin has {len(margin)} values for {labels.ndim} spatial axes")
    grow = torch.tensor([int(m) for m in margin], device=labels.device)
    low, high = object_boxes(labels, ids)
    low, high = low - grow, high + grow
    inside: Tensor | None = None
    for axis, size in enumerate(labels.shape):
        coords = torch.arange(size, device=labels.device)
        along = (coords[None, :] >= low[:, axis, None]) & (coords[None, :] <= high[:, axis, None])  # [K, size]
        view = [ids.numel()] + [1] * labels.ndim
        view[axis + 1] = size
        along = along.reshape(view)
        inside = along if inside is None else inside & along
    assert inside is not None
    return inside.expand(ids.numel(), *labels.shape).reshape(ids.numel(), -1)
