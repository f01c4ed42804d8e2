"""Validation during training: whole-image embeddings, instance metrics, tuned clustering stored.

Used by :class:`spoco_zoo.train.trainer.Trainer`; the functions take what they need explicitly
(model, samples, config) so the trainer keeps only the training loop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from spoco_zoo.config import ClusteringConfig, TrainConfig
from spoco_zoo.shapes import pad_to_shape
from spoco_zoo.train.checkpoint import load_checkpoint, save_checkpoint

__all__ = ["predict_whole", "validation_scores", "store_tuning"]


@torch.no_grad()
def predict_whole(
    model: nn.Module, image: np.ndarray, device: torch.device, amp_dtype: torch.dtype | None = None
) -> torch.Tensor:
    """Embeddings ``[E, *S]`` (on the CPU) of a whole image ``[C, *S]``, padded to a valid size.

    ``model`` must have ``valid_shape(spatial)`` (:class:`spoco_zoo.models.unet.UNet`);
    ``amp_dtype`` runs it under autocast in that dtype.
    """
    spatial = image.shape[1:]
    padded = pad_to_shape(image, model.valid_shape(spatial))  # type: ignore[operator]
    x = torch.as_tensor(padded, dtype=torch.float32)[None].to(device)
    with torch.autocast(device_type=device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
        emb = model(x)
    crop = (slice(None), slice(None)) + tuple(slice(0, s) for s in spatial)
    return emb[crop][0].float().cpu().contiguous()  # a channels-last network's output too


@torch.no_grad()
def validation_scores(
    samples: Sequence[tuple[np.ndarray, np.ndarray]],
    config: TrainConfig,
    embed: Callable[[np.ndarray], torch.Tensor],
) -> dict[str, float]:
    """Mean validation embedding loss and instance scores: SBD / mAP on images with dense labels,
    the partial scores (:func:`spoco_zoo.metrics.partial.partial_scores`) on sparse ones.

    ``embed(image)`` gives the embeddings ``[E, *S]``; images are segmented with the recommended
    clustering of ``config`` (:meth:`spoco_zoo.config.TrainConfig.clustering_setting`).
    """
    from spoco_zoo.cluster import cluster_setting
    from spoco_zoo.losses.discriminative import embedding_loss
    from spoco_zoo.train.tuning import score_segmentation

    loss = config.loss
    clustering = config.clustering_setting()
    scores: dict[str, list[float]] = {"val_embedding_loss": []}
    for image, labels in samples:
        emb = embed(image)
        lbl = torch.as_tensor(labels, dtype=torch.long)[None]
        value = embedding_loss(
            emb[None, : config.model.embedding_dim],
            lbl,
            loss.delta_var,
            loss.delta_dist,
            alpha=loss.alpha,
            beta=loss.beta,
            gamma=loss.gamma,
            ignore_label=config.data.ignore_label,
            background_as_instance=loss.background_as_instance,
        )
        scores["val_embedding_loss"].append(float(value))
        pred = cluster_setting(emb.numpy(), clustering)
        for key, score in score_segmentation(pred, labels, config.data.ignore_label).items():
            scores.setdefault(key, []).append(float(score))
    return {k: float(np.mean(v)) for k, v in scores.items() if v}


def store_tuning(
    best: Path, also: Sequence[Path], clustering: ClusteringConfig, table: Any, halo: Sequence[int] | None = None
) -> None:
    """Write the post-processing chosen at the end of training into the checkpoints, one rewrite each.

    ``clustering`` (into the config) and the tuning ``table`` go into ``best`` and every path of
    ``also``; ``halo``, measured on ``best``'s student weights, into ``best`` only (key ``"halo"``,
    read by :func:`spoco_zoo.train.checkpoint.stored_halo`), so ``segment`` and ``export`` need not
    measure it again (seconds in 2D, half a minute for a 3D network on a CPU).
    """
    for path in (best, *also):
        stored = load_checkpoint(path, map_location="cpu")
        stored["config"] = stored["config"].model_copy(update={"clustering": clustering})
        stored["tuning"] = table
        if halo is not None and path == best:
            stored["halo"] = [int(h) for h in halo]
        save_checkpoint(path, stored)
