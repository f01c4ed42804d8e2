"""The foreground channel: its loss, its use by every clustering route, and old checkpoints without it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spoco_zoo.cluster import cluster_embeddings
from spoco_zoo.cluster.common import split_foreground
from spoco_zoo.cluster.ingraph import InGraphClustering
from spoco_zoo.config import LossConfig, TrainConfig
from spoco_zoo.errors import DataError
from spoco_zoo.losses.foreground import foreground_loss
from spoco_zoo.losses.spoco import SpocoLoss


def _scene() -> tuple[np.ndarray, np.ndarray]:
    """Two objects on a background whose embedding is spread out like a real image's (no tight
    cluster), plus a foreground logit that is right: ``(output [3, 32, 48], truth [32, 48])``."""
    rng = np.random.default_rng(0)
    truth = np.zeros((32, 48), np.int64)
    truth[4:14, 4:14] = 1
    truth[18:30, 30:44] = 2
    emb = rng.uniform(-3, 3, size=(2, 32, 48)).astype(np.float32)  # background: scattered
    emb[:, truth == 1] = np.array([[5.0], [5.0]], np.float32)
    emb[:, truth == 2] = np.array([[-5.0], [5.0]], np.float32)
    logit = np.where(truth > 0, 4.0, -4.0).astype(np.float32)[None]
    return np.concatenate([emb, logit]), truth


def test_foreground_loss_is_small_when_right_and_large_when_wrong() -> None:
    labels = torch.tensor([[0, 0, 0, 1, 1, 2, -1, -1]])
    right = torch.tensor([[-30.0, -30.0, -30.0, 30.0, 30.0, 30.0, 0.0, 0.0]])
    assert float(foreground_loss(right, labels)) < 1e-5
    assert float(foreground_loss(-right, labels)) > 1.5
    # objects that are right but background called foreground still costs
    half = right.clone()
    half[0, :3] = 30.0
    assert float(foreground_loss(half, labels)) > 0.5


def test_foreground_loss_ignores_unannotated_pixels_and_patches_without_background() -> None:
    labels = torch.tensor([[0, 0, 1, 1, -1, -1]])
    logits = torch.zeros(1, 6, requires_grad=True)
    foreground_loss(logits, labels).backward()
    assert logits.grad is not None
    assert (logits.grad[0, :4].abs() > 0).all()
    assert (logits.grad[0, 4:] == 0).all()  # positive-unlabeled: no pull either way
    objects_only = torch.tensor([[-1, 1, 1, -1]])
    assert float(foreground_loss(torch.zeros(1, 4), objects_only)) == 0.0


def test_spoco_loss_trains_the_last_channel_only_with_the_foreground_term() -> None:
    torch.manual_seed(0)
    labels = torch.zeros(1, 16, 16, dtype=torch.long)
    labels[0, 2:7, 2:7] = 1
    labels[0, 9:14, 9:14] = -1
    output = torch.randn(1, 5, 16, 16, requires_grad=True)  # 4 embedding channels + 1 logit
    loss = SpocoLoss(LossConfig(), foreground=True)
    total, terms = loss(output, labels, output.detach())
    assert terms["foreground"] > 0
    total.backward()
    assert output.grad is not None and output.grad[:, -1].abs().sum() > 0
    # without the foreground term the logit gets no gradient: no other term sees it
    output.grad = None
    without = SpocoLoss(LossConfig(foreground_weight=0.0), foreground=True)
    total, terms = without(output, labels, output.detach())
    total.backward()
    assert terms["foreground"] == 0.0
    assert output.grad is not None and float(output.grad[:, -1].abs().sum()) == 0.0


def test_mask_mode_clusters_only_the_foreground() -> None:
    output, truth = _scene()
    masked = cluster_embeddings(output, "mean_shift", bandwidth=0.5, foreground="mask", device="cpu")
    assert set(np.unique(masked[truth == 0]).tolist()) == {0}
    assert len(np.unique(masked[truth == 1])) == 1 and len(np.unique(masked[truth == 2])) == 1
    assert int(masked.max()) == 2
    # the same embeddings without the mask: the scattered background is no single cluster
    dropped = cluster_embeddings(output, "mean_shift", bandwidth=0.5, foreground="drop", device="cpu")
    assert int(dropped.max()) > 2


def test_local_clustering_uses_the_mask_too() -> None:
    output, truth = _scene()
    labels = cluster_embeddings(
        output, "mean_shift", bandwidth=0.5, foreground="mask", block_shape=[16, 16], overlap=[8, 8], device="cpu"
    )
    assert set(np.unique(labels[truth == 0]).tolist()) == {0}
    assert int(labels.max()) == 2


def test_split_foreground_refuses_unknown_modes() -> None:
    with pytest.raises(DataError, match="foreground"):
        split_foreground(np.zeros((3, 4, 4), np.float32), None, "largest")


def test_ingraph_clustering_masks_with_the_logit() -> None:
    output, truth = _scene()
    module = InGraphClustering(bandwidth=0.5, n_seeds=256, n_samples=1024, foreground="mask")
    labels = module(torch.from_numpy(output)[None])[0, 0].numpy()
    assert set(np.unique(labels[truth == 0]).tolist()) == {0}
    assert (labels[truth > 0] > 0).mean() > 0.95
    scripted = torch.jit.script(module)
    assert np.array_equal(scripted(torch.from_numpy(output)[None])[0, 0].numpy(), labels)


def test_foreground_mode_follows_the_annotation_convention() -> None:
    assert TrainConfig().foreground_mode() == "mask"
    objects_only = TrainConfig.model_validate({"data": {"label_convention": "objects_only"}})
    assert objects_only.foreground_mode() == "drop"  # no annotated background taught the channel
    assert TrainConfig.model_validate({"model": {"foreground": False}}).foreground_mode() is None
    assert "foreground" not in TrainConfig.model_validate({"model": {"foreground": False}}).recommended_clustering()
    assert TrainConfig().model.unet_kwargs()["out_channels"] == TrainConfig().model.embedding_dim + 1


def test_checkpoints_written_before_the_foreground_channel_load_without_it(tmp_path) -> None:
    from spoco_zoo.models.unet import UNet
    from spoco_zoo.train.checkpoint import load_model, save_checkpoint

    config = TrainConfig.model_validate({"model": {"depth": 2, "base_features": 4, "foreground": False}})
    stored = config.to_dict()
    del stored["model"]["foreground"]  # as written by spoco-zoo 0.1.0
    net = UNet(**config.model.unet_kwargs())
    save_checkpoint(tmp_path / "old.pt", {"config": stored, "step": 1, "model_state": net.state_dict()})
    model, loaded = load_model(tmp_path / "old.pt")
    assert loaded.model.foreground is False and model.out_channels == loaded.model.embedding_dim


def test_partial_scores_judge_annotated_objects_by_their_whole_segment() -> None:
    from spoco_zoo.metrics.partial import partial_score, partial_scores

    labels = np.full((10, 20), -1)
    labels[:, 15:] = 0  # annotated background
    labels[2:6, 2:6] = 1  # one complete annotated object
    exact = np.zeros((10, 20), int)
    exact[2:6, 2:6] = 3
    exact[7:9, 7:9] = 4  # an unannotated region: unknown, not counted
    perfect = partial_scores(exact, labels)
    assert perfect == {"object_dice": 1.0, "object_ap50": 1.0, "false_foreground": 0.0}
    merged = exact.copy()
    merged[2:6, 6:12] = 3  # the object's segment spills over unannotated pixels: a merge
    assert partial_scores(merged, labels)["object_dice"] < 0.6
    assert partial_scores(merged, labels)["object_ap50"] == 0.0
    spill = exact.copy()
    spill[:, 15:] = 5  # the annotated background predicted as an object
    assert partial_scores(spill, labels)["false_foreground"] == 1.0
    assert partial_score(partial_scores(exact, labels)) > partial_score(partial_scores(spill, labels))


def test_watershed_method_splits_the_learned_foreground_by_shape(touching_discs: np.ndarray) -> None:
    """Touching objects with one embedding (what a sparsely trained embedding gives unannotated
    neighbours) merge under mean-shift and are split by the foreground's shape."""
    truth = touching_discs
    output = np.zeros((3, 40, 60), np.float32)
    output[0, truth > 0] = 3.0  # one embedding for both
    output[2] = np.where(truth > 0, 5.0, -5.0)
    merged = cluster_embeddings(output, "mean_shift", bandwidth=0.5, foreground="mask", device="cpu")
    assert int(merged.max()) == 1
    config = TrainConfig.model_validate({"clustering": {"method": "watershed", "min_size": 100}})
    params = config.recommended_clustering()
    assert params["min_distance"] == 6 and params["foreground"] == "mask"  # radius of a 100-pixel disc
    split = cluster_embeddings(output, **params)
    assert int(split.max()) == 2 and split[20, 12] != split[20, 42] and (split[truth == 0] == 0).all()
    with pytest.raises(DataError, match="needs one"):
        cluster_embeddings(output[:2], "watershed")


