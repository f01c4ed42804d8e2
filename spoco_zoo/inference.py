"""Tiled prediction of pixel embeddings with a halo, and embeddings -> instances.

:func:`predict_embeddings` runs a network over an image of any size in
overlapping tiles and stitches the results seamlessly:

* the image is cut into *cores* of ``tile_shape`` (rounded up to a multiple of
  ``size_step``); each core is predicted from a window that adds up to ``halo``
  of context on each side (:func:`tile_window`);
* context is only taken from the image itself: at the image border a window
  stops, and the network pads there exactly as in a single whole-image pass
  and as in training (its own zero padding; only the end of each axis is
  reflect-padded to a multiple of ``size_step``). Invented context (a reflected
  halo at the border) changed the embeddings of every pixel within the
  receptive field and cost 0.04-0.05 SBD;
* only the core of each window is written to the output.

Every window starts at a multiple of ``size_step``, the same grid as a single
whole-image pass, so a U-Net (whose pooling makes it shift-equivariant only by
multiples of ``2 ** depth``) sees each core exactly as it would in one pass.
Tiled and untiled outputs then agree up to the context cut off beyond the halo
(a U-Net's receptive field is wide, but the weight of its far edge is small:
the halo measured on the trained weights,
:func:`spoco_zoo.models.receptive_field.package_halo`, keeps it below 1e-3 on
its probe images; on other images the seams can differ more, 0.09 for the
quickstart model's 512-pixel tiles, with the same labels).

.. note::
   Networks with **group or instance normalisation** (``norm="group"``, the
   spoco-zoo default before BatchNorm became it) normalise with statistics of the whole input window, so
   their output depends on the tile size and tiled results differ from a
   single pass (and between tile sizes). Networks with ``norm="batch"`` in eval
   mode (running statistics) or ``norm="none"`` are tile-size independent.
   For group/instance norm models prefer ``tile_shape=None`` (one pass) when
   memory allows, or tiles close to the training patch size.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from spoco_zoo.devices import resolve_device
from spoco_zoo.progress import ProgressBar
from spoco_zoo.shapes import pad_spatial, valid_size

__all__ = [
    "tile_grid",
    "tile_window",
    "predict_embeddings",
    "inference_copy",
    "automatic_tile_shape",
    "AUTO_TILE_PIXELS",
    "AUTO_TILE_CORE",
]

#: Images with more pixels (voxels) than this are predicted in tiles when no tile size is given:
#: a whole-image pass of the default U-Net holds ~0.5 kB of activations per pixel (8.5 GB peak at
#: 4096x4096). With BatchNorm in eval mode and the measured halo, tiles give the same embeddings.
AUTO_TILE_PIXELS = 2048 * 2048
#: Tile core per axis chosen then (2D, 3D).
AUTO_TILE_CORE = {2: 1024, 3: 128}

Model = Callable[[torch.Tensor], torch.Tensor]


def automatic_tile_shape(spatial_shape: Sequence[int], size_step: int = 1) -> tuple[int, ...] | None:
    """Tile core for predicting an image of ``spatial_shape``; ``None`` (whole image) when it is small.

    Parameters
    ----------
    spatial_shape : sequence of int
        ``(y, x)`` or ``(z, y, x)``.
    size_step : int
        The network's size step; the tile is a multiple of it.

    Examples
    --------
    >>> automatic_tile_shape((2048, 2048)) is None
    True
    >>> automatic_tile_shape((4096, 3000), size_step=16)
    (1024, 1024)
    >>> automatic_tile_shape((40, 1024, 1024), size_step=16)
    (48, 128, 128)
    """
    if math.prod(spatial_shape) <= AUTO_TILE_PIXELS:
        return None
    core = AUTO_TILE_CORE.get(len(spatial_shape), 1024)
    step = max(1, int(size_step))
    return tuple(min(-(-int(n) // step) * step, max(step, core // step * step)) for n in spatial_shape)


def _per_axis(value: int | Sequence[int], ndim: int, name: str) -> tuple[int, ...]:
    if isinstance(value, (int, np.integer)):
        values = (int(value),) * ndim
    else:
        values = tuple(int(v) for v in value)
        if len(values) == 1:
            values = values * ndim
    if len(values) != ndim:
        raise ValueError(f"{name}: expected 1 or {ndim} values (one per spatial axis), got {list(values)}")
    return values


def tile_grid(
    spatial_shape: Sequence[int],
    tile_shape: Sequence[int] | None,
    halo: int | Sequence[int],
    size_step: int = 1,
) -> dict[str, Any]:
    """The tiling :func:`predict_embeddings` uses.

    Parameters
    ----------
    spatial_shape:
        Image shape ``S`` without the channel axis.
    tile_shape:
        Core size per axis (``None``: one core covering the image).
    halo:
        Context added on each side of a core, per axis or one int (rounded up to a multiple
        of ``size_step``; none with one core).
    size_step:
        Every window extent must be a multiple of this (``2 ** depth`` for a U-Net).

    Returns
    -------
    dict
        ``core`` (core shape), ``halo`` (per axis), ``counts`` (cores per axis), ``pad``
        (``(0, after)`` per axis: the reflect padding that makes the image a multiple of
        ``size_step``) and ``n_tiles``. The window of each core is :func:`tile_window`.
    """
    shape = tuple(int(s) for s in spatial_shape)
    ndim = len(shape)
    if ndim < 1 or min(shape) < 1:
        raise ValueError(f"image: empty spatial shape {shape}")
    step = int(size_step)
    if step < 1:
        raise ValueError(f"size_step must be >= 1, got {size_step}")
    halos = _per_axis(halo, ndim, "halo")
    if min(halos) < 0:
        raise ValueError(f"halo must be >= 0, got {list(halos)}")
    if tile_shape is None:
        tiles = shape
    else:
        tiles = _per_axis(tile_shape, ndim, "tile_shape")
        if min(tiles) < 1:
            raise ValueError(f"tile_shape must be positive, got {list(tiles)}")
    core = tuple(min(valid_size(t, step), valid_size(s, step)) for t, s in zip(tiles, shape))
    counts = tuple(math.ceil(s / c) for s, c in zip(shape, core))
    return {
        "core": core,
        "halo": tuple(valid_size(h, step) for h in halos),
        "counts": counts,
        "pad": tuple((0, valid_size(s, step) - s) for s in shape),
        "n_tiles": int(np.prod(counts)),
    }


def tile_window(
    core: Sequence[slice], halo: Sequence[int], spatial_shape: Sequence[int], size_step: int = 1
) -> tuple[slice, ...]:
    """The network input of one tile: its core grown by up to ``halo`` of the image's own context.

    The halo is rounded up to a multiple of ``size_step``. A window never reaches before the
    image or past its end rounded up to ``size_step`` (that last part is the reflect padding of a
    whole-image pass); it is a multiple of ``size_step`` long, taking the rounding from the far
    side (or the near side at the image end), and it starts on the ``size_step`` grid when the
    core does.

    Parameters
    ----------
    core:
        The core's slice per spatial axis (starts on the ``size_step`` grid).
    halo:
        Context per side and axis (at most; rounded up to ``size_step``).
    spatial_shape:
        Image shape ``S``.
    size_step:
        The network's size step.

    Examples
    --------
    >>> tile_window((slice(0, 16), slice(32, 48)), (8, 16), (40, 100), 8)
    (slice(0, 24, None), slice(16, 64, None))
    >>> tile_window((slice(32, 40),), (16,), (37,), 8)  # image end: 37 rounds up to 40
    (slice(16, 40, None),)
    >>> tile_window((slice(16, 24),), (3,), (64,), 8)  # a halo of 3 is one step of 8
    (slice(8, 32, None),)
    """
    out = []
    step = int(size_step)
    for c, h, s in zip(core, halo, spatial_shape):
        end = valid_size(int(s), step)
        context = valid_size(int(h), step)  # on the network's pooling grid
        start, stop = max(0, int(c.start) - context), min(end, int(c.stop) + context)
        length = min(end, valid_size(stop - start, step))
        stop = min(end, start + length)
        out.append(slice(stop - length, stop))
    return tuple(out)


def _tile_origins(counts: Sequence[int], core: Sequence[int]) -> Iterator[tuple[int, ...]]:
    for index in itertools.product(*(range(n) for n in counts)):
        yield tuple(i * c for i, c in zip(index, core))


def inference_copy(model: torch.nn.Module, spatial_dims: int) -> torch.nn.Module:
    """A copy of ``model`` made faster for CPU inference; ``model`` itself is untouched.

    * In eval mode, every ``Conv -> BatchNorm`` pair of an ``nn.Sequential`` is folded into one
      convolution (``torch.nn.utils.fusion.fuse_conv_bn_eval``): one pass over the activations less
      per layer, the same function up to float rounding (~1e-6).
    * The weights are put in channels-last memory order, which CPU convolutions run ~1.3x faster
      (measured on the default 2D U-Net at 2048x2048).

    The copy keeps the caller's model, e.g. a network in training, as it was.
    """
    import copy

    from torch.nn.utils.fusion import fuse_conv_bn_eval

    from spoco_zoo.models.memory_order import to_channels_last

    fast = copy.deepcopy(model)
    if not fast.training:
        for seq in [m for m in fast.modules() if isinstance(m, torch.nn.Sequential)]:
            for i in range(len(seq) - 1):
                conv, norm = seq[i], seq[i + 1]
                if (
                    isinstance(conv, (torch.nn.Conv2d, torch.nn.Conv3d))
                    and isinstance(norm, (torch.nn.BatchNorm2d, torch.nn.BatchNorm3d))
                    and norm.track_running_stats
                ):
                    seq[i] = fuse_conv_bn_eval(conv, norm)
                    seq[i + 1] = torch.nn.Identity()
    return to_channels_last(fast, spatial_dims)


def predict_embeddings(
    model: Model,
    image: np.ndarray,
    tile_shape: Sequence[int] | None = None,
    halo: int | Sequence[int] = 16,
    size_step: int | None = None,
    device: None | str | torch.device = "auto",
    progress: bool = False,
) -> np.ndarray:
    """Pixel embeddings of a whole image, predicted in overlapping tiles.

    Parameters
    ----------
    model:
        Callable ``[1, C, *T] -> [1, E, *T]`` (a torch module is moved to
        ``device`` and used as is -- put it in eval mode first; ``load_model``
        does).
    image:
        Normalised image ``[C, y, x]`` or ``[C, z, y, x]``.
    tile_shape:
        Core of each tile per spatial axis; each core is predicted with ``halo``
        of context on each side. ``None`` (or a tile at least as large as the
        image): one pass over the whole (padded) image.
    halo:
        Context per side, one int or one per axis, taken from the image only
        (none beyond its borders, as in a whole-image pass; ignored for one
        pass).
    size_step:
        Every network input extent is a multiple of this; default
        ``model.size_step`` when the model has it, else 1.
    device:
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
    progress:
        Show a rich progress bar over the tiles (on stderr).

    Returns
    -------
    numpy.ndarray
        float32 ``[E, *S]`` with the image's spatial shape ``S``.

    Raises
    ------
    ValueError
        Bad image shape, tile or halo lengths not matching the spatial axes,
        a network output whose spatial shape differs from its input.

    Notes
    -----
    Group / instance normalisation makes the output depend on the tile size
    (see the module docstring); tiled equals untiled (to ~1e-5) only for
    networks without per-sample statistics.
    """
    image = np.asarray(image)
    if image.ndim not in (3, 4):
        raise ValueError(f"image: expected [C, y, x] or [C, z, y, x], got shape {image.shape}")
    if size_step is None:
        size_step = int(getattr(model, "size_step", 1))
    grid = tile_grid(image.shape[1:], tile_shape, halo, size_step)
    dev = resolve_device(device)
    if isinstance(model, torch.nn.Module):
        model = model.to(dev)
        if dev.type == "cpu":
            model = inference_copy(model, image.ndim - 1)
    padded = pad_spatial(np.asarray(image, dtype=np.float32), grid["pad"])
    core, halos = grid["core"], grid["halo"]
    shape = image.shape[1:]
    out: torch.Tensor | None = None
    bar = ProgressBar(
        "predict tiles", grid["n_tiles"], enabled=progress and grid["n_tiles"] > 1, stderr=True, transient=True
    )
    with torch.no_grad(), bar:
        for origin in _tile_origins(grid["counts"], core):
            cut = tuple(slice(o, o + c) for o, c in zip(origin, core))
            window = tile_window(cut, halos, shape, size_step)
            x = torch.from_numpy(np.ascontiguousarray(padded[(slice(None),) + window]))[None].to(dev)
            y = model(x)
            if tuple(y.shape[2:]) != tuple(x.shape[2:]) or y.shape[0] != 1:
                raise ValueError(
                    f"model: output shape {tuple(y.shape)} does not match input {tuple(x.shape)} "
                    "(expected [1, E, *same spatial shape])"
                )
            if out is None:  # torch's allocator: large buffers fault in several times faster than numpy's
                out = torch.empty((y.shape[1],) + tuple(shape), dtype=torch.float32)
            # core within the window, clipped at the image end
            stop = tuple(min(o + c, s) for o, c, s in zip(origin, core, shape))
            src = (slice(None),) + tuple(slice(o - w.start, e - w.start) for o, e, w in zip(origin, stop, window))
            dst = (slice(None),) + tuple(slice(o, e) for o, e in zip(origin, stop))
            out[dst] = y[0][src].detach().float().cpu()  # also reorders channels-last to [E, *S]
            bar.advance()
    assert out is not None
    return out.numpy()
