"""Tiled inference, ``spoco-zoo segment`` and ``spoco-zoo evaluate`` end to end (small, CPU)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from typer.testing import CliRunner

from spoco_zoo.cli.main import app
from spoco_zoo.config import TrainConfig
from spoco_zoo.inference import inference_copy, predict_embeddings, tile_grid, tile_window
from spoco_zoo.train.checkpoint import build_model, load_model, save_checkpoint

runner = CliRunner()


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _checkpoint(path: Path, norm: str) -> Path:
    """Tiny random 2D checkpoint (depth 2) with the given normalisation layers."""
    config = TrainConfig.model_validate(
        {
            "model": {"spatial_dims": 2, "depth": 2, "base_features": 4, "embedding_dim": 8, "norm": norm},
            "data": {"patch_shape": [64, 64], "synthetic": {"shape": [64, 64], "n_objects": 8}},
        }
    )
    torch.manual_seed(1)
    model = build_model(config)
    save_checkpoint(
        path, {"config": config, "step": 0, "model_state": model.state_dict(), "teacher_state": model.state_dict()}
    )
    return path


def _image(shape: tuple, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((1, *shape), dtype=np.float32)


# ------------------------------------------------------------------------------ inference
def test_tile_grid_covers_the_image_on_the_size_step_grid() -> None:
    grid = tile_grid((50, 37), (16, 15), halo=7, size_step=4)
    assert grid["core"] == (16, 16) and grid["halo"] == (8, 8)  # rounded up to the size step
    assert grid["counts"] == (4, 3) and grid["n_tiles"] == 12
    assert grid["pad"] == ((0, 2), (0, 3))  # only the end, to a multiple of 4
    one = tile_grid((50, 37), None, halo=0, size_step=4)
    assert one["n_tiles"] == 1 and one["core"] == (52, 40)
    with pytest.raises(ValueError, match="halo"):
        tile_grid((50, 37), (16, 16), halo=(1, 2, 3), size_step=4)


def test_tile_windows_take_context_from_the_image_only() -> None:
    shape, halo = (50, 37), (8, 8)
    # first core: no context before the image, the rounding goes to the far side
    assert tile_window((slice(0, 16), slice(0, 16)), halo, shape, 4) == (slice(0, 24), slice(0, 24))
    # inner core: the full halo on both sides
    assert tile_window((slice(16, 32), slice(16, 32)), halo, shape, 4) == (slice(8, 40), slice(8, 40))
    # last core: up to the image end rounded to the step (52, 40), never beyond
    assert tile_window((slice(48, 64), slice(32, 48)), halo, shape, 4) == (slice(40, 52), slice(24, 40))
    # a core longer than the image needs is the whole (rounded) image
    assert tile_window((slice(0, 64),), (8,), (50,), 4) == (slice(0, 52),)


def test_one_pass_ignores_the_halo_and_matches_the_plain_network() -> None:
    """No invented context at the border: with any halo, one pass is the network on the image itself."""
    from spoco_zoo.models.unet import UNet

    torch.manual_seed(0)
    model = UNet(1, 4, spatial_dims=2, depth=2, base_features=4, norm="none").eval()
    image = _image((32, 40), seed=4)
    with torch.no_grad():
        direct = model(torch.from_numpy(image)[None])[0].numpy()
    for halo in (0, 8, 24):
        np.testing.assert_allclose(predict_embeddings(model, image, None, halo, device="cpu"), direct, atol=1e-4)
    # tiles with a halo beyond the reach agree with it everywhere, the border included
    tiled = predict_embeddings(model, image, (8, 8), halo=24, device="cpu")
    np.testing.assert_allclose(tiled, direct, atol=1e-4)


@pytest.mark.parametrize("norm", ["none", "batch"])
def test_tiled_equals_untiled_without_per_sample_normalisation(tmp_path: Path, norm: str) -> None:
    model, _ = load_model(_checkpoint(tmp_path / f"{norm}.pt", norm))
    image = _image((44, 53))
    whole = predict_embeddings(model, image, None, halo=16, device="cpu")
    tiled = predict_embeddings(model, image, (16, 16), halo=16, device="cpu")
    assert whole.shape == tiled.shape == (9, 44, 53) and tiled.dtype == np.float32  # 8 + foreground
    assert np.abs(whole - tiled).max() < 1e-5


def test_single_pass_equals_plain_forward_and_group_norm_is_tile_dependent() -> None:
    from spoco_zoo.models.unet import UNet

    torch.manual_seed(0)
    model = UNet(1, 8, spatial_dims=2, depth=2, base_features=4, norm="group").eval()
    image = _image((32, 40), seed=3)  # multiple of 2**depth = 4: no padding with halo 0
    with torch.no_grad():
        direct = model(torch.from_numpy(image)[None])[0].numpy()
    once = predict_embeddings(model, image, None, halo=0, device="cpu")
    np.testing.assert_allclose(once, direct, atol=1e-4)  # channels-last kernels round differently (~2e-5)
    # GroupNorm statistics are per input window: tiles see different statistics (documented)
    tiled = predict_embeddings(model, image, (16, 16), halo=8, device="cpu")
    assert tiled.shape == once.shape and np.isfinite(tiled).all()
    assert np.abs(tiled - predict_embeddings(model, image, None, halo=8, device="cpu")).max() > 1e-4


@pytest.mark.parametrize("dims", [2, 3])
def test_inference_copy_folds_batchnorm_and_leaves_the_model_alone(dims: int) -> None:
    from spoco_zoo.models.unet import UNet

    torch.manual_seed(0)
    model = UNet(1, 4, spatial_dims=dims, depth=2, base_features=4, norm="batch")
    with torch.no_grad():  # non-trivial running statistics
        for module in model.modules():
            if isinstance(module, (torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    model.eval()
    norms = sum(isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)) for m in model.modules())
    x = torch.randn((1, 1) + (8, 16, 16)[-dims:])
    fast = inference_copy(model, dims)
    assert not any(isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)) for m in fast.modules())
    with torch.no_grad():
        np.testing.assert_allclose(fast(x).numpy(), model(x).numpy(), atol=1e-4)
    # the caller's model keeps its layers and memory order
    assert sum(isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)) for m in model.modules()) == norms > 0
    assert all(p.is_contiguous() for p in model.parameters())
    # in training mode BatchNorm uses batch statistics: nothing is folded
    training = inference_copy(model.train(), dims)
    assert sum(isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)) for m in training.modules()) == norms


def test_tiled_equals_untiled_3d() -> None:
    from spoco_zoo.models.unet import UNet

    torch.manual_seed(0)
    model = UNet(1, 4, spatial_dims=3, depth=2, base_features=2, norm="none").eval()
    image = _image((10, 21, 18), seed=2)
    whole = predict_embeddings(model, image, None, halo=12, device="cpu")
    tiled = predict_embeddings(model, image, (8, 8, 8), halo=12, device="cpu")
    assert tiled.shape == (4, 10, 21, 18)
    assert np.abs(whole - tiled).max() < 1e-5


# ------------------------------------------------------------------------------ segment CLI
def _write_input(path: Path, shape: tuple = (40, 48)) -> Path:
    tifffile.imwrite(path, (np.random.default_rng(5).random(shape) * 1000).astype(np.uint16))
    return path


def test_segment_cli_writes_labels_and_embeddings(tmp_path: Path, random_checkpoint_2d: Path) -> None:
    src = _write_input(tmp_path / "cells.tif")
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "segment",
            str(src),
            "--checkpoint",
            str(random_checkpoint_2d),
            "--output",
            str(out),
            "--tile",
            "32,32",
            "--halo",
            "8",
            "--min-size",
            "0",
            "--save-embeddings",
            "--no-progress",
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    labels = tifffile.imread(out / "cells_instances.tif")
    assert labels.shape == (40, 48) and labels.dtype == np.uint16
    emb = tifffile.imread(out / "cells_embeddings.tif")
    assert emb.shape == (9, 40, 48) and emb.dtype == np.float32  # 8 embedding channels + foreground
    assert "cells_instances.tif" in result.output


def test_segment_cli_uses_the_halo_stored_with_the_weights(tmp_path: Path, random_checkpoint_2d: Path) -> None:
    from spoco_zoo.train.checkpoint import load_checkpoint

    src = _write_input(tmp_path / "cells.tif")
    state = load_checkpoint(random_checkpoint_2d)
    assert "halo" not in state
    state["halo"] = 44  # not what the measurement gives for this network (a multiple of its step, 4)
    stored = tmp_path / "with_halo.pt"
    save_checkpoint(stored, state)
    outputs = {}
    for name, ckpt in (("measured", random_checkpoint_2d), ("stored", stored)):
        args = ["segment", str(src), "--checkpoint", str(ckpt), "--output", str(tmp_path / name), "--no-progress"]
        result = runner.invoke(app, [*args, "--device", "cpu"])
        assert result.exit_code == 0, result.output
        outputs[name] = result.output
    assert "halo [44, 44]" in outputs["stored"] and "halo [44, 44]" not in outputs["measured"]


def test_segment_cli_errors_name_the_problem(tmp_path: Path, random_checkpoint_2d: Path) -> None:
    src = _write_input(tmp_path / "img.tif")
    out = str(tmp_path / "out")
    missing = tmp_path / "does_not_exist.tif"
    result = runner.invoke(app, ["segment", str(missing), "--checkpoint", str(random_checkpoint_2d), "-o", out])
    assert result.exit_code != 0 and "does_not_exist.tif" in result.output

    zip_path = tmp_path / "model.zip"
    zip_path.write_bytes(b"PK")
    both = runner.invoke(
        app, ["segment", str(src), "--checkpoint", str(random_checkpoint_2d), "--model", str(zip_path), "-o", out]
    )
    assert both.exit_code != 0 and "--model" in both.output and "--checkpoint" in both.output
    neither = runner.invoke(app, ["segment", str(src), "-o", out])
    assert neither.exit_code != 0 and "--checkpoint" in neither.output

    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    bad = runner.invoke(app, ["segment", str(src), "--checkpoint", str(corrupt), "-o", out])
    assert bad.exit_code == 1 and "corrupt.pt" in bad.output

    volume = tmp_path / "volume4d.tif"
    tifffile.imwrite(volume, np.zeros((2, 3, 16, 16), np.uint16))  # 4 axes for a 2D model
    wrong = runner.invoke(
        app, ["segment", str(volume), "--checkpoint", str(random_checkpoint_2d), "-o", out, "--no-progress"]
    )
    assert wrong.exit_code == 1 and "volume4d.tif" in wrong.output and "axes" in wrong.output


def test_package_clustering_overrides() -> None:
    from spoco_zoo.cli.segment import package_clustering
    from spoco_zoo.cluster.clustering_setting import ClusteringSetting

    flat = {"method": "mean_shift", "bandwidth": 0.4, "kernel": "flat", "min_size": 10, "background": "largest"}
    overridden = package_clustering(flat, None, {"bandwidth": 0.3}, 5)
    assert overridden == ClusteringSetting("mean_shift", 0.3, 5, "largest", params={"kernel": "flat"})
    # another method drops the method-specific keys, keeps min_size / background
    assert package_clustering(flat, "consistency", {}, None) == ClusteringSetting("consistency", 0.5, 10, "largest")
    rdf = {"spoco": {"clustering": {"method": "mean_shift", "min_size": 4}, "loss": {"delta_var": 0.3}}}
    merged = package_clustering(rdf, None, {"kernel": "gaussian"}, None)
    assert merged == ClusteringSetting("mean_shift", 0.3, 4, params={"kernel": "gaussian"})
    assert "kernel" not in rdf["spoco"]["clustering"]


def test_segment_cli_model_route(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--model``: embeddings and clustering config come from ``spoco_zoo.zoo.predict.zoo_predict``;
    ``--tile`` is passed on; the label TIFF is an ImageJ TIFF with the input's pixel size; overlay and ROIs."""
    import sys
    import types
    import zipfile

    from spoco_zoo.data.imagej import read_roi

    calls = []

    def check_package(package: Path, weight_format: str | None = None, trust_package_code: bool = False) -> str:
        calls.append(("check", Path(package), weight_format, trust_package_code))
        return "torchscript"

    def zoo_predict(package: Path, image: np.ndarray, tile_shape=None, **kwargs: object):
        calls.append((Path(package), image.shape, tile_shape, kwargs))
        emb = np.zeros((2, 20, 20), np.float32)
        emb[0, :, 12:] = 3.0  # two well separated clusters: background (larger) and one object
        clustering = {"method": "mean_shift", "bandwidth": 0.5, "min_size": 0}
        return types.SimpleNamespace(embeddings=emb, instances=None, clustering=clustering)

    fake = types.SimpleNamespace(zoo_predict=zoo_predict, check_package=check_package)
    monkeypatch.setitem(sys.modules, "spoco_zoo.zoo.predict", fake)
    src = tmp_path / "raw.tif"
    tifffile.imwrite(src, _image((20, 20))[0], resolution=(1 / 0.25, 1 / 0.25), imagej=True, metadata={"unit": "um"})
    package = tmp_path / "model.zip"
    package.write_bytes(b"PK")
    out = tmp_path / "out"
    args = ["segment", str(src), "--model", str(package), "-o", str(out), "--save-embeddings", "--tile", "16,16"]
    result = runner.invoke(app, [*args, "--overlay", "--rois"])
    assert result.exit_code == 0, result.output
    # the package is checked once, then every image runs with the format it chose
    chosen = {"devices": ["cpu"], "weight_format": "torchscript", "trust_package_code": False}
    assert calls == [("check", package, None, False), (package, (1, 20, 20), (16, 16), chosen)]
    with tifffile.TiffFile(out / "raw_instances.tif") as tif:
        labels = tif.asarray()
        assert tif.is_imagej and tif.imagej_metadata["unit"] == "um"
        xres = tif.pages.first.tags["XResolution"].value
    assert abs(xres[1] / xres[0] - 0.25) < 1e-6  # the input's pixel size carried over
    assert labels.dtype == np.uint16 and labels.shape == (20, 20)
    assert (labels[:, 12:] == 1).all() and (labels[:, :12] == 0).all()
    assert tifffile.imread(out / "raw_embeddings.tif").shape == (2, 20, 20)
    import imageio.v3 as iio

    png = iio.imread(out / "raw_overlay.png")
    assert png.ndim == 3 and png.shape[2] == 3 and png.shape[0] >= 20
    with zipfile.ZipFile(out / "raw_rois.zip") as zf:
        (name,) = zf.namelist()
        kind, xy = read_roi(zf.read(name))
    assert kind == 0 and xy[:, 0].min() == 12 and xy[:, 0].max() == 20 and xy[:, 1].min() == 0 and xy[:, 1].max() == 20


