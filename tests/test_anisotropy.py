"""3D geometry: anisotropic volumes, the voxel size end to end, per-axis halo and package sizes."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import calibrate_batch_norm, same_partition

from spoco_zoo.config import TrainConfig
from spoco_zoo.data.synthetic import make_synthetic_sample
from spoco_zoo.data.voxel_size import first_voxel_size, read_voxel_size
from spoco_zoo.errors import DataError
from spoco_zoo.models.receptive_field import package_halo, unet_reaches
from spoco_zoo.models.unet import UNet
from spoco_zoo.train.checkpoint import build_model, save_checkpoint

#: The graph decoder's spacing of a z step 3x the pixel size: the voxel size over its geometric mean.
ZSTEP3 = [2.080084, 0.693361, 0.693361]


def _rdf(package: Path) -> dict:
    with zipfile.ZipFile(package) as zf:
        return yaml.safe_load(zf.read("rdf.yaml"))


def _input_reach(net: torch.nn.Module, shape: tuple[int, int, int]) -> list[int]:
    """Farthest input voxel (one side) with a non-zero gradient on the centre output, per axis."""
    x = torch.randn((1, 1, *shape), generator=torch.Generator().manual_seed(0), requires_grad=True)
    centre = tuple(s // 2 for s in shape)
    net(x)[(0, slice(None), *centre)].sum().backward()
    assert x.grad is not None
    grad = x.grad[0, 0].abs()
    out = []
    for axis in range(3):
        profile = grad.sum(dim=[a for a in range(3) if a != axis])
        reached = torch.nonzero(profile > 0).flatten()
        out.append(int(max(centre[axis] - reached[0], reached[-1] - centre[axis])))
    return out


def test_anisotropic_unet_pools_z_later_keeps_the_shape_and_scripts() -> None:
    net = UNet(spatial_dims=3, depth=3, base_features=4, anisotropic_levels=2).eval()
    assert net.size_steps == (2, 8, 8) and net.size_step == 8
    x = torch.randn(1, 1, 6, 24, 32)  # z a multiple of 2 only: the network pools it once
    out = net(x)
    assert out.shape == (1, 16, 6, 24, 32)
    assert torch.allclose(torch.jit.script(net)(x), out, atol=1e-5)
    # z reaches less than y and x, as the receptive-field rule says (its bound is reached in z, within
    # the pooling-grid alignment in y and x); without normalisation the gradient shows the reach exactly
    bound = unet_reaches(3, 3, anisotropic_levels=2)
    assert bound == (17, 51, 51)
    torch.manual_seed(0)
    plain = UNet(spatial_dims=3, depth=3, base_features=4, anisotropic_levels=2, norm="none").eval()
    z, y, x = _input_reach(plain, (48, 112, 112))
    assert z == bound[0] and bound[1] - 7 <= y <= bound[1] and bound[2] - 7 <= x <= bound[2]  # 7: pooling grid
    with pytest.raises(ValueError, match="anisotropic_levels"):
        UNet(spatial_dims=2, anisotropic_levels=1)


def test_old_state_dicts_load_into_the_new_unet() -> None:
    """Pooling has no weights: an isotropic network's state dict keys and shapes are unchanged."""
    net = UNet(spatial_dims=3, depth=2, base_features=4)
    keys = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert keys["decoders.0.upsample.weight"] == (16, 8, 2, 2, 2)
    assert not any(k.startswith("pool") for k in keys)
    aniso = UNet(spatial_dims=3, depth=2, base_features=4, anisotropic_levels=1).state_dict()
    assert tuple(aniso["decoders.1.upsample.weight"].shape) == (8, 4, 1, 2, 2)  # the first level: (1, 2, 2)


