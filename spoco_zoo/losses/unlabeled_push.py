"""Unlabeled push: unannotated pixels are kept away from every annotated instance.

In SPOCO's sparse protocol an annotated object is annotated *completely*, so a
pixel that carries ``ignore_label`` belongs to some other, unannotated object
(or, when the background is not annotated either, to the background) -- never
to an annotated instance of the same image. This term uses that negative
information: for every unannotated pixel ``u`` and every annotated instance
mean ``mu_k`` of its image

``max(0, delta_dist - ||e_u - mu_k||) ** 2``,

averaged over all (pixel, instance) pairs of the image and then over the batch.
It is the only term besides the consistency loss that reaches unannotated
pixels. Without it, with few annotated objects per patch (10 % of the objects
in a 128x128 patch is about one), the push term of the discriminative loss
only ever separates that one object from the background and the network maps
every object to the same embedding: nothing in the loss tells objects apart.
The SPOCO reference implementation has the same term (its "unlabeled push").
With a ``window`` an unannotated pixel is pushed only from the objects whose
bounding box, grown by the window, holds it (:mod:`spoco_zoo.losses.window`);
the background mean, when it is one, pushes everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from spoco_zoo.losses.discriminative import check_inputs, graph_zero, group_pixels, instance_labels, instance_means
from spoco_zoo.losses.window import object_windows

__all__ = ["unlabeled_push_loss"]

_SQ_EPS = 1e-12


def unlabeled_push_loss(
    embeddings: Tensor,
    labels: Tensor,
    delta_dist: float,
    ignore_label: int = -1,
    background_as_instance: bool = True,
    window: Sequence[int] | None = None,
) -> Tensor:
    """Push unannotated pixels at least ``delta_dist`` away from annotated instance means.

    Parameters
    ----------
    embeddings : Tensor
        ``[B, E, *S]`` pixel embeddings (2D or 3D); cast to float32.
    labels : Tensor
        ``[B, *S]`` integer labels: 0 background, > 0 annotated objects, ``ignore_label``
        not annotated.
    delta_dist : float
        Margin: pixels farther than this from a mean do not contribute.
    ignore_label : int
        Label of unannotated pixels (the pixels that are pushed).
    background_as_instance : bool
        Whether the background mean is one of the means the pixels are pushed from
        (as in :func:`spoco_zoo.losses.discriminative.embedding_loss`).
    window : sequence of int, optional
        Pixels per spatial axis around an object's bounding box within which its
        mean pushes; ``None``: everywhere.

    Returns
    -------
    Tensor
        Float32 scalar; 0 for images with no unannotated pixel or no annotated instance.

    Examples
    --------
    >>> import torch
    >>> labels = torch.tensor([[[1, 1, -1, -1]]])
    >>> far = torch.tensor([[[[0.0, 0.0, 5.0, 5.0]]]])
    >>> float(unlabeled_push_loss(far, labels, delta_dist=2.0))
    0.0
    >>> near = torch.zeros(1, 1, 1, 4)
    >>> round(float(unlabeled_push_loss(near, labels, delta_dist=2.0)), 4)
    4.0
    """
    if delta_dist <= 0:
        raise ValueError(f"delta_dist must be > 0, got {delta_dist}")
    embeddings, labels = check_inputs(embeddings, labels)
    total = graph_zero(embeddings)
    for image, image_labels in zip(embeddings, labels):
        unlabeled = image_labels == ignore_label
        if not bool(unlabeled.any()):
            continue
        pixels, ids, count = group_pixels(image, image_labels, ignore_label, background_as_instance)
        if count == 0:
            continue
        means = instance_means(pixels, ids, count)  # [E, K]
        free = image.reshape(image.shape[0], -1)[:, unlabeled.reshape(-1)]  # [E, U]
        sq = free.pow(2).sum(0)[None, :] - 2.0 * means.transpose(0, 1) @ free + means.pow(2).sum(0)[:, None]
        dist = sq.clamp_min(_SQ_EPS).sqrt()  # [K, U]
        push = torch.clamp(delta_dist - dist, min=0.0).pow(2)
        if window is None:
            total = total + push.mean()
            continue
        ids = instance_labels(image_labels, ignore_label, background_as_instance)
        near = torch.ones_like(push, dtype=torch.bool)  # the background mean pushes everywhere
        objects = ids > 0
        if bool(objects.any()):
            near[objects] = object_windows(image_labels, ids[objects], window)[:, unlabeled.reshape(-1)]
        weight = near.to(push.dtype)
        total = total + (push * weight).sum() / weight.sum().clamp_min(1.0)  # the mean over the counted pairs
    return total / embeddings.shape[0]
