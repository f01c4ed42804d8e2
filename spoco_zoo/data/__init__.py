"""Data: reading/writing images, synthetic data, sparse labels, normalisation, augmentation, datasets.

Importing this package pulls in numpy, torch and the light I/O helpers only;
scikit-image, h5py and zarr are imported when a function needs them.
"""

from spoco_zoo.data.augment import GeometricTransform, intensity_augment, random_flip_rotate
from spoco_zoo.data.conventions import LABEL_CONVENTIONS, from_training_labels, to_training_labels
from spoco_zoo.data.dataset import SparseInstanceDataset, build_datasets
from spoco_zoo.data.io import (
    check_has_objects,
    check_pair,
    read_array,
    read_image,
    read_labels,
    write_image,
    write_tiff,
)
from spoco_zoo.data.normalize import normalize
from spoco_zoo.data.sparsify import sparsify
from spoco_zoo.data.synthetic import make_synthetic_dataset, make_synthetic_sample, write_synthetic_dataset

__all__ = [
    "LABEL_CONVENTIONS",
    "GeometricTransform",
    "SparseInstanceDataset",
    "build_datasets",
    "check_has_objects",
    "check_pair",
    "from_training_labels",
    "intensity_augment",
    "make_synthetic_dataset",
    "make_synthetic_sample",
    "normalize",
    "random_flip_rotate",
    "read_array",
    "read_image",
    "read_labels",
    "sparsify",
    "to_training_labels",
    "write_image",
    "write_synthetic_dataset",
    "write_tiff",
]
