"""The clustering rules, in one place: methods, parameter names and defaults from the loss margins.

Everyone who turns a training config (or a package's RDF) into a clustering call asks this
module: the trainer's validation, ``spoco-zoo segment``, the exporter (the RDF's
``config["spoco"]["clustering"]`` and the in-graph stage), :mod:`spoco_zoo.postprocess` and the
dispatcher :func:`spoco_zoo.cluster.cluster_embeddings`.

Rules
-----
* Methods: :data:`METHODS` (``ClusteringConfig.method``, ``--method``), plus ``"ingraph"`` for
  Python consumers of a package (:data:`POSTPROCESS_METHODS`).
* Kernel width: one config name, ``bandwidth``. It defaults to the training pull margin
  ``loss.delta_var`` (the SPOCO Gaussian kernel is 0.5 at that distance), and
  :data:`DEFAULT_DELTA_VAR` when no loss config is known. Each method receives it under its own
  parameter name (:data:`KERNEL_WIDTH_PARAM`: mean-shift ``bandwidth``, anchor clustering
  ``delta_var``; HDBSCAN has none).
* Generic parameters of every method: ``min_size`` and ``background`` (``"largest"``).
* Local clustering (:data:`LOCAL_PARAMS`, applied by
  :func:`spoco_zoo.cluster.instances.segment_embeddings`): ``block_shape`` defaults to the
  training patch shape -- the embedding separates the objects of one training patch, so that is
  the scale to cluster at -- ``overlap`` to :func:`default_overlap` of it, and every cluster is
  split into connected components (``split_components``).

A new clustering option (say, a block size and overlap for tiled clustering) is added here: its
default in :func:`recommended_clustering`, its name in :data:`GENERIC_PARAMS` when every method
takes it, and its in-graph spelling in :func:`ingraph_kwargs`.

Imports the standard library only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

from spoco_zoo.errors import DataError

__all__ = [
    "ClusteringConfig",
    "PullMargin",
    "ClusteringMethod",
    "METHODS",
    "INGRAPH",
    "POSTPROCESS_METHODS",
    "DEFAULT_DELTA_VAR",
    "KERNEL_WIDTH_PARAM",
    "GENERIC_PARAMS",
    "LOCAL_PARAMS",
    "default_overlap",
    "min_distance_from_size",
    "WINDOW_SAMPLE_SHARE",
    "WINDOW_SAMPLES_MIN",
    "window_kwargs",
    "DEFAULT_MIN_SIZE",
    "FOREGROUND_MODES",
    "min_size_from_objects",
    "EDGE_THRESHOLD_FRACTION",
    "GRAPH_PARAMS",
    "GRAPH_ITERATIONS",
    "default_method",
    "INGRAPH_PARAMS",
    "check_method",
    "uses_kernel_width",
    "kernel_width",
    "recommended_clustering",
    "method_kwargs",
    "fill_kernel_width",
    "ingraph_kwargs",
    "recommended_ingraph",
]

#: Clustering methods of a training config (``ClusteringConfig.method``) and of ``--method``.
ClusteringMethod = Literal["graph", "mean_shift", "hdbscan", "consistency", "watershed"]
METHODS: tuple[str, ...] = get_args(ClusteringMethod)
#: The clustering stage compiled into an exported package, run in Python.
INGRAPH = "ingraph"
#: Methods accepted by :func:`spoco_zoo.postprocess.embeddings_to_instances`.
POSTPROCESS_METHODS: tuple[str, ...] = (*METHODS, INGRAPH)

#: Default pull margin of the loss (``LossConfig.delta_var``) and so of the kernel width.
DEFAULT_DELTA_VAR = 0.5

#: The kernel width's parameter name per method (``None``: the method has no kernel width).
KERNEL_WIDTH_PARAM: dict[str, str | None] = {
    "mean_shift": "bandwidth",
    "consistency": "delta_var",
    "hdbscan": None,
    "watershed": None,
    "graph": None,
    INGRAPH: "bandwidth",
}
#: Names under which a config may give the kernel width.
WIDTH_NAMES = ("bandwidth", "delta_var")
#: Values of the clustering parameter ``foreground`` for a network with a foreground-logit channel
#: (the last one): ``"mask"`` clusters only the pixels it calls foreground, ``"drop"`` ignores it
#: (:func:`spoco_zoo.cluster.common.split_foreground`). Absent (``None``): no such channel.
FOREGROUND_MODES = ("mask", "drop")
#: Parameters every method takes (applied by :func:`spoco_zoo.cluster.common.finalize`).
GENERIC_PARAMS = ("min_size", "background")
#: Parameters of the local clustering pipeline around any method (block size, overlap, splitting).
LOCAL_PARAMS = ("block_shape", "overlap", "split_components")
#: Smallest overlap between blocks, in pixels.
MIN_OVERLAP = 16
#: Pixels (voxels) mean-shift samples to find the modes of one local-clustering window: this share
#: of the window, at least :data:`WINDOW_SAMPLES_MIN`. 2D blocks of 256 + overlap (384x384
#: windows): 4096; 3D 64x96x96 windows: 16 384. 20 000 samples per 2D window scored the same within
#: the spread between samples and took 2.5x as long; a fixed 4000 in 3D windows (0.7-1.4 % of their
#: voxels) lost 0.04 SBD, 1820 in 256x256 windows lost 0.05 (``docs/benchmarks.md``, "Segmentation speed").
WINDOW_SAMPLE_SHARE = 1 / 36
#: Fewest samples per window.
WINDOW_SAMPLES_MIN = 4000
#: ``min_size`` when it is neither configured nor derived from annotations.
DEFAULT_MIN_SIZE = 16
#: Derived ``min_size``: this fraction of the median annotated object size (pixels / voxels).
MIN_SIZE_FRACTION = 0.25
#: ``edge_threshold`` of method ``"graph"`` (:mod:`spoco_zoo.cluster.graph`) when neither configured nor
#: tuned: this fraction of the pull margin ``delta_var``. Neighbouring pixels of one trained object
#: differ by far less than ``delta_var``; on the quickstart model 0.24-0.3 x ``delta_var`` scored
#: best and 0.2 / 0.4 x lost 0.15-0.2 SBD (``docs/benchmarks.md``, "Local decoder"), so the
#: end-of-training tuning chooses it.
EDGE_THRESHOLD_FRACTION = 0.3
#: Parameters of method ``"graph"`` beyond the generic ones (also its in-graph constructor arguments).
GRAPH_PARAMS = ("split", "edge_threshold", "min_distance", "n_iter")
#: Rounds of label propagation of method ``"graph"`` (each scans every axis both ways, up to 63 pixels):
#: on a 1024x1024 image of 640 objects 4 rounds leave 29 of 128 879 raw components unjoined, 6 rounds 5.
GRAPH_ITERATIONS = 4
#: Constructor parameters of :class:`spoco_zoo.cluster.ingraph.InGraphClustering`.
INGRAPH_PARAMS = (
    "bandwidth",
    "n_seeds",
    "n_samples",
    "n_iter",
    "gaussian",
    "max_instances",
    "merge_radius",
    "background_largest",
    "min_size",
    "min_seeds",
    "max_distance",
    "n_jumps",
    "foreground",
)
_INGRAPH_IGNORED = ("method", "seed", "device", "delta_var", "ingraph", "description", "min_distance", *LOCAL_PARAMS)
_INGRAPH_INTS = ("n_seeds", "n_samples", "n_iter", "max_instances", "min_size", "min_seeds", "n_jumps")


class PullMargin(Protocol):
    """Anything with the loss's pull margin (:class:`spoco_zoo.config.LossConfig`): the default kernel width."""

    delta_var: float