def test_overlay_outlines_each_object() -> None:
    from spoco_zoo.overlay import outline_mask, overlay_rgb

    labels = np.zeros((12, 12), np.int32)
    labels[2:6, 2:6], labels[7:11, 6:11] = 1, 2
    edge = outline_mask(labels)
    assert edge.sum() == 12 + 14 and not edge[3, 3] and edge[2, 2]  # the perimeters of 4x4 and 4x5
    rgb = overlay_rgb(np.random.default_rng(0).random((12, 12)), labels, scale=2)
    assert rgb.shape == (24, 24, 3) and rgb.dtype == np.uint8
    assert not np.array_equal(rgb[4, 4], rgb[16, 12])  # two objects, two outline colours
    assert rgb[6, 6, 0] == rgb[6, 6, 1] == rgb[6, 6, 2]  # inside an object: grey image


def test_version_option() -> None:
    from spoco_zoo import __version__

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"spoco-zoo {__version__}"


def test_training_log_writes_csv_and_plot(tmp_path: Path) -> None:
    from spoco_zoo.train.history import TrainingLog, read_history

    log = TrainingLog(tmp_path, tensorboard=False)
    for step in (10, 20, 30):
        log.log(step, {"total": 3.0 / step, "pull": 1.0 / step})
    log.log(30, {"sbd": 0.4, "map": 0.1})
    png = log.close()
    rows = read_history(tmp_path / "metrics.csv")
    assert [r["step"] for r in rows] == [10, 20, 30, 30] and rows[-1]["sbd"] == 0.4 and "sbd" not in rows[0]
    import imageio.v3 as iio

    assert png is not None and iio.imread(png).shape == (420, 1200, 3)  # 12 x 4.2 inches at 100 dpi
    resumed = TrainingLog(tmp_path, resume=True, tensorboard=False)
    resumed.log(40, {"total": 0.05})
    assert len(read_history(tmp_path / "metrics.csv")) == 5


