"""Embedding consistency loss on unlabeled pixels (student vs EMA teacher).

The student and the teacher embed two augmented views of the same patch; the
caller maps both back to a common frame first. In every image,
``num_anchors`` anchor pixels are drawn uniformly (with replacement) among the
*unlabeled* pixels (``labels == ignore_label``). Each network builds its own
soft mask around the anchor from its own embeddings (anchor embedding taken
from that network's output at the anchor pixel) using the Gaussian kernel of
:mod:`spoco_zoo.kernels`, over the unlabeled pixels only. The loss is the
Dice loss between the student's and the teacher's soft masks, so gradients
reach unlabeled pixels through this term, and annotated pixels get none from
it. The teacher is detached: it receives no gradient.
"""

from __future__ import annotations

import torch
from torch import Tensor

from spoco_zoo.errors import DataError
from spoco_zoo.losses.discriminative import _check_inputs, _graph_zero
from spoco_zoo.losses.instance import dice_loss, sample_group_members, soft_masks

__all__ = ["consistency_loss"]


def _image_consistency_dice(
    student: Tensor,
    teacher: Tensor,
    labels: Tensor,
    delta_var: float,
    ignore_label: int,
    num_anchors: int,
    generator: torch.Generator | None,
) -> Tensor:
    """Dice loss of every anchor of one image, ``[num_anchors]`` (empty if nothing is unlabeled)."""
    unlabeled = (labels.reshape(-1) == ignore_label).nonzero().squeeze(1)
    if unlabeled.numel() == 0:
        return student.new_zeros(0)
    student_pixels = student.reshape(student.shape[0], -1).index_select(1, unlabeled)
    teacher_pixels = teacher.reshape(teacher.shape[0], -1).index_select(1, unlabeled)
    count = torch.tensor([unlabeled.numel()], device=student.device)
    anchors = sample_group_members(count, num_anchors, generator)[0]
    student_masks = soft_masks(student_pixels, student_pixels.index_select(1, anchors), delta_var)
    teacher_masks = soft_masks(teacher_pixels, teacher_pixels.index_select(1, anchors), delta_var)
    return dice_loss(student_masks, teacher_masks)


def consistency_loss(
    student: Tensor,
    teacher: Tensor,
    labels: Tensor,
    delta_var: float,
    ignore_label: int = -1,
    num_anchors: int = 4,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Dice loss between student and teacher anchor soft masks on unlabeled pixels.

    Parameters
    ----------
    student : Tensor
        ``[B, E, *S]`` student embeddings (2D or 3D); cast to float32.
    teacher : Tensor
        ``[B, E, *S]`` teacher embeddings in the same frame; detached inside.
    labels : Tensor
        ``[B, *S]`` integer labels; only pixels equal to ``ignore_label`` are used.
    delta_var : float
        Pull margin; sets the kernel width (0.5 at ``delta_var``).
    ignore_label : int
        Label of unlabeled pixels.
    num_anchors : int
        Anchors drawn per image among its unlabeled pixels.
    generator : torch.Generator, optional
        Makes anchor sampling reproducible.

    Returns
    -------
    Tensor
        Float32 scalar, the mean over all anchors of the batch; 0 (attached to
        the student's graph) when no image has an unlabeled pixel.
    """
    if num_anchors < 1:
        raise ValueError(f"num_anchors must be >= 1, got {num_anchors}")
    if teacher.shape != student.shape:
        raise DataError(f"teacher: shape {tuple(teacher.shape)} does not match student shape {tuple(student.shape)}")
    student, labels = _check_inputs(student, labels, name="student")
    teacher = teacher.detach().to(device=student.device, dtype=torch.float32)
    losses = [
        _image_consistency_dice(s, t, lab, delta_var, ignore_label, num_anchors, generator)
        for s, t, lab in zip(student, teacher, labels)
    ]
    losses = torch.cat(losses)
    if losses.numel() == 0:
        return _graph_zero(student)
    return losses.mean()