class ClusteringConfig(BaseModel):
    """Recommended clustering of the embeddings into instances.

    ``bandwidth`` (the kernel width of mean-shift and anchor clustering) defaults (None) to the
    loss's pull margin ``delta_var``; ``params`` are further keyword arguments of the method.
    Its rules live beside it, in this module (:func:`recommended_clustering` and the helpers it uses);
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
        None, description="cluster locally in blocks of this size; None: the training patch shape"
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


def default_method(foreground: str | None) -> str:
    """The method of a config that names none: ``"graph"`` (the local decoder every exported package
    compiles in) for models whose foreground channel masks the background, else ``"mean_shift"``.

    >>> default_method("mask"), default_method(None)
    ('graph', 'mean_shift')
    """
    return "graph" if foreground == "mask" else "mean_shift"


def check_method(method: Any, allowed: tuple[str, ...] = METHODS) -> str:
    """``method`` if it is one of ``allowed``; else :class:`DataError` listing them.

    >>> check_method("mean_shift")
    'mean_shift'
    """
    if method not in allowed:
        raise DataError(f"method: unknown clustering method {method!r}; choose one of {', '.join(allowed)}")
    return str(method)


def uses_kernel_width(method: str) -> bool:
    """Whether ``method`` has a kernel width (mean-shift, anchor and in-graph clustering do, HDBSCAN not)."""
    return KERNEL_WIDTH_PARAM.get(method) is not None


def _delta_var(loss: PullMargin | Mapping[str, Any] | None) -> float:
    if loss is None:
        return DEFAULT_DELTA_VAR
    value = loss.get("delta_var") if isinstance(loss, Mapping) else loss.delta_var
    return DEFAULT_DELTA_VAR if value is None else float(value)


def kernel_width(clustering: ClusteringConfig, loss: PullMargin | Mapping[str, Any] | None = None) -> float:
    """``clustering.bandwidth``, else the loss's pull margin ``delta_var`` (else :data:`DEFAULT_DELTA_VAR`).

    >>> from spoco_zoo.config import LossConfig
    >>> kernel_width(ClusteringConfig(), LossConfig(delta_var=0.4))
    0.4
    """
    return float(clustering.bandwidth) if clustering.bandwidth else _delta_var(loss)


def min_size_from_objects(object_sizes: Sequence[int]) -> int:
    """``min_size`` for objects of these sizes: :data:`MIN_SIZE_FRACTION` of the median, at least 1.

    Fragments smaller than this merge into a neighbour; a real object is rarely a quarter of
    the typical one.

    >>> min_size_from_objects([1000, 1200, 1400]), min_size_from_objects([])
    (300, 16)
    """
    sizes = sorted(int(s) for s in object_sizes)
    if not sizes:
        return DEFAULT_MIN_SIZE
    middle = len(sizes) // 2
    median = sizes[middle] if len(sizes) % 2 else (sizes[middle - 1] + sizes[middle]) / 2
    return max(1, round(MIN_SIZE_FRACTION * median))


def min_distance_from_size(min_size: int, spatial_dims: int = 2) -> int:
    """``min_distance`` of ``method="watershed"``: the radius of a disk (ball) of ``min_size`` pixels, at least 2.

    >>> min_distance_from_size(175), min_distance_from_size(16), min_distance_from_size(1000, 3)
    (7, 2, 6)
    """
    if spatial_dims == 3:
        radius = (3 * max(0, int(min_size)) / (4 * math.pi)) ** (1 / 3)
    else:
        radius = math.sqrt(max(0, int(min_size)) / math.pi)
    return max(2, int(round(radius)))


def default_overlap(block_shape: Sequence[int]) -> list[int]:
    """Overlap between neighbouring blocks: a quarter of the block, at least :data:`MIN_OVERLAP` pixels.

    >>> default_overlap([256, 256]), default_overlap([32, 128, 128])
    ([64, 64], [16, 32, 32])
    """
    return [max(MIN_OVERLAP, int(size) // 4) for size in block_shape]


def window_kwargs(method: str, params: Mapping[str, Any], window_pixels: int) -> dict[str, Any]:
    """Keyword arguments of ``method`` for the windows of local clustering (at most ``window_pixels``
    pixels each): ``params`` plus the per-window defaults (mean-shift: a sample of
    :data:`WINDOW_SAMPLE_SHARE` of the window's pixels, at least :data:`WINDOW_SAMPLES_MIN`,
    unless ``n_samples`` is given).

    >>> window_kwargs("mean_shift", {"bandwidth": 0.3}, 384 * 384)
    {'bandwidth': 0.3, 'n_samples': 4096}
    >>> window_kwargs("mean_shift", {}, 256 * 256), window_kwargs("mean_shift", {}, 64 * 96 * 96)
    ({'n_samples': 4000}, {'n_samples': 16384})
    >>> window_kwargs("mean_shift", {"n_samples": 9000}, 10**6)["n_samples"], window_kwargs("hdbscan", {}, 10**6)
    (9000, {})
    """
    out = dict(params)
    if method == "mean_shift" and out.get("n_samples") is None:
        out["n_samples"] = max(WINDOW_SAMPLES_MIN, round(WINDOW_SAMPLE_SHARE * int(window_pixels)))
    return out


def recommended_clustering(
    clustering: ClusteringConfig,
    loss: PullMargin | Mapping[str, Any] | None = None,
    *,
    method: str | None = None,
    patch_shape: Sequence[int] | None = None,
    foreground: str | None = None,
) -> dict[str, Any]:
    """The recommended clustering of a training config, as a clustering dict.

    Parameters
    ----------
    clustering, loss:
        ``TrainConfig.clustering`` and ``TrainConfig.loss`` (the loss only provides ``delta_var``).
    method:
        Another method than ``clustering.method``: its kernel width is then ``loss.delta_var`` and
        ``clustering.bandwidth`` / ``clustering.params`` (meant for the configured method) are dropped;
        ``min_size``, ``background`` and the local-clustering settings are kept.
    patch_shape:
        The training patch shape (``TrainConfig.data.patch_shape``): the block size of local
        clustering unless ``clustering.block_shape`` is set; with neither, the image is clustered
        in one piece.
    foreground:
        What the network's foreground channel is for (:data:`FOREGROUND_MODES`; ``None``: the
        network has none): ``TrainConfig.foreground_mode()``.

    Returns
    -------
    dict
        ``{"method", "bandwidth" (methods with a kernel width), "min_size", "background": "largest",
        "block_shape", "overlap", "split_components", "foreground" (with a foreground channel),
        **clustering.params}`` -- the RDF's
        ``config["spoco"]["clustering"]`` and, as keyword arguments, what
        :func:`spoco_zoo.cluster.cluster_embeddings` takes.

    Examples
    --------
    >>> from spoco_zoo.config import LossConfig
    >>> recommended_clustering(ClusteringConfig(params={"kernel": "flat"}), LossConfig(delta_var=0.4))
    ... # doctest: +NORMALIZE_WHITESPACE
    {'method': 'mean_shift', 'bandwidth': 0.4, 'min_size': 16, 'background': 'largest',
     'block_shape': None, 'overlap': None, 'split_components': True, 'kernel': 'flat'}
    >>> recommended_clustering(ClusteringConfig(), None, patch_shape=[256, 256])["overlap"]
    [64, 64]
    >>> recommended_clustering(ClusteringConfig(bandwidth=0.3), None, method="consistency")["bandwidth"]
    0.5
    """
    configured = clustering.method or default_method(foreground)
    chosen = check_method(method or configured)
    same = chosen == configured
    out: dict[str, Any] = {"method": chosen}
    if uses_kernel_width(chosen):
        out["bandwidth"] = kernel_width(clustering, loss) if same else _delta_var(loss)
    out["min_size"] = DEFAULT_MIN_SIZE if clustering.min_size is None else int(clustering.min_size)
    out["background"] = "largest"
    block = clustering.block_shape or (list(patch_shape) if patch_shape is not None else None)
    out["block_shape"] = None if block is None else [int(b) for b in block]
    if block is None:
        out["overlap"] = None
    else:
        out["overlap"] = list(clustering.overlap) if clustering.overlap is not None else default_overlap(block)
    out["split_components"] = bool(clustering.split_components)
    dims = len(patch_shape) if patch_shape is not None else 2
    if chosen in ("watershed", "graph"):  # object centres at least the radius of a min_size disk (ball) apart
        out["min_distance"] = min_distance_from_size(out["min_size"], dims)
    if chosen == "graph":  # local by construction: components are its output (blocks: block-wise route only)
        out["split_components"] = False
        out["split"] = "embedding"
        out["edge_threshold"] = round(EDGE_THRESHOLD_FRACTION * _delta_var(loss), 6)
        out["n_iter"] = GRAPH_ITERATIONS
    if foreground is not None:
        if foreground not in FOREGROUND_MODES:
            raise DataError(f"foreground: must be one of {FOREGROUND_MODES} or None, got {foreground!r}")
        out["foreground"] = foreground
    if same:
        out.update(clustering.params)
    return out


def method_kwargs(method: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments of ``method``'s function from clustering parameters.

    ``None`` values are dropped (the method's default applies) and the kernel width, given as
    ``bandwidth`` or ``delta_var``, is passed under the method's own name (dropped for HDBSCAN).

    Raises
    ------
    DataError
        Unknown method, or ``bandwidth`` and ``delta_var`` given with different values.

    >>> method_kwargs("consistency", {"bandwidth": 0.4, "min_size": 4, "seed": None})
    {'min_size': 4, 'delta_var': 0.4}
    """
    check_method(method, POSTPROCESS_METHODS)
    given = {k: v for k, v in params.items() if v is not None}
    widths = {k: given.pop(k) for k in WIDTH_NAMES if k in given}
    target = KERNEL_WIDTH_PARAM[method]
    if target is not None and widths:
        values = {float(v) for v in widths.values()}
        if len(values) > 1:
            raise DataError(f"bandwidth/delta_var: conflicting kernel widths {widths} for method {method!r}")
        given[target] = values.pop()
    return given


