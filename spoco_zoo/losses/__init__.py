"""SPOCO losses: discriminative embedding loss, instance (Dice) loss, unlabeled push, consistency loss.

All terms take ``[B, E, *spatial]`` embeddings and ``[B, *spatial]`` integer
labels (0 background, > 0 objects, ``ignore_label`` unannotated), are
computed in float32 and use the Gaussian kernel of :mod:`spoco_zoo.kernels`.
Imports torch only.
"""

from spoco_zoo.losses.consistency import consistency_loss, cover_with_anchors
from spoco_zoo.losses.discriminative import (
    embedding_loss,
    group_pixels,
    instance_means,
    pull_loss,
    push_loss,
    regularizer,
)
from spoco_zoo.losses.instance import dice_loss, instance_loss, sample_group_members, soft_masks
from spoco_zoo.losses.spoco import LOSS_TERMS, SpocoLoss
from spoco_zoo.losses.unlabeled_push import unlabeled_push_loss

__all__ = [
    "LOSS_TERMS",
    "SpocoLoss",
    "consistency_loss",
    "cover_with_anchors",
    "dice_loss",
    "embedding_loss",
    "group_pixels",
    "instance_loss",
    "instance_means",
    "pull_loss",
    "push_loss",
    "regularizer",
    "sample_group_members",
    "soft_masks",
    "unlabeled_push_loss",
]
