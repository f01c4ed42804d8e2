"""Discriminative (pull / push) embedding loss, computed on annotated pixels only.

The loss follows De Brabandere et al. (2017) as used by SPOCO: pixels of one
object are pulled towards the object's mean embedding, the means of different
objects are pushed apart, and a small regulariser keeps the means near the
origin.

Margin convention
-----------------
Both hinges are squared and act on Euclidean distances:

* pull: ``max(0, ||e_i - mu_k|| - delta_var) ** 2`` for every pixel ``i`` of
  object ``k``;
* push: ``max(0, delta_dist - ||mu_a - mu_b||) ** 2`` for every pair of
  different objects ``a != b``.

``delta_dist`` is therefore the minimum distance *between two means* (not a
radius, so there is no ``2 * delta_dist``). Once both hinges are satisfied,
every pixel lies within ``delta_var`` of its mean and the means are at least
``delta_dist`` apart, so with ``delta_dist > 2 * delta_var`` (enforced by
:class:`spoco_zoo.config.LossConfig`) the balls of radius ``delta_var`` around
the means are disjoint: the clusters are separable, and a pixel within
``delta_var`` of an anchor (Gaussian kernel > 0.5, see
:mod:`spoco_zoo.kernels`) belongs to the anchor's object.

Label conventions
-----------------
``labels`` hold ``0`` for background, positive ids for annotated objects and
``ignore_label`` for pixels that are not annotated. Ids are per image. Pixels
equal to ``ignore_label`` never enter this loss (their gradient is exactly
zero). With ``background_as_instance`` the background is one more instance;
otherwise background pixels are left out as well.
"""

from __future__ import annotations

import torch
from torch import Tensor

from spoco_zoo.errors import DataError

__all__ = [
    "check_inputs",
    "graph_zero",
    "group_pixels",
    "instance_labels",
    "instance_means",
    "pull_loss",
    "push_loss",
    "regularizer",
    "embedding_loss",
]

#: Squared distances are clamped to this before ``sqrt`` (finite gradients at 0).
_SQ_EPS = 1e-12


def _safe_norm(x: Tensor, dim: int) -> Tensor:
    """Euclidean norm along ``dim`` with a finite gradient when the norm is 0."""
    return x.pow(2).sum(dim).clamp_min(_SQ_EPS).sqrt()


def graph_zero(tensor: Tensor) -> Tensor:
    """A float32 scalar 0 attached to ``tensor``'s graph (so ``backward`` works)."""
    return tensor.float().sum() * 0.0 + 0.0  # "+ 0.0" turns a -0.0 into 0.0