def test_the_voxel_size_decides_the_pooling_and_is_stored() -> None:
    base = {"model": {"spatial_dims": 3}, "data": {"patch_shape": [16, 64, 64], "synthetic": {"shape": [48, 128, 128]}}}
    cfg = TrainConfig.model_validate(base)
    assert cfg.model.anisotropic_levels is None
    for voxel, levels in (([1.0, 1.0, 1.0], 0), ([3.0, 1.0, 1.0], 1), ([2.0, 0.5, 0.5], 2), (None, 0)):
        decided = cfg.with_voxel_size(voxel)
        assert decided.model.anisotropic_levels == levels and decided.data.voxel_size == voxel
        assert build_model(decided).anisotropic_levels == levels
    given = TrainConfig.model_validate({**base, "data": {**base["data"], "voxel_size": [4, 1, 1]}})
    assert given.with_voxel_size([1.0, 1.0, 1.0]).data.voxel_size == [4.0, 1.0, 1.0]  # the config's wins
    fixed = TrainConfig.model_validate({**base, "model": {"spatial_dims": 3, "anisotropic_levels": 0}})
    assert fixed.with_voxel_size([5.0, 1.0, 1.0]).model.anisotropic_levels == 0  # an explicit choice stays
    with pytest.raises(ValueError, match="voxel_size"):
        TrainConfig.model_validate({**base, "data": {**base["data"], "voxel_size": [1, 1]}})
    with pytest.raises(ValueError, match="anisotropic_levels"):
        TrainConfig.model_validate({"model": {"anisotropic_levels": 1}})


def test_the_graph_decoder_scales_its_edge_threshold_by_the_voxel_size() -> None:
    """Neighbours along z, three pixel sizes apart, may differ three times as much (the embedding drifts with
    physical distance); TorchScript decodes the same, and a spacing of the wrong length is refused."""
    from spoco_zoo.cluster.graph import GraphInstances
    from spoco_zoo.cluster.graph_method import graph_segmentation

    emb = torch.zeros(1, 3, 6, 8, 8)
    emb[:, 0, 3:] = 0.4  # one step of 0.4 between z slices 2 and 3
    emb[:, 2] = 5.0  # foreground logit: everything is foreground
    plain = GraphInstances(edge_threshold=0.2)
    scaled = GraphInstances(edge_threshold=0.2, spacing=[3.0, 1.0, 1.0])
    assert len(torch.unique(plain(emb))) == 2 and len(torch.unique(scaled(emb))) == 1
    assert torch.equal(torch.jit.script(scaled)(emb), scaled(emb))
    assert torch.equal(torch.jit.script(plain)(emb), plain(emb))
    across_y = GraphInstances(edge_threshold=0.2, spacing=[1.0, 3.0, 1.0])  # the step is along z: still split
    assert len(torch.unique(across_y(emb))) == 2
    labels = graph_segmentation(emb[0, :2].numpy(), np.ones((6, 8, 8), bool), edge_threshold=0.2, spacing=[3, 1, 1])
    assert labels.max() == 1
    with pytest.raises(DataError, match="spacing"):
        graph_segmentation(emb[0, :2].numpy(), np.ones((6, 8, 8), bool), spacing=[3, 1])
    wrong = GraphInstances(edge_threshold=0.2, spacing=[3.0, 1.0])  # a 2D spacing on a volume
    for module in (wrong, torch.jit.script(wrong)):
        with pytest.raises((ValueError, torch.jit.Error), match="spacing"):
            module(emb)


def test_an_anisotropic_config_gives_every_decoder_its_spacing() -> None:
    base = {"model": {"spatial_dims": 3}, "data": {"patch_shape": [16, 64, 64], "synthetic": {"shape": [48, 128, 128]}}}
    aniso = TrainConfig.model_validate({**base, "data": {**base["data"], "voxel_size": [1.5, 0.5, 0.5]}})
    setting = aniso.clustering_setting()
    assert setting.method == "graph" and setting.method_kwargs()["spacing"] == ZSTEP3
    assert aniso.clustering_setting("ingraph").ingraph_kwargs()["spacing"] == ZSTEP3  # packages
    assert setting.as_dict()["spacing"] == ZSTEP3  # the RDF's clustering
    for voxel in ([0.5, 0.5, 0.5], None):  # isotropic or unknown: no spacing at all
        iso = TrainConfig.model_validate({**base, "data": {**base["data"], "voxel_size": voxel}})
        assert "spacing" not in iso.clustering_setting().method_kwargs()
    pinned = {**base["data"], "voxel_size": [1.5, 0.5, 0.5]}
    given = TrainConfig.model_validate({**base, "data": pinned, "clustering": {"params": {"spacing": [2, 1, 1]}}})
    assert given.clustering_setting().method_kwargs()["spacing"] == [2, 1, 1]  # the config's own wins