def fill_kernel_width(method: str, params: Mapping[str, Any], delta_var: float | None = None) -> dict[str, Any]:
    """``params`` with ``bandwidth = delta_var`` added when ``method`` has a kernel width and none is given.

    >>> fill_kernel_width("mean_shift", {"min_size": 4}, 0.3)
    {'min_size': 4, 'bandwidth': 0.3}
    >>> fill_kernel_width("hdbscan", {"min_size": 4}, 0.3)
    {'min_size': 4}
    """
    out = dict(params)
    if uses_kernel_width(method) and all(out.get(name) is None for name in WIDTH_NAMES):
        out["bandwidth"] = DEFAULT_DELTA_VAR if delta_var is None else float(delta_var)
    return out


def _ingraph_mask_kwargs(key: str, value: Any) -> dict[str, Any]:
    """The in-graph spelling of ``foreground`` / ``background`` (shared by both in-graph stages)."""
    if key == "foreground":
        if value not in FOREGROUND_MODES:
            raise DataError(f"clustering.foreground must be one of {FOREGROUND_MODES}, got {value!r}")
        return {"foreground": str(value)}
    if value not in ("largest", "none"):
        raise DataError(f"clustering.background must be 'largest' or 'none', got {value!r}")
    return {"background_largest": value == "largest"}


