"""Augmentations.

- :func:`random_flip_rotate`: joint numpy augmentation of a training patch
  (image ``[C, *S]`` + labels ``[*S]``) -- flips on every spatial axis and
  90-degree rotations in the ``yx`` plane (labels stay exact integers).
- :class:`GeometricTransform`: the same group of transforms on torch batches
  ``[B, C, *S]``, with an exact inverse, for the two consistency views (the
  network sees a transformed view; its embeddings are mapped back).
- :func:`intensity_augment`: random monotone intensity change, noise and blur
  on torch batches.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from spoco_zoo.errors import DataError

__all__ = ["random_flip_rotate", "resize_patch", "GeometricTransform", "intensity_augment"]


# ---------------------------------------------------------------------------- numpy patches
def resize_patch(image: np.ndarray, labels: np.ndarray, shape: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """``image [C, *S]`` and ``labels [*S]`` resampled to the spatial ``shape``: the scale augmentation.

    Linear interpolation for the image, nearest neighbour for the labels (ids stay ids). The
    dataset cuts a window ``zoom`` times smaller or larger than the patch and resizes it to the
    patch (:class:`spoco_zoo.data.dataset.SparseInstanceDataset`), so objects appear at other sizes:
    real objects vary in size, and the network must not take an object's size for its identity.

    Examples
    --------
    >>> image = np.zeros((1, 16, 16), np.float32); labels = np.zeros((16, 16), np.int64)
    >>> labels[4:12, 4:12] = 3
    >>> _, zoomed = resize_patch(image, labels, (32, 32))
    >>> zoomed.shape, int((zoomed == 3).sum())
    ((32, 32), 256)
    """
    from skimage.transform import resize

    shape = tuple(int(s) for s in shape)
    if tuple(labels.shape) == shape:
        return image, labels
    resized = resize(image, (image.shape[0], *shape), order=1, preserve_range=True, anti_aliasing=False)
    ids = resize(labels, shape, order=0, preserve_range=True, anti_aliasing=False)
    return resized.astype(np.float32), ids.astype(labels.dtype)


def random_flip_rotate(
    image: np.ndarray, labels: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Randomly flip every spatial axis and rotate by ``k * 90`` degrees in ``yx``.

    When ``y`` and ``x`` have different lengths only ``k`` in ``{0, 2}`` is used,
    so the patch keeps its shape.

    Parameters
    ----------
    image:
        ``[C, *S]`` array.
    labels:
        ``[*S]`` array.
    rng:
        Source of randomness.

    Returns
    -------
    image, labels:
        Contiguous copies (safe for :func:`torch.from_numpy`).
    """
    if tuple(image.shape[1:]) != tuple(labels.shape):
        raise DataError(f"labels: shape {labels.shape} does not match image spatial shape {image.shape[1:]}")
    ndim = labels.ndim
    for axis in range(ndim):
        if rng.random() < 0.5:
            image, labels = np.flip(image, axis + 1), np.flip(labels, axis)
    square = labels.shape[-1] == labels.shape[-2]
    k = int(rng.integers(4)) if square else 2 * int(rng.integers(2))
    if k:
        image, labels = np.rot90(image, k, axes=(-2, -1)), np.rot90(labels, k, axes=(-2, -1))
    return np.ascontiguousarray(image), np.ascontiguousarray(labels)


