"""Segment an image or volume of any size block by block: network, clustering, stitching.

:func:`segment_volume` never holds the embeddings of the whole image:

1. **statistics** for the normalisation (:func:`sampled_statistics`; exact for images up to
   :data:`MAX_STATISTICS_VALUES` values, from evenly spaced planes beyond);
2. **network**: the image is cut into tiles (whole clustering blocks); each tile is predicted
   with up to ``halo`` pixels of the image's own context (none beyond the image border,
   exactly as one whole-image pass: :func:`spoco_zoo.inference.tile_window`;
   :class:`TilePredictor` calls :func:`spoco_zoo.inference.predict_embeddings`) and its
   embeddings are written to a store chunked by clustering block;
3. **labels** (:func:`label_embeddings`): :func:`spoco_zoo.cluster.pipeline.segment_blocks`
   clusters every block's window (:class:`WindowClusterer`) and stitches, splits and cleans
   the labels block by block.

With a ``client`` (``dask.distributed``) every step runs as tasks on its workers and all
stores are Zarr arrays in ``work_dir`` (which the workers must see): memory is bounded by the
block and tile sizes, whatever the image size. Without one, the steps run here and the
stores are in memory.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spoco_zoo.cluster.blockwise import Block, block_grid
from spoco_zoo.cluster.clustering_setting import ClusteringSetting
from spoco_zoo.cluster.common import split_foreground
from spoco_zoo.cluster.instances import WindowClustering
from spoco_zoo.cluster.pipeline import Mapper, MemoryWindows, WindowStore, segment_blocks, serial_map
from spoco_zoo.config import NormalizationConfig
from spoco_zoo.data.normalize import channel_statistics
from spoco_zoo.errors import DataError
from spoco_zoo.inference import AUTO_TILE_CORE, predict_embeddings, tile_window
from spoco_zoo.shapes import valid_size

__all__ = [
    "MAX_STATISTICS_VALUES",
    "ImageSource",
    "sampled_statistics",
    "default_tile",
    "effective_block",
    "TilePredictor",
    "WindowClusterer",
    "ZarrWindows",
    "dask_mapper",
    "segment_volume",
    "label_embeddings",
]

#: Images with at most this many values per channel get exact normalisation statistics.
MAX_STATISTICS_VALUES = 2**25
#: Embeddings larger than this go to a Zarr store on disk even without a Dask client.
MAX_EMBEDDING_BYTES = 512 * 1024**2


@dataclass(frozen=True)
class ImageSource:
    """An image ``[C, *S]`` or ``[*S]`` (numpy or zarr) read region by region as float32 ``[C, *region]``."""

    array: Any
    channel_axis: bool

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        """``S``."""
        shape = tuple(int(s) for s in self.array.shape)
        return shape[1:] if self.channel_axis else shape

    def read(self, region: Sequence[slice]) -> np.ndarray:
        """float32 ``[C, *region]``."""
        if self.channel_axis:
            return np.asarray(self.array[(slice(None),) + tuple(region)], dtype=np.float32)
        return np.asarray(self.array[tuple(region)], dtype=np.float32)[None]


def sampled_statistics(source: ImageSource, cfg: NormalizationConfig) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel ``(offset, scale)`` of :func:`spoco_zoo.data.normalize.channel_statistics`.

    Exact when the image has at most :data:`MAX_STATISTICS_VALUES` pixels; otherwise computed
    on evenly spaced planes of the first axis holding about that many.
    """
    shape = source.spatial_shape
    stride = max(1, math.ceil(math.prod(shape) / MAX_STATISTICS_VALUES))
    rest = tuple(slice(None) for _ in shape[1:])
    planes = [source.read((slice(i, i + 1),) + rest) for i in range(0, shape[0], stride)]
    return channel_statistics(np.concatenate(planes, axis=1), cfg)


def default_tile(
    block_shape: Sequence[int], spatial_shape: Sequence[int], tile: Sequence[int] | None
) -> tuple[int, ...]:
    """Prediction tile: ``tile`` (default: :data:`spoco_zoo.inference.AUTO_TILE_CORE` per axis, the
    automatic tile of the in-memory route) rounded up to whole blocks, at most the image.

    In 3D a cube is the cheapest tile for its memory: with the 3D accuracy model's 64-voxel halo,
    128^3 cores of a 128x512x512 volume predict as many voxels in all as 64x256x256 cores (about
    3.1x the volume) in windows of 8.4 M voxels instead of 13.1 M (about 3.4 GB of activations
    instead of 5.3 GB).

    >>> default_tile((256, 256), (3000, 3000), None), default_tile((32, 64, 64), (40, 100, 900), (10, 64, 100))
    ((1024, 1024), (32, 64, 128))
    >>> default_tile((32, 64, 64), (128, 512, 512), None)
    (128, 128, 128)
    """
    wanted = (AUTO_TILE_CORE[len(block_shape)],) * len(block_shape) if tile is None else tuple(tile)
    out = []
    for want, block, extent in zip(wanted, block_shape, spatial_shape):
        blocks = max(1, math.ceil(min(int(want), int(extent)) / int(block)))
        out.append(blocks * int(block))
    return tuple(out)


