"""The full SPOCO loss: weighted embedding, instance and consistency terms.

``total = embedding_weight * embedding_loss + instance_weight * instance_loss
+ unlabeled_push_weight * unlabeled_push_loss + consistency_weight * consistency_loss
+ foreground_weight * foreground_loss`` (the last for networks with a foreground channel: the
network's output is then ``[B, E + 1, *S]``, embeddings first, the foreground logit last),
computed in float32 with autocast disabled so that mixed-precision training cannot underflow the kernel or the
Dice ratios.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from spoco_zoo.losses.consistency import consistency_loss
from spoco_zoo.losses.discriminative import embedding_loss, graph_zero
from spoco_zoo.losses.foreground import foreground_loss
from spoco_zoo.losses.instance import instance_loss
from spoco_zoo.losses.unlabeled_push import unlabeled_push_loss

if TYPE_CHECKING:  # pragma: no cover - typing only; keeps this module torch-only at runtime
    from spoco_zoo.config import LossConfig

__all__ = ["SpocoLoss", "LOSS_TERMS"]

#: Keys of the per-term dictionary returned by :meth:`SpocoLoss.forward`.
LOSS_TERMS = ("embedding", "instance", "unlabeled_push", "consistency", "foreground", "total")


def _float32_context(device: torch.device) -> contextlib.AbstractContextManager:
    """Context that disables autocast on ``device`` (no-op where autocast does not exist)."""
    if torch.amp.is_autocast_available(device.type):
        return torch.autocast(device_type=device.type, enabled=False)
    return contextlib.nullcontext()


class SpocoLoss(nn.Module):
    """SPOCO training loss built from a :class:`spoco_zoo.config.LossConfig`.

    Parameters
    ----------
    config : LossConfig, optional
        Margins, weights and sampling settings; defaults to ``LossConfig()``.
    ignore_label : int
        Label of unannotated pixels (``DataConfig.ignore_label``).
    foreground : bool
        The network's last output channel is a foreground logit (``ModelConfig.foreground``):
        it is trained by :func:`~spoco_zoo.losses.foreground.foreground_loss`, the other terms
        see the embedding channels only.
    unannotated : {"unknown", "foreground"}
        What unannotated pixels are to the foreground term (``TrainConfig.unannotated_pixels()``).

    Notes
    -----
    A term whose weight is 0 is not computed and is reported as 0.0. The
    consistency term is also skipped (0.0) when no teacher embeddings are
    given. Reported term values are unweighted; ``total`` is the weighted sum.
    """

    def __init__(
        self,
        config: LossConfig | None = None,
        ignore_label: int = -1,
        foreground: bool = False,
        unannotated: str = "unknown",
    ) -> None:
        super().__init__()
        if config is None:
            from spoco_zoo.config import LossConfig

            config = LossConfig()
        self.config = config
        self.ignore_label = int(ignore_label)
        self.foreground = bool(foreground)
        self.unannotated = unannotated

    def _embedding_term(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        cfg = self.config
        return embedding_loss(
            embeddings,
            labels,
            cfg.delta_var,
            cfg.delta_dist,
            alpha=cfg.alpha,
            beta=cfg.beta,
            gamma=cfg.gamma,
            ignore_label=self.ignore_label,
            background_as_instance=cfg.background_as_instance,
        )

    def _instance_term(self, embeddings: Tensor, labels: Tensor, generator: torch.Generator | None) -> Tensor:
        return instance_loss(
            embeddings,
            labels,
            self.config.delta_var,
            ignore_label=self.ignore_label,
            anchors_per_object=self.config.anchors_per_object,
            anchor=self.config.instance_anchor,
            generator=generator,
            window=self.config.negative_window,
        )

    def _consistency_term(
        self, embeddings: Tensor, teacher: Tensor, labels: Tensor, generator: torch.Generator | None
    ) -> Tensor:
        return consistency_loss(
            embeddings,
            teacher,
            labels,
            self.config.delta_var,
            ignore_label=self.ignore_label,
            max_anchors=self.config.consistency_max_anchors,
            min_uncovered=self.config.consistency_min_uncovered,
            generator=generator,
        )

    def forward(
        self,
        embeddings: Tensor,
        labels: Tensor,
        teacher_embeddings: Tensor | None = None,
        generator: torch.Generator | None = None,
        teacher_window: Sequence[slice] | None = None,
    ) -> tuple[Tensor, dict[str, float]]:
        """Weighted SPOCO loss of a batch.

        Parameters
        ----------
        embeddings : Tensor
            ``[B, E, *S]`` student embeddings (any float dtype; computed in float32); with a
            foreground channel the network's whole output ``[B, E + 1, *S]``.
        labels : Tensor
            ``[B, *S]`` sparse integer labels.
        teacher_embeddings : Tensor, optional
            ``[B, E, *S]`` (or ``[B, E + 1, *S]``) teacher output aligned to the student's frame;
            without them the consistency term is skipped.
        generator : torch.Generator, optional
            Makes anchor sampling reproducible.
        teacher_window : sequence of slice, optional
            Where in the student's patch (``*S``) the teacher embeddings lie, one slice per spatial
            axis, when the teacher saw another patch (``data.shifted_teacher``): the consistency
            term compares the two there. Default: the whole patch.

        Returns
        -------
        total : Tensor
            Float32 scalar to back-propagate.
        terms : dict of str to float
            Unweighted ``'embedding'``, ``'instance'``, ``'unlabeled_push'``,
            ``'consistency'``, ``'foreground'`` and the weighted ``'total'``.
        """
        cfg = self.config
        with _float32_context(embeddings.device):
            embeddings = embeddings.float()
            terms: dict[str, Tensor] = {}
            zero = graph_zero(embeddings)
            if self.foreground:
                logits, embeddings = embeddings[:, -1], embeddings[:, :-1]
                if teacher_embeddings is not None:
                    teacher_embeddings = teacher_embeddings[:, :-1]
                use = cfg.foreground_weight > 0
                terms["foreground"] = (
                    foreground_loss(logits, labels, self.ignore_label, self.unannotated) if use else zero
                )
            else:
                terms["foreground"] = zero
            terms["embedding"] = self._embedding_term(embeddings, labels) if cfg.embedding_weight > 0 else zero
            terms["instance"] = self._instance_term(embeddings, labels, generator) if cfg.instance_weight > 0 else zero
            terms["unlabeled_push"] = (
                unlabeled_push_loss(
                    embeddings,
                    labels,
                    cfg.delta_dist,
                    ignore_label=self.ignore_label,
                    background_as_instance=cfg.background_as_instance,
                    window=cfg.negative_window,
                )
                if cfg.unlabeled_push_weight > 0
                else zero
            )
            window = (slice(None), slice(None)) + tuple(teacher_window) if teacher_window is not None else ()
            terms["consistency"] = (
                self._consistency_term(embeddings[window], teacher_embeddings, labels[window[1:]], generator)
                if teacher_embeddings is not None and cfg.consistency_weight > 0
                else zero
            )
            total = (
                cfg.embedding_weight * terms["embedding"]
                + cfg.instance_weight * terms["instance"]
                + cfg.unlabeled_push_weight * terms["unlabeled_push"]
                + cfg.consistency_weight * terms["consistency"]
                + cfg.foreground_weight * terms["foreground"]
            )
        values = torch.stack([*(terms[k] for k in LOSS_TERMS[:-1]), total]).detach()
        return total, dict(zip(LOSS_TERMS, (float(v) for v in values.tolist())))
