"""``ClusteringConfig``: the clustering part of a training config (pydantic, validated at the edge).

Its rules -- defaults, method arguments, in-graph arguments -- are :mod:`spoco_zoo.cluster.settings`,
which reads it through :class:`~spoco_zoo.cluster.settings.ClusteringFields` and imports the standard
library only (numpy-and-torch consumers such as :mod:`spoco_zoo.postprocess` need no pydantic).
:class:`spoco_zoo.config.TrainConfig` holds one.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from spoco_zoo.cluster.settings import ClusteringMethod

__all__ = ["ClusteringConfig"]


class ClusteringConfig(BaseModel):
    """Recommended clustering of the embeddings into instances.

    ``bandwidth`` (the kernel width of mean-shift and anchor clustering) defaults (None) to the
    loss's pull margin ``delta_var``; ``params`` are further keyword arguments of the method.
    Its rules live beside it, in :mod:`spoco_zoo.cluster.settings`
    (:class:`~spoco_zoo.cluster.clustering_setting.ClusteringSetting`, built from it by
    :meth:`~spoco_zoo.cluster.clustering_setting.ClusteringSetting.from_config`);
    :class:`spoco_zoo.config.TrainConfig` holds one.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    method: ClusteringMethod | None = Field(
        None,
        description="None: graph (the local decoder exported packages compile in) for models whose foreground "
        "channel masks the background, else mean_shift",
    )
    bandwidth: float | None = Field(None, gt=0)
    min_size: int | None = Field(
        None,
        ge=0,
        description="objects smaller than this merge into a neighbour; None: a quarter of the median "
        "annotated object size, set when training starts",
    )
    tune: bool = Field(
        True, description="choose bandwidth and min_size on the dense validation images when training ends"
    )
    block_shape: list[int] | None = Field(
        None,
        description="cluster locally in blocks of this size; None: the training patch shape (method graph: twice it)",
    )
    overlap: list[int] | None = Field(None, description="overlap of neighbouring blocks; None: a quarter block")
    split_components: bool = Field(True, description="split every cluster into its connected components")
    foreground: Literal["mask", "drop"] | None = Field(
        None,
        description="use of the network's foreground channel: mask = cluster only its foreground, drop = ignore "
        "it; None: mask when the background is annotated (label_convention objects_and_background)",
    )
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("block_shape", "overlap")
    @classmethod
    def _positive_extents(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (not value or min(value) < 0):
            raise ValueError(f"must be a non-empty list of non-negative sizes, got {value}")
        return value
