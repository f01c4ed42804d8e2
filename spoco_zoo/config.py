"""Validated configuration for training, shared by the trainer, the export and the CLI.

Configs are pydantic models: they are validated once, at the edge (YAML file,
CLI overrides), and passed around as typed objects. ``TrainConfig`` is stored
inside every checkpoint so a checkpoint alone can rebuild its model,
normalisation and recommended clustering.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from spoco_zoo.cluster.clustering_config import ClusteringConfig
from spoco_zoo.cluster.clustering_setting import ClusteringSetting
from spoco_zoo.cluster.settings import DEFAULT_DELTA_VAR

__all__ = [
    "ModelConfig",
    "LossConfig",
    "NormalizationConfig",
    "SyntheticConfig",
    "DataConfig",
    "ClusteringConfig",
    "TrainConfig",
    "load_config",
    "apply_overrides",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelConfig(_Strict):
    """U-Net architecture (see :class:`spoco_zoo.models.unet.UNet`)."""

    spatial_dims: Literal[2, 3] = 2
    in_channels: int = Field(1, ge=1)
    embedding_dim: int = Field(16, ge=2)
    # Depth 4 (16x down-sampling) by default: on the synthetic 256x256 data (10 % of the objects
    # annotated, 600 steps) validation SBD was 0.19 with depth 3, 0.29 with depth 4 and 0.25 with
    # depth 5 (docs/benchmarks.md): the larger receptive field helps tell touching objects apart.
    depth: int = Field(4, ge=1, le=6)
    base_features: int = Field(16, ge=2)
    # BatchNorm by default: with running statistics in eval mode the output does not depend on the
    # tile a tiled prediction sees, and it trained better than GroupNorm here (validation SBD 0.40
    # vs 0.36 after 600 steps, 10 % of objects annotated; docs/benchmarks.md).
    norm: Literal["batch", "group", "instance", "none"] = "batch"
    # One more output channel after the embedding: a foreground logit, trained on the annotated
    # objects (foreground) and the annotated background (label 0), masks the background before
    # clustering. Without it the background must be the largest embedding cluster, which a real image
    # (soft edges, uneven background) breaks into rings and filaments (docs/benchmarks.md, "Real images").
    # Checkpoints written before this option have none (spoco_zoo.train.checkpoint).
    foreground: bool = Field(True, description="a foreground-logit output channel after the embeddings")
    # Stacks with a z step several times the pixel size are pooled in y and x only until the voxels are
    # near-isotropic (spoco_zoo.models.anisotropy): pooling z early throws away the few slices an object has.
    anisotropic_levels: int | None = Field(
        None,
        ge=0,
        description="3D: the first this many down-sampling steps pool y and x only; None: from data.voxel_size "
        "(one level per halving of the z/xy spacing ratio down to below 2), set when training starts",
    )

    @property
    def out_channels(self) -> int:
        """Output channels of the network: the embedding and, with ``foreground``, one logit."""
        return self.embedding_dim + int(bool(self.foreground))

    def unet_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``UNet(**kwargs)``."""
        return dict(
            in_channels=self.in_channels,
            out_channels=self.out_channels,
            spatial_dims=self.spatial_dims,
            depth=self.depth,
            base_features=self.base_features,
            norm=self.norm,
            anisotropic_levels=int(self.anisotropic_levels or 0),
        )


