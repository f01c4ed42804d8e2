"""The clustering rules, in one place: methods, parameter names and defaults from the loss margins.

They are read through one object, :class:`~spoco_zoo.cluster.clustering_setting.ClusteringSetting`:
everyone who turns a training config, a checkpoint, a package's RDF or command-line overrides into a
clustering call parses them once, at that edge, into a setting and asks it for what its consumer
needs -- the trainer's validation and tuning, ``spoco-zoo segment``, the exporter (the RDF's
``config["spoco"]["clustering"]`` and the in-graph stage, :func:`ingraph_arguments`),
:mod:`spoco_zoo.postprocess`, the block-wise route and :func:`spoco_zoo.cluster.cluster_embeddings`.

Rules
-----
* Methods: :data:`METHODS` (``ClusteringConfig.method``, ``--method``), plus ``"ingraph"`` for
  Python consumers of a package (:data:`POSTPROCESS_METHODS`).
* Kernel width: one name, ``bandwidth``. It defaults to the training pull margin
  ``loss.delta_var`` (the SPOCO Gaussian kernel is 0.5 at that distance), and
  :data:`DEFAULT_DELTA_VAR` when no loss config is known. Each method receives it under its own
  parameter name (:data:`KERNEL_WIDTH_PARAM`: mean-shift ``bandwidth``, anchor clustering
  ``delta_var``; HDBSCAN has none), translated by ``ClusteringSetting.method_kwargs`` only.
  A clustering dict (an older package's RDF, ``cluster_embeddings`` keywords) may still spell it
  ``delta_var``: ``ClusteringSetting.from_dict`` accepts that and refuses two different widths.
* Generic parameters of every method: ``min_size`` and ``background`` (``"largest"``).
* Local clustering (:data:`LOCAL_PARAMS`, applied by
  :func:`spoco_zoo.cluster.instances.segment_embeddings`): ``block_shape`` defaults to the
  training patch shape -- the embedding separates the objects of one training patch, so that is
  the scale to cluster at -- ``overlap`` to :func:`default_overlap` of it, and every cluster is
  split into connected components (``split_components``). Method ``"graph"`` is local by construction
  and uses blocks only on the block-wise route: its blocks default to :func:`graph_block_shape`
  (twice the patch per axis), with the patch's overlap.

A new clustering option is added here and in the setting: a field of ``ClusteringSetting`` (when
more than one method reads it, its name in :data:`SETTING_KEYS`), its default in
``ClusteringSetting.from_config``, and its in-graph spelling in :func:`ingraph_arguments`.

Imports the standard library only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol, get_args

from spoco_zoo.cluster.checks import check_choice, check_integer
from spoco_zoo.errors import DataError

__all__ = [
    "ClusteringFields",
    "PullMargin",
    "TrainFields",
    "pull_margin",
    "rdf_clustering",
    "ClusteringMethod",
    "METHODS",
    "INGRAPH",
    "POSTPROCESS_METHODS",
    "DEFAULT_DELTA_VAR",
    "KERNEL_WIDTH_PARAM",
    "GENERIC_PARAMS",
    "LOCAL_PARAMS",
    "NOTE_KEYS",
    "SETTING_KEYS",
    "BACKGROUND_MODES",
    "SPLIT_MODES",
    "GRAPH_DECODER",
    "default_overlap",
    "graph_block_shape",
    "GRAPH_BLOCK_FACTOR",
    "min_distance_from_size",
    "relative_spacing",
    "spacing_to_power",
    "WINDOW_SAMPLE_SHARE",
    "WINDOW_SAMPLES_MIN",
    "DEFAULT_MIN_SIZE",
    "FOREGROUND_MODES",
    "min_size_from_objects",
    "EDGE_THRESHOLD_FRACTION",
    "GRAPH_PARAMS",
    "GRAPH_ITERATIONS",
    "graph_iterations",
    "default_method",
    "INGRAPH_PARAMS",
    "check_method",
    "uses_kernel_width",
    "INGRAPH_IGNORED",
    "GRAPH_IGNORED",
    "ingraph_arguments",
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
#: Blocks of method ``"graph"``'s block-wise route, as a multiple of the training patch along every axis
#: (:func:`graph_block_shape`). The decoder is local, so a block only bounds memory; a window of the
#: patch's own size overlaps its neighbours' 4.5x over (3D, 32x64x64 cores in 64x96x96 windows). Blocks
#: of twice the patch: the isotropic benchmark's 128x512x512 labels in 136 s instead of 282 s on 2 CPU
#: cores, SBD 0.874 against 0.874 (three models; docs/benchmarks.md, "Larger blocks for the local decoder").
GRAPH_BLOCK_FACTOR = 2
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
#: Rounds of label propagation of method ``"graph"`` per spatial dimensionality (each round scans every
#: axis both ways, up to 63 pixels per scan, and carries a label around about one corner of an object's
#: edge graph; :func:`graph_iterations`). The edge graph of a sparsely trained 3D model is porous: on a
#: 64x256x256 volume at z step 3 (960 objects, a 10 % model) 4 rounds left 1969 raw components
#: unjoined and 177 spurious objects over ``min_size`` (SBD 0.762), 12 rounds 18 and 4 (SBD 0.815, as
#: converged), at three times the propagation's time. 2D images need few rounds (1024x1024, 640
#: objects: 4 rounds left 29 of 128 879, 6 rounds 5; the quickstart model's SBD 0.899 with 4, 0.895
#: with 12, decoding a 2048x2048 image 1.7x slower), so they keep 4. docs/benchmarks.md, "Label
#: propagation that converges in 3D".
GRAPH_ITERATIONS: dict[int, int] = {2: 4, 3: 12}
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


class ClusteringFields(Protocol):
    """What the rules read of a clustering config: the fields of
    :class:`spoco_zoo.cluster.clustering_config.ClusteringConfig` (the pydantic model, which lives in
    its own module so that this one imports the standard library only)."""

    @property
    def method(self) -> str | None: ...
    @property
    def bandwidth(self) -> float | None: ...
    @property
    def min_size(self) -> int | None: ...
    @property
    def block_shape(self) -> list[int] | None: ...
    @property
    def overlap(self) -> list[int] | None: ...
    @property
    def split_components(self) -> bool: ...
    @property
    def params(self) -> dict[str, Any]: ...


class PullMargin(Protocol):
    """Anything with the loss's pull margin (:class:`spoco_zoo.config.LossConfig`): the default kernel width."""

    @property
    def delta_var(self) -> float: ...