def test_the_tuning_chooses_a_z_threshold_below_the_voxel_size_when_that_splits_stacked_objects() -> None:
    """Two objects stacked in z whose embeddings differ by 0.30 across the z step, each drifting by 0.10 per
    x step: with the thresholds in proportion to the voxel size (power 1) no edge threshold of the grid both
    joins each object along x and splits them along z; a spacing power below 1 does, the tuning chooses
    it, and the setting it returns decodes the two objects."""
    from spoco_zoo.cluster import cluster_setting
    from spoco_zoo.cluster.clustering_setting import ClusteringSetting
    from spoco_zoo.cluster.settings import spacing_to_power
    from spoco_zoo.metrics import evaluate_instances
    from spoco_zoo.train.tuning import SPACING_POWERS, tune_clustering

    z, y, x = np.meshgrid(np.arange(12), np.arange(24), np.arange(24), indexing="ij")
    emb = np.stack([0.10 * x, 0.30 * (z >= 6), np.full(z.shape, 5.0)]).astype(np.float32)  # last: foreground
    truth = np.where(z >= 6, 2, 1)
    setting = ClusteringSetting(
        "graph", None, min_size=200, foreground="mask", edge_threshold=0.15, params={"spacing": ZSTEP3}
    )
    result = tune_clustering([emb], [truth], setting)
    assert {row.get("spacing_power") for row in result.table if row["split"] == "embedding"} == set(SPACING_POWERS)
    in_proportion = max(row["sbd"] for row in result.table if row.get("spacing_power") == 1.0)
    assert in_proportion < 0.7  # merged along z, or shattered along x
    assert result.params["spacing"][0] < ZSTEP3[0]
    assert result.params["spacing"] in [spacing_to_power(ZSTEP3, p) for p in SPACING_POWERS if p < 1]
    tuned = setting.updated(result.params, result.min_size)
    assert evaluate_instances(cluster_setting(emb, tuned), truth)["sbd"] == pytest.approx(1.0)
    iso = tune_clustering([emb], [truth], ClusteringSetting("graph", None, min_size=200, foreground="mask"))
    assert "spacing" not in iso.params and all("spacing_power" not in row for row in iso.table)


def test_anisotropic_synthetic_volumes_have_flat_objects() -> None:
    iso_image, iso = make_synthetic_sample((24, 96, 96), 24, seed=3)
    image, labels = make_synthetic_sample((24, 96, 96), 72, seed=3, anisotropy=3)
    assert image.shape == labels.shape == (24, 96, 96) and image.dtype == np.float32
    assert np.array_equal(np.unique(labels), np.arange(labels.max() + 1)) and labels.max() > 30

    def extent_ratio(lab: np.ndarray) -> float:
        from scipy import ndimage as ndi

        boxes = [b for b in ndi.find_objects(lab) if b is not None]
        return float(np.median([(b[0].stop - b[0].start) / (b[1].stop - b[1].start) for b in boxes]))

    assert 0.6 < extent_ratio(iso) < 1.25  # cubic voxels: about as deep as wide (some cut by the z borders)
    assert 0.2 < extent_ratio(labels) < 0.5  # a z step of 3 pixels: a third as many slices
    again, _ = make_synthetic_sample((24, 96, 96), 72, seed=3, anisotropy=3)
    assert np.array_equal(again, image)
    with pytest.raises(DataError, match="anisotropy"):
        make_synthetic_sample((64, 64), 8, seed=0, anisotropy=2)
    with pytest.raises(DataError, match="anisotropy"):
        make_synthetic_sample((8, 64, 64), 8, seed=0, anisotropy=0.5)