# ---------------------------------------------------------------------------- torch batches
@dataclass(frozen=True)
class GeometricTransform:
    """Flips of the spatial axes followed by ``k`` 90-degree rotations in ``yx``.

    Attributes
    ----------
    flips:
        One flag per spatial axis (``(y, x)`` or ``(z, y, x)``).
    k:
        Number of counter-clockwise quarter turns in the ``yx`` plane (0-3).

    Examples
    --------
    >>> t = GeometricTransform(flips=(True, False), k=1)
    >>> x = torch.arange(6.0).reshape(1, 1, 2, 3)
    >>> t.apply(x).shape, bool((t.invert(t.apply(x)) == x).all())
    (torch.Size([1, 1, 3, 2]), True)
    """

    flips: tuple[bool, ...]
    k: int = 0

    @classmethod
    def random(cls, spatial_dims: int, generator: torch.Generator) -> GeometricTransform:
        """A uniformly random transform (each flip with probability 1/2, ``k`` in 0-3)."""
        if spatial_dims not in (2, 3):
            raise DataError(f"spatial_dims: must be 2 or 3, got {spatial_dims}")
        draws = torch.randint(0, 2, (spatial_dims,), generator=generator)
        k = int(torch.randint(0, 4, (1,), generator=generator))
        return cls(flips=tuple(bool(d) for d in draws), k=k)

    def _flip_dims(self, t: torch.Tensor) -> list:
        if t.dim() != len(self.flips) + 2:
            raise DataError(
                f"tensor: expected [B, C, *S] with {len(self.flips)} spatial axes, got shape {tuple(t.shape)}"
            )
        first = t.dim() - len(self.flips)
        return [first + i for i, flip in enumerate(self.flips) if flip]

    def apply(self, t: torch.Tensor) -> torch.Tensor:
        """Transform a batch ``[B, C, *S]`` (y and x swap places for odd ``k``)."""
        dims = self._flip_dims(t)
        out = torch.flip(t, dims) if dims else t
        return torch.rot90(out, self.k, dims=(-2, -1)) if self.k % 4 else out

    def invert(self, t: torch.Tensor) -> torch.Tensor:
        """Undo :meth:`apply`: ``invert(apply(t))`` equals ``t`` exactly."""
        dims = self._flip_dims(t)
        out = torch.rot90(t, -self.k, dims=(-2, -1)) if self.k % 4 else t
        return torch.flip(out, dims) if dims else out


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``x [C, *S]`` over its spatial axes (replicate padding)."""
    radius = max(1, int(math.ceil(2.5 * sigma)))
    offsets = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = (kernel / kernel.sum()).view(1, 1, -1)
    out = x
    for dim in range(1, x.dim()):
        moved = out.movedim(dim, -1)
        flat = F.pad(moved.reshape(-1, 1, moved.shape[-1]), (radius, radius), mode="replicate")
        out = F.conv1d(flat, kernel).reshape(moved.shape).movedim(-1, dim)
    return out


def _augment_one(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Intensity augmentation of one sample ``[C, *S]`` (per-channel statistics)."""
    spatial = tuple(range(1, x.dim()))
    low = x.amin(dim=spatial, keepdim=True)
    span = x.amax(dim=spatial, keepdim=True) - low + 1e-6
    std = x.std(dim=spatial, keepdim=True) + 1e-6
    # monotone gamma-like change in [0, 1], mapped back to the original range
    gamma = math.exp(_uniform(generator, -0.3, 0.3))
    out = ((x - low) / span).clamp(0.0, 1.0) ** gamma * span + low
    # contrast around the mean and brightness shift
    mean = out.mean(dim=spatial, keepdim=True)
    out = (out - mean) * _uniform(generator, 0.75, 1.25) + mean + _uniform(generator, -0.15, 0.15) * std
    if float(torch.rand((), generator=generator)) < 0.3:
        out = _gaussian_blur(out, _uniform(generator, 0.3, 1.0))
    noise = torch.randn(x.shape, generator=generator, dtype=torch.float32).to(device=x.device, dtype=x.dtype)
    return out + noise * (_uniform(generator, 0.0, 0.1) * std)


def intensity_augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random intensity augmentation of a batch ``[B, C, *S]``; the input is not modified.

    Per sample: a monotone gamma change (exponent in ``[e^-0.3, e^0.3]``),
    contrast in ``[0.75, 1.25]`` around the mean, a brightness shift of up to
    0.15 standard deviations, a Gaussian blur (sigma 0.3-1.0) with probability
    0.3, and additive Gaussian noise of up to 0.1 standard deviations.

    Parameters
    ----------
    x:
        Float batch on any device.
    generator:
        A CPU :class:`torch.Generator`; all random numbers come from it, so the
        result depends only on its state.

    Returns
    -------
    torch.Tensor
        New tensor of the shape, dtype and device of ``x``.
    """
    if x.dim() < 3 or not x.is_floating_point():
        raise DataError(f"x: expected a float tensor [B, C, *S], got {x.dtype} of shape {tuple(x.shape)}")
    return torch.stack([_augment_one(sample, generator) for sample in x])