def effective_block(block_shape: Sequence[int] | None, spatial_shape: Sequence[int], size_step: int) -> tuple[int, ...]:
    """Clustering block used for an image: ``block_shape`` (default: the image) on the network's size
    grid, at most the (rounded) image.

    >>> effective_block([256, 256], (100, 3000), 16), effective_block(None, (20, 30), 16)
    ((112, 256), (32, 32))
    """
    block = spatial_shape if not block_shape else block_shape
    return tuple(
        min(valid_size(int(b), size_step), valid_size(int(s), size_step)) for b, s in zip(block, spatial_shape)
    )


class TilePredictor:
    """Embeddings of one tile (its core, predicted with ``halo`` of context) into ``embeddings``."""

    def __init__(
        self,
        model: torch.nn.Module,
        source: ImageSource,
        offset: np.ndarray,
        scale: np.ndarray,
        tiles: Sequence[Block],
        embeddings: Any,
        halo: Sequence[int],
        size_step: int,
        device: str | torch.device = "auto",
    ) -> None:
        self.model, self.source, self.tiles, self.embeddings = model, source, tiles, embeddings
        self.offset = np.asarray(offset, np.float64)
        self.scale = np.asarray(scale, np.float64)
        self.halo = tuple(int(h) for h in halo)  # tile_window puts it on the network's pooling grid
        self.size_step, self.device = int(size_step), device

    def window(self, core: Sequence[slice]) -> tuple[np.ndarray, tuple[slice, ...]]:
        """Normalised input of a tile (:func:`~spoco_zoo.inference.tile_window`, cut at the image end)
        and where the core lies in it."""
        shape = self.source.spatial_shape
        window = tile_window(core, self.halo, shape, self.size_step)
        crop = self.source.read([slice(w.start, min(w.stop, s)) for w, s in zip(window, shape)])
        extra = (1,) * len(shape)
        image = (crop - self.offset.reshape(-1, *extra)) / self.scale.reshape(-1, *extra)
        inner = tuple(slice(c.start - w.start, c.stop - w.start) for c, w in zip(core, window))
        return image.astype(np.float32), inner

    def __call__(self, index: int) -> None:
        core = self.tiles[index].core
        image, inner = self.window(core)
        # one pass over the window: the end is reflect-padded to the size step, as in a whole-image pass
        emb = predict_embeddings(self.model, image, None, 0, self.size_step, self.device)
        self.embeddings[(slice(None),) + tuple(core)] = emb[(slice(None),) + inner]


class WindowClusterer:
    """Cluster labels of one block's window of the stored embeddings (every cluster kept; picklable)."""

    def __init__(self, embeddings: Any, blocks: Sequence[Block], setting: ClusteringSetting) -> None:
        self.embeddings, self.blocks, self.foreground = embeddings, blocks, setting.foreground
        self.cluster = WindowClustering(setting, blocks)

    def __call__(self, index: int) -> np.ndarray:
        window = np.asarray(self.embeddings[(slice(None),) + tuple(self.blocks[index].window)])
        window, mask = split_foreground(window, None, self.foreground)  # type: ignore[assignment]
        return self.cluster(window, mask)


class ZarrWindows:
    """Window labels in a Zarr array ``[n_blocks, *largest window]`` (one chunk per block; picklable)."""

    def __init__(self, path: Path, blocks: Sequence[Block]) -> None:
        import zarr

        self.shapes = [tuple(s.stop - s.start for s in b.window) for b in blocks]
        largest = tuple(max(sizes) for sizes in zip(*self.shapes))
        self.array = zarr.create_array(
            str(path), shape=(len(blocks), *largest), chunks=(1, *largest), dtype="uint32", fill_value=0
        )

    def write(self, index: int, labels: np.ndarray) -> None:
        """Keep the labels of window ``index``."""
        self.array[(index,) + tuple(slice(0, s) for s in labels.shape)] = labels

    def read(self, index: int) -> np.ndarray:
        """The labels of window ``index``."""
        return np.asarray(self.array[(index,) + tuple(slice(0, s) for s in self.shapes[index])])


def dask_mapper(client: Any) -> Mapper:
    """A :data:`~spoco_zoo.cluster.pipeline.Mapper` that runs every item as a task of a ``dask.distributed`` client."""

    def run(function: Any, items: Sequence[Any]) -> list[Any]:
        if not len(items):
            return []
        return list(client.gather(client.map(function, list(items), pure=False)))

    return run


