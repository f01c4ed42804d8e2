"""Built-in synthetic data: crowded, touching, irregular objects with dense ground truth.

The generator needs no download and works in 2D (``yx``) and 3D (``zyx``).
One sample is built in four steps:

1. **Seeds** -- ``n_objects`` random points with a minimum spacing (dart throwing,
   the spacing shrinks if the points do not fit).
2. **Objects** -- a watershed (:func:`skimage.segmentation.watershed`) of the
   distance to the nearest seed, distorted by a smooth random field, grows one
   irregular object per seed.  Growth is restricted to a foreground mask (a
   noisy threshold of the same distance) that leaves 15-35 % background in the
   gaps between objects, so most objects touch several neighbours.
3. **Image** -- per-object base intensity times a smooth texture, a dimmer rim,
   dark membranes between touching objects (the cue that makes the task
   learnable), a blur, an illumination gradient, Poisson (shot) and Gaussian
   (read) noise.
4. **Labels** -- consecutive ids ``1..n``; ``0`` is background.

Everything is a pure function of ``seed``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from spoco_zoo.errors import DataError

__all__ = ["make_synthetic_sample", "make_synthetic_dataset", "write_synthetic_dataset"]

Seed = int | Sequence[int]

_SPACING = 0.7  # minimum seed distance, as a fraction of the mean object diameter
_MIN_SIZE_FRACTION = 0.15  # objects smaller than this fraction of the mean size are dropped


def _check_shape(shape: Sequence[int], n_objects: int) -> tuple[int, ...]:
    shape = tuple(int(s) for s in shape)
    if len(shape) not in (2, 3):
        raise DataError(f"shape: {list(shape)} must have 2 (yx) or 3 (zyx) axes")
    if min(shape) < 4:
        raise DataError(f"shape: every extent of {list(shape)} must be at least 4")
    if n_objects < 1:
        raise DataError(f"n_objects: must be at least 1, got {n_objects}")
    return shape


def _smooth_field(shape: tuple[int, ...], sigma: float, rng: np.random.Generator) -> np.ndarray:
    """A smooth (periodic) Gaussian random field with zero mean and unit standard deviation.

    White noise is low-pass filtered in Fourier space, so the cost does not grow with ``sigma``.
    """
    spectrum = np.fft.rfftn(rng.standard_normal(shape).astype(np.float32))
    spectrum = ndi.fourier_gaussian(spectrum, sigma, n=shape[-1])
    field = np.fft.irfftn(spectrum, s=shape)
    return ((field - field.mean()) / (field.std() + 1e-12)).astype(np.float32)


def _seed_points(shape: tuple[int, ...], n: int, spacing: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` points ``[n, ndim]`` at least ``spacing`` apart (shrinking it when they do not fit)."""
    extent = np.asarray(shape, dtype=np.float64)
    points = np.empty((0, len(shape)))
    while len(points) < n:
        for candidate in rng.random((40 * n, len(shape))) * extent:
            if len(points) == 0 or np.min(np.sum((points - candidate) ** 2, axis=1)) >= spacing**2:
                points = np.vstack([points, candidate])
                if len(points) == n:
                    break
        spacing *= 0.85
    return np.minimum(points.astype(np.int64), extent.astype(np.int64) - 1)


def _touching_boundaries(labels: np.ndarray) -> np.ndarray:
    """Pixels of an object that have a neighbour (full connectivity) from a different object."""
    big = np.iinfo(labels.dtype).max
    upper = ndi.maximum_filter(labels, size=3)
    lower = ndi.minimum_filter(np.where(labels > 0, labels, big), size=3)
    return (labels > 0) & (((upper != labels) & (upper > 0)) | ((lower != labels) & (lower < big)))


