"""Styles of the built-in synthetic data: ``crowded`` unchanged, ``nuclei`` like real fluorescence nuclei."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi

from spoco_zoo.baselines import classical_segmentation
from spoco_zoo.data.synthetic import make_synthetic_dataset, make_synthetic_sample, write_synthetic_dataset
from spoco_zoo.errors import DataError
from spoco_zoo.metrics import evaluate_instances

# sha256 of make_synthetic_sample((64, 64), 8, 0) before the styles were added
CROWDED_LABELS_SHA256 = "cd5d18bafd814c879f5da95fa12947360d01eef1f59277c065477439b9516bc1"
CROWDED_IMAGE_SHA256 = "ec7570e2b4462d9fd1236c077bd54cc15c41411f5963ef3d416f10940b2c7baf"
CROWDED_3D_LABELS_SHA256 = "71593c25c191f68dd0f3cd4f2bcc601b1a331457e678663c48da0c025941d8cc"  # ((16, 32, 32), 6, 1)


def _sha256(array: np.ndarray) -> str:
    return hashlib.sha256(array.tobytes()).hexdigest()


def _touching_pairs(labels: np.ndarray) -> int:
    """Number of face-adjacent pixel pairs with two different object ids."""
    pairs = 0
    for axis in range(labels.ndim):
        a = np.moveaxis(labels, axis, 0)[:-1]
        b = np.moveaxis(labels, axis, 0)[1:]
        pairs += int(np.sum((a > 0) & (b > 0) & (a != b)))
    return pairs


@pytest.fixture(scope="module")
def nuclei_2d() -> tuple[np.ndarray, np.ndarray]:
    return make_synthetic_sample((512, 512), 60, seed=0, style="nuclei")


@pytest.fixture(scope="module")
def nuclei_3d() -> tuple[np.ndarray, np.ndarray]:
    return make_synthetic_sample((48, 96, 96), 20, seed=0, style="nuclei")


def test_crowded_is_unchanged() -> None:
    image, labels = make_synthetic_sample((64, 64), 8, 0)
    assert _sha256(labels) == CROWDED_LABELS_SHA256
    assert _sha256(image) == CROWDED_IMAGE_SHA256
    explicit = make_synthetic_sample((64, 64), 8, 0, style="crowded")
    assert _sha256(explicit[1]) == CROWDED_LABELS_SHA256 and _sha256(explicit[0]) == CROWDED_IMAGE_SHA256
    assert _sha256(make_synthetic_sample((16, 32, 32), 6, 1)[1]) == CROWDED_3D_LABELS_SHA256
    assert _sha256(make_synthetic_dataset(1, (64, 64), 8, 0)[0][1]) == _sha256(
        make_synthetic_sample((64, 64), 8, (0, 0))[1]
    )


@pytest.mark.parametrize("call", ["sample", "dataset", "write"])
def test_unknown_style(call: str, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"style.*'blobs'.*crowded, nuclei"):
        if call == "sample":
            make_synthetic_sample((32, 32), 4, 0, style="blobs")
        elif call == "dataset":
            make_synthetic_dataset(2, (32, 32), 4, 0, style="blobs")
        else:
            write_synthetic_dataset(tmp_path / "out", 1, (32, 32), 4, 0, style="blobs")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("sample", ["nuclei_2d", "nuclei_3d"])
def test_nuclei_scene(sample: str, request: pytest.FixtureRequest) -> None:
    image, labels = request.getfixturevalue(sample)
    shape = (512, 512) if sample == "nuclei_2d" else (48, 96, 96)
    assert image.shape == labels.shape == shape
    assert image.dtype == np.float32 and labels.dtype == np.int64
    assert np.array_equal(np.unique(labels), np.arange(labels.max() + 1))  # ids 1..n, 0 = background
    assert 0.8 * (60 if sample == "nuclei_2d" else 20) <= labels.max()
    assert 0.6 < float((labels == 0).mean()) < 0.9  # mostly background
    assert -0.1 < float(image.min()) and float(image.max()) < 2.0  # roughly in [0, 1]
    assert _touching_pairs(labels) > 0  # clumps: objects touch
    ids = np.arange(1, labels.max() + 1)
    means = np.asarray(ndi.mean(image, labels, ids))
    assert np.percentile(means, 90) / np.percentile(means, 10) > 2.0  # dim and bright objects
    background = float(np.median(image[ndi.binary_dilation(labels > 0, iterations=6) == 0]))
    assert background < float(np.percentile(means, 10))  # objects brighter than the background


def test_nuclei_soft_edges(nuclei_2d: tuple[np.ndarray, np.ndarray]) -> None:
    """Intensity falls off over a few pixels: just outside objects is brighter than far background."""
    image, labels = nuclei_2d
    objects = labels > 0
    ring = ndi.binary_dilation(objects, iterations=2) & ~objects
    far = ~ndi.binary_dilation(objects, iterations=8)
    inside = objects & ~ndi.binary_dilation(~objects, iterations=3)
    ring_level, far_level, inside_level = (float(np.median(image[m])) for m in (ring, far, inside))
    assert far_level < ring_level < inside_level


def test_nuclei_is_reproducible() -> None:
    a = make_synthetic_sample((96, 96), 10, seed=5, style="nuclei")
    b = make_synthetic_sample((96, 96), 10, seed=5, style="nuclei")
    c = make_synthetic_sample((96, 96), 10, seed=6, style="nuclei")
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])
    data = make_synthetic_dataset(2, (64, 64), 6, seed=0, style="nuclei")
    assert np.array_equal(data[1][1], make_synthetic_sample((64, 64), 6, (0, 1), style="nuclei")[1])


def test_write_nuclei(tmp_path: Path) -> None:
    import tifffile

    paths = write_synthetic_dataset(tmp_path, 1, (64, 64), 6, seed=0, style="nuclei")
    labels = tifffile.imread(paths["labels"][0])
    assert np.array_equal(labels, make_synthetic_sample((64, 64), 6, (0, 0), style="nuclei")[1])


def test_classical_baseline_is_sensible_on_nuclei() -> None:
    """The classical pipeline does well on real nuclei; the nuclei style must not be much harder for it."""
    image, labels = make_synthetic_sample((256, 256), 36, seed=0, style="nuclei")
    sbd = evaluate_instances(classical_segmentation(image, sigma=2.0, min_distance=5), labels)["sbd"]
    assert sbd > 0.5