def segment_volume(
    model: torch.nn.Module,
    image: Any,
    normalization: NormalizationConfig,
    method: str,
    clustering: dict[str, Any],
    out: Any,
    *,
    channel_axis: bool = True,
    tile_shape: Sequence[int] | None = None,
    halo: int | Sequence[int] = 16,
    device: str | torch.device = "auto",
    client: Any | None = None,
    work_dir: str | Path | None = None,
) -> int:
    """Instance labels of ``image`` written into ``out``, block by block; returns the number of objects.

    Parameters
    ----------
    model:
        Embedding network in eval mode (``size_step``: valid input sizes are multiples of it).
    image:
        numpy or zarr array ``[C, *S]`` (``channel_axis``) or ``[*S]``, raw intensities.
    normalization:
        The training normalisation (statistics from :func:`sampled_statistics`).
    method, clustering:
        Clustering method and ``cluster_embeddings`` keyword arguments (the recommended
        clustering): ``block_shape`` (default: the whole image), ``overlap``, ``split_components``,
        ``min_size``, ``background`` and the method's own parameters.
    out:
        Integer array ``[*S]`` (numpy or zarr, chunked by ``block_shape``) for the labels.
    tile_shape, halo:
        Prediction tile (rounded up to whole blocks, :func:`default_tile`) and network context
        per side (rounded up to the network's size step).
    client:
        A ``dask.distributed.Client``: run everything as tasks on its workers.
    work_dir:
        Folder for the temporary Zarr stores (default: a temporary folder; with a ``client`` on
        several machines, one they all see). Removed afterwards.
    """
    source = ImageSource(image, channel_axis)
    shape = source.spatial_shape
    ndim = len(shape)
    step = int(getattr(model, "size_step", 1))
    params = dict(clustering)
    block = effective_block(params.get("block_shape"), shape, step)
    params["block_shape"] = block
    halos = (int(halo),) * ndim if isinstance(halo, (int, np.integer)) else tuple(int(h) for h in halo)
    if len(block) != ndim or len(halos) != ndim:
        raise DataError(f"block_shape / halo: need {ndim} values for an image of shape {shape}")
    tiles = block_grid(shape, default_tile(block, shape, tile_shape), 0)
    offset, scale = sampled_statistics(source, normalization)
    mapper: Mapper = serial_map if client is None else dask_mapper(client)
    n_emb = int(getattr(model, "out_channels", 0))
    if not n_emb:
        raise DataError("model: needs an out_channels attribute (the embedding dimension)")
    on_disk = client is not None or n_emb * math.prod(shape) * 4 > MAX_EMBEDDING_BYTES
    temp = Path(tempfile.mkdtemp(prefix="spoco-blocks-", dir=work_dir)) if on_disk else None
    try:
        embeddings: Any
        if temp is None:
            embeddings = np.zeros((n_emb, *shape), np.float32)
        else:
            import zarr

            # uncompressed: written once, read about twice (windows overlap); the page cache serves it
            embeddings = zarr.create_array(
                str(temp / "embeddings.zarr"),
                shape=(n_emb, *shape),
                chunks=(n_emb, *block),
                dtype="float32",
                compressors=None,
            )
        predictor = TilePredictor(model, source, offset, scale, tiles, embeddings, halos, step, device)
        mapper(predictor, list(range(len(tiles))))
        return label_embeddings(embeddings, method, params, out, client=client, work_dir=temp)
    finally:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)


def label_embeddings(
    embeddings: Any,
    method: str,
    clustering: dict[str, Any],
    out: Any,
    *,
    client: Any | None = None,
    work_dir: str | Path | None = None,
) -> int:
    """Instance labels of stored embeddings ``[E, *S]`` written into ``out``; the number of objects.

    The clustering half of :func:`segment_volume`: every block's window is read from
    ``embeddings`` (numpy or zarr; best chunked by block) when it is clustered, so memory holds
    one window, the window labels (in memory, or a Zarr store in ``work_dir`` with a
    ``client``) and the ``[*S]`` scratch labels (likewise).

    Parameters
    ----------
    embeddings:
        ``[E, *S]`` float array.
    method, clustering:
        As in :func:`segment_volume` (``block_shape`` default: the whole image).
    out:
        Integer array ``[*S]`` (numpy or zarr) for the labels.
    client, work_dir:
        A ``dask.distributed.Client`` and a folder its workers see (default: a temporary one).
    """
    shape = tuple(int(s) for s in embeddings.shape[1:])
    setting = ClusteringSetting.from_dict({**clustering, "method": method})
    block = effective_block(setting.block_shape, shape, 1)
    blocks = block_grid(shape, block, setting.overlap or 0)
    mapper: Mapper = serial_map if client is None else dask_mapper(client)
    temp = Path(tempfile.mkdtemp(prefix="spoco-labels-", dir=work_dir)) if client is not None else None
    try:
        windows: WindowStore
        components: Any
        if temp is None:
            windows, components = MemoryWindows(), np.zeros(shape, np.int32)
        else:
            import zarr

            components = zarr.create_array(str(temp / "components.zarr"), shape=shape, chunks=block, dtype="int32")
            windows = ZarrWindows(temp / "windows.zarr", blocks)
        return segment_blocks(
            shape,
            blocks,
            WindowClusterer(embeddings, blocks, setting),
            components,
            out,
            windows=windows,
            mapper=mapper,
            masked=setting.foreground == "mask",
            background=setting.background or "largest",
            split_components=setting.split_components is not False,
            min_size=setting.min_size or 0,
        )
    finally:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)