class TrainFields(Protocol):
    """What ``ClusteringSetting.from_train_config`` reads of a :class:`spoco_zoo.config.TrainConfig`."""

    @property
    def clustering(self) -> ClusteringFields: ...
    @property
    def loss(self) -> PullMargin: ...
    @property
    def data(self) -> Any: ...
    def foreground_mode(self) -> str | None: ...


def pull_margin(loss: PullMargin | Mapping[str, Any] | None) -> float:
    """The loss's pull margin ``delta_var`` (the default kernel width), else :data:`DEFAULT_DELTA_VAR`.

    >>> pull_margin({"delta_var": 0.3}), pull_margin(None)
    (0.3, 0.5)
    """
    if loss is None:
        return DEFAULT_DELTA_VAR
    value = loss.get("delta_var") if isinstance(loss, Mapping) else loss.delta_var
    return DEFAULT_DELTA_VAR if value is None else float(value)


def rdf_clustering(rdf: Any) -> tuple[Mapping[str, Any], float | None]:
    """Where a package keeps its clustering: ``(the clustering dict, the loss's delta_var or None)`` of
    the RDF's ``config["spoco"]["clustering"]`` or of any dict containing it (``config["spoco"]``, the
    RDF ``config``, the whole RDF); a dict with a ``method`` key is the clustering dict itself, a
    pydantic config (``model_dump``) is read as its dict.

    >>> rdf_clustering({"config": {"spoco": {"clustering": {"method": "hdbscan"}, "loss": {"delta_var": 0.3}}}})
    ({'method': 'hdbscan'}, 0.3)

    Raises
    ------
    DataError
        Not a dict.
    """
    if hasattr(rdf, "model_dump"):  # a pydantic ClusteringConfig / TrainConfig
        rdf = rdf.model_dump(mode="json")
    if not isinstance(rdf, Mapping):
        raise DataError(f"config: expected a dict, got {type(rdf).__name__}")
    margin: float | None = None
    node: Mapping[str, Any] = rdf
    if "method" not in node and isinstance(node.get("config"), Mapping):
        node = node["config"]  # the whole RDF
    if "method" not in node and isinstance(node.get("spoco"), Mapping):
        node = node["spoco"]  # RDF config
    if "method" not in node and isinstance(node.get("clustering"), Mapping):
        loss = node.get("loss")
        if isinstance(loss, Mapping) and loss.get("delta_var") is not None:
            margin = float(loss["delta_var"])
        node = node["clustering"]
    return node, margin


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


