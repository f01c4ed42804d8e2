"""U-Net that maps an image to a per-pixel embedding, for 2D and 3D.

This file imports nothing but ``torch`` on purpose: it is shipped verbatim as
the architecture source of exported bioimage.io packages
(``pytorch_state_dict`` weights), so a consumer can rebuild the network
without installing spoco-zoo. No ``from __future__ import annotations``: the exporter
concatenates this file with ``cluster/graph.py`` into the instances packages' architecture file,
and string annotations there stop TorchScript from scripting ``GraphInstances`` (it would trace,
unrolling every loop; ``tests/test_export.py``).

Valid input sizes
-----------------
Every spatial extent must be a multiple of ``2 ** depth`` (``depth`` pooling
steps), e.g. 16 for the default ``depth=4``. Use :meth:`UNet.valid_shape` to
round a shape up, or pad the input. The output has the input's spatial shape.
(A 3D network with ``anisotropic_levels`` pools ``z`` fewer times; its ``z``
extent need only be a multiple of :attr:`UNet.size_steps` ``[0]``, and
``2 ** depth`` is valid for every axis.)

Anisotropic volumes
-------------------
Stacks whose ``z`` step is several times the pixel size are pooled in ``y`` and
``x`` only (``(1, 2, 2)``) for the first ``anisotropic_levels`` levels, until
the voxels are near-isotropic, and in all three axes below.
"""

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["UNet"]

_NORMS = ("batch", "group", "instance", "none")


