"""Training patches from sparsely annotated images, and the datasets of a training run."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from spoco_zoo.config import DataConfig
from spoco_zoo.data.augment import random_flip_rotate, resize_patch
from spoco_zoo.data.conventions import to_training_labels
from spoco_zoo.data.io import check_has_objects, check_pair, read_image, read_labels
from spoco_zoo.data.normalize import normalize
from spoco_zoo.data.sparsify import sparsify
from spoco_zoo.data.synthetic import make_synthetic_dataset
from spoco_zoo.errors import DataError
from spoco_zoo.models.anisotropy import anisotropy

__all__ = ["SparseInstanceDataset", "build_datasets", "hold_out_objects", "DEFAULT_SAMPLES_PER_EPOCH"]

Sample = tuple[np.ndarray, np.ndarray]

DEFAULT_SAMPLES_PER_EPOCH = 100_000
"""Length of the (virtual) training dataset built by :func:`build_datasets`."""

_SPARSIFY_STREAM = 1  # training image i keeps the objects drawn by default_rng((seed, 1, i))
_HOLDOUT_STREAM = 2  # and sets aside for validation the objects drawn by default_rng((seed, 2, i))


class SparseInstanceDataset(Dataset):
    """Random patches of normalised images with sparse instance labels.

    Item ``index`` is a pure function of ``(seed, index)``: it draws from
    ``numpy.random.default_rng((seed, index))``, so results do not depend on
    the order of access or on DataLoader workers.

    Images smaller than ``patch_shape`` along an axis are padded once, at
    construction: the image by reflection, the labels with ``ignore_label``
    (padding is never counted as annotated).

    Parameters
    ----------
    samples:
        ``(image [C, *S] float32 normalised, labels [*S] int)`` pairs; all
        images must have the same number of channels.
    patch_shape:
        Spatial patch shape, ``(y, x)`` or ``(z, y, x)``.
    samples_per_epoch:
        ``len(dataset)``.
    seed:
        Base seed of every item.
    augment:
        Apply :func:`~spoco_zoo.data.augment.random_flip_rotate`.
    ignore_label:
        Label of not-annotated pixels (used for padding).
    object_bias:
        Probability that a patch is centred on a random annotated object pixel
        (otherwise its position is uniform).
    zoom:
        Scale augmentation (with ``augment``): a patch is cut from a window between ``1 / zoom`` and
        ``zoom`` times its size in ``yx`` (log-uniform; clipped to the image) and resized to the
        patch (:func:`~spoco_zoo.data.augment.resize_patch`). 1 turns it off.

    Examples
    --------
    >>> image = np.zeros((1, 40, 40), np.float32); labels = np.zeros((40, 40), np.int64)
    >>> labels[5:10, 5:10] = 1
    >>> item = SparseInstanceDataset([(image, labels)], (32, 32), samples_per_epoch=2)[0]
    >>> item["image"].shape, item["labels"].dtype
    (torch.Size([1, 32, 32]), torch.int64)
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        patch_shape: Sequence[int],
        samples_per_epoch: int = 1000,
        seed: int = 0,
        augment: bool = True,
        ignore_label: int = -1,
        object_bias: float = 0.8,
        zoom: float = 1.0,
    ) -> None:
        self.patch_shape = tuple(int(p) for p in patch_shape)
        if len(self.patch_shape) not in (2, 3) or min(self.patch_shape) < 1:
            raise DataError(f"patch_shape: {list(self.patch_shape)} must have 2 or 3 positive extents")
        if not samples:
            raise DataError("samples: the dataset needs at least one (image, labels) pair")
        if samples_per_epoch < 1:
            raise DataError(f"samples_per_epoch: must be at least 1, got {samples_per_epoch}")
        if not 0 <= object_bias <= 1:
            raise DataError(f"object_bias: must be in [0, 1], got {object_bias}")
        if zoom < 1:
            raise DataError(f"zoom: must be at least 1, got {zoom}")
        self.zoom = float(zoom)
        self.samples_per_epoch = int(samples_per_epoch)
        self.seed = int(seed)
        self.augment = augment
        self.ignore_label = int(ignore_label)
        self.object_bias = float(object_bias)
        #: where the run's validation labels come from, when that needs saying (see build_datasets)
        self.validation_note = ""
        self.images: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []
        self._annotated: list[np.ndarray] = []
        for i, (image, labels) in enumerate(samples):
            image, labels = self._validate(i, image, labels)
            image, labels = self._pad(image, labels)
            self.images.append(image)
            self.labels.append(labels)
            self._annotated.append(np.flatnonzero(labels > 0))

    def object_sizes(self) -> list[int]:
        """Pixel counts of every annotated object (id > 0) of every image."""
        sizes: list[int] = []
        for labels in self.labels:
            counts = np.bincount(labels[labels > 0].ravel())
            sizes.extend(int(c) for c in counts if c > 0)
        return sizes

    @property
    def in_channels(self) -> int:
        """Number of image channels."""
        return int(self.images[0].shape[0])

    def _validate(self, i: int, image: np.ndarray, labels: np.ndarray) -> Sample:
        image = np.asarray(image, dtype=np.float32)
        labels = np.asarray(labels)
        ndim = len(self.patch_shape)
        if image.ndim != ndim + 1:
            raise DataError(f"samples[{i}]: image must be [C, *S] with {ndim} spatial axes, got shape {image.shape}")
        if tuple(image.shape[1:]) != tuple(labels.shape):
            raise DataError(f"samples[{i}]: labels shape {labels.shape} does not match image shape {image.shape}")
        if not np.issubdtype(labels.dtype, np.integer):
            raise DataError(f"samples[{i}]: labels must be integers, got dtype {labels.dtype}")
        if self.images and image.shape[0] != self.images[0].shape[0]:
            raise DataError(
                f"samples[{i}]: image has {image.shape[0]} channels, samples[0] has {self.images[0].shape[0]}"
            )
        return image, labels.astype(np.int64)

    def _pad(self, image: np.ndarray, labels: np.ndarray) -> Sample:
        missing = [max(0, p - s) for p, s in zip(self.patch_shape, labels.shape)]
        if not any(missing):
            return image, labels
        widths = [(m // 2, m - m // 2) for m in missing]
        if min(labels.shape) > 1:
            image = np.pad(image, [(0, 0)] + widths, mode="reflect")
        else:
            image = np.pad(image, [(0, 0)] + widths, mode="edge")
        labels = np.pad(labels, widths, mode="constant", constant_values=self.ignore_label)
        return image, labels

    def __len__(self) -> int:
        return self.samples_per_epoch

    def _corner(self, which: int, window: Sequence[int], rng: np.random.Generator) -> tuple[int, ...]:
        """Start of a window: centred on an annotated pixel (``object_bias``) or uniform."""
        shape = self.labels[which].shape
        highest = [s - p for s, p in zip(shape, window)]
        annotated = self._annotated[which]
        if len(annotated) and rng.random() < self.object_bias:
            centre = np.unravel_index(annotated[rng.integers(len(annotated))], shape)
            return tuple(int(np.clip(c - p // 2, 0, h)) for c, p, h in zip(centre, window, highest))
        return tuple(int(rng.integers(h + 1)) for h in highest)

    def _window(self, which: int, rng: np.random.Generator) -> tuple[int, ...]:
        """The extent cut from image ``which``: the patch, or with ``zoom`` a scaled one (yx only)."""
        if not (self.augment and self.zoom > 1):
            return self.patch_shape
        factor = math.exp(rng.uniform(-math.log(self.zoom), math.log(self.zoom)))
        shape = self.labels[which].shape
        window = list(self.patch_shape)
        for axis in (-2, -1):
            window[axis] = max(1, min(shape[axis], int(round(self.patch_shape[axis] * factor))))
        return tuple(window)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < self.samples_per_epoch:
            raise IndexError(f"index {index} out of range for {self.samples_per_epoch} samples")
        rng = np.random.default_rng((self.seed, int(index)))
        which = int(rng.integers(len(self.images)))
        extent = self._window(which, rng)
        corner = self._corner(which, extent, rng)
        window = tuple(slice(c, c + p) for c, p in zip(corner, extent))
        image = self.images[which][(slice(None),) + window]
        labels = self.labels[which][window]
        if self.augment:
            image, labels = resize_patch(image, labels, self.patch_shape)
            image, labels = random_flip_rotate(image, labels, rng)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)),
            "labels": torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64)),
        }


