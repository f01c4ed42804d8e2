"""Receptive field of the U-Net and the halo a tiled prediction needs.

Two numbers, one rule (``docs/design.md``, "Sizes and halo"):

* the **theoretical reach** :func:`unet_reach`: how far (pixels, one side) an input pixel can
  influence an output pixel at all. Every 3x3 convolution at level ``l`` (down-sampled by
  ``2**l``) reaches ``2**l`` pixels per side, max pooling and the 2x transposed convolutions add
  at most ``2**l - 1`` for the pooling-grid alignment; for ``depth`` levels with two convolutions
  per block this sums to ``7 * 2**depth - 5`` (107 px for the default depth 4). Cropping an
  image at that distance changes nothing (BatchNorm in eval mode and no normalisation are
  per-pixel affine; group/instance normalisation are not, see :mod:`spoco_zoo.inference`);
* the **effective halo** :func:`measure_halo`: the smallest context (a multiple of the size step)
  for which cutting off everything beyond it changes the embeddings of the core by at most
  ``tolerance`` -- measured on the actual weights with synthetic images, because trained networks
  put little weight on their far receptive field.

:func:`package_halo` is what the exporter and ``spoco-zoo segment`` use: the effective halo with
``tolerance = 0.001`` embedding units (the clustering bandwidth is ``delta_var`` = 0.5; with 0.01,
labels of crowded images already changed at a few boundary pixels), never more than the
theoretical reach rounded up to the size step. Measured: trained depth-2 and depth-4 networks need
nearly their whole reach (depth 4: 96 px of 107; the error at 80 px is still 0.04). Windows
are aligned to multiples of the size step, so max pooling sees the same grid in every tile.

Imports numpy and torch only (the synthetic images come from :mod:`spoco_zoo.data.synthetic`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

__all__ = [
    "HALO_TOLERANCE",
    "MAX_PROBE_VOXELS",
    "unet_reach",
    "unet_reaches",
    "round_halo",
    "HaloMeasurement",
    "measure_halo",
    "gradient_reach",
    "package_halo",
]

#: Largest change of the embeddings (absolute, embedding units) that cutting the context may cause.
HALO_TOLERANCE = 1e-3
#: Largest probe image (pixels / voxels) :func:`package_halo` runs the network on.
#: 2^21: a 3D depth-4 network is probed up to a halo of 48 voxels (128^3 probes, about 30 s on 2 CPU cores
#: at the end of training; 4x as long with 160^3 probes for a halo of 64). 2D probes stay far below it.
MAX_PROBE_VOXELS = 1 << 21


def unet_reach(depth: int, convs_per_block: int = 2, kernel_size: int = 3, unpooled_levels: int = 0) -> int:
    """Theoretical one-sided reach of the spoco-zoo U-Net, in input pixels, along one axis.

    Parameters
    ----------
    depth:
        Down-sampling steps (``UNet.depth``).
    convs_per_block, kernel_size:
        Convolutions per block and their kernel size (2 and 3 in :class:`spoco_zoo.models.unet.UNet`).
    unpooled_levels:
        The first this many down-sampling steps leave this axis alone (``z`` of a network with
        ``anisotropic_levels``).

    Examples
    --------
    >>> unet_reach(4), unet_reach(2), unet_reach(4, unpooled_levels=2)
    (107, 23, 31)
    """
    per_conv = (kernel_size - 1) // 2
    scales = [1 << max(0, level - int(unpooled_levels)) for level in range(int(depth) + 1)]
    # encoder + decoder blocks at levels 0..depth-1, the bottom block at level depth
    convs = convs_per_block * per_conv * (2 * sum(scales[:-1]) + scales[-1])
    alignment = scales[-1] - 1  # pooling windows and transposed convolutions: at most 2**l - 1 per level
    return convs + alignment


def unet_reaches(depth: int, spatial_dims: int, anisotropic_levels: int = 0) -> tuple[int, ...]:
    """:func:`unet_reach` per spatial axis (``z`` first): ``z`` of an anisotropic network reaches less.

    >>> unet_reaches(4, 3, anisotropic_levels=1)
    (55, 107, 107)
    """
    return tuple(
        unet_reach(depth, unpooled_levels=anisotropic_levels if axis == 0 else 0) for axis in range(spatial_dims)
    )


def round_halo(halo: int, step: int) -> int:
    """``halo`` rounded up to a multiple of ``step`` (windows stay on the pooling grid).

    >>> round_halo(37, 16), round_halo(0, 16)
    (48, 0)
    """
    step = int(step)
    return -(-max(0, int(halo)) // step) * step


@dataclass
class HaloMeasurement:
    """Result of :func:`measure_halo`.

    Attributes
    ----------
    halo:
        Smallest tested halo whose error, and that of every larger tested halo, is ``<= tolerance``;
        the largest tested halo when none is.
    errors:
        Tested halo -> largest absolute change of the core's embeddings. :func:`measure_halo` tests from
        the largest halo down and stops at the first above ``tolerance``: smaller halos are not tested.
    tolerance:
        The bound used.
    """

    halo: int
    errors: dict[int, float] = field(default_factory=dict)
    tolerance: float = HALO_TOLERANCE


@torch.no_grad()
def measure_halo(
    model: nn.Module,
    images: list[np.ndarray],
    step: int,
    max_halo: int,
    tolerance: float = HALO_TOLERANCE,
) -> HaloMeasurement:
    """Measure the context a tile needs: predict a core with halo ``h`` and compare with the whole image.

    Parameters
    ----------
    model:
        Network in eval mode, ``[1, C, *S] -> [1, E, *S]``, on the CPU.
    images:
        Normalised images ``[C, *S]`` with every extent ``>= 2 * max_halo + 2 * step`` and a
        multiple of ``step``.
    step:
        The size step (``2 ** depth``); tested halos are its multiples.
    max_halo:
        Largest halo tested (a multiple of ``step``).
    tolerance:
        Allowed absolute change of the embeddings.

    Returns
    -------
    HaloMeasurement
    """
    core = 2 * step
    halos = list(range(step, max_halo + 1, step)) or [max_halo]
    probes = []  # (image, the whole image's core, where the core lies)
    for image in images:
        x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None]
        centre = [((s - core) // 2 // step) * step for s in image.shape[1:]]
        probes.append((x, model(x)[0][(slice(None),) + tuple(slice(c, c + core) for c in centre)], centre))
    # from the largest halo down: the first that changes the core too much ends the search (the halo is the
    # next larger one); a window that is the whole image changes nothing and is not predicted again
    errors: dict[int, float] = {}
    halo = halos[-1]
    for h in reversed(halos):
        errors[h] = 0.0
        for x, ref, centre in probes:
            window = tuple(slice(c - h, c + core + h) for c in centre)
            if all(w.start == 0 and w.stop == n for w, n in zip(window, x.shape[2:])):
                continue
            out = model(x[(slice(None), slice(None)) + window])[0]
            got = out[(slice(None),) + tuple(slice(h, h + core) for _ in centre)]
            errors[h] = max(errors[h], float((got - ref).abs().max()))
        if errors[h] > tolerance:
            break
        halo = h
    return HaloMeasurement(halo, dict(sorted(errors.items())), tolerance)


def gradient_reach(model: nn.Module, in_channels: int, spatial_dims: int, size: int) -> int:
    """Farthest input pixel (one side, along the last axis) with a non-zero gradient on the centre output.

    Measures the theoretical receptive field of a network in eval mode: ``size`` (a valid input
    extent) must exceed twice the reach.
    """
    x = torch.randn((1, in_channels) + (size,) * spatial_dims, requires_grad=True)
    out = model(x)
    centre = (size // 2,) * spatial_dims
    out[(0, slice(None)) + centre].sum().backward()
    assert x.grad is not None
    grad = x.grad[0].abs().sum(dim=0)
    while grad.ndim > 1:
        grad = grad.sum(dim=0)
    nonzero = torch.nonzero(grad > 0)[:, 0]
    return int(max(centre[-1] - int(nonzero.min()), int(nonzero.max()) - centre[-1]))


def package_halo(
    model: nn.Module,
    spatial_dims: int,
    in_channels: int,
    tolerance: float = HALO_TOLERANCE,
    seed: int = 0,
) -> tuple[int, ...]:
    """The halo of a spoco-zoo network per spatial axis: measured on two synthetic images, capped by the reach.

    The probe images come from :func:`spoco_zoo.data.synthetic.make_synthetic_sample` (objects of
    the training data's size), normalised to ``[0, 1]``; extra channels are scaled copies. For 3D
    networks the probe is kept below :data:`MAX_PROBE_VOXELS` voxels, which may lower the largest
    tested halo. The halo is measured with the context cut along every axis at once; an axis that
    reaches less (``z`` of a network with ``anisotropic_levels``) gets at most its own reach,
    rounded up to its size step.

    Returns
    -------
    tuple of int
        One halo per spatial axis, each a multiple of the size step, at least one step.
    """
    from spoco_zoo.data.synthetic import make_synthetic_sample

    depth = int(getattr(model, "depth", 0)) or 1  # UNet.depth (an int attribute)
    step = 1 << depth
    reach = round_halo(unet_reach(depth), step)
    max_halo = reach
    while max_halo > step and (2 * max_halo + 2 * step) ** spatial_dims > MAX_PROBE_VOXELS:
        max_halo -= step
    size = 2 * max_halo + 2 * step
    images = []
    for k in range(2):
        image, _ = make_synthetic_sample((size,) * spatial_dims, max(4, size * size // 1600), seed + k)
        image = np.asarray(image, np.float32)
        image = (image - image.min()) / max(float(image.max() - image.min()), 1e-6)
        images.append(np.stack([image * (1.0 + 0.25 * c) for c in range(in_channels)]))
    halo = max(step, measure_halo(model.eval(), images, step, max_halo, tolerance).halo)
    reaches = unet_reaches(depth, spatial_dims, int(getattr(model, "anisotropic_levels", 0)))
    return tuple(min(halo, round_halo(reach, step)) for reach in reaches)