def _conv(spatial_dims: int, cin: int, cout: int, kernel_size: int) -> nn.Module:
    conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
    return conv(cin, cout, kernel_size, padding=kernel_size // 2)


def _norm(spatial_dims: int, norm: str, channels: int, num_groups: int) -> nn.Module:
    if norm == "batch":
        return nn.BatchNorm2d(channels) if spatial_dims == 2 else nn.BatchNorm3d(channels)
    if norm == "instance":
        cls = nn.InstanceNorm2d if spatial_dims == 2 else nn.InstanceNorm3d
        return cls(channels, affine=True)
    if norm == "group":
        groups = max(1, min(num_groups, channels))
        while channels % groups:
            groups -= 1
        return nn.GroupNorm(groups, channels)
    return nn.Identity()


class ConvBlock(nn.Sequential):
    """Two ``conv -> norm -> ReLU`` layers with 'same' padding."""

    def __init__(self, spatial_dims: int, cin: int, cout: int, norm: str, num_groups: int) -> None:
        super().__init__(
            _conv(spatial_dims, cin, cout, 3),
            _norm(spatial_dims, norm, cout, num_groups),
            nn.ReLU(inplace=True),
            _conv(spatial_dims, cout, cout, 3),
            _norm(spatial_dims, norm, cout, num_groups),
            nn.ReLU(inplace=True),
        )


class UpBlock(nn.Module):
    """Transposed-convolution up-sampling by ``factor`` (2 per axis, or ``(1, 2, 2)``), concatenation
    with the skip, ConvBlock."""

    def __init__(
        self,
        spatial_dims: int,
        cin: int,
        cout: int,
        norm: str,
        num_groups: int,
        factor: int | tuple[int, int, int] = 2,
    ) -> None:
        super().__init__()
        self.upsample: nn.Module
        if spatial_dims == 2:
            self.upsample = nn.ConvTranspose2d(cin, cout, kernel_size=2, stride=2)
        else:
            self.upsample = nn.ConvTranspose3d(cin, cout, kernel_size=factor, stride=factor)
        self.block = ConvBlock(spatial_dims, 2 * cout, cout, norm, num_groups)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.block(torch.cat([skip, self.upsample(x)], dim=1))


class UNet(nn.Module):
    """Encoder-decoder network with skip connections producing pixel embeddings.

    Parameters
    ----------
    in_channels:
        Number of image channels ``C`` of the input ``[B, C, *spatial]``.
    out_channels:
        Embedding dimension ``E`` of the output ``[B, E, *spatial]``.
    spatial_dims:
        2 for ``yx`` images, 3 for ``zyx`` volumes.
    depth:
        Number of 2x down-sampling steps; spatial sizes must be multiples of
        ``2 ** depth``.
    base_features:
        Feature maps at the finest level; doubled at every level down.
    norm:
        ``"group"`` (default, independent of batch size), ``"batch"``,
        ``"instance"`` or ``"none"``.
    num_groups:
        Groups for group normalisation (reduced to a divisor of the width).
    anisotropic_levels:
        3D only: the first this many down-sampling steps pool ``y`` and ``x`` only
        (``(1, 2, 2)``), for volumes whose ``z`` step is larger than the pixel size.

    Examples
    --------
    >>> net = UNet(in_channels=1, out_channels=16, spatial_dims=2, depth=2, base_features=8)
    >>> net(torch.zeros(1, 1, 32, 32)).shape
    torch.Size([1, 16, 32, 32])
    >>> net = UNet(spatial_dims=3, depth=2, base_features=4, anisotropic_levels=1)
    >>> net.size_steps, net(torch.zeros(1, 1, 8, 16, 16)).shape
    ((2, 4, 4), torch.Size([1, 16, 8, 16, 16]))
    """

    __jit_unused_properties__ = ["size_steps"]  # TorchScript compiles properties; this one is Python's only

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 16,
        spatial_dims: int = 2,
        depth: int = 4,
        base_features: int = 16,
        norm: str = "group",
        num_groups: int = 8,
        anisotropic_levels: int = 0,
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        if norm not in _NORMS:
            raise ValueError(f"norm must be one of {_NORMS}, got {norm!r}")
        if not 0 <= anisotropic_levels <= depth or (anisotropic_levels and spatial_dims != 3):
            raise ValueError(f"anisotropic_levels must be 0 (2D) or 0..depth (3D), got {anisotropic_levels}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.spatial_dims = spatial_dims
        self.depth = depth
        self.anisotropic_levels = anisotropic_levels
        factors: list[int | tuple[int, int, int]] = [
            (1, 2, 2) if level < anisotropic_levels else 2 for level in range(depth)
        ]
        widths = [base_features * 2**level for level in range(depth + 1)]

        self.encoders = nn.ModuleList()
        cin = in_channels
        for width in widths:
            self.encoders.append(ConvBlock(spatial_dims, cin, width, norm, num_groups))
            cin = width
        pool = nn.MaxPool2d if spatial_dims == 2 else nn.MaxPool3d
        self.pools = nn.ModuleList(pool(factor) for factor in factors)

        self.decoders = nn.ModuleList(
            UpBlock(spatial_dims, widths[level + 1], widths[level], norm, num_groups, factors[level])
            for level in reversed(range(depth))
        )
        self.head = _conv(spatial_dims, widths[0], out_channels, 1)

    @property
    def size_step(self) -> int:
        """A multiple of this is a valid extent along every spatial axis (``2 ** depth``)."""
        return 1 << self.depth

    @property
    def size_steps(self) -> tuple[int, ...]:
        """The smallest size step per spatial axis: ``z`` of an anisotropic network is pooled fewer times."""
        steps = [1 << self.depth] * self.spatial_dims
        steps[0] = 1 << (self.depth - self.anisotropic_levels)
        return tuple(steps)

    def valid_shape(self, shape: Sequence[int]) -> list[int]:
        """Round each spatial extent in ``shape`` up to the next valid size."""
        step = self.size_step
        return [((int(s) + step - 1) // step) * step for s in shape]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips: list[torch.Tensor] = []
        for encoder, pool in zip(self.encoders, self.pools):
            x = encoder(x)
            skips.append(x)
            x = pool(x)
        x = self.encoders[-1](x)
        for i, decoder in enumerate(self.decoders):
            x = decoder(x, skips[len(skips) - 1 - i])
        return self.head(x)
