"""Training recipe: presets, learning-rate schedule, derived and tuned post-processing."""

from __future__ import annotations

import numpy as np
import pytest

from spoco_zoo.cluster.settings import min_size_from_objects
from spoco_zoo.config import TrainConfig, load_config
from spoco_zoo.data.synthetic import make_synthetic_sample
from spoco_zoo.errors import DataError
from spoco_zoo.metrics import evaluate_instances
from spoco_zoo.presets import PRESETS, preset_values
from spoco_zoo.train.schedule import learning_rate
from spoco_zoo.train.tuning import tune_clustering


def test_presets_sit_between_defaults_and_config_file(tmp_path) -> None:
    assert load_config(preset="gpu") == TrainConfig()
    cpu = load_config(preset="cpu")
    assert cpu.steps == PRESETS["cpu"]["steps"] != TrainConfig().steps
    config_file = tmp_path / "c.yaml"
    config_file.write_text("steps: 77\nloss:\n  delta_var: 0.4\n")
    both = load_config(config_file, preset="cpu")
    assert both.steps == 77 and both.loss.delta_var == 0.4  # the file wins over the preset
    assert both.val_every == cpu.val_every  # the preset fills what the file leaves out
    with pytest.raises(DataError, match="choose one of"):
        preset_values("tpu")


def test_learning_rate_warms_up_then_decays_to_the_floor() -> None:
    rates = [learning_rate(s, 1000, 1e-3, warmup_steps=100, min_lr_fraction=0.02) for s in range(1000)]
    assert rates[0] == pytest.approx(1e-5) and rates[99] == pytest.approx(1e-3)
    assert all(a <= b for a, b in zip(rates[:100], rates[1:100]))  # increasing warmup
    assert all(a >= b for a, b in zip(rates[100:], rates[101:]))  # decreasing cosine
    assert rates[550] == pytest.approx(0.5 * (1e-3 + 2e-5), rel=1e-2)  # half way down
    assert rates[-1] == pytest.approx(2e-5, rel=1e-2)
    assert learning_rate(5000, 1000, 1e-3, min_lr_fraction=0.02) == pytest.approx(2e-5)
    with pytest.raises(ValueError, match="schedule"):
        learning_rate(0, 10, 1e-3, schedule="linear")


def test_min_size_is_a_quarter_of_the_median_annotated_object() -> None:
    assert min_size_from_objects([100, 200, 300, 400, 10_000]) == 75
    assert min_size_from_objects([8]) == 2


def noisy_embeddings(truth: np.ndarray, noise: float, seed: int) -> np.ndarray:
    """Embeddings with well separated object codes plus pixel noise that makes fragments."""
    rng = np.random.default_rng(seed)
    codes = rng.normal(size=(int(truth.max()) + 1, 6)).astype(np.float32) * 4.0
    emb = codes[truth] + rng.normal(scale=noise, size=(*truth.shape, 6)).astype(np.float32)
    return np.moveaxis(emb, -1, 0)


def test_tuning_finds_parameters_that_beat_bad_defaults() -> None:
    """Start from a kernel width and min_size far off; the chosen ones score better on the images."""
    data = [make_synthetic_sample((96, 96), 10, seed=s) for s in (1, 2)]
    truths = [labels for _, labels in data]
    embeddings = [noisy_embeddings(t, 0.35, seed) for seed, t in enumerate(truths)]
    bad = {"method": "mean_shift", "bandwidth": 0.45, "min_size": 2, "background": "largest", "device": "cpu"}
    result = tune_clustering(embeddings, truths, bad, bandwidth_factors=(1.0, 2.0, 3.0), min_size_factors=(1, 20, 60))
    assert result.bandwidth > 0.45 and result.min_size > 2
    assert len(result.table) == 9
    default_row = next(r for r in result.table if r["bandwidth"] == 0.45 and r["min_size"] == 2)
    assert result.score > default_row["sbd"] + default_row["map"] + 0.2
    from spoco_zoo.cluster import cluster_embeddings

    tuned = {**bad, "bandwidth": result.bandwidth, "min_size": result.min_size, "split_components": True}
    sbd = np.mean([evaluate_instances(cluster_embeddings(e, **tuned), t)["sbd"] for e, t in zip(embeddings, truths)])
    assert sbd > 0.85  # measured 0.873 (0.03 with the bad defaults)
    with pytest.raises(DataError, match="kernel width"):
        tune_clustering(embeddings, truths, {"method": "hdbscan"})


#: SBD floor of the short sparse training below: measured 0.66 (training seed 3, the test's) and 0.68 (seed 4)
#: on 2 CPU cores; the same test with 2 training steps scores 0.0.
SPARSE_FLOOR_SBD = 0.55


def test_short_sparse_training_reaches_the_sbd_floor(tmp_path) -> None:
    """10 % of the objects annotated, ~25 s of CPU training on an easy set, default segmentation.

    Easy set: 128x128 images with 12 touching objects (about one annotated object per image). The
    held-out images (a seed no training run uses) are segmented the way ``spoco-zoo segment
    --checkpoint`` does it: the clustering stored in the checkpoint (min_size derived from the
    annotated objects, bandwidth and min_size tuned on the validation images).
    """
    from spoco_zoo.cluster import cluster_embeddings
    from spoco_zoo.data.normalize import normalize
    from spoco_zoo.data.synthetic import make_synthetic_dataset
    from spoco_zoo.inference import predict_embeddings
    from spoco_zoo.train.checkpoint import load_model
    from spoco_zoo.train.trainer import Trainer

    config = TrainConfig.model_validate(
        {
            "steps": 250,
            "lr": 3e-3,
            "warmup_steps": 25,
            "seed": 3,
            "out_dir": str(tmp_path),
            "val_every": 250,
            "checkpoint_every": 250,
            "model": {"depth": 2, "base_features": 8, "embedding_dim": 8},
            "data": {
                "patch_shape": [96, 96],
                "batch_size": 2,
                "object_fraction": 0.1,
                "synthetic": {"n_train": 16, "n_val": 2, "shape": [128, 128], "n_objects": 12, "seed": 7},
            },
        }
    )
    result = Trainer(config, progress=False).fit()
    model, stored = load_model(result.best_checkpoint)
    params = stored.recommended_clustering()
    scores = []
    for image, truth in make_synthetic_dataset(4, [128, 128], 12, seed=99):
        embeddings = predict_embeddings(
            model, normalize(image[None], stored.data.normalization), None, 0, model.size_step, "cpu"
        )
        scores.append(evaluate_instances(cluster_embeddings(embeddings, **params), truth)["sbd"])
    assert float(np.mean(scores)) >= SPARSE_FLOOR_SBD, scores
    # the halo measured on the best weights is stored with them (segment / export read it back)
    from spoco_zoo.models.receptive_field import package_halo
    from spoco_zoo.train.checkpoint import load_checkpoint, stored_halo

    state = load_checkpoint(result.best_checkpoint)
    assert stored_halo(state) == package_halo(model, 2, 1) and stored_halo(state, "teacher") is None
