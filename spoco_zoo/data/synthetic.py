"""Built-in synthetic data in two styles, with dense ground truth.

The generator needs no download and works in 2D (``yx``) and 3D (``zyx``).

Styles
------
``"crowded"`` (the default)
    Crowded, touching, irregular objects that fill most of the image, with sharp edges and dark
    membranes between neighbours. Easy for a network, unlike most real images.
``"nuclei"``
    Like fluorescence nuclei (e.g. the 2018 Data Science Bowl): elliptical, slightly irregular
    objects covering only 15-30 % of the image (their size follows from the image size and
    ``n_objects``), about a third of them in touching clumps of 2-4 separated by a faint intensity
    dip; per-object brightness varying about 5-fold, soft edges (a blur of 1.5-2.5 px with the label
    boundary at about half the maximum), smooth texture, an uneven background (a low-frequency field
    plus a gradient) and Poisson + Gaussian noise.

A ``"crowded"`` sample is built in four steps:

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

Anisotropic volumes (``anisotropy`` > 1, 3D): the sample is made on a grid ``anisotropy`` times
deeper, whose voxels are cubes, and then sampled along ``z`` every ``anisotropy`` voxels: each
slice integrates the light of its slab (a Gaussian along ``z`` as wide as the step, the axial blur
of a microscope) and the labels are those of the slab's centre. Objects keep their physical size,
so they span fewer slices than pixels across, as in a confocal stack with a coarse ``z`` step.

Everything is a pure function of ``seed`` (and ``style``, ``anisotropy``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from spoco_zoo.errors import DataError

__all__ = ["STYLES", "make_synthetic_sample", "make_synthetic_dataset", "write_synthetic_dataset"]

Seed = int | Sequence[int]

_SPACING = 0.7  # minimum seed distance, as a fraction of the mean object diameter
_MIN_SIZE_FRACTION = 0.15  # objects smaller than this fraction of the mean size are dropped

#: The styles of :func:`make_synthetic_sample`.
STYLES = ("crowded", "nuclei")
_NUCLEI_COVERAGE = (0.18, 0.28)  # share of the image the (unclipped) nuclei would cover
_NUCLEI_CLUMPED = 0.2  # chance that a group is a clump of 2-4 (then about 40 % of the objects are clumped)
_NUCLEI_IRREGULARITY = 0.05  # amplitude of the smooth field added to the normalised radius
_NUCLEI_GAP = (1.0, 4.0)  # pixels between a group and the groups placed after it
_NUCLEI_TRIES = 40  # placements tried per group before it is left out
_NUCLEI_BRIGHTNESS = (0.14, 0.8)  # per-object brightness, log-uniform (90th percentile 4 x the 10th)


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


def _place_nuclei(shape: tuple[int, ...], n_objects: int, rng: np.random.Generator) -> np.ndarray:
    """Dense labels of elliptical objects covering 15-30 % of ``shape``, some in touching clumps of 2-4."""
    from skimage.measure import label as connected_regions
    from skimage.segmentation import relabel_sequential

    ndim = len(shape)
    ball = np.pi if ndim == 2 else 4.0 * np.pi / 3.0
    coverage = rng.uniform(*_NUCLEI_COVERAGE)
    radius = max(2.5, (coverage * np.prod(shape) / n_objects / ball) ** (1.0 / ndim))
    field = _NUCLEI_IRREGULARITY * _smooth_field(shape, 0.5 * radius, rng)
    labels = np.zeros(shape, dtype=np.int32)
    level = np.full(shape, np.inf, dtype=np.float32)  # normalised radius of the object owning a pixel
    taken = np.zeros(shape, dtype=bool)  # objects grown by a gap: other groups stay clear of them
    sizes: list[int] = []  # groups: single objects and clumps of 2-4
    left = n_objects
    while left > 0:
        clump = rng.random() < _NUCLEI_CLUMPED
        sizes.append(min(int(rng.integers(2, 5)) if clump else 1, left))
        left -= sizes[-1]
    extent = np.asarray(shape, dtype=np.float64)
    next_id = 1
    for size in sizes:
        for _ in range(_NUCLEI_TRIES):
            members: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (centre, rotation, semi-axes)
            for k in range(size):
                elongation = rng.uniform(1.0, 1.7) ** np.linspace(0.5, -0.5, ndim)
                axes = radius * np.clip(rng.lognormal(0.0, 0.2), 0.6, 1.6) * elongation
                rotation = np.linalg.qr(rng.standard_normal((ndim, ndim)))[0]
                if k == 0:
                    centre = rng.random(ndim) * extent
                else:  # overlap a member of the clump so that the two touch
                    other, other_rotation, other_axes = members[int(rng.integers(k))]
                    u = rng.standard_normal(ndim)
                    u /= np.linalg.norm(u) + 1e-12
                    reach = np.linalg.norm((u @ rotation) * axes) + np.linalg.norm((u @ other_rotation) * other_axes)
                    centre = other + u * reach * rng.uniform(0.7, 0.85)
                members.append((centre, rotation, axes))
            regions = [_ellipsoid(shape, *member, field) for member in members]
            if not any(taken[box][q < 1.0].any() for box, q in regions if q.size):
                break
        else:
            continue  # no room for this group
        gap = rng.uniform(*_NUCLEI_GAP)
        for (box, q), (_, _, axes) in zip(regions, members):
            owned = (q < 1.0) & (q < level[box])
            labels[box][owned] = next_id
            level[box][owned] = q[owned]
            taken[box] |= q < 1.0 + gap / axes.min()
            next_id += 1
    labels = connected_regions(labels, background=0, connectivity=1)
    counts = np.bincount(labels.ravel())
    too_small = counts < _MIN_SIZE_FRACTION * ball * radius**ndim
    too_small[0] = False
    labels[too_small[labels]] = 0
    return relabel_sequential(labels)[0].astype(np.int64)


def _ellipsoid(
    shape: tuple[int, ...], centre: np.ndarray, rotation: np.ndarray, axes: np.ndarray, field: np.ndarray
) -> tuple[tuple[slice, ...], np.ndarray]:
    """Bounding box of an ellipse/ellipsoid and its normalised radius (1 on the boundary) plus ``field``."""
    half = axes.max() * (1.3 + _NUCLEI_GAP[1] / axes.min()) + 1.0  # room for the field and the gap
    box = tuple(slice(int(np.clip(c - half, 0, s)), int(np.clip(c + half + 1, 0, s))) for c, s in zip(centre, shape))
    grid = np.stack(np.meshgrid(*[np.arange(b.start, b.stop) for b in box], indexing="ij"), axis=-1)
    offset = (grid - centre) @ rotation / axes
    return box, (np.sqrt(np.sum(offset**2, axis=-1)) + field[box]).astype(np.float32)


def _render_nuclei(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Fluorescence-like intensities for ``labels`` (float32, roughly in [0, 1])."""
    shape = labels.shape
    n = int(labels.max())
    radius = (np.sum(labels > 0) / max(n, 1)) ** (1.0 / len(shape)) / 2.0
    low, high = _NUCLEI_BRIGHTNESS
    brightness = np.concatenate([[0.0], np.exp(rng.uniform(np.log(low), np.log(high), n))]).astype(np.float32)
    texture = 1.0 + 0.1 * _smooth_field(shape, max(1.0, 0.4 * radius), rng) + 0.04 * _smooth_field(shape, 1.0, rng)
    depth = ndi.distance_transform_edt(labels > 0) / max(1.0, radius)
    image = brightness[labels] * texture * (0.85 + 0.15 * np.clip(depth, 0.0, 1.0))
    image[_touching_boundaries(labels)] *= rng.uniform(0.45, 0.7)  # a faint dip between touching objects
    image = ndi.gaussian_filter(image, rng.uniform(1.5, 2.5))  # soft edges: half maximum at the label boundary

    # uneven illumination: a smooth low-frequency background and a gradient along a random direction
    background = rng.uniform(0.05, 0.11) * (1.0 + 0.25 * _smooth_field(shape, min(shape) / 6.0, rng))
    direction = rng.standard_normal(len(shape))
    direction /= np.linalg.norm(direction) + 1e-12
    grids = np.meshgrid(*[np.linspace(-0.5, 0.5, s) for s in shape], indexing="ij", sparse=True)
    ramp = sum(g * d for g, d in zip(grids, direction))
    image = (image + background) * (1.0 + rng.uniform(0.2, 0.5) * ramp)

    photons = rng.uniform(80.0, 200.0)
    image = rng.poisson(np.clip(image, 0, None) * photons) / photons
    image = image + rng.normal(0.0, rng.uniform(0.005, 0.015), shape)
    return image.astype(np.float32)