def ingraph_kwargs(clustering: Mapping[str, Any]) -> dict[str, Any]:
    """Constructor kwargs of :class:`~spoco_zoo.cluster.ingraph.InGraphClustering` for a clustering config.

    ``clustering`` is a ``ClusteringConfig``-like dict (the RDF's
    ``config["spoco"]["clustering"]``): ``bandwidth`` (or ``delta_var``; ``None`` -> the
    constructor's default, :data:`DEFAULT_DELTA_VAR`), ``kernel`` ("flat"/"gaussian"),
    ``min_size``, ``background`` ("largest"/"none"), optional ``params`` (merged first, top
    level wins), and any constructor argument by name (:data:`INGRAPH_PARAMS`). ``method`` and
    ``seed`` are ignored (the in-graph stage is deterministic and always mean-shift).

    Raises
    ------
    DataError
        Unknown keys or values of the wrong kind (a ``ValueError``).

    >>> ingraph_kwargs({"method": "mean_shift", "bandwidth": 0.4, "kernel": "gaussian", "min_size": 16})
    {'bandwidth': 0.4, 'gaussian': True, 'min_size': 16}
    """
    if not isinstance(clustering, Mapping):
        raise DataError(f"clustering: expected a dict, got {type(clustering).__name__}")
    merged: dict[str, Any] = dict(clustering.get("params") or {})
    merged.update({k: v for k, v in clustering.items() if k != "params"})
    if merged.get("method") == "graph" or merged.get("decoder") == "graph":
        return _graph_ingraph_kwargs(merged)
    out: dict[str, Any] = {}
    for key, value in merged.items():
        if key in _INGRAPH_IGNORED or value is None:
            continue
        if key == "kernel":
            if value not in ("flat", "gaussian"):
                raise DataError(f"clustering.kernel must be 'flat' or 'gaussian', got {value!r}")
            out["gaussian"] = value == "gaussian"
        elif key in ("foreground", "background"):
            out.update(_ingraph_mask_kwargs(key, value))
        elif key in INGRAPH_PARAMS:
            out[key] = value
        else:
            raise DataError(
                f"clustering.{key}: not a parameter of the in-graph clustering (known: {list(INGRAPH_PARAMS)})"
            )
    if "bandwidth" not in out and merged.get("delta_var") is not None:
        out["bandwidth"] = float(merged["delta_var"])
    for key in ("bandwidth", "merge_radius", "max_distance"):
        if key in out:
            out[key] = float(out[key])
    for key in _INGRAPH_INTS:
        if key in out:
            if isinstance(out[key], bool) or int(out[key]) != out[key]:
                raise DataError(f"clustering.{key} must be an integer, got {out[key]!r}")
            out[key] = int(out[key])
    for key in ("gaussian", "background_largest"):
        if key in out:
            out[key] = bool(out[key])
    return out