def graph_iterations(spatial_dims: int) -> int:
    """Rounds of label propagation of method ``"graph"`` for images with ``spatial_dims`` axes
    (:data:`GRAPH_ITERATIONS`; any other count of axes gets the volumes' rounds).

    >>> graph_iterations(2), graph_iterations(3)
    (4, 12)
    """
    return GRAPH_ITERATIONS.get(int(spatial_dims), GRAPH_ITERATIONS[3])


def relative_spacing(voxel_size: Sequence[float] | None) -> list[float] | None:
    """Method ``"graph"``'s ``spacing``: the voxel size over its geometric mean, ``None`` when every axis has
    the same (or none is known), so isotropic and 2D settings carry no spacing at all.

    Over the geometric mean, not the finest axis: the per-axis thresholds ``edge_threshold x spacing``
    keep the scale of ``edge_threshold`` (their product is unchanged), so its default and the tuning grid
    around it fit anisotropic volumes too (a z step 3x: tuned 0.09-0.12 per xy step and 0.27-0.36 per z
    step on the benchmark's volumes, around the default 0.15).

    >>> relative_spacing([3.0, 1.0, 1.0]), relative_spacing([0.3, 0.3, 0.3]), relative_spacing(None)
    ([2.080084, 0.693361, 0.693361], None, None)
    """
    if not voxel_size:
        return None
    values = [float(v) for v in voxel_size]
    if min(values) <= 0 or max(values) == min(values):
        return None
    mean = math.prod(values) ** (1.0 / len(values))
    return [round(v / mean, 6) for v in values]


def spacing_to_power(spacing: Sequence[float], power: float) -> list[float]:
    """A relative ``spacing`` (:func:`relative_spacing`, geometric mean 1) raised to ``power``: 1 keeps it,
    0 makes every axis's threshold the same, values between let the threshold along the coarse axis grow
    less than its step (the network's embedding drifts less per z step than the step's physical size says;
    the end-of-training tuning chooses the power, :data:`spoco_zoo.train.tuning.SPACING_POWERS`). The
    geometric mean stays 1.

    >>> spacing_to_power([2.080084, 0.693361, 0.693361], 0.5)
    [1.44225, 0.832683, 0.832683]
    """
    return [round(float(s) ** float(power), 6) for s in spacing]


