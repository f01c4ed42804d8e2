"""``spoco-zoo segment --blockwise``: each input segmented block by block, labels to TIFF or OME-Zarr.

Zarr / OME-Zarr inputs are read lazily (region by region); other formats are read into memory
first. ``--zarr`` writes ``OUT/<stem>_instances.ome.zarr`` (chunked by clustering block, written
block by block); otherwise ``OUT/<stem>_instances.tif``. ``--scheduler`` runs the work on a
``dask.distributed`` cluster: ``local`` starts one on this machine (``--workers`` processes, one
thread each), an address (``tcp://host:8786``) uses a running one whose workers see the input,
the output folder and ``--work-dir``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from spoco_zoo.errors import DataError

__all__ = ["open_client", "segment_file", "segment_files"]


def open_client(scheduler: str | None, workers: int = 2) -> Any | None:
    """A ``dask.distributed`` client: ``None`` without a scheduler, a new local cluster for ``"local"``.

    Raises
    ------
    DataError
        ``dask.distributed`` is not installed, or the scheduler cannot be reached.
    """
    if scheduler is None:
        return None
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as err:
        raise DataError("--scheduler: needs dask.distributed (pip install 'spoco-zoo[dask]')") from err
    if scheduler == "local":
        cluster = LocalCluster(n_workers=int(workers), threads_per_worker=1, dashboard_address=None)
        return Client(cluster)
    try:
        return Client(scheduler, timeout=30)
    except OSError as err:
        raise DataError(f"--scheduler: cannot reach the Dask scheduler at {scheduler}: {err}") from err


def _open_input(path: Path, key: str | None, spatial_dims: int) -> tuple[Any, bool]:
    """The image (lazy for Zarr) and whether it has a channel axis."""
    from spoco_zoo.data.io import read_image
    from spoco_zoo.data.ome_zarr import open_zarr_array

    if path.name.lower().endswith(".zarr"):
        array, axes = open_zarr_array(path, key)
        if array.ndim not in (spatial_dims, spatial_dims + 1):
            raise DataError(f"{path}: array of shape {tuple(array.shape)} for a {spatial_dims}D model")
        if axes and array.ndim == spatial_dims + 1 and not axes.startswith("c"):
            raise DataError(f"{path}: axes {axes!r}: expected a channel axis first")
        return array, array.ndim == spatial_dims + 1
    return read_image(path, key=key, spatial_dims=spatial_dims), True


def segment_file(
    path: Path,
    out_path: Path,
    net: Any,
    config: Any,
    method: str,
    kwargs: Mapping[str, Any],
    *,
    key: str | None = None,
    tile_shape: Sequence[int] | None = None,
    halo: Sequence[int] | int = 16,
    device: Any = "auto",
    client: Any | None = None,
    work_dir: Path | None = None,
) -> tuple[int, tuple[int, ...]]:
    """Segment one input into ``out_path`` (``.ome.zarr``: OME-Zarr, else TIFF); ``(objects, shape)``."""
    from spoco_zoo.blockwise.volume import effective_block, segment_volume
    from spoco_zoo.data.io import write_tiff
    from spoco_zoo.data.ome_zarr import create_ome_labels

    image, channel_axis = _open_input(path, key, config.model.spatial_dims)
    if channel_axis and image.shape[0] != config.model.in_channels:
        raise DataError(
            f"{path}: image has {image.shape[0]} channel(s) (shape {tuple(image.shape)}) but the model "
            f"expects {config.model.in_channels}"
        )
    shape = tuple(int(s) for s in (image.shape[1:] if channel_axis else image.shape))
    zarr_out = out_path.name.endswith(".zarr")
    if zarr_out:
        chunks = effective_block(kwargs.get("block_shape"), shape, int(getattr(net, "size_step", 1)))
        out: Any = create_ome_labels(out_path, shape, chunks, "uint32", "zyx"[-len(shape) :])
    else:
        out = np.zeros(shape, np.int32)
    n_objects = segment_volume(
        net,
        image,
        config.data.normalization,
        method,
        dict(kwargs),
        out,
        channel_axis=channel_axis,
        tile_shape=tile_shape,
        halo=halo,
        device=device,
        client=client,
        work_dir=work_dir,
    )
    if not zarr_out:
        write_tiff(out_path, out)
    return n_objects, shape


def segment_files(
    inputs: Mapping[str, Path],
    output: Path,
    zarr_out: bool,
    scheduler: str | None,
    workers: int,
    echo: Callable[[str], None],
    **options: Any,
) -> int:
    """Segment every ``{stem: path}`` with :func:`segment_file`; the exit code (1 when an input failed)."""
    client = open_client(scheduler, workers)
    failed = []
    try:
        for stem, path in inputs.items():
            out_path = output / (f"{stem}_instances.ome.zarr" if zarr_out else f"{stem}_instances.tif")
            try:
                n_objects, shape = segment_file(path, out_path, client=client, **options)
            except (DataError, ValueError, RuntimeError, OSError) as err:
                message = str(err) if str(path) in str(err) else f"{path}: {err}"
                echo(f"error: {message}")
                failed.append(str(path))
                continue
            echo(f"{path} -> {out_path} ({n_objects} objects, shape {shape}, block-wise)")
    finally:
        if client is not None:
            cluster = getattr(client, "cluster", None)
            client.close()
            if cluster is not None:
                cluster.close()
    if failed:
        echo(f"{len(failed)} of {len(inputs)} input(s) failed: {', '.join(failed)}")
        return 1
    return 0
