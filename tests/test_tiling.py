"""Tile-consistent prediction: BatchNorm in eval mode, a halo from the receptive field, aligned tiles.

Tiled vs whole-image embeddings of a trained model must agree to 0.05 away from the image border
and the recommended clustering must give the same labels (SBD >= 0.98) for three tile sizes, in
our own tiled inference and through bioimageio.core with an exported package.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from spoco_zoo.cluster import cluster_embeddings
from spoco_zoo.data.normalize import normalize
from spoco_zoo.data.synthetic import make_synthetic_sample
from spoco_zoo.inference import predict_embeddings
from spoco_zoo.metrics.sbd import symmetric_best_dice
from spoco_zoo.models.receptive_field import gradient_reach, measure_halo, package_halo, unet_reach
from spoco_zoo.models.unet import UNet
from spoco_zoo.train.checkpoint import load_model

TILES = [(48, 48), (64, 96), (96, 80)]


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_theoretical_reach_is_the_gradient_support(depth: int) -> None:
    torch.manual_seed(depth)
    model = UNet(1, 4, 2, depth=depth, base_features=4, norm="batch").eval()
    step = 1 << depth
    sizes = [((2 * unet_reach(depth) + 40) // step + k) * step for k in range(2)]  # centres at two grid phases
    reach = max(gradient_reach(model, 1, 2, size) for size in sizes)
    assert reach <= unet_reach(depth)
    assert reach >= unet_reach(depth) - (1 << depth)  # the bound is tight up to the pooling alignment


def test_halo_beyond_the_reach_is_exact_and_measured_halo_is_within_it() -> None:
    torch.manual_seed(0)
    model = UNet(1, 4, 2, depth=2, base_features=4, norm="batch").eval()
    image = np.random.default_rng(0).random((1, 96, 96), dtype=np.float32)
    result = measure_halo(model, [image], step=4, max_halo=24, tolerance=0.01)
    assert result.errors[24] < 1e-5  # the theoretical reach (23) covers everything: cropping changes nothing
    assert 4 <= result.halo <= 24 and all(result.errors[h] <= 0.01 for h in result.errors if h >= result.halo)
    # every halo from the largest down to the one that fails (or the smallest) was measured, no other
    assert sorted(result.errors) == list(range(max(4, result.halo - 4), 25, 4))
    if result.halo > 4:
        assert result.errors[result.halo - 4] > 0.01


def test_measured_halo_is_what_measuring_every_halo_finds() -> None:
    """Searching down from the largest halo finds what measuring every halo finds, on two images."""
    torch.manual_seed(1)
    model = UNet(1, 4, 2, depth=2, base_features=4, norm="batch").eval()
    rng = np.random.default_rng(1)
    images = [rng.random((1, 64, 64), dtype=np.float32) for _ in range(2)]  # 2 * 24 + 2 * 4 = 56 <= 64
    found = set()
    for tolerance in (1e-3, 1e-4, 1e-5, 0.0):  # halos 4, 8, 12 here: each kind of stop is exercised
        errors = {}
        with torch.no_grad():
            for h in range(4, 25, 4):
                change = 0.0
                for image in images:
                    x = torch.from_numpy(image)[None]
                    ref = model(x)[0, :, 28:36, 28:36]
                    got = model(x[:, :, 28 - h : 36 + h, 28 - h : 36 + h])[0, :, h : h + 8, h : h + 8]
                    change = max(change, float((got - ref).abs().max()))
                errors[h] = change
        passing = [h for h in errors if all(errors[g] <= tolerance for g in errors if g >= h)]
        expected = min(passing) if passing else 24
        result = measure_halo(model, images, step=4, max_halo=24, tolerance=tolerance)
        assert result.halo == expected, tolerance
        assert all(result.errors[h] == pytest.approx(errors[h], abs=1e-6) for h in result.errors)
        found.add(result.halo)
    assert len(found) >= 3


def _scene(config, seed: int = 11, shape=(192, 200)):
    image, _ = make_synthetic_sample(shape, 30, seed)
    return normalize(np.asarray(image, np.float32)[None], config.data.normalization)


def _labels(emb: np.ndarray, config) -> np.ndarray:
    return cluster_embeddings(emb, device="cpu", **config.recommended_clustering())


def test_tiled_equals_whole_with_the_measured_halo(trained_checkpoint_2d: Path) -> None:
    model, config = load_model(trained_checkpoint_2d)
    halos = package_halo(model, 2, 1)
    assert len(set(halos)) == 1  # an isotropic network: one halo for every axis
    halo = halos[0]
    assert halo % 4 == 0 and halo <= 24
    image = _scene(config)
    whole = predict_embeddings(model, image, None, halo=halo, device="cpu")
    whole_labels = _labels(whole, config)
    inner = (slice(None), slice(halo, -halo), slice(halo, -halo))
    for tile in TILES:
        tiled = predict_embeddings(model, image, tile, halo=halo, device="cpu")
        assert float(np.abs(tiled - whole)[inner].max()) <= 0.05, tile
        assert symmetric_best_dice(_labels(tiled, config), whole_labels) >= 0.98, tile


def test_group_norm_is_not_tile_consistent() -> None:
    """The reason for BatchNorm: with GroupNorm the same check fails (a test of the test)."""
    torch.manual_seed(0)
    model = UNet(1, 8, 2, depth=2, base_features=8, norm="group").eval()
    image = np.random.default_rng(1).random((1, 128, 128), dtype=np.float32)
    whole = predict_embeddings(model, image, None, halo=24, device="cpu")
    tiled = predict_embeddings(model, image, (48, 48), halo=24, device="cpu")
    assert float(np.abs(tiled - whole)[:, 24:-24, 24:-24].max()) > 0.05


def test_package_tiles_give_the_single_pass_labels(trained_checkpoint_2d: Path, tmp_path: Path) -> None:
    """A package predicted through bioimageio.core tile by tile == in one pass (embeddings and labels);
    bioimageio.core's own blocks mirror a halo at the border, so they agree away from it."""
    from bioimageio.core import Sample, Tensor, create_prediction_pipeline
    from bioimageio.core.axis import AxisId
    from bioimageio.core.common import MemberId

    from spoco_zoo.exporters.options import ExportOptions
    from spoco_zoo.exporters.package import export_package
    from spoco_zoo.postprocess import embeddings_to_instances
    from spoco_zoo.zoo.predict import load_package, zoo_predict

    result = export_package(
        trained_checkpoint_2d,
        tmp_path / "m.zip",
        ExportOptions(variant="embeddings", formats="pytorch_state_dict", test_shape=(96, 96)),
    )
    raw = np.asarray(make_synthetic_sample((190, 201), 30, 5)[0], np.float32)[None]
    whole = zoo_predict(result.path, raw, devices=["cpu"])
    assert not whole.tiled and whole.embeddings is not None
    whole_labels = embeddings_to_instances(whole.embeddings, whole.clustering)
    (h,) = set(result.halo)
    for tile in TILES:
        tiled = zoo_predict(result.path, raw, devices=["cpu"], tile_shape=tile)
        assert tiled.tiled and tiled.embeddings is not None
        assert float(np.abs(tiled.embeddings - whole.embeddings).max()) <= 0.05, tile  # the border included
        labels = embeddings_to_instances(tiled.embeddings, tiled.clustering)
        assert symmetric_best_dice(labels, whole_labels) >= 0.98, tile

    # bioimageio.core's blocking, as other consumers run it: the same embeddings inside
    with create_prediction_pipeline(load_package(result.path), devices=["cpu"]) as pp:
        dims = ("batch", "channel", "y", "x")
        sample = Sample(members={MemberId("raw"): Tensor.from_numpy(raw[None], dims=dims)}, stat={}, id=0)
        block = {AxisId("batch"): 1, AxisId("channel"): 1, AxisId("y"): 48 + 2 * h, AxisId("x"): 48 + 2 * h}
        blocked = pp.predict_sample_with_fixed_blocking(sample, input_block_shape={MemberId("raw"): block})
    core = blocked.members[MemberId("embeddings")].data.to_numpy()[0]
    diff = np.abs(core - whole.embeddings).max(axis=0)
    assert float(diff[2 * h : -2 * h, 2 * h : -2 * h].max()) <= 0.05  # the mirrored border reaches ~2 halos in
    assert float(diff.max()) > 0.05  # (a test of the test: at the border they differ)