#: Keys of a clustering dict that the in-graph local decoder does not take (it has no blocks).
_GRAPH_IGNORED = ("method", "decoder", "seed", "device", "bandwidth", "delta_var", "ingraph", "description", "tune")


def _graph_ingraph_kwargs(merged: Mapping[str, Any]) -> dict[str, Any]:
    """Constructor kwargs of :class:`~spoco_zoo.cluster.graph.GraphInstances` (``decoder="graph"``)."""
    out: dict[str, Any] = {"decoder": "graph"}
    for key, value in merged.items():
        if key in _GRAPH_IGNORED or key in LOCAL_PARAMS or value is None:
            continue
        if key in ("foreground", "background"):
            out.update(_ingraph_mask_kwargs(key, value))
        elif key == "split":
            if value not in ("embedding", "shape"):
                raise DataError(f"clustering.split must be 'embedding' or 'shape', got {value!r}")
            out["split"] = str(value)
        elif key == "edge_threshold":
            out["edge_threshold"] = float(value)
        elif key in ("min_distance", "n_iter", "min_size"):
            if isinstance(value, bool) or int(value) != value:
                raise DataError(f"clustering.{key} must be an integer, got {value!r}")
            out[key] = int(value)
        elif key == "background_largest":
            out[key] = bool(value)
        else:
            raise DataError(
                f"clustering.{key}: not a parameter of the in-graph local decoder "
                f"(known: {['foreground', 'background', 'min_size', *GRAPH_PARAMS]})"
            )
    out.setdefault("foreground", "none")
    return out