def test_tuning_chooses_the_shape_split_when_the_embedding_merges_neighbours(touching_discs: np.ndarray) -> None:
    from spoco_zoo.train.tuning import tune_clustering

    truth = touching_discs
    merged = np.zeros((3, 40, 60), np.float32)
    merged[0, truth > 0] = 3.0  # one embedding for two touching objects
    merged[2] = np.where(truth > 0, 5.0, -5.0)
    # the default method of a model with a foreground mask: graph, both splits tried
    clustering = TrainConfig.model_validate({"clustering": {"min_size": 100}}).recommended_clustering()
    assert clustering["method"] == "graph" and clustering["split"] == "embedding"
    result = tune_clustering([merged], [truth], clustering)
    assert result.params["split"] == "shape" and result.min_distance is not None and result.score > 1.9
    # an embedding that separates them keeps the embedding split (ties go to the configured split)
    separated = merged.copy()
    separated[1, truth == 2] = 3.0
    kept = tune_clustering([separated], [truth], clustering)
    assert kept.params == {"split": "embedding", "edge_threshold": 0.15} and kept.score > 1.9
    # mean-shift models (configured so) still try the shape split of the foreground
    shifted = TrainConfig.model_validate({"clustering": {"min_size": 100, "method": "mean_shift"}})
    result = tune_clustering([merged], [truth], shifted.recommended_clustering())
    assert result.method == "watershed" and result.min_distance is not None and result.score > 1.9
    assert tune_clustering([separated], [truth], shifted.recommended_clustering()).method == "mean_shift"