# ---------------------------------------------------------------------------- building
def _sparsify_train(labels: np.ndarray, cfg: DataConfig, seed: int, index: int) -> np.ndarray:
    """Training labels of dense image ``index``: the paper's protocol in the run's convention, reproducible."""
    sparse = sparsify(
        labels, cfg.object_fraction, (seed, _SPARSIFY_STREAM, index), cfg.ignore_label, cfg.label_convention
    )
    return to_training_labels(sparse, cfg.label_convention, cfg.ignore_label)


def _synthetic_samples(cfg: DataConfig, spatial_dims: int, seed: int) -> tuple[list[Sample], list[Sample]]:
    syn = cfg.synthetic
    if len(syn.shape) != spatial_dims:
        raise DataError(f"data.synthetic.shape: {syn.shape} has {len(syn.shape)} axes, spatial_dims is {spatial_dims}")
    ratio = anisotropy(cfg.voxel_size) if spatial_dims == 3 else 1.0  # the z step of the volumes
    train = make_synthetic_dataset(syn.n_train, syn.shape, syn.n_objects, syn.seed, style=syn.style, anisotropy=ratio)
    val = make_synthetic_dataset(
        syn.n_val, syn.shape, syn.n_objects, syn.seed, start=syn.n_train, style=syn.style, anisotropy=ratio
    )
    train_samples = [
        (normalize(image[None], cfg.normalization), _sparsify_train(labels, cfg, seed, i))
        for i, (image, labels) in enumerate(train)
    ]
    val_samples = [(normalize(image[None], cfg.normalization), labels) for image, labels in val]
    return train_samples, val_samples


