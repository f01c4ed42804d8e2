"""Embedding consistency loss on the unlabeled region (student vs EMA teacher).

The student and the teacher embed two augmented views of the same patch; the
caller maps both back to a common frame first. Anchors are drawn so that they
cover the unlabeled region (``labels == ignore_label``) *exhaustively*
(:func:`cover_with_anchors`): pick a random unlabeled pixel not yet covered,
mark every pixel whose teacher embedding lies within ``delta_var`` of the
anchor's as covered, repeat until ``max_anchors`` anchors are drawn or less
than ``min_uncovered`` of the region is left.

Each network builds its own soft mask of every anchor over the **whole**
patch from its own embeddings (the anchor embedding taken from that network's
output at the anchor pixel), with the Gaussian kernel of
:mod:`spoco_zoo.kernels`. The loss is the Dice loss between the student's and
the teacher's soft masks: no pseudo-labels, no class priors. The teacher is
detached and receives no gradient; the student's gradient reaches every pixel
that either mask touches.
"""

from __future__ import annotations

import torch
from torch import Tensor

from spoco_zoo.errors import DataError
from spoco_zoo.losses.discriminative import check_inputs, graph_zero
from spoco_zoo.losses.instance import dice_loss, soft_masks

__all__ = ["consistency_loss", "cover_with_anchors"]


@torch.no_grad()
def cover_with_anchors(
    pixels: Tensor,
    region: Tensor,
    delta_var: float,
    max_anchors: int = 20,
    min_uncovered: float = 0.05,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Anchors that cover a region of pixels in embedding space.

    Repeatedly draws an anchor uniformly among the region's pixels that are not
    yet covered and covers every region pixel within ``delta_var`` of it
    (kernel value above 0.5), plus the anchor itself.

    Parameters
    ----------
    pixels : Tensor
        ``[E, N]`` embeddings (the teacher's) of all pixels of one image.
    region : Tensor
        ``[N]`` bool, the pixels to cover (the unlabeled region).
    delta_var : float
        Coverage radius in embedding space.
    max_anchors : int
        Upper bound on the number of anchors.
    min_uncovered : float
        Stop once fewer than this fraction of the region's pixels are uncovered.
    generator : torch.Generator, optional
        CPU generator for reproducible draws.

    Returns
    -------
    Tensor
        ``[A]`` int64 pixel indices (``0 <= A <= max_anchors``), in drawing order.

    Examples
    --------
    >>> pixels = torch.tensor([[0.0, 0.1, 5.0, 5.1, 9.0]])
    >>> region = torch.tensor([True, True, True, True, False])
    >>> anchors = cover_with_anchors(pixels, region, 0.5, min_uncovered=0.0)
    >>> sorted(set(pixels[0, anchors].round().tolist()))
    [0.0, 5.0]
    """
    if max_anchors < 1:
        raise ValueError(f"max_anchors must be >= 1, got {max_anchors}")
    if not 0.0 <= min_uncovered < 1.0:
        raise ValueError(f"min_uncovered must be in [0, 1), got {min_uncovered}")
    uncovered = region.clone()
    total = int(region.sum())
    sq_radius = float(delta_var) ** 2
    sq_norms = pixels.pow(2).sum(0)
    anchors: list[int] = []
    while len(anchors) < max_anchors:
        remaining = int(uncovered.sum())
        if remaining == 0 or remaining < min_uncovered * total:
            break
        candidates = uncovered.nonzero().squeeze(1)
        pick = int(torch.randint(remaining, (1,), generator=generator))
        index = int(candidates[pick])
        anchor = pixels[:, index]
        sq_dist = sq_norms - 2.0 * (anchor @ pixels) + anchor.pow(2).sum()
        uncovered &= sq_dist >= sq_radius
        uncovered[index] = False
        anchors.append(index)
    return torch.tensor(anchors, dtype=torch.long, device=pixels.device)


def _image_consistency_dice(
    student: Tensor,
    teacher: Tensor,
    labels: Tensor,
    delta_var: float,
    ignore_label: int,
    max_anchors: int,
    min_uncovered: float,
    generator: torch.Generator | None,
) -> Tensor:
    """Dice loss of every anchor of one image, ``[A]`` (empty if nothing is unlabeled)."""
    region = labels.reshape(-1) == ignore_label
    if not bool(region.any()):
        return student.new_zeros(0)
    student_pixels = student.reshape(student.shape[0], -1)
    teacher_pixels = teacher.reshape(teacher.shape[0], -1)
    anchors = cover_with_anchors(teacher_pixels, region, delta_var, max_anchors, min_uncovered, generator)
    if anchors.numel() == 0:
        return student.new_zeros(0)
    student_masks = soft_masks(student_pixels, student_pixels.index_select(1, anchors), delta_var)
    teacher_masks = soft_masks(teacher_pixels, teacher_pixels.index_select(1, anchors), delta_var)
    return dice_loss(student_masks, teacher_masks)


def consistency_loss(
    student: Tensor,
    teacher: Tensor,
    labels: Tensor,
    delta_var: float,
    ignore_label: int = -1,
    max_anchors: int = 20,
    min_uncovered: float = 0.05,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Dice loss between student and teacher soft masks of anchors covering the unlabeled region.

    Parameters
    ----------
    student : Tensor
        ``[B, E, *S]`` student embeddings (2D or 3D); cast to float32.
    teacher : Tensor
        ``[B, E, *S]`` teacher embeddings in the same frame; detached inside.
    labels : Tensor
        ``[B, *S]`` integer labels; anchors are drawn among pixels equal to ``ignore_label``.
    delta_var : float
        Pull margin; sets the kernel width (0.5 at ``delta_var``) and the coverage radius.
    ignore_label : int
        Label of unlabeled pixels.
    max_anchors : int
        Most anchors per image (see :func:`cover_with_anchors`).
    min_uncovered : float
        Anchor drawing stops once less than this fraction of the unlabeled region is uncovered.
    generator : torch.Generator, optional
        Makes anchor sampling reproducible.

    Returns
    -------
    Tensor
        Float32 scalar, the mean over all anchors of the batch; 0 (attached to
        the student's graph) when no image has an unlabeled pixel.

    Examples
    --------
    >>> labels = torch.tensor([[[1, -1, -1, -1]]])
    >>> student = torch.tensor([[[[0.0, 3.0, 3.0, 6.0]]]])
    >>> round(float(consistency_loss(student, student.clone(), labels, 0.5)), 4)
    0.0
    >>> teacher = torch.tensor([[[[0.0, 3.0, 6.0, 6.0]]]])  # the teacher groups pixels 2 and 3
    >>> float(consistency_loss(student, teacher, labels, 0.5)) > 0.1
    True
    """
    if teacher.shape != student.shape:
        raise DataError(f"teacher: shape {tuple(teacher.shape)} does not match student shape {tuple(student.shape)}")
    student, labels = check_inputs(student, labels, name="student")
    teacher = teacher.detach().to(device=student.device, dtype=torch.float32)
    per_anchor = torch.cat(
        [
            _image_consistency_dice(s, t, lab, delta_var, ignore_label, max_anchors, min_uncovered, generator)
            for s, t, lab in zip(student, teacher, labels)
        ]
    )
    if per_anchor.numel() == 0:
        return graph_zero(student)
    return per_anchor.mean()