def recommended_ingraph(
    clustering: ClusteringConfig,
    loss: PullMargin | Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
    foreground: str | None = None,
    patch_shape: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Constructor kwargs of the in-graph clustering compiled into an exported package.

    A model whose foreground channel masks the background (``foreground="mask"``) gets the local
    decoder (``decoder="graph"``, :class:`~spoco_zoo.cluster.graph.GraphInstances`) with the
    parameters of method ``"graph"`` of :func:`recommended_clustering` -- the tuned ones when that
    is the configured method, else its defaults with the configured ``min_size``. Other models get
    the global mean-shift (:class:`~spoco_zoo.cluster.ingraph.InGraphClustering`): the kernel width
    (:func:`kernel_width`), ``min_size``, ``background="largest"`` and a ``kernel`` from
    ``clustering.params``. ``options`` (``n_iter``, ``n_seeds``, ...) go on top; see
    :func:`ingraph_kwargs`.

    >>> recommended_ingraph(ClusteringConfig(min_size=8), {"delta_var": 0.4}, {"n_seeds": 256})
    {'bandwidth': 0.4, 'min_size': 8, 'background_largest': True, 'n_seeds': 256}
    >>> recommended_ingraph(ClusteringConfig(min_size=80), None, foreground="mask")["split"]
    'embedding'
    """
    if foreground == "mask":
        graph = recommended_clustering(clustering, loss, method="graph", patch_shape=patch_shape, foreground=foreground)
        return ingraph_kwargs({**graph, **dict(options or {})})
    base: dict[str, Any] = {
        "bandwidth": kernel_width(clustering, loss),
        "min_size": DEFAULT_MIN_SIZE if clustering.min_size is None else int(clustering.min_size),
        "background": "largest",
    }
    kernel = clustering.params.get("kernel")
    if kernel in ("flat", "gaussian"):
        base["kernel"] = kernel
    if foreground is not None:
        base["foreground"] = foreground
    base.update(dict(options or {}))
    return ingraph_kwargs(base)
