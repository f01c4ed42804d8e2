"""U-Net that maps an image to a per-pixel embedding, for 2D and 3D.

This file imports nothing but ``torch`` on purpose: it is shipped verbatim as
the architecture source of exported bioimage.io packages
(``pytorch_state_dict`` weights), so a consumer can rebuild the network
without installing spoco-zoo.

Valid input sizes
-----------------
Every spatial extent must be a multiple of ``2 ** depth`` (``depth`` pooling
steps), e.g. 16 for the default ``depth=4``. Use :meth:`UNet.valid_shape` to
round a shape up, or pad the input. The output has the input's spatial shape.
"""

from __future__ import annotations

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
    """2x transposed-convolution up-sampling, concatenation with the skip, ConvBlock."""

    def __init__(self, spatial_dims: int, cin: int, cout: int, norm: str, num_groups: int) -> None:
        super().__init__()
        up = nn.ConvTranspose2d if spatial_dims == 2 else nn.ConvTranspose3d
        self.upsample = up(cin, cout, kernel_size=2, stride=2)
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

    Examples
    --------
    >>> net = UNet(in_channels=1, out_channels=16, spatial_dims=2, depth=2, base_features=8)
    >>> net(torch.zeros(1, 1, 32, 32)).shape
    torch.Size([1, 16, 32, 32])
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 16,
        spatial_dims: int = 2,
        depth: int = 4,
        base_features: int = 16,
        norm: str = "group",
        num_groups: int = 8,
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        if norm not in _NORMS:
            raise ValueError(f"norm must be one of {_NORMS}, got {norm!r}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.spatial_dims = spatial_dims
        self.depth = depth
        widths = [base_features * 2**level for level in range(depth + 1)]

        self.encoders = nn.ModuleList()
        cin = in_channels
        for width in widths:
            self.encoders.append(ConvBlock(spatial_dims, cin, width, norm, num_groups))
            cin = width
        pool = nn.MaxPool2d if spatial_dims == 2 else nn.MaxPool3d
        self.pool = pool(2)

        self.decoders = nn.ModuleList(
            UpBlock(spatial_dims, widths[level + 1], widths[level], norm, num_groups)
            for level in reversed(range(depth))
        )
        self.head = _conv(spatial_dims, widths[0], out_channels, 1)

    @property
    def size_step(self) -> int:
        """Every spatial extent of the input must be a multiple of this."""
        return 1 << self.depth

    def valid_shape(self, shape: Sequence[int]) -> list[int]:
        """Round each spatial extent in ``shape`` up to the next valid size."""
        step = self.size_step
        return [((int(s) + step - 1) // step) * step for s in shape]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips: list[torch.Tensor] = []
        for i, encoder in enumerate(self.encoders):
            x = encoder(x)
            if i < self.depth:
                skips.append(x)
                x = self.pool(x)
        for i, decoder in enumerate(self.decoders):
            x = decoder(x, skips[len(skips) - 1 - i])
        return self.head(x)
