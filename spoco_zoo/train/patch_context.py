"""Training patches with context: the network sees image around the patch, the losses only the patch.

A network trained on bare crops learns where the crop border is (its zero padding reaches every voxel of
a small 3D crop) and leans on it; in a volume larger than the crops, voxels with no border in reach then
get embeddings the training never asked for. With ``data.patch_context`` each training item is the patch
grown by the context on every side. During the context steps (:func:`uses_context`) the network sees the
whole item and :func:`crop_centre` cuts its output and the labels back to the patch before the losses;
during the other steps the network sees only the patch (the item's centre), as without context; with
``data.shifted_teacher`` the teacher then sees another patch of the item (:func:`shifted_patches`), and the
consistency term compares the two views where they overlap: the same voxel, its crop border elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["crop_centre", "uses_context", "ShiftedPatches", "shifted_patches"]


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


@dataclass(frozen=True)
class ShiftedPatches:
    """Where the teacher's patch lies in an item, and where the two patches overlap.

    ``teacher``: the teacher's patch in the item (the student's is the item's centre);
    ``in_student`` / ``in_teacher``: the overlap in the student's / the teacher's patch.
    """

    teacher: tuple[slice, ...]
    in_student: tuple[slice, ...]
    in_teacher: tuple[slice, ...]


def shifted_patches(
    patch: Sequence[int], context: Sequence[int], generator: torch.Generator | None = None
) -> ShiftedPatches:
    """A teacher patch of an item (the patch grown by ``context``) shifted from its centre by a random
    whole number of voxels in ``[-context[a], context[a]]`` along each axis ``a``, and the overlap.

    Examples
    --------
    >>> shifts = shifted_patches((32, 64), (0, 8), torch.Generator().manual_seed(0))
    >>> shifts.teacher[0], shifts.in_student[0], shifts.in_teacher[0]  # no context in z: no shift
    (slice(0, 32, None), slice(0, 32, None), slice(0, 32, None))
    >>> overlap = shifts.in_student[1].stop - shifts.in_student[1].start
    >>> overlap == shifts.in_teacher[1].stop - shifts.in_teacher[1].start and 56 <= overlap <= 64
    True
    """
    teacher, in_student, in_teacher = [], [], []
    for size, margin in zip(patch, context):
        size, margin = int(size), int(margin)
        shift = int(torch.randint(-margin, margin + 1, (1,), generator=generator)) if margin else 0
        teacher.append(slice(margin + shift, margin + shift + size))
        in_student.append(slice(max(0, shift), size + min(0, shift)))
        in_teacher.append(slice(max(0, -shift), size - max(0, shift)))
    return ShiftedPatches(tuple(teacher), tuple(in_student), tuple(in_teacher))