def _warp(array: np.ndarray, amplitude: float, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """``array`` resampled (nearest neighbour) along a smooth random displacement field."""
    shape = array.shape
    grid = np.indices(shape, dtype=np.float32)
    coords = [g + amplitude * _smooth_field(shape, sigma, rng) for g in grid]
    return ndi.map_coordinates(array, coords, order=0, mode="reflect")


def _grow_objects(shape: tuple[int, ...], n_objects: int, rng: np.random.Generator) -> np.ndarray:
    """Dense labels (consecutive ids, 0 = background) of crowded, touching, irregular objects."""
    from skimage.measure import label as connected_regions
    from skimage.segmentation import relabel_sequential, watershed

    diameter = (np.prod(shape) / n_objects) ** (1.0 / len(shape))
    points = _seed_points(shape, n_objects, _SPACING * diameter, rng)
    markers = np.zeros(shape, dtype=np.int32)
    markers[tuple(points.T)] = np.arange(1, len(points) + 1)

    # grow every seed over the distance to its nearest seed (a Voronoi-like partition),
    # restricted to a noisy foreground that leaves 15-35 % background between objects
    distance = ndi.distance_transform_edt(markers == 0).astype(np.float32) / diameter
    blob = distance + 0.15 * _smooth_field(shape, 0.2 * diameter, rng)
    foreground = (blob <= np.quantile(blob, rng.uniform(0.65, 0.85))) | (distance < 0.15)
    labels = watershed(distance, markers, mask=foreground)
    # a smooth random deformation makes the straight cell walls irregular
    labels = _warp(labels, 0.12 * diameter, 0.35 * diameter, rng)
    labels = connected_regions(labels, background=0, connectivity=1)

    sizes = np.bincount(labels.ravel())
    too_small = sizes < _MIN_SIZE_FRACTION * diameter ** len(shape)
    too_small[0] = False
    labels[too_small[labels]] = 0
    return relabel_sequential(labels)[0].astype(np.int64)


def _render(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Microscopy-like intensities for ``labels`` (float32, roughly in [0, 1])."""
    shape = labels.shape
    n = int(labels.max())
    diameter = (np.prod(shape) / max(n, 1)) ** (1.0 / len(shape))

    base = np.concatenate([[rng.uniform(0.05, 0.12)], rng.uniform(0.45, 1.0, n)]).astype(np.float32)
    image = base[labels]
    texture = 1.0 + 0.12 * _smooth_field(shape, 1.5, rng) + 0.08 * _smooth_field(shape, 0.2 * diameter, rng)
    membrane = _touching_boundaries(labels)
    # brighter centres, dimmer rims: a shape cue inside each object
    depth = ndi.distance_transform_edt((labels > 0) & ~membrane) / (0.25 * diameter)
    rim = 0.65 + 0.35 * np.clip(depth, 0.0, 1.0)
    image = np.where(labels > 0, image * texture * rim, image)
    image[membrane] *= rng.uniform(0.2, 0.35)
    image = ndi.gaussian_filter(image, rng.uniform(0.6, 1.1))

    # smooth illumination gradient along a random direction
    direction = rng.standard_normal(len(shape))
    direction /= np.linalg.norm(direction) + 1e-12
    grids = np.meshgrid(*[np.linspace(-0.5, 0.5, s) for s in shape], indexing="ij", sparse=True)
    ramp = sum(g * d for g, d in zip(grids, direction))
    image = image * (1.0 + rng.uniform(0.1, 0.4) * ramp)

    photons = rng.uniform(40.0, 120.0)
    image = rng.poisson(np.clip(image, 0, None) * photons) / photons
    image = image + rng.normal(0.0, rng.uniform(0.01, 0.03), shape)
    return image.astype(np.float32)


def _sample(shape: Sequence[int], n_objects: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    shape = _check_shape(shape, n_objects)
    labels = _grow_objects(shape, n_objects, rng)
    return _render(labels, rng), labels


def make_synthetic_sample(shape: Sequence[int], n_objects: int, seed: Seed) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic image with crowded, touching, irregular objects.

    Parameters
    ----------
    shape:
        Spatial shape, ``(y, x)`` or ``(z, y, x)``.
    n_objects:
        Number of seeds; the result has close to this many objects (objects
        squeezed below 15 % of the mean size are dropped).
    seed:
        Seed for :func:`numpy.random.default_rng` (an int or a sequence of ints).

    Returns
    -------
    image, labels:
        ``image`` float32 ``[*shape]`` (raw, not normalised, roughly in [0, 1]);
        ``labels`` int64 ``[*shape]`` dense ground truth, ids ``1..n``, 0 = background.

    Examples
    --------
    >>> image, labels = make_synthetic_sample((64, 64), 8, seed=0)
    >>> image.shape, image.dtype, labels.dtype
    ((64, 64), dtype('float32'), dtype('int64'))
    """
    return _sample(shape, n_objects, np.random.default_rng(seed))


def make_synthetic_dataset(
    n: int, shape: Sequence[int], n_objects: int, seed: int, start: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` synthetic samples; sample ``i`` uses the seed ``(seed, start + i)``.

    Parameters
    ----------
    n, shape, n_objects:
        Number of samples, spatial shape, objects per sample.
    seed:
        Dataset seed.
    start:
        Index of the first sample, so that e.g. a validation set drawn with
        ``start=n_train`` never repeats a training sample.

    Returns
    -------
    list of (image float32 [*S], labels int64 [*S])
    """
    return [make_synthetic_sample(shape, n_objects, (int(seed), start + i)) for i in range(n)]


def write_synthetic_dataset(
    out_dir: str | Path,
    n: int,
    shape: Sequence[int],
    n_objects: int,
    seed: int,
    sparse_fraction: float | None = None,
    convention: str = "objects_and_background",
) -> dict[str, list[Path]]:
    """Write a synthetic dataset as TIFF files.

    Files: ``images/sample_000.tif`` (float32 raw image), ``labels/sample_000.tif``
    (dense labels, uint16/uint32) and, with ``sparse_fraction``,
    ``sparse_labels/sample_000.tif`` in the annotation ``convention`` (see
    :mod:`spoco_zoo.data.conventions`: ``-1`` = not annotated, or ``0`` = unknown for
    ``"objects_only"``; :func:`spoco_zoo.data.sparsify.sparsify`, seeded with ``(seed, i)``).

    Returns
    -------
    dict
        ``{"images": [...], "labels": [...]}`` plus ``"sparse_labels"`` when requested.

    Raises
    ------
    DataError
        A bad shape, ``n``, ``n_objects``, ``sparse_fraction`` or ``convention`` (before anything is
        written).
    OSError
        A folder or file cannot be written.
    """
    from spoco_zoo.data.conventions import check_convention
    from spoco_zoo.data.io import write_image, write_tiff
    from spoco_zoo.data.sparsify import check_object_fraction, sparsify

    _check_shape(shape, n_objects)  # every argument is checked before anything is written
    if n < 1:
        raise DataError(f"n: must be at least 1, got {n}")
    if sparse_fraction is not None:
        check_object_fraction(sparse_fraction)
        check_convention(convention)
    out = Path(out_dir)
    keys = ["images", "labels"] + (["sparse_labels"] if sparse_fraction is not None else [])
    paths: dict[str, list[Path]] = {key: [] for key in keys}
    for key in keys:
        (out / key).mkdir(parents=True, exist_ok=True)
    for i, (image, labels) in enumerate(make_synthetic_dataset(n, shape, n_objects, seed)):
        name = f"sample_{i:03d}.tif"
        write_image(out / "images" / name, image)
        write_tiff(out / "labels" / name, labels)
        paths["images"].append(out / "images" / name)
        paths["labels"].append(out / "labels" / name)
        if sparse_fraction is not None:
            sparse = sparsify(labels, sparse_fraction, seed=(int(seed), i), convention=convention)
            if convention == "objects_only":
                write_tiff(out / "sparse_labels" / name, sparse)
            else:
                write_tiff(out / "sparse_labels" / name, sparse, ignore_label=-1)
            paths["sparse_labels"].append(out / "sparse_labels" / name)
    return paths
