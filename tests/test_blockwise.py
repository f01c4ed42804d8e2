"""Block-wise segmentation of volumes: Zarr / OME-Zarr in and out, Dask workers, labels as the whole-volume pipeline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from spoco_zoo.blockwise.volume import segment_volume
from spoco_zoo.cli.main import app
from spoco_zoo.cluster.blockwise import block_grid
from spoco_zoo.cluster.instances import segment_embeddings
from spoco_zoo.config import NormalizationConfig
from spoco_zoo.data.normalize import normalize
from spoco_zoo.data.ome_zarr import create_ome_labels, open_zarr_array
from spoco_zoo.data.synthetic import make_synthetic_sample
from spoco_zoo.inference import predict_embeddings
from spoco_zoo.metrics import evaluate_instances

BLOCK, OVERLAP = (8, 32, 32), (4, 8, 8)


def coded_volume(shape=(20, 72, 64), n_objects=30, seed=3) -> tuple[np.ndarray, np.ndarray]:
    """Objects with one intensity each (neighbours mostly differ) on a dark background."""
    _, truth = make_synthetic_sample(shape, n_objects, seed=seed)
    levels = np.concatenate([[0.0], 0.2 + (np.arange(1, truth.max() + 1) * 7 % 11) / 10.0])
    rng = np.random.default_rng(seed)
    return (levels[truth] + rng.normal(scale=0.002, size=shape)).astype(np.float32), truth


def coding_model() -> torch.nn.Module:
    """Embedding = 20 x normalised intensity in 4 channels (a picklable Sequential with the attributes a UNet has)."""
    model = torch.nn.Sequential(torch.nn.Conv3d(1, 4, 1))
    with torch.no_grad():
        model[0].weight.fill_(20.0)
        model[0].bias.zero_()
    model.size_step = 4  # type: ignore[assignment]
    model.out_channels = 4  # type: ignore[assignment]
    return model.eval()


def clustering() -> dict:
    return {"bandwidth": 0.5, "block_shape": list(BLOCK), "overlap": list(OVERLAP), "min_size": 8, "device": "cpu"}


def whole_volume_labels(model: torch.nn.Module, image: np.ndarray) -> np.ndarray:
    emb = predict_embeddings(model, normalize(image[None], NormalizationConfig()), None, 16, 4, "cpu")
    return segment_embeddings(emb, **clustering())


@pytest.fixture(scope="module")
def dask_client():
    distributed = pytest.importorskip("dask.distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


def test_block_wise_on_two_dask_workers_agrees_with_the_whole_volume(dask_client, tmp_path: Path) -> None:
    image, truth = coded_volume()
    model = coding_model()
    whole = whole_volume_labels(model, image)
    assert evaluate_instances(whole, truth)["sbd"] > 0.8  # the test data is segmentable
    out = create_ome_labels(tmp_path / "labels.ome.zarr", image.shape, BLOCK, "uint32")
    count = segment_volume(
        model, image, NormalizationConfig(), "mean_shift", clustering(), out, channel_axis=False,
        tile_shape=(8, 64, 64), client=dask_client, work_dir=tmp_path,
    )  # fmt: skip
    labels, axes = open_zarr_array(tmp_path / "labels.ome.zarr")
    labels = np.asarray(labels[...])
    assert axes == "zyx" and count == labels.max() > 10
    assert evaluate_instances(labels, whole)["sbd"] >= 0.95
    # no object is cut at a block border that the whole-volume segmentation keeps whole
    cores = np.zeros(image.shape, int)
    for i, block in enumerate(block_grid(image.shape, BLOCK, OVERLAP)):
        cores[block.core] = i
    crossing = 0
    for obj in range(1, whole.max() + 1):
        inside = whole == obj
        crossing += len(np.unique(cores[inside])) > 1
        _, counts = np.unique(labels[inside], return_counts=True)
        assert counts.max() >= 0.95 * inside.sum(), f"object {obj} is split"
    assert crossing > 10
    # the temporary stores are gone; the serial run gives the same labels
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.ome.zarr"]
    serial = np.zeros(image.shape, np.int32)
    segment_volume(model, image, NormalizationConfig(), "mean_shift", clustering(), serial, channel_axis=False)
    assert np.array_equal(serial, labels)


def test_ome_zarr_round_trip_and_errors(tmp_path: Path) -> None:
    from spoco_zoo.data.io import read_image
    from spoco_zoo.errors import DataError

    array = create_ome_labels(tmp_path / "a.ome.zarr", (6, 10, 12), (3, 5, 6))
    array[1:3, 2:4, 5:9] = 7
    opened, axes = open_zarr_array(tmp_path / "a.ome.zarr")
    assert axes == "zyx" and opened.shape == (6, 10, 12) and int(opened[2, 3, 6]) == 7
    assert read_image(tmp_path / "a.ome.zarr", spatial_dims=3).shape == (1, 6, 10, 12)
    with pytest.raises(DataError, match="exists"):
        create_ome_labels(tmp_path / "a.ome.zarr", (6, 10, 12), (3, 5, 6))
    with pytest.raises(DataError, match="no array 'x'"):
        open_zarr_array(tmp_path / "a.ome.zarr", key="x")
    with pytest.raises(DataError, match="not found"):
        open_zarr_array(tmp_path / "missing.zarr")


def test_segment_cli_writes_ome_zarr_block_wise(random_checkpoint_3d: Path, tmp_path: Path) -> None:
    import zarr

    image, _ = coded_volume(shape=(16, 40, 48), n_objects=8)
    zarr.create_array(str(tmp_path / "vol.zarr"), shape=image.shape, chunks=(8, 20, 24), dtype="float32")[...] = image
    runner = CliRunner()
    common = ["--checkpoint", str(random_checkpoint_3d), "--device", "cpu", "--no-progress", "--min-size", "4"]
    result = runner.invoke(
        app, ["segment", str(tmp_path / "vol.zarr"), "--output", str(tmp_path / "z"), "--zarr", *common]
    )
    assert result.exit_code == 0, result.output
    assert "block-wise" in result.output
    labels, axes = open_zarr_array(tmp_path / "z" / "vol_instances.ome.zarr")
    assert axes == "zyx" and labels.shape == image.shape
    result = runner.invoke(
        app, ["segment", str(tmp_path / "vol.zarr"), "--output", str(tmp_path / "t"), "--blockwise", *common]
    )
    assert result.exit_code == 0, result.output
    import tifffile

    assert np.array_equal(tifffile.imread(tmp_path / "t" / "vol_instances.tif"), np.asarray(labels[...]))
