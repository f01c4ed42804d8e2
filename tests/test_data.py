"""Data package: I/O, synthetic data, sparsification, normalisation, augmentation, datasets."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile
import torch
import zarr

from spoco_zoo.config import DataConfig, NormalizationConfig
from spoco_zoo.data import (
    GeometricTransform,
    SparseInstanceDataset,
    build_datasets,
    check_has_objects,
    check_pair,
    from_training_labels,
    intensity_augment,
    make_synthetic_dataset,
    make_synthetic_sample,
    normalize,
    random_flip_rotate,
    read_image,
    read_labels,
    sparsify,
    to_training_labels,
    write_image,
    write_synthetic_dataset,
    write_tiff,
)
from spoco_zoo.errors import DataError


# ---------------------------------------------------------------------------- helpers
@pytest.fixture(scope="module")
def sample_2d() -> tuple[np.ndarray, np.ndarray]:
    return make_synthetic_sample((128, 128), 20, seed=3)


def _grid_labels(n_side: int = 8, cell: int = 6, gap: int = 2) -> np.ndarray:
    """``n_side**2`` square objects separated by background."""
    size = n_side * (cell + gap)
    labels = np.zeros((size, size), np.int64)
    for i in range(n_side):
        for j in range(n_side):
            y, x = i * (cell + gap), j * (cell + gap)
            labels[y : y + cell, x : x + cell] = i * n_side + j + 1
    return labels


def _touching_pairs(labels: np.ndarray) -> int:
    """Number of distinct pairs of different objects that are face-adjacent."""
    pairs = set()
    for axis in range(labels.ndim):
        a = np.moveaxis(labels, axis, 0)[1:].ravel()
        b = np.moveaxis(labels, axis, 0)[:-1].ravel()
        touch = (a > 0) & (b > 0) & (a != b)
        pairs |= {(min(p), max(p)) for p in zip(a[touch].tolist(), b[touch].tolist())}
    return len(pairs)


def _write_h5(path: Path, **datasets: np.ndarray) -> Path:
    with h5py.File(path, "w") as handle:
        for key, value in datasets.items():
            handle.create_dataset(key, data=value)
    return path


def _write_zarr(path: Path, **arrays: np.ndarray) -> Path:
    group = zarr.open_group(str(path), mode="w")
    for key, value in arrays.items():
        group.create_array(key, data=value)
    return path


# ---------------------------------------------------------------------------- sparsify
def test_sparsify_keeps_requested_fraction() -> None:
    labels = _grid_labels(n_side=8)
    labels[labels > 40] = 0  # 40 objects
    sparse = sparsify(labels, 0.1, seed=0)
    kept = np.unique(sparse[sparse > 0])
    assert sparse.dtype == np.int64 and len(kept) == 4
    for obj in kept:  # kept objects are complete and keep their ids
        assert np.array_equal(sparse == obj, labels == obj)
    dropped = (labels > 0) & ~np.isin(labels, kept)
    assert np.all(sparse[dropped] == -1)
    assert np.all(sparse[labels == 0] == 0)

    # "objects only": the same objects painted, every other pixel 0 = unknown (background included)
    painted = sparsify(labels, 0.1, seed=0, convention="objects_only")
    assert np.array_equal(np.unique(painted[painted > 0]), kept)
    assert np.all(painted[~np.isin(labels, kept)] == 0) and not np.any(painted < 0)
    training = to_training_labels(painted, "objects_only")
    assert np.all(training[~np.isin(labels, kept)] == -1)
    assert np.array_equal(training[np.isin(labels, kept)], labels[np.isin(labels, kept)])
    assert np.array_equal(from_training_labels(training, "objects_only"), painted)
    # "objects and background" files are the training labels as they are
    assert np.array_equal(to_training_labels(sparse, "objects_and_background"), sparse)
    with pytest.raises(DataError, match="label_convention"):
        sparsify(labels, 0.1, seed=0, convention="everything")


def test_objects_only_training_data_marks_background_unknown() -> None:
    cfg = DataConfig(
        label_convention="objects_only",
        patch_shape=[64, 64],
        synthetic={"n_train": 2, "n_val": 1, "shape": [64, 64], "n_objects": 8},
    )
    train, _ = build_datasets(cfg, 2, seed=0)
    for labels in train.labels:
        assert not np.any(labels == 0)  # nothing is annotated background
        assert np.any(labels > 0) and np.any(labels == -1)
    default, _ = build_datasets(cfg.model_copy(update={"label_convention": "objects_and_background"}), 2, seed=0)
    for painted, both in zip(train.labels, default.labels):
        assert np.array_equal(painted > 0, both > 0)  # the same objects are annotated
        assert np.any(both == 0)


def test_sparsify_is_reproducible_and_seeded() -> None:
    labels = _grid_labels(n_side=8)
    first = sparsify(labels, 0.25, seed=7)
    assert np.array_equal(first, sparsify(labels, 0.25, seed=7))
    others = [set(np.unique(sparsify(labels, 0.25, seed=s))) for s in range(5)]
    assert len({frozenset(o) for o in others}) > 1
    assert all(len(o - {-1, 0}) == 16 for o in others)


def test_sparsify_edge_cases() -> None:
    labels = np.array([[0, 1, 1, -1], [2, 2, 3, 0]])
    sparse = sparsify(labels, 0.01, seed=0)
    assert len(np.unique(sparse[sparse > 0])) == 1  # at least one object
    assert sparse[0, 3] == -1  # already unlabeled stays unlabeled
    assert np.array_equal(sparsify(labels, 1.0, seed=0), labels)
    assert np.all(sparsify(np.zeros((4, 4), int), 0.5, seed=0) == 0)
    with pytest.raises(DataError, match="object_fraction"):
        sparsify(labels, 0.0, seed=0)


# ---------------------------------------------------------------------------- synthetic
@pytest.mark.parametrize("shape,n_objects", [((256, 256), 40), ((32, 96, 96), 30)])
def test_synthetic_sample(shape: tuple[int, ...], n_objects: int) -> None:
    image, labels = make_synthetic_sample(shape, n_objects, seed=1)
    assert image.shape == labels.shape == shape
    assert image.dtype == np.float32 and labels.dtype == np.int64
    ids = np.unique(labels)
    assert ids[0] == 0 and np.array_equal(ids[1:], np.arange(1, len(ids)))  # consecutive ids
    assert 0.75 * n_objects <= labels.max() <= 1.25 * n_objects
    background = np.mean(labels == 0)
    assert 0.1 <= background <= 0.4
    assert _touching_pairs(labels) >= n_objects // 2  # crowded: many objects touch
    # objects are brighter than background; membranes between touching objects are darker
    assert image[labels > 0].mean() > 2 * image[labels == 0].mean()
    assert np.all(np.isfinite(image))


def test_synthetic_is_deterministic() -> None:
    a = make_synthetic_sample((64, 64), 10, seed=5)
    b = make_synthetic_sample((64, 64), 10, seed=5)
    c = make_synthetic_sample((64, 64), 10, seed=6)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])
    data = make_synthetic_dataset(3, (48, 48), 6, seed=0)
    assert len(data) == 3 and not np.array_equal(data[0][1], data[1][1])
    shifted = make_synthetic_dataset(2, (48, 48), 6, seed=0, start=1)
    assert np.array_equal(shifted[0][1], data[1][1])


def test_write_synthetic_dataset(tmp_path: Path) -> None:
    paths = write_synthetic_dataset(tmp_path, 2, (64, 64), 8, seed=0, sparse_fraction=0.5)
    assert set(paths) == {"images", "labels", "sparse_labels"}
    assert all(len(files) == 2 and all(Path(f).is_file() for f in files) for files in paths.values())
    image = read_image(paths["images"][0])
    dense = read_labels(paths["labels"][0])
    sparse = read_labels(paths["sparse_labels"][0])
    assert image.shape == (1, 64, 64) and dense.shape == sparse.shape == (64, 64)
    assert tifffile.imread(paths["labels"][0]).dtype == np.uint16
    n = dense.max()
    assert len(np.unique(sparse[sparse > 0])) == round(0.5 * n) and (sparse == -1).any()


# ---------------------------------------------------------------------------- io round trips
IMAGES = {
    "yx": ((40, 50), 2, (1, 40, 50)),
    "cyx": ((2, 40, 50), 2, (2, 40, 50)),
    "zyx": ((6, 40, 50), 3, (1, 6, 40, 50)),
    "czyx": ((3, 6, 40, 50), 3, (3, 6, 40, 50)),
}


@pytest.mark.parametrize("fmt", ["tif", "h5", "zarr"])
@pytest.mark.parametrize("axes", list(IMAGES))
def test_image_round_trip(tmp_path: Path, fmt: str, axes: str) -> None:
    stored_shape, dims, expected = IMAGES[axes]
    data = np.random.default_rng(0).random(stored_shape).astype(np.float32)
    path = tmp_path / f"img.{fmt}"
    if fmt == "tif":
        write_image(path, data)
    elif fmt == "h5":
        _write_h5(path, raw=data)
    else:
        _write_zarr(path, raw=data)
    for key in (None, "raw") if fmt != "tif" else (None,):
        image = read_image(path, key=key, spatial_dims=dims)
        assert image.shape == expected and image.dtype == np.float32
        assert np.array_equal(image.reshape(data.shape), data)


@pytest.mark.parametrize("fmt", ["tif", "h5", "zarr"])
@pytest.mark.parametrize("shape", [(30, 40), (5, 30, 40)])
def test_label_round_trip(tmp_path: Path, fmt: str, shape: tuple[int, ...]) -> None:
    labels = np.random.default_rng(0).integers(0, 70000, shape)
    path = tmp_path / f"lab.{fmt}"
    if fmt == "tif":
        write_tiff(path, labels)
        assert tifffile.imread(path).dtype == np.uint32
    elif fmt == "h5":
        _write_h5(path, seg=labels.astype(np.uint32))
    else:
        _write_zarr(path, seg=labels.astype(np.float32))  # whole-number floats are accepted
    out = read_labels(path, spatial_dims=len(shape))
    assert out.dtype == np.int64 and np.array_equal(out, labels)


def test_write_tiff_dtypes_and_atomicity(tmp_path: Path) -> None:
    small = _grid_labels(2)
    path = write_tiff(tmp_path / "sub" / "a.tif", small)
    assert tifffile.imread(path).dtype == np.uint16
    sparse = sparsify(small, 0.5, seed=0)
    write_tiff(tmp_path / "s.tif", sparse, ignore_label=-1)
    assert np.array_equal(read_labels(tmp_path / "s.tif"), sparse)
    with pytest.raises(DataError, match="b.tif.*negative"):
        write_tiff(tmp_path / "b.tif", sparse)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.tif", "sub"]  # no temp files left


def test_axis_rule_without_spatial_dims(tmp_path: Path) -> None:
    write_image(tmp_path / "c.tif", np.zeros((3, 20, 20), np.float32))
    write_image(tmp_path / "z.tif", np.zeros((8, 20, 20), np.float32))
    write_image(tmp_path / "rgb.tif", np.zeros((20, 30, 3), np.float32))
    assert read_image(tmp_path / "c.tif").shape == (3, 20, 20)
    assert read_image(tmp_path / "c.tif", spatial_dims=3).shape == (1, 3, 20, 20)
    assert read_image(tmp_path / "z.tif").shape == (1, 8, 20, 20)
    assert read_image(tmp_path / "rgb.tif").shape == (3, 20, 30)


# ---------------------------------------------------------------------------- io errors
def test_bad_inputs_raise_data_error_naming_the_file(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.tif"
    corrupt.write_bytes(b"II*\x00 definitely not a tiff")
    with pytest.raises(DataError, match="corrupt.tif"):
        read_image(corrupt)

    with pytest.raises(DataError, match="missing.h5.*not found"):
        read_image(tmp_path / "missing.h5")
    with pytest.raises(DataError, match="image.gif.*unsupported"):
        read_image(tmp_path / "image.gif")

    five_d = write_image(tmp_path / "five_d.tif", np.zeros((2, 2, 3, 8, 8), np.float32))
    with pytest.raises(DataError, match="five_d.tif.*5 axes"):
        read_image(five_d)
    flat = _write_h5(tmp_path / "flat.h5", raw=np.zeros((4, 8, 8), np.float32))
    with pytest.raises(DataError, match="flat.h5.*3 axes"):
        read_labels(flat, spatial_dims=2)

    nan = np.ones((8, 8), np.float32)
    nan[2, 3] = np.nan
    nan_path = _write_h5(tmp_path / "nan.h5", raw=nan)
    with pytest.raises(DataError, match="nan.h5.*NaN"):
        read_image(nan_path)

    fractional = _write_h5(tmp_path / "fractional.h5", seg=np.full((8, 8), 1.5))
    with pytest.raises(DataError, match="fractional.h5.*not integer-valued"):
        read_labels(fractional)
    negative = _write_h5(tmp_path / "negative.h5", seg=np.full((8, 8), -3))
    with pytest.raises(DataError, match="negative.h5.*negative values"):
        read_labels(negative)

    two = _write_h5(tmp_path / "two.h5", raw=np.zeros((8, 8)), seg=np.zeros((8, 8)))
    with pytest.raises(DataError, match=r"two.h5.*2 arrays.*raw.*seg"):
        read_image(two)
    with pytest.raises(DataError, match="two.h5.*'nope'"):
        read_image(two, key="nope")
    two_zarr = _write_zarr(tmp_path / "two.zarr", raw=np.zeros((8, 8)), seg=np.zeros((8, 8)))
    with pytest.raises(DataError, match="two.zarr.*2 arrays"):
        read_labels(two_zarr)

    with pytest.raises(DataError, match="lab.tif.*does not match.*img.tif"):
        check_pair(np.zeros((1, 8, 8)), np.zeros((8, 9)), "img.tif", "lab.tif")
    check_pair(np.zeros((2, 8, 9)), np.zeros((8, 9)), "img.tif", "lab.tif")
    with pytest.raises(DataError, match="empty.tif: no labeled object"):
        check_has_objects(np.array([[0, -1], [0, 0]]), "empty.tif")


# ---------------------------------------------------------------------------- normalize
def test_normalize_percentile_matches_formula() -> None:
    rng = np.random.default_rng(0)
    image = np.stack([rng.normal(100, 20, (32, 32)), rng.gamma(2.0, 5.0, (32, 32))]).astype(np.float32)
    cfg = NormalizationConfig(mode="percentile", p_low=1.0, p_high=99.8, eps=1e-6)
    out = normalize(image, cfg)
    assert out.dtype == np.float32 and out.shape == image.shape
    for c in range(2):
        lo, hi = np.percentile(image[c].astype(np.float64), [1.0, 99.8])
        np.testing.assert_allclose(out[c], (image[c] - lo) / (hi - lo + 1e-6), rtol=1e-5, atol=1e-6)
    assert out.min() < 0 and out.max() > 1  # no clipping, as bioimage.io scale_range


def test_normalize_zero_mean_unit_variance() -> None:
    image = np.random.default_rng(1).normal(5, 3, (2, 4, 16, 16)).astype(np.float32)
    out = normalize(image, NormalizationConfig(mode="zero_mean_unit_variance", eps=1e-6))
    for c in range(2):
        expected = (image[c] - image[c].mean()) / (image[c].std() + 1e-6)
        np.testing.assert_allclose(out[c], expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out.reshape(2, -1).std(axis=1), 1.0, atol=1e-4)
    with pytest.raises(DataError, match="NaN"):
        normalize(np.full((1, 4, 4), np.nan), NormalizationConfig())


# ---------------------------------------------------------------------------- augment
@pytest.mark.parametrize("shape", [(2, 3, 32, 32), (2, 3, 16, 48), (1, 2, 8, 16, 24)])
def test_geometric_transform_inverts_exactly(shape: tuple[int, ...]) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen)
    seen = set()
    for _ in range(24):
        transform = GeometricTransform.random(len(shape) - 2, gen)
        seen.add(transform)
        y = transform.apply(x)
        assert torch.equal(transform.invert(y), x)
        if transform.k % 2:
            assert y.shape[-2:] == x.shape[-2:][::-1]
    assert len(seen) > 4
    t = GeometricTransform(flips=(False, True), k=1)
    img = torch.arange(6.0).reshape(1, 1, 2, 3)
    expected = torch.rot90(torch.flip(img, [3]), 1, dims=(2, 3))
    assert torch.equal(t.apply(img), expected)


def test_intensity_augment_is_new_tensor_and_seeded() -> None:
    x = torch.rand(2, 1, 16, 16)
    before = x.clone()
    a = intensity_augment(x, torch.Generator().manual_seed(1))
    b = intensity_augment(x, torch.Generator().manual_seed(1))
    c = intensity_augment(x, torch.Generator().manual_seed(2))
    assert torch.equal(x, before)
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.equal(a, b) and not torch.equal(a, c) and not torch.equal(a, x)
    assert torch.isfinite(a).all()
    # a monotone change plus mild noise keeps the image strongly correlated with the input
    corr = np.corrcoef(a[0].ravel().numpy(), x[0].ravel().numpy())[0, 1]
    assert corr > 0.8


def test_random_flip_rotate_keeps_pairs_aligned() -> None:
    labels = np.arange(6 * 8).reshape(6, 8)
    image = np.stack([labels, -labels]).astype(np.float32)
    rng = np.random.default_rng(0)
    for _ in range(10):
        im, lb = random_flip_rotate(image, labels, rng)
        assert im.shape == image.shape and lb.dtype == labels.dtype
        assert np.array_equal(im[0], lb) and np.array_equal(im[1], -lb)
        assert im.flags.c_contiguous and sorted(lb.ravel()) == list(range(48))
    square = np.arange(16).reshape(4, 4)
    shapes = {random_flip_rotate(square[None], square, rng)[1].tobytes() for _ in range(64)}
    assert len(shapes) == 8  # the full dihedral group


# ---------------------------------------------------------------------------- dataset
def test_dataset_items(sample_2d: tuple[np.ndarray, np.ndarray]) -> None:
    image, labels = sample_2d
    sparse = sparsify(labels, 0.1, seed=0)
    data = SparseInstanceDataset([(image[None], sparse)], (64, 64), samples_per_epoch=50, seed=3)
    assert len(data) == 50 and data.in_channels == 1
    item = data[7]
    assert item["image"].shape == (1, 64, 64) and item["image"].dtype == torch.float32
    assert item["labels"].shape == (64, 64) and item["labels"].dtype == torch.int64
    assert torch.equal(item["labels"], data[7]["labels"])  # a pure function of (seed, index)
    assert not torch.equal(data[7]["labels"], data[8]["labels"])
    with_object = np.mean([(data[i]["labels"] > 0).any().item() for i in range(50)])
    assert with_object >= 0.75
    with pytest.raises(IndexError):
        data[50]


def test_dataset_pads_small_images_and_validates() -> None:
    labels = np.zeros((5, 20, 12), np.int64)
    labels[1:3, 5:10, 3:8] = 4
    image = np.random.default_rng(0).random((2, 5, 20, 12)).astype(np.float32)
    data = SparseInstanceDataset([(image, labels)], (8, 16, 16), samples_per_epoch=4)
    item = data[0]
    assert item["image"].shape == (2, 8, 16, 16) and item["labels"].shape == (8, 16, 16)
    assert (data.labels[0] == -1).sum() == np.prod(data.labels[0].shape) - labels.size
    with pytest.raises(DataError, match="samples\\[0\\]"):
        SparseInstanceDataset([(image, labels[:, :10])], (8, 16, 16))


def test_build_datasets_synthetic_defaults() -> None:
    cfg = DataConfig()
    train, val = build_datasets(cfg, spatial_dims=2, seed=0)
    assert len(train.images) == cfg.synthetic.n_train and len(val) == cfg.synthetic.n_val
    for labels in train.labels:
        assert (labels == -1).any() and (labels == 0).any()
        assert 14 <= len(np.unique(labels[labels > 0])) <= 18  # round(0.1 * ~160 objects)
        assert np.mean(labels > 0) < 0.2  # most object pixels are unlabeled
    image, labels = val[0]
    assert image.shape == (1, 512, 512) and image.dtype == np.float32
    assert train.patch_shape == (256, 256)  # patches are crops of the larger training images
    assert not (labels == -1).any() and labels.max() >= 120  # dense validation ground truth
    assert np.percentile(image, 1) == pytest.approx(0.0, abs=1e-3)
    item = train[0]
    assert item["image"].shape == (1, 256, 256) and item["labels"].shape == (256, 256)  # whole images


def test_build_datasets_from_files(tmp_path: Path) -> None:
    paths = write_synthetic_dataset(tmp_path / "data", 3, (64, 64), 10, seed=0)
    cfg = DataConfig(
        train_images=paths["images"][:2],
        train_labels=paths["labels"][:2],
        val_images=paths["images"][2:],
        val_labels=paths["labels"][2:],
        patch_shape=[32, 32],
        object_fraction=0.2,
    )
    train, val = build_datasets(cfg, spatial_dims=2, seed=0)
    assert len(train.images) == 2 and len(val) == 1
    assert all(len(np.unique(lb[lb > 0])) == 2 for lb in train.labels)
    assert np.array_equal(val[0][1], read_labels(paths["labels"][2]))

    # no validation images: 2 annotated objects per image, floor(0.2 * 2) = 0 set aside -> no
    # validation; with every object annotated (10), 2 per image are set aside
    no_val = cfg.model_copy(update={"val_images": None, "val_labels": None})
    train_nv, val_nv = build_datasets(no_val, 2, 0)
    assert val_nv == [] and "too few annotated objects" in train_nv.validation_note
    dense = no_val.model_copy(update={"object_fraction": 1.0})
    train_d, val_d = build_datasets(dense, 2, 0)
    assert "set aside (not trained on)" in train_d.validation_note
    for kept, (_, held) in zip(train_d.labels, val_d):
        truth = read_labels(paths["labels"][0 if kept is train_d.labels[0] else 1])
        n_objects = len(np.unique(truth[truth > 0]))
        held_ids, kept_ids = set(np.unique(held[held > 0])), set(np.unique(kept[kept > 0]))
        assert len(held_ids) == n_objects // 5 and not held_ids & kept_ids
        assert len(held_ids) + len(kept_ids) == n_objects
        assert ((held == 0) == (truth == 0)).all()  # the annotated background validates too
        assert (kept[held > 0] == -1).all()  # set-aside objects are unannotated for training

    sparse_cfg = cfg.model_copy(update={"labels_are_sparse": True})
    train_sparse, _ = build_datasets(sparse_cfg, 2, 0)
    assert np.array_equal(train_sparse.labels[0], read_labels(paths["labels"][0]))

    empty = write_tiff(tmp_path / "empty.tif", np.zeros((64, 64), np.int64))
    bad = cfg.model_copy(update={"train_labels": [paths["labels"][0], empty]})
    with pytest.raises(DataError, match="empty.tif: no labeled object"):
        build_datasets(bad, 2, 0)
    small = write_tiff(tmp_path / "small.tif", np.ones((32, 64), np.int64))
    mismatch = cfg.model_copy(update={"train_labels": [small, paths["labels"][1]]})
    with pytest.raises(DataError, match="small.tif.*does not match"):
        build_datasets(mismatch, 2, 0)