def _read_pairs(images: Sequence[Path], labels: Sequence[Path], cfg: DataConfig, spatial_dims: int) -> list[Sample]:
    """Read, validate and normalise ``(image, labels)`` file pairs (labels as stored)."""
    pairs: list[Sample] = []
    for image_path, label_path in zip(images, labels):
        image = read_image(image_path, cfg.image_key, spatial_dims)
        label = read_labels(label_path, cfg.label_key, spatial_dims, cfg.ignore_label)
        check_pair(image, label, image_path, label_path)
        check_has_objects(label, label_path)
        if pairs and image.shape[0] != pairs[0][0].shape[0]:
            raise DataError(
                f"{image_path}: image has {image.shape[0]} channels but {images[0]} has {pairs[0][0].shape[0]}"
            )
        pairs.append((normalize(image, cfg.normalization), label))
    return pairs


def hold_out_objects(
    labels: np.ndarray, fraction: float, seed: int | Sequence[int], ignore_label: int = -1
) -> tuple[np.ndarray, np.ndarray, int]:
    """Set aside annotated objects of training labels for validation.

    ``floor(fraction * n)`` of the ``n`` annotated objects (drawn with ``seed``) leave the training
    labels (their pixels become ``ignore_label``: not annotated, as for any unannotated object) and
    form the validation labels, with the annotated background; every other pixel of the validation
    labels is ``ignore_label``. Scored with :func:`spoco_zoo.metrics.partial.partial_scores`.

    Returns
    -------
    train, val, n_held_out
        When no object is set aside (``floor`` gives 0), ``train`` and ``val`` are ``labels``.

    Examples
    --------
    >>> labels = np.repeat(np.arange(11), 2)  # background + 10 objects
    >>> train, val, n = hold_out_objects(labels, 0.2, seed=0)
    >>> n, len(np.unique(train[train > 0])), len(np.unique(val[val > 0])), int((val == 0).sum())
    (2, 8, 2, 2)
    """
    labels = np.asarray(labels, dtype=np.int64)
    ids = np.unique(labels[labels > 0])
    count = int(np.floor(fraction * len(ids) + 1e-9))
    if count == 0:
        return labels, labels, 0
    chosen = np.random.default_rng(seed).choice(ids, size=count, replace=False)
    held = np.isin(labels, chosen)
    train = np.where(held, ignore_label, labels)
    val = np.where(held | (labels == 0), labels, ignore_label)
    return train, val, count


def _held_out_samples(train: list[Sample], cfg: DataConfig, seed: int) -> tuple[list[Sample], list[Sample], str]:
    """Training samples with objects set aside, the validation samples, and a sentence saying so.

    When no object can be set aside there is no validation: the training annotations themselves
    would choose an over-fitted clustering (on the real nuclei image, a kernel width that cut every
    other nucleus into pieces), so the last checkpoint is the best and the clustering is not tuned
    (:meth:`spoco_zoo.train.trainer.Trainer.tune_postprocessing` says what it gets instead).
    """
    kept: list[Sample] = []
    val: list[Sample] = []
    held = annotated = 0
    for i, (image, labels) in enumerate(train):
        annotated += len(np.unique(labels[labels > 0]))
        rest, val_labels, count = hold_out_objects(
            labels, cfg.holdout_fraction, (seed, _HOLDOUT_STREAM, i), cfg.ignore_label
        )
        held += count
        kept.append((image, rest))
        if count:
            val.append((image, val_labels))
    if held:
        note = (
            f"no validation images: {held} of the {annotated} annotated objects are set aside (not trained on) "
            "to choose the checkpoint and tune the clustering (data.holdout_fraction)"
        )
    else:
        note = (
            f"no validation images, and too few annotated objects ({annotated}) to set some aside "
            f"(data.holdout_fraction {cfg.holdout_fraction:g}): the last checkpoint is the best and the clustering "
            "is not tuned"
        )
    return kept, val, note