# ------------------------------------------------------------------------------ evaluate CLI
def _eval_dirs(tmp_path: Path) -> tuple:
    gt_a = np.zeros((10, 10), np.uint16)
    gt_a[1:4, 1:4] = 1
    gt_a[5:9, 5:9] = 2
    gt_b = np.zeros((10, 10), np.uint16)
    gt_b[2:6, 2:6] = 1
    pred_b = np.zeros_like(gt_b)
    pred_b[2:6, 2:4] = 1  # split in two halves: SBD = 2/3 (see test_metrics)
    pred_b[2:6, 4:6] = 2
    pred_dir, gt_dir = tmp_path / "pred", tmp_path / "gt"
    pred_dir.mkdir()
    gt_dir.mkdir()
    tifffile.imwrite(gt_dir / "a.tif", gt_a)
    tifffile.imwrite(gt_dir / "b.tif", gt_b)
    tifffile.imwrite(gt_dir / "c.tif", gt_b)  # no prediction: skipped with a warning
    tifffile.imwrite(pred_dir / "a_instances.tif", gt_a * 3)  # perfect
    tifffile.imwrite(pred_dir / "b.tif", pred_b)
    return pred_dir, gt_dir


def test_evaluate_cli_writes_csv_and_json(tmp_path: Path) -> None:
    pred_dir, gt_dir = _eval_dirs(tmp_path)
    csv_path, json_path = tmp_path / "res" / "scores.csv", tmp_path / "scores.json"
    result = runner.invoke(
        app,
        [
            "evaluate",
            str(pred_dir),
            str(gt_dir),
            "--csv",
            str(csv_path),
            "--json",
            str(json_path),
            "--ignore-label",
            "-1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "c.tif" in result.output and "mean" in result.output
    rows = list(csv.DictReader(csv_path.open()))
    assert [r["image"] for r in rows] == ["a", "b", "mean"]
    assert float(rows[0]["sbd"]) == 1.0
    assert float(rows[1]["sbd"]) == pytest.approx(2 / 3)
    assert float(rows[2]["sbd"]) == pytest.approx(5 / 6)
    data = json.loads(json_path.read_text())
    assert data["mean"]["sbd"] == pytest.approx(5 / 6)
    assert [r["image"] for r in data["images"]] == ["a", "b"]
    assert data["images"][1]["ap50"] == 0.5 and data["images"][1]["voi_merge"] == 0.0


def test_evaluate_cli_errors(tmp_path: Path) -> None:
    pred_dir, gt_dir = _eval_dirs(tmp_path)
    tifffile.imwrite(pred_dir / "b.tif", np.zeros((10, 12), np.uint16))
    mismatch = runner.invoke(app, ["evaluate", str(pred_dir), str(gt_dir)])
    assert mismatch.exit_code == 1
    assert "b.tif" in mismatch.output and str(gt_dir / "b.tif") in mismatch.output.replace("\n", "")

    empty = tmp_path / "empty"
    empty.mkdir()
    none = runner.invoke(app, ["evaluate", str(empty), str(gt_dir)])
    assert none.exit_code == 1 and "no prediction" in none.output


def test_segment_cli_notes_a_checkpoint_whose_clustering_was_not_tuned(
    tmp_path: Path, random_checkpoint_2d: Path
) -> None:
    """A ``best.pt`` read before its training tuned the clustering gets the defaults: ``segment`` says so."""
    from spoco_zoo.train.checkpoint import load_checkpoint

    src = _write_input(tmp_path / "cells.tif")
    state = load_checkpoint(random_checkpoint_2d)
    assert state["config"].clustering.tune and "tuning" not in state
    tuned = tmp_path / "tuned.pt"
    save_checkpoint(tuned, {**state, "tuning": []})
    not_to_tune = tmp_path / "not_to_tune.pt"
    config = state["config"]
    untunable = config.model_copy(update={"clustering": config.clustering.model_copy(update={"tune": False})})
    save_checkpoint(not_to_tune, {**state, "config": untunable})
    outputs = {}
    for name, ckpt in (("untuned", random_checkpoint_2d), ("tuned", tuned), ("not_to_tune", not_to_tune)):
        args = ["segment", str(src), "--checkpoint", str(ckpt), "--output", str(tmp_path / name), "--no-progress"]
        result = runner.invoke(app, [*args, "--device", "cpu"])
        assert result.exit_code == 0, result.output
        outputs[name] = result.output
    assert f"note: {random_checkpoint_2d}: the clustering was not tuned" in outputs["untuned"]
    # and what it covers: settings given with --method/--param/--min-size are the user's
    assert "defaults are used for every clustering setting not given explicitly" in " ".join(outputs["untuned"].split())
    assert "not tuned" not in outputs["tuned"] and "not tuned" not in outputs["not_to_tune"]
