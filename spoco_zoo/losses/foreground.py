"""Foreground loss: the network's foreground logit against the annotated pixels.

A network with a foreground channel (``ModelConfig.foreground``) predicts, per pixel, the logit
of "this pixel belongs to some object". Clustering then groups only foreground pixels
(:func:`spoco_zoo.cluster.common.split_foreground`), so the background no longer has to be the
largest embedding cluster -- a rule real images break (soft object edges, uneven background).

Supervision: annotated objects (ids > 0) are positives, the annotated background (0) negatives.
Unannotated pixels (``ignore_label``) take no part -- unless the annotated background is complete
(``unannotated="foreground"``, the paper's protocol of ``label_convention="objects_and_background"``:
every background pixel is marked, so an unannotated pixel belongs to an object whose id is not
known). In a patch without annotated background (``label_convention="objects_only"``: only
objects are painted) nothing tells objects from background, and the term is 0 for that patch.

The loss is binary cross-entropy plus a soft Dice term on the foreground probability, both over
the annotated pixels of each patch; Dice keeps small objects' pixels (and so their boundaries)
from being outweighed by a large background.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from spoco_zoo.losses.discriminative import graph_zero
from spoco_zoo.losses.instance import dice_loss

__all__ = ["foreground_loss"]


def foreground_loss(logits: Tensor, labels: Tensor, ignore_label: int = -1, unannotated: str = "unknown") -> Tensor:
    """Mean over patches of BCE + Dice of the foreground logit on annotated pixels.

    Parameters
    ----------
    logits : Tensor
        ``[B, *S]`` foreground logits.
    labels : Tensor
        ``[B, *S]`` integer labels: 0 background, > 0 objects, ``ignore_label`` not annotated.
    ignore_label : int
        Label of unannotated pixels.
    unannotated : {"unknown", "foreground"}
        What an unannotated pixel is to this loss: unknown (no gradient), or foreground (the
        annotated background is complete).

    Returns
    -------
    Tensor
        Float32 scalar; 0 (with a graph) when no patch has both annotated objects and background.

    Examples
    --------
    >>> labels = torch.tensor([[0, 0, 1, 1, -1]])
    >>> good = torch.tensor([[-20.0, -20.0, 20.0, 20.0, 0.0]])
    >>> round(float(foreground_loss(good, labels)), 4), float(foreground_loss(-good, labels)) > 1
    (0.0, True)
    """
    if unannotated not in ("unknown", "foreground"):
        raise ValueError(f"unannotated must be 'unknown' or 'foreground', got {unannotated!r}")
    if logits.shape != labels.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)} must have one shape")
    flat_logits = logits.float().reshape(logits.shape[0], -1)
    flat_labels = labels.reshape(labels.shape[0], -1)
    terms = []
    for logit, label in zip(flat_logits, flat_labels):
        unknown = label == ignore_label
        annotated = ~unknown if unannotated == "unknown" else torch.ones_like(unknown)
        target = ((label > 0) | unknown).float()
        has_background = bool(((label == 0) & annotated).any())
        if not has_background:
            continue
        weight = annotated.float()
        bce = (F.binary_cross_entropy_with_logits(logit, target, reduction="none") * weight).sum() / weight.sum()
        dice = dice_loss(torch.sigmoid(logit), target, weight)
        terms.append(bce + dice)
    if not terms:
        return graph_zero(logits)
    return torch.stack(terms).mean()