def default_overlap(block_shape: Sequence[int]) -> list[int]:
    """Overlap between neighbouring blocks: a quarter of the block, at least :data:`MIN_OVERLAP` pixels.

    >>> default_overlap([256, 256]), default_overlap([32, 128, 128])
    ([64, 64], [16, 32, 32])
    """
    return [max(MIN_OVERLAP, int(size) // 4) for size in block_shape]


def graph_block_shape(patch_shape: Sequence[int]) -> list[int]:
    """Default blocks of method ``"graph"`` on the block-wise route: :data:`GRAPH_BLOCK_FACTOR` times the
    training patch along every axis (the overlap stays :func:`default_overlap` of the patch).

    >>> graph_block_shape([32, 64, 64]), default_overlap([32, 64, 64])
    ([64, 128, 128], [16, 16, 16])
    """
    return [GRAPH_BLOCK_FACTOR * int(size) for size in patch_shape]


#: Keys of a clustering dict that are notes, not parameters (``tune`` is a training setting).
NOTE_KEYS = ("description", "tune")
#: The fields of :class:`~spoco_zoo.cluster.clustering_setting.ClusteringSetting` a clustering dict
#: spells as they are.
SETTING_KEYS = (
    "bandwidth",
    "min_size",
    "background",
    *LOCAL_PARAMS,
    "foreground",
    *GRAPH_PARAMS,
)
#: Values of the generic parameter ``background``.
BACKGROUND_MODES = ("largest", "none")
#: Values of method ``"graph"``'s ``split``.
SPLIT_MODES = ("embedding", "shape")
#: Value of the in-graph argument ``decoder`` that selects :class:`~spoco_zoo.cluster.graph.GraphInstances`.
GRAPH_DECODER = "graph"


#: Keys of a clustering dict that the in-graph mean-shift does not take (its own seeds; no blocks).
INGRAPH_IGNORED = ("method", "seed", "device", "ingraph", "min_distance", *LOCAL_PARAMS)
#: Keys of a clustering dict that the in-graph local decoder does not take (no kernel, no blocks).
GRAPH_IGNORED = ("method", "decoder", "seed", "device", "bandwidth", "ingraph", *LOCAL_PARAMS)
#: Constructor parameters of :class:`~spoco_zoo.cluster.graph.GraphInstances`.
_GRAPH_ARGS = ("min_size", "background_largest", "foreground", "spacing", "seed_size", *GRAPH_PARAMS)
_INGRAPH_INTS = (
    "n_seeds",
    "n_samples",
    "n_iter",
    "max_instances",
    "min_size",
    "min_seeds",
    "n_jumps",
    "min_distance",
    "seed_size",
)
_INGRAPH_FLOATS = ("bandwidth", "merge_radius", "max_distance", "edge_threshold")


def ingraph_arguments(spelled: Mapping[str, Any]) -> dict[str, Any]:
    """The in-graph stage's constructor arguments spelled as a clustering dict: ``kernel`` and
    ``background`` in their in-graph spelling (``gaussian``, ``background_largest``), keys the stage
    does not take dropped (:data:`INGRAPH_IGNORED`) or refused, values given their types.
    ``decoder="graph"``: :class:`~spoco_zoo.cluster.graph.GraphInstances`, else
    :class:`~spoco_zoo.cluster.ingraph.InGraphClustering`. Asked by
    :meth:`spoco_zoo.cluster.clustering_setting.ClusteringSetting.ingraph_kwargs`.

    >>> ingraph_arguments({"method": "mean_shift", "bandwidth": 0.4, "kernel": "gaussian", "seed": 0})
    {'bandwidth': 0.4, 'gaussian': True}
    >>> ingraph_arguments({"decoder": "graph", "background": "none", "n_iter": 6.0})
    {'decoder': 'graph', 'background_largest': False, 'n_iter': 6, 'foreground': 'none'}
    """
    graph = spelled.get("decoder") == GRAPH_DECODER
    ignored, known = (GRAPH_IGNORED, _GRAPH_ARGS) if graph else (INGRAPH_IGNORED, INGRAPH_PARAMS)
    out: dict[str, Any] = {"decoder": GRAPH_DECODER} if graph else {}
    for key, value in spelled.items():
        if key in ignored or value is None:
            continue
        if key == "kernel" and not graph:
            if value not in ("flat", "gaussian"):
                raise DataError(f"clustering.kernel must be 'flat' or 'gaussian', got {value!r}")
            out["gaussian"] = value == "gaussian"
        elif key == "background":
            out["background_largest"] = check_choice("background", value, BACKGROUND_MODES) == "largest"
        elif key in known:
            out[key] = value
        else:
            stage = "in-graph local decoder" if graph else "in-graph clustering"
            raise DataError(f"clustering.{key}: not a parameter of the {stage} (known: {list(known)})")
    for key in out:
        if key in _INGRAPH_INTS:
            out[key] = check_integer(f"clustering.{key}", out[key])
        elif key in _INGRAPH_FLOATS:
            out[key] = float(out[key])
        elif key in ("gaussian", "background_largest"):
            out[key] = bool(out[key])
        elif key == "spacing":
            out[key] = [float(v) for v in out[key]]
    if "foreground" in out:
        out["foreground"] = check_choice("clustering.foreground", out["foreground"], ("none", *FOREGROUND_MODES))
    elif graph:
        out["foreground"] = "none"
    return out