def check_inputs(embeddings: Tensor, labels: Tensor, name: str = "embeddings") -> tuple[Tensor, Tensor]:
    """Validate ``[B, E, *S]`` embeddings against ``[B, *S]`` labels.

    Returns
    -------
    tuple of Tensor
        Embeddings cast to float32 and labels as int64 on the embeddings' device.

    Raises
    ------
    DataError
        If the shapes do not match or the labels are not integers.
    """
    if embeddings.dim() < 3:
        raise DataError(f"{name}: expected shape [B, E, *spatial], got {tuple(embeddings.shape)}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise DataError(f"labels: expected an integer tensor, got dtype {labels.dtype}")
    expected = (embeddings.shape[0], *embeddings.shape[2:])
    if tuple(labels.shape) != expected:
        raise DataError(
            f"labels: shape {tuple(labels.shape)} does not match {name} shape "
            f"{tuple(embeddings.shape)} (expected {expected})"
        )
    return embeddings.float(), labels.to(device=embeddings.device, dtype=torch.long)


def group_pixels(
    embeddings: Tensor,
    labels: Tensor,
    ignore_label: int = -1,
    background_as_instance: bool = True,
) -> tuple[Tensor, Tensor, int]:
    """Collect the embeddings of one image's instance pixels and number the instances.

    Parameters
    ----------
    embeddings : Tensor
        ``[E, *S]`` embeddings of one image.
    labels : Tensor
        ``[*S]`` integer labels of the same image.
    ignore_label : int
        Label of pixels that are not annotated; they are dropped.
    background_as_instance : bool
        Keep background pixels (label 0) as one more instance; if False they
        are dropped.

    Returns
    -------
    pixels : Tensor
        ``[E, N]`` embeddings of the kept pixels.
    instance_ids : Tensor
        ``[N]`` int64 instance index in ``0 .. K-1`` of each kept pixel.
    num_instances : int
        ``K``, the number of distinct instances.
    """
    flat_labels = labels.reshape(-1)
    index = _annotated(flat_labels, ignore_label, background_as_instance).nonzero().squeeze(1)
    pixels = embeddings.reshape(embeddings.shape[0], -1).index_select(1, index)
    ids, instance_ids = torch.unique(flat_labels[index], return_inverse=True)
    return pixels, instance_ids, int(ids.numel())


def _annotated(flat_labels: Tensor, ignore_label: int, background_as_instance: bool) -> Tensor:
    keep = flat_labels >= 0 if background_as_instance else flat_labels > 0
    return keep & (flat_labels != ignore_label)


def instance_labels(labels: Tensor, ignore_label: int = -1, background_as_instance: bool = True) -> Tensor:
    """The label value of each instance :func:`group_pixels` numbers, ``[K]`` in its order.

    >>> instance_labels(torch.tensor([[3, 0, -1, 1]])).tolist()
    [0, 1, 3]
    """
    flat_labels = labels.reshape(-1)
    return torch.unique(flat_labels[_annotated(flat_labels, ignore_label, background_as_instance)])


def instance_means(pixels: Tensor, instance_ids: Tensor, num_instances: int) -> Tensor:
    """Mean embedding of every instance.

    Parameters
    ----------
    pixels : Tensor
        ``[E, N]`` pixel embeddings.
    instance_ids : Tensor
        ``[N]`` instance index (``0 .. K-1``) of each pixel; every index occurs.
    num_instances : int
        ``K``.

    Returns
    -------
    Tensor
        ``[E, K]`` means (differentiable w.r.t. ``pixels``).
    """
    sums = pixels.new_zeros((pixels.shape[0], num_instances)).index_add(1, instance_ids, pixels)
    counts = torch.bincount(instance_ids, minlength=num_instances).clamp_min(1)
    return sums / counts.to(pixels.dtype)


def pull_loss(pixels: Tensor, instance_ids: Tensor, means: Tensor, delta_var: float) -> Tensor:
    """Intra-instance pull term of one image.

    ``mean_k mean_{i in k} max(0, ||e_i - mu_k|| - delta_var) ** 2``: averaged
    over each instance's pixels, then over instances.

    Parameters
    ----------
    pixels : Tensor
        ``[E, N]`` pixel embeddings.
    instance_ids : Tensor
        ``[N]`` instance index of each pixel.
    means : Tensor
        ``[E, K]`` instance means (usually :func:`instance_means`).
    delta_var : float
        Pull margin: pixels closer than this to their mean cost nothing.

    Returns
    -------
    Tensor
        Scalar; 0 when there is no instance.
    """
    num_instances = means.shape[1]
    if num_instances == 0:
        return graph_zero(pixels) + graph_zero(means)
    dist = _safe_norm(pixels - means.index_select(1, instance_ids), dim=0)
    hinge = torch.clamp(dist - delta_var, min=0.0).pow(2)
    per_instance = hinge.new_zeros(num_instances).index_add(0, instance_ids, hinge)
    counts = torch.bincount(instance_ids, minlength=num_instances).clamp_min(1)
    return (per_instance / counts.to(hinge.dtype)).mean()


def push_loss(means: Tensor, delta_dist: float) -> Tensor:
    """Inter-instance push term of one image.

    ``mean_{a != b} max(0, delta_dist - ||mu_a - mu_b||) ** 2`` over ordered
    pairs of different instances: means end up at least ``delta_dist`` apart.

    Parameters
    ----------
    means : Tensor
        ``[E, K]`` instance means.
    delta_dist : float
        Push margin: minimum distance between two means.

    Returns
    -------
    Tensor
        Scalar; 0 when ``K < 2``.
    """
    num_instances = means.shape[1]
    if num_instances < 2:
        return graph_zero(means)
    dist = _safe_norm(means[:, :, None] - means[:, None, :], dim=0)
    off_diagonal = ~torch.eye(num_instances, dtype=torch.bool, device=means.device)
    hinge = torch.clamp(delta_dist - dist[off_diagonal], min=0.0).pow(2)
    return hinge.mean()


def regularizer(means: Tensor) -> Tensor:
    """Mean Euclidean norm of the instance means (keeps embeddings bounded).

    Parameters
    ----------
    means : Tensor
        ``[E, K]`` instance means.

    Returns
    -------
    Tensor
        Scalar; 0 when there is no instance.
    """
    if means.shape[1] == 0:
        return graph_zero(means)
    return _safe_norm(means, dim=0).mean()


def embedding_loss(
    embeddings: Tensor,
    labels: Tensor,
    delta_var: float,
    delta_dist: float,
    alpha: float = 1.0,
    beta: float = 1.0,
    gamma: float = 0.001,
    ignore_label: int = -1,
    background_as_instance: bool = True,
) -> Tensor:
    """Discriminative loss ``alpha * pull + beta * push + gamma * reg`` on annotated pixels.

    Computed per image (instance ids are per image) and averaged over the
    batch; an image without instances contributes 0, one with a single
    instance has no push term. See the module docstring for the margins.

    Parameters
    ----------
    embeddings : Tensor
        ``[B, E, *S]`` pixel embeddings (2D or 3D); cast to float32.
    labels : Tensor
        ``[B, *S]`` integer labels: 0 background, > 0 objects, ``ignore_label``
        not annotated.
    delta_var : float
        Pull margin.
    delta_dist : float
        Push margin (minimum distance between instance means).
    alpha, beta, gamma : float
        Weights of pull, push and regulariser.
    ignore_label : int
        Label of unannotated pixels (never contribute; zero gradient).
    background_as_instance : bool
        Treat background (0) as one more instance; else exclude it.

    Returns
    -------
    Tensor
        Float32 scalar.
    """
    embeddings, labels = check_inputs(embeddings, labels)
    total = graph_zero(embeddings)
    for image, image_labels in zip(embeddings, labels):
        pixels, ids, count = group_pixels(image, image_labels, ignore_label, background_as_instance)
        if count == 0:
            continue
        means = instance_means(pixels, ids, count)
        total = total + alpha * pull_loss(pixels, ids, means, delta_var)
        total = total + beta * push_loss(means, delta_dist)
        total = total + gamma * regularizer(means)
    return total / embeddings.shape[0]