def test_voxel_size_is_read_from_tiff_and_ome_zarr(tmp_path: Path) -> None:
    import zarr

    from spoco_zoo.data.imagej import PixelSize, write_label_tiff

    tiff = write_label_tiff(tmp_path / "stack.tif", np.ones((4, 8, 8), np.uint16), PixelSize(0.2, 0.2, 0.6, "µm"))
    assert read_voxel_size(tiff, 3) == pytest.approx([0.6, 0.2, 0.2])
    flat = write_label_tiff(tmp_path / "flat.tif", np.ones((8, 8), np.uint16))
    assert read_voxel_size(flat, 2) is None

    store = tmp_path / "image.ome.zarr"
    group = zarr.open_group(str(store), mode="w")
    group.create_array("0", shape=(4, 8, 8), dtype="uint16")
    axes = [{"name": a, "type": "space", "unit": "nanometer"} for a in "zyx"]
    datasets = [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [900.0, 300.0, 300.0]}]}]
    group.attrs["ome"] = {"version": "0.5", "multiscales": [{"axes": axes, "datasets": datasets}]}
    assert read_voxel_size(store, 3) == pytest.approx([0.9, 0.3, 0.3])  # nanometres -> micrometres
    assert first_voxel_size([flat, store], 3) == pytest.approx([0.9, 0.3, 0.3])
    assert first_voxel_size(None, 3) is None


def test_training_reads_the_voxel_size_of_its_images(tmp_path: Path) -> None:
    """A stack with a z step 3x its pixel size trains an anisotropic network; the checkpoint keeps both."""
    import tifffile
    from tiny_training import tiny_train_sets
    from typer.testing import CliRunner

    from spoco_zoo.cli.main import app
    from spoco_zoo.data.imagej import write_label_tiff
    from spoco_zoo.train.checkpoint import load_checkpoint

    image, labels = make_synthetic_sample((16, 64, 64), 36, seed=1, anisotropy=3)
    metadata = {"axes": "ZYX", "spacing": 1.5, "unit": "um"}  # Fiji's hyperstack: 0.5 µm pixels, 1.5 µm z step
    tifffile.imwrite(tmp_path / "raw.tif", image, imagej=True, resolution=(2.0, 2.0), metadata=metadata)
    write_label_tiff(tmp_path / "labels.tif", labels.astype(np.uint16))
    sets = tiny_train_sets("model.spatial_dims=3", "data.patch_shape=[16,32,32]", "data.synthetic.shape=[16,64,64]")
    args = ["train", "--images", str(tmp_path / "raw.tif"), "--labels", str(tmp_path / "labels.tif")]
    out = tmp_path / "run"
    result = CliRunner().invoke(app, [*args, "--out", str(out), "--steps", "2", "--no-progress", *sets])
    assert result.exit_code == 0, result.output
    config = load_checkpoint(out / "last.pt")["config"]
    assert config.data.voxel_size == pytest.approx([1.5, 0.5, 0.5])
    assert config.model.anisotropic_levels == 1
    stored = yaml.safe_load((out / "config.yaml").read_text())
    assert stored["model"]["anisotropic_levels"] == 1