def test_segment_tiles_large_images_automatically_with_the_same_labels(
    trained_checkpoint_2d: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above ``AUTO_TILE_PIXELS`` ``spoco-zoo segment`` predicts in tiles (bounded memory), same labels."""
    import tifffile
    from typer.testing import CliRunner

    import spoco_zoo.inference as inference
    from spoco_zoo.cli.main import app

    image = make_synthetic_sample((190, 201), n_objects=40, seed=11)[0]
    tifffile.imwrite(tmp_path / "scene.tif", image)
    args = ["segment", str(tmp_path / "scene.tif"), "--checkpoint", str(trained_checkpoint_2d), "--no-progress"]
    calls: list[object] = []
    predict = inference.predict_embeddings

    def recording(model, image, tile_shape=None, *rest, **kw):  # type: ignore[no-untyped-def]
        calls.append(tile_shape)
        return predict(model, image, tile_shape, *rest, **kw)

    monkeypatch.setattr(inference, "predict_embeddings", recording)
    runner = CliRunner()
    whole = runner.invoke(app, [*args, "--output", str(tmp_path / "whole"), "--device", "cpu"])
    monkeypatch.setattr(inference, "AUTO_TILE_PIXELS", 64 * 64)
    monkeypatch.setattr(inference, "AUTO_TILE_CORE", {2: 64, 3: 32})
    tiled = runner.invoke(app, [*args, "--output", str(tmp_path / "tiled"), "--device", "cpu"])
    assert whole.exit_code == 0 and tiled.exit_code == 0, whole.output + tiled.output
    assert calls == [None, (64, 64)]
    a = tifffile.imread(tmp_path / "whole" / "scene_instances.tif")
    b = tifffile.imread(tmp_path / "tiled" / "scene_instances.tif")
    assert a.max() > 20 and symmetric_best_dice(b, a) >= 0.98
