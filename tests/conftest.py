"""Shared fixtures: small checkpoints built with the project's own code (no downloads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from spoco_zoo.config import TrainConfig
from spoco_zoo.train.checkpoint import build_model, save_checkpoint


def calibrate_batch_norm(model: torch.nn.Module, spatial_dims: int, shape: list[int], n: int = 4) -> None:
    """Give BatchNorm layers the running statistics of synthetic images (cumulative average).

    A freshly initialised network has running mean 0 / variance 1, which makes its eval-mode
    output nearly constant (one cluster, all-background instances); training sets them from data.
    """
    from spoco_zoo.data.synthetic import make_synthetic_sample

    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    with torch.no_grad():
        for seed in range(n):
            image = make_synthetic_sample(tuple(shape), 8, seed + 100)[0]
            image = (image - image.min()) / max(float(image.max() - image.min()), 1e-6)
            model(torch.as_tensor(image, dtype=torch.float32)[None, None])
    for m in norms:
        m.momentum = 0.1
    model.eval()


def _random_checkpoint(path: Path, spatial_dims: int) -> Path:
    shape = [64, 64] if spatial_dims == 2 else [16, 32, 32]
    config = TrainConfig.model_validate(
        {
            "model": {"spatial_dims": spatial_dims, "depth": 2, "base_features": 4, "embedding_dim": 8},
            "data": {"patch_shape": shape, "synthetic": {"shape": shape, "n_objects": 8}},
        }
    )
    torch.manual_seed(0)
    model = build_model(config)
    calibrate_batch_norm(model, spatial_dims, shape)
    save_checkpoint(
        path,
        {"config": config, "step": 0, "model_state": model.state_dict(), "teacher_state": model.state_dict()},
    )
    return path


@pytest.fixture(scope="session")
def random_checkpoint_2d(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised tiny 2D checkpoint (depth 2, 8 embedding channels, calibrated BatchNorm)."""
    return _random_checkpoint(tmp_path_factory.mktemp("ckpt2d") / "random2d.pt", 2)


@pytest.fixture(scope="session")
def random_checkpoint_3d(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised tiny 3D checkpoint (depth 2, 8 embedding channels)."""
    return _random_checkpoint(tmp_path_factory.mktemp("ckpt3d") / "random3d.pt", 3)


@pytest.fixture(scope="session")
def trained_checkpoint_2d(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small 2D model trained on synthetic sparse data by our own trainer (~20 s on 2 CPU cores).

    Depth 2, 8 base features, 8 embedding channels; 50% of the objects annotated.
    """
    from spoco_zoo.train.trainer import Trainer

    out = tmp_path_factory.mktemp("trained2d")
    config = TrainConfig.model_validate(
        {
            "steps": 300,
            "lr": 3e-3,
            "out_dir": str(out),
            "val_every": 300,
            "checkpoint_every": 300,
            "model": {"depth": 2, "base_features": 8, "embedding_dim": 8},
            "data": {
                "patch_shape": [128, 128],  # whole images, as the default (see DataConfig.patch_shape)
                "batch_size": 1,
                "object_fraction": 0.5,
                "synthetic": {"n_train": 8, "n_val": 2, "shape": [128, 128], "n_objects": 16, "seed": 7},
            },
        }
    )
    result = Trainer(config, progress=False).fit()
    return result.last_checkpoint


@pytest.fixture
def one_thread():
    """Tiny networks gain nothing from intra-op threads; on a busy machine they cost seconds."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def touching_discs() -> np.ndarray:
    """Labels of two touching discs (radius 10) in a 40x60 image: ids 1 and 2, background 0."""
    yy, xx = np.mgrid[:40, :60]
    truth = np.zeros((40, 60), np.int64)
    truth[(yy - 20) ** 2 + (xx - 18) ** 2 < 100] = 1
    truth[((yy - 20) ** 2 + (xx - 36) ** 2 < 100) & (truth == 0)] = 2
    return truth


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal up to a renaming of ids that keeps 0 as 0 (the contingency table is a bijection)."""
    pairs = np.unique(np.stack([np.asarray(a).ravel(), np.asarray(b).ravel()]), axis=1)
    return len(np.unique(pairs[0])) == pairs.shape[1] == len(np.unique(pairs[1])) and bool(
        np.all((pairs[0] == 0) == (pairs[1] == 0))
    )