@pytest.fixture(scope="module")
def anisotropic_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random anisotropic 3D checkpoint: z step 3x, trained on 16x32x32 patches."""
    config = TrainConfig.model_validate(
        {
            "model": {"spatial_dims": 3, "depth": 2, "base_features": 4, "embedding_dim": 8},
            "data": {"patch_shape": [16, 32, 32], "voxel_size": [1.5, 0.5, 0.5], "synthetic": {"shape": [16, 32, 32]}},
        }
    ).with_voxel_size(None)
    torch.manual_seed(0)
    model = build_model(config)
    calibrate_batch_norm(model, 3, [16, 32, 32])
    path = tmp_path_factory.mktemp("aniso") / "aniso.pt"
    state = {"config": config, "step": 0, "model_state": model.state_dict(), "teacher_state": model.state_dict()}
    save_checkpoint(path, state)
    return path


def test_the_halo_follows_each_axis(anisotropic_checkpoint: Path) -> None:
    from spoco_zoo.train.checkpoint import load_model

    model, config = load_model(anisotropic_checkpoint)
    assert model.anisotropic_levels == 1 and config.model.anisotropic_levels == 1
    halo = package_halo(model, 3, 1)
    reaches = unet_reaches(2, 3, anisotropic_levels=1)  # (13, 23, 23)
    assert reaches[0] < reaches[1] and halo[0] <= halo[1] == halo[2]
    assert all(h % 4 == 0 and h <= -(-r // 4) * 4 for h, r in zip(halo, reaches))


def test_an_anisotropic_package_declares_its_scales_and_fits_its_training_patch(
    anisotropic_checkpoint: Path, tmp_path: Path
) -> None:
    from spoco_zoo.exporters.options import ExportOptions
    from spoco_zoo.exporters.package import export_package

    result = export_package(
        anisotropic_checkpoint,
        tmp_path / "aniso.zip",
        ExportOptions(variant="embeddings", formats="pytorch_state_dict"),
    )
    rdf = _rdf(result.path)
    space = [a for a in rdf["inputs"][0]["axes"] if a.get("type") == "space"]
    assert [(a["id"], a["scale"], a["unit"]) for a in space] == [
        ("z", 1.5, "micrometer"),
        ("y", 0.5, "micrometer"),
        ("x", 0.5, "micrometer"),
    ]  # the training config's voxel size, without --pixel-size
    halos = [a["halo"] for a in rdf["outputs"][0]["axes"] if a.get("type") == "space"]
    assert tuple(halos) == result.halo
    assert rdf["config"]["spoco"]["clustering"]["spacing"] == ZSTEP3  # the decoder's per-axis threshold
    for axis, halo, patch in zip(space, halos, (16, 32, 32)):
        assert axis["size"]["min"] - 2 * halo >= 1 and axis["size"]["min"] <= patch  # a training patch runs unpadded


def test_an_anisotropic_instances_package_decodes_with_its_spacing(
    anisotropic_checkpoint: Path, tmp_path: Path
) -> None:
    """The in-graph decoder of a package carries the spacing, and TorchScript and ONNX Runtime give the
    eager labels with it (the exporter's parity check, which raises otherwise); on the package's test
    input the spacing changes the labels, so that check would see a format that dropped it."""
    from spoco_zoo.cluster.graph import GraphInstances
    from spoco_zoo.config import NormalizationConfig
    from spoco_zoo.data.normalize import normalize
    from spoco_zoo.exporters.options import ExportOptions
    from spoco_zoo.exporters.package import export_package

    options = ExportOptions(  # a random network: every voxel clustered, so the test image has objects
        variant="instances", formats="torchscript,onnx", test_shape=(16, 32, 32), ingraph={"foreground": "drop"}
    )
    result = export_package(anisotropic_checkpoint, tmp_path / "aniso_instances.zip", options)
    assert all(p.passed for p in result.parity.values()) and set(result.parity) >= {"torchscript", "onnx"}
    rdf = _rdf(result.path)
    assert rdf["config"]["spoco"]["clustering"]["ingraph"]["spacing"] == ZSTEP3
    with zipfile.ZipFile(result.path) as zf:
        scripted = torch.jit.load(io.BytesIO(zf.read(rdf["weights"]["torchscript"]["source"])))
        raw = np.load(io.BytesIO(zf.read(rdf["inputs"][0]["test_tensor"]["source"])))
        expected = np.load(io.BytesIO(zf.read(rdf["outputs"][0]["test_tensor"]["source"])))
    image = torch.from_numpy(normalize(raw[0], NormalizationConfig())[None])  # the RDF's scale_range
    with torch.no_grad():
        embeddings = scripted.unet(image)
        assert same_partition(scripted.clustering(embeddings).numpy(), expected)
        plain = GraphInstances(
            **{
                k: v
                for k, v in rdf["config"]["spoco"]["clustering"]["ingraph"].items()
                if k not in ("decoder", "spacing")
            }
        )
        assert not same_partition(plain(embeddings).numpy(), expected)  # without the spacing: other labels


def test_an_axis_without_halo_is_a_plain_output_axis(tmp_path: Path) -> None:
    """A training patch one size step deep leaves z no halo: the spec's halo is >= 1, so the package
    declares a plain output axis there, and the package still validates (the export checks it)."""
    from spoco_zoo.exporters.options import ExportOptions
    from spoco_zoo.exporters.package import export_package

    config = TrainConfig.model_validate(
        {
            "model": {"spatial_dims": 3, "depth": 3, "base_features": 4, "embedding_dim": 8},
            "data": {"patch_shape": [8, 64, 64], "synthetic": {"shape": [8, 64, 64]}},
        }
    ).with_voxel_size(None)
    torch.manual_seed(0)
    model = build_model(config)
    calibrate_batch_norm(model, 3, [8, 64, 64])
    path = tmp_path / "thin.pt"
    save_checkpoint(path, {"config": config, "step": 0, "model_state": model.state_dict(), "halo": [24, 24, 24]})
    result = export_package(
        path, tmp_path / "thin.zip", ExportOptions(variant="embeddings", formats="pytorch_state_dict")
    )
    assert result.halo == (0, 24, 24)
    rdf = _rdf(result.path)
    z_out = next(a for a in rdf["outputs"][0]["axes"] if a.get("id") == "z")
    assert "halo" not in z_out or z_out["halo"] == 0
    z_in = next(a for a in rdf["inputs"][0]["axes"] if a.get("id") == "z")
    assert z_in["size"] == {"min": 8, "step": 8}


def _short_3d_run(out: Path, data: dict, steps: int, base_features: int, warmup_steps: int) -> TrainConfig:
    """A depth-2 3D run of ``steps`` steps on 16x32x32 patches (``data`` adds to the data section), validated
    and checkpointed once, at its last step, into ``out``."""
    return TrainConfig.model_validate(
        {
            "model": {"spatial_dims": 3, "depth": 2, "base_features": base_features, "embedding_dim": 8},
            "data": {"patch_shape": [16, 32, 32], **data},
            "steps": steps,
            "val_every": steps,
            "checkpoint_every": steps,
            "warmup_steps": warmup_steps,
            "out_dir": str(out),
            "device": "cpu",
        }
    )


def test_a_short_3d_training_segments_an_easy_volume(tmp_path: Path) -> None:
    """Issue 20's floor: 100 steps on two 32x64x64 volumes of 10 objects (every object annotated) segment
    a fresh volume at SBD >= 0.6 (0.81 measured on 2 CPU cores, about 45 s)."""
    from spoco_zoo.metrics import evaluate_instances
    from spoco_zoo.segmentation import load_segmenter, segment_with_checkpoint
    from spoco_zoo.train.trainer import Trainer

    synthetic = {"n_train": 2, "n_val": 1, "shape": [32, 64, 64], "n_objects": 10, "seed": 3}
    data = {"object_fraction": 1.0, "synthetic": synthetic}
    config = _short_3d_run(tmp_path / "run", data, steps=100, base_features=8, warmup_steps=10)
    Trainer(config, progress=False).fit()
    image, truth = make_synthetic_sample((32, 64, 64), 10, seed=99)
    labels, _ = segment_with_checkpoint(load_segmenter(tmp_path / "run" / "best.pt"), image[None])
    assert evaluate_instances(labels, truth)["sbd"] >= 0.6


def test_an_anisotropic_training_stores_and_prints_the_spacing_it_tuned(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The end-of-training tuning of a z-step-3x run chooses a spacing among the powers of the voxel size's,
    stores it with the clustering (``segment`` decodes with it) and prints it in its note."""
    from spoco_zoo.cluster.settings import spacing_to_power
    from spoco_zoo.segmentation import load_segmenter
    from spoco_zoo.train.trainer import Trainer
    from spoco_zoo.train.tuning import SPACING_POWERS

    synthetic = {"n_train": 1, "n_val": 1, "shape": [16, 32, 32], "n_objects": 12, "seed": 3}
    data = {"voxel_size": [3.0, 1.0, 1.0], "synthetic": synthetic}
    Trainer(_short_3d_run(tmp_path / "run", data, steps=2, base_features=4, warmup_steps=1), progress=True).fit()
    clustering = load_segmenter(tmp_path / "run" / "best.pt").clustering
    assert clustering.method == "graph" and clustering.split == "embedding"
    assert clustering.params["spacing"] in [spacing_to_power(ZSTEP3, p) for p in SPACING_POWERS]
    note = [line for line in capsys.readouterr().out.splitlines() if "post-processing tuned" in line]
    assert len(note) == 1 and "spacing " in note[0] and "/" in note[0], note