class LossConfig(_Strict):
    """Weights and margins of the SPOCO loss terms."""

    delta_var: float = Field(DEFAULT_DELTA_VAR, gt=0, description="pull margin (intra-object)")
    delta_dist: float = Field(2.0, gt=0, description="push margin (between object means)")
    alpha: float = Field(1.0, ge=0, description="weight of the pull term inside the embedding loss")
    beta: float = Field(1.0, ge=0, description="weight of the push term inside the embedding loss")
    gamma: float = Field(0.001, ge=0, description="weight of the mean-norm regulariser")
    background_as_instance: bool = True
    embedding_weight: float = Field(1.0, ge=0)
    instance_weight: float = Field(1.0, ge=0)
    consistency_weight: float = Field(1.0, ge=0)
    unlabeled_push_weight: float = Field(
        1.0, ge=0, description="weight of the push of unannotated pixels away from annotated instance means"
    )
    foreground_weight: float = Field(
        1.0, ge=0, description="weight of the foreground-channel loss (networks with model.foreground)"
    )
    kernel: Literal["gaussian"] = "gaussian"
    # The object's mean embedding by default: after 1500 CPU steps with 10 % of the objects annotated,
    # held-out SBD 0.80 / mAP 0.43 vs 0.76 / 0.35 with a random pixel (docs/benchmarks.md).
    instance_anchor: Literal["pixel", "mean"] = Field(
        "mean", description="anchor of the instance term: the object's mean embedding or a random pixel of it"
    )
    anchors_per_object: int = Field(1, ge=1, description="anchor pixels per object (instance_anchor='pixel')")
    consistency_max_anchors: int = Field(
        20, ge=1, description="most anchors drawn per image to cover the unlabeled region"
    )
    consistency_min_uncovered: float = Field(
        0.05, ge=0, lt=1, description="anchor drawing stops when less than this fraction of the region is uncovered"
    )
    ema_momentum: float = Field(0.99, ge=0, lt=1, description="teacher = m * teacher + (1 - m) * student")
    negative_window: list[int] | None = Field(
        None,
        description="pixels per spatial axis around an annotated object's bounding box within which the instance "
        "and unlabeled-push terms take its negatives (spoco_zoo.losses.window); None: the whole patch",
    )

    @model_validator(mode="after")
    def _margins(self) -> LossConfig:
        if self.delta_dist <= 2 * self.delta_var:
            raise ValueError(
                f"delta_dist ({self.delta_dist}) must exceed 2 * delta_var ({2 * self.delta_var}) "
                "or objects cannot be separated"
            )
        return self


class NormalizationConfig(_Strict):
    """Per-image intensity normalisation, mirrored 1:1 by bioimage.io preprocessing.

    ``percentile`` maps [p_low, p_high] percentiles to [0, 1] (bioimage.io
    ``scale_range``); ``zero_mean_unit_variance`` standardises each image.
    """

    mode: Literal["percentile", "zero_mean_unit_variance"] = "percentile"
    p_low: float = Field(1.0, ge=0, lt=100)
    p_high: float = Field(99.8, gt=0, le=100)
    eps: float = Field(1e-6, gt=0)

    @model_validator(mode="after")
    def _order(self) -> NormalizationConfig:
        if self.p_low >= self.p_high:
            raise ValueError(f"p_low ({self.p_low}) must be below p_high ({self.p_high})")
        return self


class SyntheticConfig(_Strict):
    """Built-in synthetic data: crowded, touching, irregular objects.

    By default 512x512 images with 160 objects (the density of 40 per 256x256), twice the
    training patch: patches are random crops, so the network cannot tell objects apart by their
    distance to the image border, and quality holds on images of any size (held-out 1024x1024
    image: SBD 0.83 vs 0.77 for a model trained on whole 256x256 images; docs/benchmarks.md).
    """

    n_train: int = Field(16, ge=1)
    n_val: int = Field(2, ge=1)
    shape: list[int] = Field(default_factory=lambda: [512, 512])
    n_objects: int = Field(160, ge=1)
    seed: int = 0
    style: Literal["crowded", "nuclei"] = Field(
        "crowded",
        description="crowded: touching irregular objects filling most of the image; nuclei: like real "
        "fluorescence nuclei -- mostly background, soft edges, dim and bright objects, uneven illumination, clumps",
    )