def _check_style(style: str) -> str:
    if style not in STYLES:
        raise DataError(f"style: {style!r} is not one of {', '.join(STYLES)}")
    return style


def _sample(
    shape: Sequence[int], n_objects: int, rng: np.random.Generator, style: str = "crowded", anisotropy: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    shape = _check_shape(shape, n_objects)
    _check_style(style)
    if anisotropy != 1.0:
        return _anisotropic(shape, n_objects, rng, style, _check_anisotropy(anisotropy, shape))
    if style == "nuclei":
        labels = _place_nuclei(shape, n_objects, rng)
        return _render_nuclei(labels, rng), labels
    labels = _grow_objects(shape, n_objects, rng)
    return _render(labels, rng), labels


def _check_anisotropy(anisotropy: float, shape: tuple[int, ...]) -> float:
    value = float(anisotropy)
    if not np.isfinite(value) or value < 1.0:
        raise DataError(f"anisotropy: must be a number >= 1 (z step / pixel size), got {anisotropy!r}")
    if value != 1.0 and len(shape) != 3:
        raise DataError(f"anisotropy: only volumes (zyx) can be anisotropic, got shape {list(shape)}")
    return value


def _anisotropic(
    shape: tuple[int, ...], n_objects: int, rng: np.random.Generator, style: str, anisotropy: float
) -> tuple[np.ndarray, np.ndarray]:
    """A sample made on cubic voxels ``anisotropy`` times deeper, then sampled every ``anisotropy`` in ``z``."""
    from skimage.measure import label as connected_regions
    from skimage.segmentation import relabel_sequential

    fine = (max(4, int(round(shape[0] * anisotropy))), *shape[1:])
    image, labels = _sample(fine, n_objects, rng, style)
    image = ndi.gaussian_filter1d(image, sigma=anisotropy / 2.0, axis=0)  # each slice integrates its slab
    centres = np.minimum(((np.arange(shape[0]) + 0.5) * fine[0] / shape[0]).astype(np.int64), fine[0] - 1)
    image, labels = image[centres], labels[centres]
    labels = connected_regions(labels, background=0, connectivity=1)
    sizes = np.bincount(labels.ravel())
    mean = sizes[1:].mean() if len(sizes) > 1 else 0.0
    too_small = sizes < _MIN_SIZE_FRACTION * mean
    too_small[0] = False
    labels[too_small[labels]] = 0
    return np.ascontiguousarray(image, dtype=np.float32), relabel_sequential(labels)[0].astype(np.int64)


def make_synthetic_sample(
    shape: Sequence[int], n_objects: int, seed: Seed, style: str = "crowded", anisotropy: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic image with dense ground truth, in the given ``style``.

    Parameters
    ----------
    shape:
        Spatial shape, ``(y, x)`` or ``(z, y, x)``.
    n_objects:
        Number of objects asked for; the result has close to this many (``"crowded"``: objects
        squeezed below 15 % of the mean size are dropped; ``"nuclei"``: also slivers cut by the
        image border, and groups that find no room).
    seed:
        Seed for :func:`numpy.random.default_rng` (an int or a sequence of ints).
    style:
        ``"crowded"`` (touching irregular objects filling most of the image) or ``"nuclei"``
        (fluorescence-nuclei-like: mostly background, soft edges, dim and bright objects, uneven
        illumination, touching clumps; the object size follows from ``shape`` and ``n_objects``,
        e.g. about 22 px across for 36 objects in 256x256). See the module docstring.
    anisotropy:
        Volumes only: the ``z`` step over the pixel size (>= 1). The sample is made on cubic voxels
        ``anisotropy`` times deeper and sampled every ``anisotropy`` along ``z`` (module docstring).

    Returns
    -------
    image, labels:
        ``image`` float32 ``[*shape]`` (raw, not normalised, roughly in [0, 1]);
        ``labels`` int64 ``[*shape]`` dense ground truth, ids ``1..n``, 0 = background.

    Raises
    ------
    DataError
        A bad ``shape``, ``n_objects`` or ``style``.

    Examples
    --------
    >>> image, labels = make_synthetic_sample((64, 64), 8, seed=0)
    >>> image.shape, image.dtype, labels.dtype
    ((64, 64), dtype('float32'), dtype('int64'))
    >>> image, labels = make_synthetic_sample((256, 256), 36, seed=0, style="nuclei")
    >>> 0.6 < float((labels == 0).mean()) < 0.9
    True
    >>> bool(np.array_equal(np.unique(labels), np.arange(labels.max() + 1)))
    True
    >>> image, labels = make_synthetic_sample((8, 64, 64), 12, seed=0, anisotropy=3)
    >>> image.shape, labels.shape
    ((8, 64, 64), (8, 64, 64))
    """
    return _sample(shape, n_objects, np.random.default_rng(seed), style, anisotropy)


def make_synthetic_dataset(
    n: int,
    shape: Sequence[int],
    n_objects: int,
    seed: int,
    start: int = 0,
    style: str = "crowded",
    anisotropy: float = 1.0,
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
    style, anisotropy:
        ``"crowded"`` or ``"nuclei"``, and the ``z`` step over the pixel size (see
        :func:`make_synthetic_sample`).

    Returns
    -------
    list of (image float32 [*S], labels int64 [*S])

    Raises
    ------
    DataError
        A bad ``shape``, ``n_objects`` or ``style``.
    """
    _check_style(style)
    _check_anisotropy(anisotropy, tuple(shape))
    return [make_synthetic_sample(shape, n_objects, (int(seed), start + i), style, anisotropy) for i in range(n)]


def write_synthetic_dataset(
    out_dir: str | Path,
    n: int,
    shape: Sequence[int],
    n_objects: int,
    seed: int,
    sparse_fraction: float | None = None,
    convention: str = "objects_and_background",
    style: str = "crowded",
) -> dict[str, list[Path]]:
    """Write a synthetic dataset as TIFF files.

    Files: ``images/sample_000.tif`` (float32 raw image), ``labels/sample_000.tif``
    (dense labels, uint16/uint32) and, with ``sparse_fraction``,
    ``sparse_labels/sample_000.tif`` in the annotation ``convention`` (see
    :mod:`spoco_zoo.data.conventions`: ``-1`` = not annotated, or ``0`` = unknown for
    ``"objects_only"``; :func:`spoco_zoo.data.sparsify.sparsify`, seeded with ``(seed, i)``).
    ``style`` is ``"crowded"`` or ``"nuclei"`` (see :func:`make_synthetic_sample`).

    Returns
    -------
    dict
        ``{"images": [...], "labels": [...]}`` plus ``"sparse_labels"`` when requested.

    Raises
    ------
    DataError
        A bad shape, ``n``, ``n_objects``, ``sparse_fraction``, ``convention`` or ``style`` (before
        anything is written).
    OSError
        A folder or file cannot be written.
    """
    from spoco_zoo.data.conventions import check_convention
    from spoco_zoo.data.io import write_image, write_tiff
    from spoco_zoo.data.sparsify import check_object_fraction, sparsify

    _check_shape(shape, n_objects)  # every argument is checked before anything is written
    _check_style(style)
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
    for i, (image, labels) in enumerate(make_synthetic_dataset(n, shape, n_objects, seed, style=style)):
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
