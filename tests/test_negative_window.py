"""Negatives taken near each annotated object only (``loss.negative_window``)."""

from __future__ import annotations

import pytest
import torch

from spoco_zoo.config import TrainConfig
from spoco_zoo.losses.instance import instance_loss
from spoco_zoo.losses.unlabeled_push import unlabeled_push_loss
from spoco_zoo.losses.window import object_windows


def _far_twin() -> tuple[torch.Tensor, torch.Tensor]:
    """One annotated object at the left of a 1x40 strip, an unannotated twin (same embedding) at the right,
    annotated background between them, far apart in embedding space."""
    labels = torch.zeros(1, 1, 40, dtype=torch.long)
    labels[0, 0, 2:6] = 1
    labels[0, 0, 34:38] = -1
    embeddings = torch.zeros(1, 2, 1, 40)
    embeddings[0, 0] = 5.0  # background far away
    embeddings[0, :, 0, 2:6] = 0.0
    embeddings[0, :, 0, 34:38] = 0.0  # the twin: the object's embedding
    return embeddings.requires_grad_(True), labels


def test_a_far_twin_is_a_negative_of_the_whole_patch_but_not_of_the_window() -> None:
    embeddings, labels = _far_twin()
    whole = instance_loss(embeddings, labels, delta_var=0.5, anchor="mean")
    near = instance_loss(embeddings, labels, delta_var=0.5, anchor="mean", window=[0, 4])
    assert float(whole.detach()) == pytest.approx(1 / 3, abs=1e-3)  # Dice of 4 true over 8 predicted pixels
    assert float(near.detach()) == pytest.approx(0.0, abs=1e-6)
    near_push = unlabeled_push_loss(embeddings, labels, delta_dist=2.0, background_as_instance=False, window=[0, 4])
    whole_push = unlabeled_push_loss(embeddings, labels, delta_dist=2.0, background_as_instance=False)
    assert float(whole_push.detach()) == pytest.approx(4.0) and float(near_push.detach()) == 0.0
    near.backward()
    grad = embeddings.grad
    assert grad is not None and float(grad[..., 30:].abs().sum()) == 0.0  # outside the window: no gradient


def test_a_twin_inside_the_window_is_still_a_negative() -> None:
    embeddings, labels = _far_twin()
    near = instance_loss(embeddings, labels, delta_var=0.5, anchor="mean", window=[0, 32])
    assert float(near.detach()) == pytest.approx(1 / 3, abs=1e-3)
    push = unlabeled_push_loss(embeddings, labels, delta_dist=2.0, background_as_instance=False, window=[0, 32])
    assert float(push.detach()) == pytest.approx(4.0)


def test_windows_follow_each_axis_in_3d() -> None:
    labels = torch.zeros(6, 8, 8, dtype=torch.long)
    labels[2:4, 3:5, 3:5] = 7
    window = object_windows(labels, torch.tensor([7]), [1, 2, 0]).reshape(6, 8, 8)
    assert window.sum() == 4 * 6 * 2
    assert bool(window[1:5, 1:7, 3:5].all()) and not bool(window[0].any()) and not bool(window[:, :, 2].any())
    with pytest.raises(ValueError, match="margin"):
        object_windows(labels, torch.tensor([7]), [1, 2])


def test_the_config_checks_the_window_per_axis() -> None:
    assert TrainConfig().loss.negative_window is None
    cfg = TrainConfig.model_validate({"loss": {"negative_window": [16, 16]}})
    assert cfg.loss.negative_window == [16, 16]
    with pytest.raises(ValueError, match="negative_window"):
        TrainConfig.model_validate({"loss": {"negative_window": [4, 16, 16]}})  # a 2D model
    with pytest.raises(ValueError, match="negative_window"):
        TrainConfig.model_validate({"loss": {"negative_window": [-1, 16]}})


def test_the_training_loss_takes_the_window_from_the_config() -> None:
    from spoco_zoo.config import LossConfig
    from spoco_zoo.losses.spoco import SpocoLoss

    embeddings, labels = _far_twin()
    plain = SpocoLoss(LossConfig(instance_anchor="mean"))(embeddings, labels)[1]
    windowed = SpocoLoss(LossConfig(instance_anchor="mean", negative_window=[0, 4]))(embeddings, labels)[1]
    assert plain["instance"] == pytest.approx(1 / 3, abs=1e-3) and plain["unlabeled_push"] > 0
    assert windowed["instance"] == pytest.approx(0.0, abs=1e-6) and windowed["unlabeled_push"] == 0.0
    assert windowed["embedding"] == pytest.approx(plain["embedding"])  # the push between means is unchanged