class DataConfig(_Strict):
    """Where training data comes from and how patches are drawn.

    With ``train_images`` unset, the built-in synthetic generator is used.
    ``label_convention`` says what sparse label images mean (see
    :mod:`spoco_zoo.data.conventions`): ``"objects_and_background"`` (0 =
    background, positive ids = annotated objects, ``ignore_label`` = not
    annotated) or ``"objects_only"`` (positive ids = annotated objects, every
    other pixel unknown, background included). Dense ground truth is
    sparsified into the chosen convention.
    """

    train_images: list[Path] | None = None
    train_labels: list[Path] | None = None
    val_images: list[Path] | None = None
    val_labels: list[Path] | None = None
    image_key: str | None = Field(None, description="dataset key inside HDF5/Zarr inputs")
    label_key: str | None = None
    labels_are_sparse: bool = Field(
        False, description="labels already contain ignore_label; do not sparsify them again"
    )
    object_fraction: float = Field(0.1, gt=0, le=1, description="fraction of objects kept as annotated")
    label_convention: Literal["objects_and_background", "objects_only"] = Field(
        "objects_and_background",
        description="objects_and_background: 0 = background, ignore_label = not annotated; "
        "objects_only: every pixel that is not a painted object is unknown",
    )
    ignore_label: int = -1
    background_complete: bool = Field(
        True,
        description="objects_and_background: every background pixel is annotated (the paper's protocol), so an "
        "unannotated pixel belongs to an object; the foreground channel learns it as foreground. False: the "
        "annotated background is partial (scribbles) and unannotated pixels are unknown to it",
    )
    holdout_fraction: float = Field(
        0.2,
        ge=0,
        lt=1,
        description="without val_images: this share of the annotated objects (rounded down) is set aside, "
        "not trained on, to choose the checkpoint and tune the clustering; none set aside (validation on "
        "the training annotations) when it rounds to 0",
    )
    # 256x256 patches, random crops of larger images: patches must hold many objects (a network
    # trained on 128x128 patches scored SBD 0.05-0.11 on 256x256 images after 600 steps vs 0.21),
    # and crops keep the network from identifying objects by their distance to the image border.
    # The patch is also the block size of the recommended local clustering.
    patch_shape: list[int] = Field(default_factory=lambda: [256, 256])
    # Off by default: once the foreground is split by shape, zoom 1.5 no longer helped the real nuclei
    # image (SBD 0.768 / 0.795 at 100 % / 10 % with it, 0.781 / 0.788 without) and cost the crowded
    # synthetic 10 % row 0.06 SBD (0.779 vs 0.835; docs/benchmarks.md, "Real images"). Before the
    # shape split it had lifted 10 % from 0.10 to 0.27. For objects whose size varies a lot.
    zoom: float = Field(
        1.0,
        ge=1,
        description="scale augmentation: patches cut from windows 1/zoom..zoom times the patch size (yx), resized",
    )
    # Off by default. A 3D network trained on bare 32x64x64 crops reads the crop border (its zero padding is
    # within reach of every voxel) and merges or splits objects whose voxels have no border in reach -- the
    # interior of volumes larger than the crops (docs/benchmarks.md, "Training patches with context").
    patch_context: list[int] | None = Field(
        None,
        description="image around each training patch, pixels per side and spatial axis: the network sees the "
        "patch grown by it, the losses only the patch (so no supervised pixel sits on the padded border)",
    )
    context_steps: int | None = Field(
        None,
        ge=1,
        description="with patch_context: only the last this many steps see the context (the others the bare "
        "patch, cheaper); None: every step",
    )
    context_batch_size: int | None = Field(
        None,
        ge=1,
        description="with patch_context: the steps that see the context train on this many of the step's "
        "batch_size patches (a 3D patch grown by its context costs two to three times a bare one); None: all",
    )
    shifted_teacher: bool = Field(
        False,
        description="with patch_context: in the steps that show the bare patch, the teacher sees a patch of the "
        "item shifted by up to the context per axis, and the consistency term compares the two views where they "
        "overlap (so an embedding may not depend on where the crop border is)",
    )
    batch_size: int = Field(1, ge=1)
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes that draw the training patches")
    normalization: NormalizationConfig = Field(default_factory=NormalizationConfig)
    synthetic: SyntheticConfig = Field(default_factory=SyntheticConfig)
    voxel_size: list[float] | None = Field(
        None,
        description="physical size of a pixel / voxel per spatial axis (z, y, x), micrometres; None: read from the "
        "training images' metadata (TIFF, OME-Zarr) when training starts, if they have it. With the built-in "
        "synthetic data its ratios shape the volumes: [3, 1, 1] samples z three times coarser than y and x",
    )

    def context_margins(self) -> tuple[int, ...]:
        """``patch_context`` per spatial axis (zeros without one).

        >>> DataConfig(patch_shape=[32, 64, 64], patch_context=[4, 8, 8]).context_margins()
        (4, 8, 8)
        >>> DataConfig().context_margins()
        (0, 0)
        """
        if self.patch_context is None:
            return (0,) * len(self.patch_shape)
        return tuple(int(c) for c in self.patch_context)

    def window_shape(self) -> list[int]:
        """What a training item holds: the patch grown by ``patch_context`` on each side.

        >>> DataConfig(patch_shape=[32, 64, 64], patch_context=[4, 8, 8]).window_shape()
        [40, 80, 80]
        """
        return [int(p) + 2 * c for p, c in zip(self.patch_shape, self.context_margins())]

    @field_validator("voxel_size")
    @classmethod
    def _positive_voxel(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and (not value or min(value) <= 0):
            raise ValueError(f"must be positive sizes, one per spatial axis, got {value}")
        return value

    @model_validator(mode="before")
    @classmethod
    def _legacy_keep_background(cls, data: Any) -> Any:
        """Configs written before ``label_convention`` existed stored ``keep_background``."""
        if isinstance(data, dict) and "keep_background" in data:
            data = dict(data)
            keep = data.pop("keep_background")
            data.setdefault("label_convention", "objects_and_background" if keep else "objects_only")
        return data

    @field_validator("ignore_label")
    @classmethod
    def _negative_ignore(cls, v: int) -> int:
        if v > 0:
            raise ValueError("ignore_label must be <= 0 (positive ids are object ids)")
        return v

    @model_validator(mode="after")
    def _pairs(self) -> DataConfig:
        for kind in ("train", "val"):
            imgs, lbls = getattr(self, f"{kind}_images"), getattr(self, f"{kind}_labels")
            if (imgs is None) != (lbls is None):
                raise ValueError(f"{kind}_images and {kind}_labels must be given together")
            if imgs is not None and len(imgs) != len(lbls):
                raise ValueError(f"{len(imgs)} {kind} images but {len(lbls)} {kind} label files")
        return self


class TrainConfig(_Strict):
    """Everything a training run needs; stored in each checkpoint."""

    model: ModelConfig = Field(default_factory=ModelConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    clustering: ClusteringConfig = Field(default_factory=ClusteringConfig)
    steps: int = Field(1000, ge=1)
    lr: float = Field(1e-3, gt=0, description="peak learning rate (AdamW)")
    lr_schedule: Literal["cosine", "constant"] = Field("cosine", description="decay after the warmup")
    warmup_steps: int = Field(100, ge=0, description="linear learning-rate warmup")
    min_lr_fraction: float = Field(0.02, ge=0, le=1, description="floor of the cosine decay, as a fraction of lr")
    weight_decay: float = Field(1e-5, ge=0)
    seed: int = 0
    device: str = "auto"
    amp: bool = Field(True, description="mixed precision on CUDA: bfloat16 where supported, else float16")
    amp_cpu: bool = Field(
        False,
        description="bfloat16 autocast for the training steps on a CPU with native bfloat16 (AVX512-BF16 or AMX; "
        "float32 on other CPUs); validation and the clustering's tuning predict in float32, as segment does",
    )
    channels_last_cpu: bool = Field(
        False,
        description="the networks' convolutions in channels-last memory order for the training steps on a CPU "
        "(the same function, other float rounding; a 3D step 2.28 -> 1.77 s on 2 AVX2 cores, a 2D one 0.32 -> "
        "0.29 s); segment and export run any model channels-last on the CPU anyway",
    )
    compile: bool = Field(False, description="torch.compile the networks (pays off on long GPU runs)")
    val_every: int = Field(200, ge=1)
    checkpoint_every: int = Field(100, ge=1)
    log_every: int = Field(10, ge=1)
    out_dir: Path = Path("runs/spoco")

    @model_validator(mode="after")
    def _shapes(self) -> TrainConfig:
        dims = self.model.spatial_dims
        patch = self.data.patch_shape
        if len(patch) != dims:
            raise ValueError(f"data.patch_shape {patch} has {len(patch)} axes but model.spatial_dims is {dims}")
        step = 2**self.model.depth
        bad = [p for p in patch if p % step]
        if bad:
            raise ValueError(f"data.patch_shape {patch}: every extent must be a multiple of 2**depth = {step}")
        context = self.data.patch_context
        if context is not None:
            if len(context) != dims or min(context) < 0:
                raise ValueError(f"data.patch_context {context}: needs {dims} values >= 0, one per spatial axis")
            if (self.data.context_batch_size or 0) > self.data.batch_size:
                raise ValueError(
                    f"data.context_batch_size {self.data.context_batch_size} exceeds data.batch_size "
                    f"{self.data.batch_size}"
                )
            grown = self.data.window_shape()
            if any(w % step for w in grown):
                raise ValueError(
                    f"data.patch_context {context}: the patch grown by it, {grown}, must be a multiple of "
                    f"2**depth = {step} along every axis (a context of a multiple of {max(1, step // 2)})"
                )
        if self.data.shifted_teacher and (not any(self.data.context_margins()) or self.data.context_steps is None):
            raise ValueError(
                "data.shifted_teacher shifts the teacher's patch within the context of the bare-patch steps: it needs "
                "data.patch_context (not all zeros) and data.context_steps (with None every step sees the context)"
            )
        if self.data.train_images is None and len(self.data.synthetic.shape) != dims:
            raise ValueError(
                f"data.synthetic.shape {self.data.synthetic.shape} does not match model.spatial_dims {dims}"
            )
        window = self.loss.negative_window
        if window is not None and (len(window) != dims or min(window) < 0):
            raise ValueError(f"loss.negative_window {window}: needs {dims} values >= 0, one per spatial axis")
        if self.data.voxel_size is not None and len(self.data.voxel_size) != dims:
            raise ValueError(f"data.voxel_size {self.data.voxel_size} needs one value per spatial axis ({dims})")
        levels = self.model.anisotropic_levels
        if levels and (dims != 3 or levels > self.model.depth):
            raise ValueError(f"model.anisotropic_levels {levels}: needs a 3D model and at most model.depth levels")
        return self

    def with_voxel_size(self, voxel_size: list[float] | None) -> TrainConfig:
        """This config with ``data.voxel_size`` (when it had none) and ``model.anisotropic_levels`` (when
        ``None``) decided: what a training run stores, so that its checkpoint rebuilds the same network.

        >>> cfg = TrainConfig(model={"spatial_dims": 3}, data={"patch_shape": [32, 64, 64],
        ...                   "synthetic": {"shape": [32, 128, 128]}})
        >>> cfg.with_voxel_size([2.0, 0.5, 0.5]).model.anisotropic_levels
        2
        >>> TrainConfig().with_voxel_size(None).model.anisotropic_levels
        0
        """
        from spoco_zoo.models.anisotropy import anisotropic_levels

        size = self.data.voxel_size if self.data.voxel_size is not None else voxel_size
        levels = self.model.anisotropic_levels
        if levels is None:
            levels = anisotropic_levels(size, self.model.depth) if self.model.spatial_dims == 3 else 0
        data = self.data.model_copy(update={"voxel_size": None if size is None else [float(v) for v in size]})
        model = self.model.model_copy(update={"anisotropic_levels": levels})
        return self.model_copy(update={"data": data, "model": model})

    def unannotated_pixels(self) -> str:
        """What an unannotated pixel is to the foreground channel's loss: ``"foreground"`` when the
        annotated background is complete (``objects_and_background`` with ``data.background_complete``),
        else ``"unknown"``.

        >>> TrainConfig().unannotated_pixels()
        'foreground'
        """
        complete = self.data.label_convention == "objects_and_background" and self.data.background_complete
        return "foreground" if complete else "unknown"

    def foreground_mode(self) -> str | None:
        """What clustering does with the network's foreground channel (``None``: the network has none).

        ``clustering.foreground`` when set; else ``"mask"`` when the foreground channel learned
        from annotated background (``objects_and_background``), ``"drop"`` when it could not.

        >>> TrainConfig().foreground_mode(), TrainConfig(model={"foreground": False}).foreground_mode()
        ('mask', None)
        """
        if not self.model.foreground:
            return None
        if self.clustering.foreground is not None:
            return self.clustering.foreground
        return "mask" if self.data.label_convention == "objects_and_background" else "drop"

    def clustering_setting(self, method: str | None = None) -> ClusteringSetting:
        """The clustering this config recommends
        (:meth:`~spoco_zoo.cluster.clustering_setting.ClusteringSetting.from_train_config`: the loss's kernel
        width, the patch as block and the foreground channel's use); ``method``: another method.

        >>> TrainConfig().clustering_setting().foreground
        'mask'
        """
        return ClusteringSetting.from_train_config(self, method)

    def recommended_clustering(self, method: str | None = None) -> dict[str, Any]:
        """:meth:`clustering_setting` as a clustering dict (the keyword arguments of
        :func:`spoco_zoo.cluster.cluster_embeddings`).

        >>> TrainConfig().recommended_clustering()["method"]
        'graph'
        """
        return self.clustering_setting(method).as_dict()

    def to_dict(self) -> dict[str, Any]:
        """JSON/YAML-safe dictionary (paths as strings)."""
        return self.model_dump(mode="json")


def load_config(path: Path | None = None, preset: str | None = None, spatial_dims: int = 2) -> TrainConfig:
    """The defaults, then a preset (:mod:`spoco_zoo.presets`; its 3D recipe for ``spatial_dims=3``), then
    a YAML config file.

    >>> load_config(preset="cpu").steps
    1200

    Raises
    ------
    ValueError
        Naming the file when it cannot be parsed or fails validation, or an unknown preset.
    """
    from spoco_zoo.presets import merge_nested, preset_values

    values: dict[str, Any] = preset_values(preset, spatial_dims)
    if path is None:
        return TrainConfig.model_validate(values)
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ValueError(f"{path}: cannot read config: {err}") from err
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: config must be a mapping, got {type(raw).__name__}")
    try:
        return TrainConfig.model_validate(merge_nested(values, raw))
    except ValueError as err:
        raise ValueError(f"{path}: invalid config:\n{err}") from err


def _parse_value(item: str, text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        problem = " ".join(str(getattr(err, "problem", None) or err).split())
        raise ValueError(f"override {item!r}: the value is not valid YAML ({problem})") from None


def set_values(config: TrainConfig, values: Mapping[str, Any]) -> TrainConfig:
    """Set ``dotted.key`` entries to Python values (no YAML parsing) and re-validate.

    >>> str(set_values(TrainConfig(), {"out_dir": "runs/a: #1"}).out_dir)
    'runs/a: #1'

    Raises
    ------
    ValueError
        An unknown key, or values the config refuses (a pydantic ``ValidationError``).
    """
    data = config.model_dump(mode="json")
    for key, value in values.items():
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                raise ValueError(f"override {key!r}: unknown section {part!r}")
            node = node[part]
        if parts[-1] not in node:
            raise ValueError(f"override {key!r}: unknown key {parts[-1]!r}")
        node[parts[-1]] = value
    return TrainConfig.model_validate(data)


def apply_overrides(config: TrainConfig, overrides: list[str]) -> TrainConfig:
    """Apply ``dotted.key=value`` overrides (values parsed as YAML) and re-validate.

    >>> cfg = apply_overrides(TrainConfig(), ["loss.delta_var=0.4", "data.patch_shape=[64,64]"])
    >>> cfg.loss.delta_var, cfg.data.patch_shape
    (0.4, [64, 64])
    >>> apply_overrides(TrainConfig(), ["seed=[1"])
    Traceback (most recent call last):
    ...
    ValueError: override 'seed=[1': the value is not valid YAML (expected ',' or ']', but got '<stream end>')

    Raises
    ------
    ValueError
        A malformed item, a value that is not YAML, an unknown key or a value the config refuses.
    """
    values: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like key.sub=value")
        key, value = item.split("=", 1)
        values[key.strip()] = _parse_value(item, value)
    return set_values(config, values)
