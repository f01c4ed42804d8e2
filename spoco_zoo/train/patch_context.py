"""Training patches with context: the network sees image around the patch, the losses only the patch.

A network trained on bare crops learns where the crop border is (its zero padding reaches every voxel of
a small 3D crop) and leans on it; in a volume larger than the crops, voxels with no border in reach then
get embeddings the training never asked for. With ``data.patch_context`` each training item is the patch
grown by the context on every side. During the context steps (:func:`uses_context`) the network sees the
whole item and :func:`crop_centre` cuts its output and the labels back to the patch before the losses;
during the other steps the network sees only the patch (the item's centre), as without context.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

__all__ = ["crop_centre", "uses_context"]


def crop_centre(tensor: Tensor, context: Sequence[int]) -> Tensor:
    """``tensor`` without ``context[a]`` pixels at both ends of each of its last ``len(context)`` axes.

    Examples
    --------
    >>> import torch
    >>> crop_centre(torch.zeros(2, 5, 40, 80, 80), (4, 8, 8)).shape
    torch.Size([2, 5, 32, 64, 64])
    >>> crop_centre(torch.arange(6).reshape(1, 6), (2,)).tolist()
    [[2, 3]]
    """
    spatial = tensor.shape[tensor.dim() - len(context) :]
    if any(2 * int(c) >= int(n) for c, n in zip(context, spatial)):
        raise ValueError(f"context {list(context)} leaves nothing of spatial shape {list(spatial)}")
    for axis, (c, n) in enumerate(zip(context, spatial), start=tensor.dim() - len(context)):
        tensor = tensor.narrow(axis, int(c), int(n) - 2 * int(c))
    return tensor


def uses_context(step: int, steps: int, context: Sequence[int], context_steps: int | None) -> bool:
    """Whether optimisation step ``step`` (0-based) of a ``steps``-step run shows the network the context:
    never without one, on every step when ``context_steps`` is ``None``, else on the last ``context_steps``.

    >>> [uses_context(s, 10, (4, 8, 8), 3) for s in (0, 6, 7, 9)]
    [False, False, True, True]
    >>> uses_context(0, 10, (0, 0, 0), None), uses_context(0, 10, (4, 8, 8), None)
    (False, True)
    """
    if not any(context):
        return False
    return context_steps is None or step >= steps - context_steps