def _file_samples(cfg: DataConfig, spatial_dims: int, seed: int) -> tuple[list[Sample], list[Sample], str]:
    train = _read_pairs(cfg.train_images or [], cfg.train_labels or [], cfg, spatial_dims)
    if not train:
        raise DataError("data.train_images: the list of training images is empty")
    if cfg.labels_are_sparse:
        train = [(image, to_training_labels(labels, cfg.label_convention, cfg.ignore_label)) for image, labels in train]
    else:
        train = [(image, _sparsify_train(labels, cfg, seed, i)) for i, (image, labels) in enumerate(train)]
    val: list[Sample] = []
    note = ""
    if not cfg.val_images:
        train, val, note = _held_out_samples(train, cfg, seed)
    else:
        val = _read_pairs(cfg.val_images, cfg.val_labels or [], cfg, spatial_dims)
        if val[0][0].shape[0] != train[0][0].shape[0]:
            raise DataError(
                f"{cfg.val_images[0]}: validation image has {val[0][0].shape[0]} channels, "
                f"training images have {train[0][0].shape[0]}"
            )
    return train, val, note


def build_datasets(
    cfg: DataConfig,
    spatial_dims: int,
    seed: int,
    samples_per_epoch: int | None = None,
) -> tuple[SparseInstanceDataset, list[Sample]]:
    """The training dataset and the validation images of a run.

    Without ``cfg.train_images`` the built-in synthetic data is generated in
    memory (``cfg.synthetic``; validation images continue the training
    sequence, so they never repeat one). Otherwise the files are read with
    ``cfg.image_key`` / ``cfg.label_key`` and every pair is validated.

    Training labels are sparsified with ``cfg.object_fraction`` (seed
    ``(seed, 1, i)`` for image ``i``) unless ``cfg.labels_are_sparse``.
    Validation labels are kept as given (dense ground truth for the metrics). Without validation
    files, ``cfg.holdout_fraction`` of the annotated objects of each training image are set aside
    as sparse validation labels (:func:`hold_out_objects`); the dataset's ``validation_note`` says so.
    All images are normalised with ``cfg.normalization``.

    Parameters
    ----------
    cfg:
        Data configuration.
    spatial_dims:
        2 or 3 (the model's).
    seed:
        Run seed: which objects stay annotated and which patches are drawn.
    samples_per_epoch:
        Length of the training dataset (default :data:`DEFAULT_SAMPLES_PER_EPOCH`).

    Returns
    -------
    train, val_samples:
        :class:`SparseInstanceDataset` (augmented) and a list of full
        ``(image [C, *S] float32, labels [*S] int64)``; empty without validation files.

    Raises
    ------
    DataError
        Naming the file: unreadable, wrong shape, NaN, image/label mismatch, no object.
    """
    if spatial_dims not in (2, 3):
        raise DataError(f"spatial_dims: must be 2 or 3, got {spatial_dims}")
    if len(cfg.patch_shape) != spatial_dims:
        raise DataError(
            f"data.patch_shape: {cfg.patch_shape} has {len(cfg.patch_shape)} axes, spatial_dims is {spatial_dims}"
        )
    note = ""
    if cfg.train_images is None:
        train, val = _synthetic_samples(cfg, spatial_dims, seed)
    else:
        train, val, note = _file_samples(cfg, spatial_dims, seed)
    dataset = SparseInstanceDataset(
        train,
        cfg.window_shape(),  # the patch and its context (the trainer crops what each step needs)
        samples_per_epoch=samples_per_epoch or DEFAULT_SAMPLES_PER_EPOCH,
        seed=seed,
        augment=True,
        ignore_label=cfg.ignore_label,
        zoom=cfg.zoom,
    )
    dataset.validation_note = note
    return dataset, val
