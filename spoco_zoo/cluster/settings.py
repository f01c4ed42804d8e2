"""The clustering rules and the one object that carries a clustering: :class:`ClusteringSetting`.

Everyone who turns a training config, a checkpoint, a package's RDF or command-line overrides into
a clustering call parses them once, at that edge, into a :class:`ClusteringSetting`, and asks it for
what its consumer needs: the trainer's validation and tuning, ``spoco-zoo segment``, the exporter
(the RDF's ``config["spoco"]["clustering"]`` and the in-graph stage), :mod:`spoco_zoo.postprocess`,
the block-wise route and the dispatcher :func:`spoco_zoo.cluster.cluster_embeddings`.

Rules
-----
* Methods: :data:`METHODS` (``ClusteringConfig.method``, ``--method``), plus ``"ingraph"`` for
  Python consumers of a package (:data:`POSTPROCESS_METHODS`).
* Kernel width: one name, ``bandwidth``. It defaults to the training pull margin
  ``loss.delta_var`` (the SPOCO Gaussian kernel is 0.5 at that distance), and
  :data:`DEFAULT_DELTA_VAR` when no loss config is known. Each method receives it under its own
  parameter name (:data:`KERNEL_WIDTH_PARAM`: mean-shift ``bandwidth``, anchor clustering
  ``delta_var``; HDBSCAN has none), translated by :meth:`ClusteringSetting.method_kwargs` only.
  A clustering dict (an older package's RDF, ``cluster_embeddings`` keywords) may still spell it
  ``delta_var``: :meth:`ClusteringSetting.from_dict` accepts that and refuses two different widths.
* Generic parameters of every method: ``min_size`` and ``background`` (``"largest"``).
* Local clustering (:data:`LOCAL_PARAMS`, applied by
  :func:`spoco_zoo.cluster.instances.segment_embeddings`): ``block_shape`` defaults to the
  training patch shape -- the embedding separates the objects of one training patch, so that is
  the scale to cluster at -- ``overlap`` to :func:`default_overlap` of it, and every cluster is
  split into connected components (``split_components``).

A new clustering option is added here: a field of :class:`ClusteringSetting` (when more than one
method reads it), its default in :meth:`ClusteringSetting.from_config`, and its in-graph spelling
in :meth:`ClusteringSetting.ingraph_kwargs`.

Imports the standard library only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol, get_args

from spoco_zoo.cluster.checks import check_integer
from spoco_zoo.errors import DataError

__all__ = [
    "ClusteringSetting",
    "ClusteringFields",
    "PullMargin",
    "TrainFields",
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
    "min_distance_from_size",
    "WINDOW_SAMPLE_SHARE",
    "WINDOW_SAMPLES_MIN",
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


def default_overlap(block_shape: Sequence[int]) -> list[int]:
    """Overlap between neighbouring blocks: a quarter of the block, at least :data:`MIN_OVERLAP` pixels.

    >>> default_overlap([256, 256]), default_overlap([32, 128, 128])
    ([64, 64], [16, 32, 32])
    """
    return [max(MIN_OVERLAP, int(size) // 4) for size in block_shape]


#: Keys of a clustering dict that are notes, not parameters (``tune`` is a training setting).
NOTE_KEYS = ("description", "tune")
#: The fields of :class:`ClusteringSetting` a clustering dict spells as they are.
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


class TrainFields(Protocol):
    """What :meth:`ClusteringSetting.from_train_config` reads of a :class:`spoco_zoo.config.TrainConfig`."""

    @property
    def clustering(self) -> ClusteringFields: ...
    @property
    def loss(self) -> PullMargin: ...
    @property
    def data(self) -> Any: ...
    def foreground_mode(self) -> str | None: ...


def _pull_margin(loss: PullMargin | Mapping[str, Any] | None) -> float:
    """The loss's ``delta_var`` (the default kernel width), else :data:`DEFAULT_DELTA_VAR`."""
    if loss is None:
        return DEFAULT_DELTA_VAR
    value = loss.get("delta_var") if isinstance(loss, Mapping) else loss.delta_var
    return DEFAULT_DELTA_VAR if value is None else float(value)


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> str | None:
    if value is not None and value not in allowed:
        raise DataError(f"{name}: must be one of {allowed} or None, got {value!r}")
    return None if value is None else str(value)


def _positive(name: str, value: Any) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, (bool, str)) or not number > 0:
        raise DataError(f"{name}: must be positive, got {value!r}")
    return number


def _extents(name: str, value: Any) -> tuple[int, ...] | None:
    if value is None:
        return None
    values = [value] if isinstance(value, (int, float)) else list(value)
    return tuple(check_integer(name, v, 0) for v in values)


@dataclass(frozen=True)
class ClusteringSetting:
    """One clustering: a method and its parameters, parsed once at an edge, checked, with one name per value.

    Build one with a constructor per edge -- :meth:`from_config` / :meth:`from_train_config` (a
    training config), :meth:`from_checkpoint`, :meth:`from_rdf` (a package, with the command line's
    overrides) and :meth:`from_dict` (a clustering dict: the RDF's ``config["spoco"]["clustering"]``,
    :func:`~spoco_zoo.cluster.cluster_embeddings` keywords) -- and ask it for what its consumer
    needs: :meth:`method_kwargs`, :meth:`window_kwargs`, :meth:`ingraph_kwargs`, :meth:`as_dict`.
    ``None`` means "not set": the method's (or the pipeline's) default applies.

    Attributes
    ----------
    method:
        One of :data:`POSTPROCESS_METHODS`.
    bandwidth:
        The kernel width (mean-shift, anchor and in-graph clustering; ignored by the others).
    min_size, background:
        The generic parameters (:data:`GENERIC_PARAMS`).
    block_shape, overlap, split_components:
        Local clustering (:data:`LOCAL_PARAMS`).
    foreground:
        The use of the network's foreground channel (:data:`FOREGROUND_MODES`; ``None``: it has none).
    split, edge_threshold, min_distance, n_iter:
        Method ``"graph"``'s parameters (:data:`GRAPH_PARAMS`; ``min_distance`` also method
        ``"watershed"``'s, ``n_iter`` also the in-graph mean-shift's).
    params:
        The method's other keyword arguments (``kernel``, ``seed``, ``n_samples``, ...).
    ingraph:
        The in-graph stage's constructor arguments as compiled into a package (its RDF's
        ``clustering.ingraph``), or ``None``.

    Examples
    --------
    >>> setting = ClusteringSetting.from_dict({"method": "consistency", "delta_var": 0.4, "threshold": 0.6})
    >>> setting.bandwidth, setting.method_kwargs()
    (0.4, {'threshold': 0.6, 'delta_var': 0.4})
    >>> ClusteringSetting.from_dict(setting.as_dict()) == setting
    True
    """

    method: str = "mean_shift"
    bandwidth: float | None = None
    min_size: int | None = None
    background: str | None = None
    block_shape: tuple[int, ...] | None = None
    overlap: tuple[int, ...] | None = None
    split_components: bool | None = None
    foreground: str | None = None
    split: str | None = None
    edge_threshold: float | None = None
    min_distance: int | None = None
    n_iter: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    ingraph: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        """Check every value once and give it its type (the object is frozen: ``object.__setattr__``)."""
        checked: dict[str, Any] = {
            "method": check_method(self.method, POSTPROCESS_METHODS),
            "bandwidth": _positive("bandwidth", self.bandwidth),
            "min_size": None if self.min_size is None else check_integer("min_size", self.min_size, 0),
            "background": _choice("background", self.background, BACKGROUND_MODES),
            "block_shape": _extents("block_shape", self.block_shape),
            "overlap": _extents("overlap", self.overlap),
            "split_components": None if self.split_components is None else bool(self.split_components),
            "foreground": _choice("foreground", self.foreground, FOREGROUND_MODES),
            "split": _choice("split", self.split, SPLIT_MODES),
            "edge_threshold": _positive("edge_threshold", self.edge_threshold),
            "min_distance": None if self.min_distance is None else check_integer("min_distance", self.min_distance, 1),
            "n_iter": None if self.n_iter is None else check_integer("n_iter", self.n_iter, 0),
        }
        if not isinstance(self.params, Mapping):
            raise DataError(f"params: expected a dict, got {type(self.params).__name__}")
        named = sorted(set(self.params) & {*SETTING_KEYS, "delta_var", "method"})
        if named:
            raise DataError(f"params: {', '.join(named)} are fields of the setting, not further parameters")
        if self.ingraph is not None and not isinstance(self.ingraph, Mapping):
            raise DataError(f"ingraph: expected a dict, got {type(self.ingraph).__name__}")
        checked["params"] = dict(self.params)
        checked["ingraph"] = None if self.ingraph is None else dict(self.ingraph)
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    # ------------------------------------------------------------------ edges
    @classmethod
    def from_dict(cls, clustering: Mapping[str, Any]) -> ClusteringSetting:
        """A clustering dict: the RDF's ``config["spoco"]["clustering"]`` or ``cluster_embeddings`` keywords.

        ``params`` (a dict) is merged in first (top-level keys win), ``description`` and ``tune``
        are dropped, a missing ``method`` is ``"mean_shift"``, and the kernel width may be spelled
        ``bandwidth`` or ``delta_var`` (the name older packages wrote). Other keys are the method's
        keyword arguments; ``None`` values are "not set".

        Raises
        ------
        DataError
            Not a dict, ``bandwidth`` and ``delta_var`` with different values, or a bad value.

        Examples
        --------
        >>> ClusteringSetting.from_dict({"method": "mean_shift", "delta_var": 0.3, "params": {"kernel": "flat"}})
        ... # doctest: +ELLIPSIS
        ClusteringSetting(method='mean_shift', bandwidth=0.3, ..., params={'kernel': 'flat'}, ingraph=None)
        >>> ClusteringSetting.from_dict({"bandwidth": 0.3, "delta_var": 0.4})
        Traceback (most recent call last):
        ...
        spoco_zoo.errors.DataError: bandwidth/delta_var: conflicting kernel widths {'bandwidth': 0.3, 'delta_var': 0.4}
        """
        if not isinstance(clustering, Mapping):
            raise DataError(f"clustering: expected a dict, got {type(clustering).__name__}")
        nested = clustering.get("params") or {}
        if not isinstance(nested, Mapping):
            raise DataError(f"clustering.params: expected a dict, got {type(nested).__name__}")
        merged: dict[str, Any] = dict(nested)
        merged.update((k, v) for k, v in clustering.items() if k != "params")
        for key in NOTE_KEYS:
            merged.pop(key, None)
        widths = {k: merged.pop(k) for k in ("bandwidth", "delta_var") if k in merged}
        given = {k: float(v) for k, v in widths.items() if v is not None}
        if len(set(given.values())) > 1:
            raise DataError(f"bandwidth/delta_var: conflicting kernel widths {given}")
        fields = {k: merged.pop(k) for k in SETTING_KEYS if k in merged}
        return cls(
            method=merged.pop("method", None) or "mean_shift",
            bandwidth=next(iter(given.values()), None),
            ingraph=merged.pop("ingraph", None),
            params={k: v for k, v in merged.items() if v is not None},
            **fields,
        )

    @classmethod
    def from_config(
        cls,
        clustering: ClusteringFields,
        loss: PullMargin | Mapping[str, Any] | None = None,
        *,
        method: str | None = None,
        patch_shape: Sequence[int] | None = None,
        foreground: str | None = None,
    ) -> ClusteringSetting:
        """The recommended clustering of a training config.

        Parameters
        ----------
        clustering, loss:
            ``TrainConfig.clustering`` and ``TrainConfig.loss`` (the loss only provides ``delta_var``).
        method:
            Another method than ``clustering.method``: its kernel width is then ``loss.delta_var`` and
            ``clustering.bandwidth`` / ``clustering.params`` (meant for the configured method) are dropped;
            ``min_size``, ``background`` and the local-clustering settings are kept. :data:`INGRAPH`:
            the in-graph stage an exported package compiles in -- method ``"graph"``'s setting for a
            model whose foreground channel masks the background, else the global mean-shift with the
            configured kernel width (whatever the configured method), ``min_size`` and ``kernel``.
        patch_shape:
            The training patch shape (``TrainConfig.data.patch_shape``): the block size of local
            clustering unless ``clustering.block_shape`` is set; with neither, the image is clustered
            in one piece.
        foreground:
            What the network's foreground channel is for (:data:`FOREGROUND_MODES`; ``None``: the
            network has none): ``TrainConfig.foreground_mode()``.

        Examples
        --------
        >>> from spoco_zoo.config import ClusteringConfig, LossConfig
        >>> flat = ClusteringConfig(params={"kernel": "flat"})
        >>> ClusteringSetting.from_config(flat, LossConfig(delta_var=0.4)).as_dict()
        ... # doctest: +NORMALIZE_WHITESPACE
        {'method': 'mean_shift', 'bandwidth': 0.4, 'min_size': 16, 'background': 'largest',
         'block_shape': None, 'overlap': None, 'split_components': True, 'kernel': 'flat'}
        >>> ClusteringSetting.from_config(ClusteringConfig(), None, patch_shape=[256, 256]).overlap
        (64, 64)
        >>> ClusteringSetting.from_config(ClusteringConfig(bandwidth=0.3), None, method="consistency").bandwidth
        0.5
        >>> ClusteringSetting.from_config(ClusteringConfig(bandwidth=0.3), None, method="ingraph").ingraph_kwargs()
        {'bandwidth': 0.3, 'min_size': 16, 'background_largest': True}
        """
        min_size = DEFAULT_MIN_SIZE if clustering.min_size is None else int(clustering.min_size)
        if method == INGRAPH:
            if foreground == "mask":
                return cls.from_config(clustering, loss, method="graph", patch_shape=patch_shape, foreground=foreground)
            width = float(clustering.bandwidth) if clustering.bandwidth else _pull_margin(loss)
            kernel = clustering.params.get("kernel")
            params = {"kernel": kernel} if kernel in ("flat", "gaussian") else {}
            return cls(INGRAPH, width, min_size, "largest", foreground=foreground, params=params)
        configured = clustering.method or default_method(foreground)
        chosen = check_method(method or configured)
        same = chosen == configured
        out: dict[str, Any] = {"method": chosen}
        if uses_kernel_width(chosen):
            given = clustering.bandwidth if same else None
            out["bandwidth"] = float(given) if given else _pull_margin(loss)
        out["min_size"] = min_size
        out["background"] = "largest"
        block = clustering.block_shape or (list(patch_shape) if patch_shape is not None else None)
        out["block_shape"] = block
        if block is None:
            out["overlap"] = None
        else:
            out["overlap"] = list(clustering.overlap) if clustering.overlap is not None else default_overlap(block)
        out["split_components"] = bool(clustering.split_components)
        dims = len(patch_shape) if patch_shape is not None else 2
        if chosen in ("watershed", "graph"):  # object centres at least the radius of a min_size disk (ball) apart
            out["min_distance"] = min_distance_from_size(min_size, dims)
        if chosen == "graph":  # local by construction: components are its output (blocks: block-wise route only)
            out["split_components"] = False
            out["split"] = "embedding"
            out["edge_threshold"] = round(EDGE_THRESHOLD_FRACTION * _pull_margin(loss), 6)
            out["n_iter"] = GRAPH_ITERATIONS
        out["foreground"] = foreground
        if same:
            out.update(clustering.params)
        return cls.from_dict(out)

    @classmethod
    def from_train_config(cls, config: TrainFields, method: str | None = None) -> ClusteringSetting:
        """:meth:`from_config` of a :class:`~spoco_zoo.config.TrainConfig`: its loss's kernel width, its
        patch as block and its foreground channel's use.

        >>> from spoco_zoo.config import TrainConfig
        >>> ClusteringSetting.from_train_config(TrainConfig()).foreground
        'mask'
        """
        return cls.from_config(
            config.clustering,
            config.loss,
            method=method,
            patch_shape=config.data.patch_shape,
            foreground=config.foreground_mode(),
        )

    @classmethod
    def from_checkpoint(cls, state: Mapping[str, Any], method: str | None = None) -> ClusteringSetting:
        """:meth:`from_train_config` of a checkpoint's stored config (``state["config"]``, as
        :func:`spoco_zoo.train.checkpoint.load_checkpoint` returns it): the clustering tuned at the
        end of training."""
        return cls.from_train_config(state["config"], method)

    @classmethod
    def from_rdf(
        cls,
        rdf: Any,
        *,
        method: str | None = None,
        params: Mapping[str, Any] | None = None,
        min_size: int | None = None,
    ) -> ClusteringSetting:
        """A package's clustering: its RDF's ``config["spoco"]["clustering"]``, with overrides.

        Parameters
        ----------
        rdf:
            The clustering dict (with a ``method`` key) or any dict containing it (``config["spoco"]``,
            the RDF ``config``, the whole RDF; then a missing kernel width is ``spoco.loss.delta_var``);
            a pydantic config (``model_dump``) is read as its dict.
        method, params, min_size:
            ``spoco-zoo segment``'s ``--method``, ``--param`` and ``--min-size``: another method keeps
            only ``min_size``, ``background`` and ``foreground`` (:meth:`with_method`); the
            parameters go on top (:meth:`updated`).

        Raises
        ------
        DataError
            No clustering found, or a bad value (:meth:`from_dict`).

        Examples
        --------
        >>> rdf = {"config": {"spoco": {"clustering": {"method": "consistency"}, "loss": {"delta_var": 0.3}}}}
        >>> ClusteringSetting.from_rdf(rdf).method_kwargs()
        {'delta_var': 0.3}
        >>> ClusteringSetting.from_rdf(rdf, method="hdbscan", params={"min_cluster_size": 8}).method_kwargs()
        {'min_cluster_size': 8}
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
        if "method" not in node and method is not None:
            node = {**node, "method": method}
        if "method" not in node:
            raise DataError(
                "config: no clustering method found (pass one); expected the RDF config['spoco']['clustering'] dict "
                f"(with a 'method' key) or a config containing it, got keys {sorted(node)}"
            )
        setting = cls.from_dict(node)
        if method is not None and method != setting.method:
            setting = setting.with_method(method)
        setting = setting.updated(params or {}, min_size)
        if setting.bandwidth is None and uses_kernel_width(setting.method):
            setting = replace(setting, bandwidth=DEFAULT_DELTA_VAR if margin is None else margin)
        return setting

    # ------------------------------------------------------------- changes
    def with_method(self, method: str) -> ClusteringSetting:
        """Another method, keeping only the parameters every method shares (``min_size``,
        ``background``) and ``foreground``: the others were meant for this setting's method.

        >>> ClusteringSetting("mean_shift", 0.4, 9, n_iter=3).with_method("hdbscan")
        ... # doctest: +ELLIPSIS
        ClusteringSetting(method='hdbscan', bandwidth=None, min_size=9, background=None, ...)
        """
        return ClusteringSetting(method, min_size=self.min_size, background=self.background, foreground=self.foreground)

    def updated(self, params: Mapping[str, Any], min_size: int | None = None) -> ClusteringSetting:
        """This setting with ``params`` (a clustering dict's keys, as ``--param key=value`` gives them)
        and ``min_size`` (unless ``None``) on top, parsed as :meth:`from_dict` parses.

        >>> ClusteringSetting("mean_shift", 0.4).updated({"bandwidth": 0.3, "kernel": "gaussian"}, 7).method_kwargs()
        {'min_size': 7, 'kernel': 'gaussian', 'bandwidth': 0.3}
        """
        if not params and min_size is None:
            return self
        merged = self.as_dict()
        if "bandwidth" in params or "delta_var" in params:  # a new kernel width replaces the old one
            merged.pop("bandwidth", None)
        merged.update(params)
        if min_size is not None:
            merged["min_size"] = int(min_size)
        return ClusteringSetting.from_dict(merged)

    # ------------------------------------------------------------- consumers
    @property
    def local(self) -> bool:
        """Whether the method runs in local clustering (blocks, or clusters split into components);
        never for ``"graph"``, local by construction."""
        return self.method != "graph" and (self.block_shape is not None or bool(self.split_components))

    def method_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of the method's function: the method's own parameters, the kernel width
        under the method's own name (:data:`KERNEL_WIDTH_PARAM`; none for HDBSCAN), ``None`` dropped.
        Local clustering and ``foreground`` are not the function's (see :attr:`local`).

        >>> ClusteringSetting("consistency", 0.4, min_size=4).method_kwargs()
        {'min_size': 4, 'delta_var': 0.4}
        >>> ClusteringSetting("hdbscan", 0.4, min_size=4).method_kwargs()
        {'min_size': 4}
        """
        own = {
            "min_size": self.min_size,
            "background": self.background,
            "split": self.split,
            "edge_threshold": self.edge_threshold,
            "min_distance": self.min_distance,
            "n_iter": self.n_iter,
            **self.params,
        }
        out = {k: v for k, v in own.items() if v is not None}
        width = KERNEL_WIDTH_PARAM.get(self.method)
        if width is not None and self.bandwidth is not None:
            out[width] = self.bandwidth
        return out

    def window_kwargs(self, window_pixels: int | None = None) -> dict[str, Any]:
        """:meth:`method_kwargs` for one window of local clustering (at most ``window_pixels`` pixels;
        ``None``: the whole image): every cluster kept (``background="none"``, ``min_size=0``: the
        pipeline decides after stitching) and, for mean-shift of a block grid, a sample of
        :data:`WINDOW_SAMPLE_SHARE` of the window's pixels, at least :data:`WINDOW_SAMPLES_MIN`,
        unless ``n_samples`` is given.

        >>> ClusteringSetting("mean_shift", 0.3).window_kwargs(384 * 384)
        {'bandwidth': 0.3, 'n_samples': 4096, 'background': 'none', 'min_size': 0}
        >>> [ClusteringSetting().window_kwargs(pixels)["n_samples"] for pixels in (256 * 256, 64 * 96 * 96)]
        [4000, 16384]
        >>> ClusteringSetting(params={"n_samples": 9000}).window_kwargs(10**6)["n_samples"]
        9000
        >>> ClusteringSetting("hdbscan").window_kwargs(10**6)
        {'background': 'none', 'min_size': 0}
        """
        out = self.method_kwargs()
        if window_pixels is not None and self.method == "mean_shift" and out.get("n_samples") is None:
            out["n_samples"] = max(WINDOW_SAMPLES_MIN, round(WINDOW_SAMPLE_SHARE * int(window_pixels)))
        out.update(background="none", min_size=0)
        return out

    def as_dict(self) -> dict[str, Any]:
        """The clustering dict: the RDF's ``config["spoco"]["clustering"]`` (JSON types, keys as
        spoco-zoo has always written them) and, as keyword arguments, what
        :func:`spoco_zoo.cluster.cluster_embeddings` takes. ``"bandwidth"`` for methods with a kernel
        width; ``"ingraph"`` when the in-graph record is set.

        >>> ClusteringSetting("hdbscan", 0.4, min_size=4, params={"min_samples": 3}).as_dict()
        ... # doctest: +NORMALIZE_WHITESPACE
        {'method': 'hdbscan', 'min_size': 4, 'background': None, 'block_shape': None, 'overlap': None,
         'split_components': None, 'min_samples': 3}
        """
        out: dict[str, Any] = {"method": self.method}
        if uses_kernel_width(self.method):
            out["bandwidth"] = self.bandwidth
        out["min_size"] = self.min_size
        out["background"] = self.background
        out["block_shape"] = None if self.block_shape is None else list(self.block_shape)
        out["overlap"] = None if self.overlap is None else list(self.overlap)
        out["split_components"] = self.split_components
        for key in ("min_distance", "split", "edge_threshold", "n_iter", "foreground"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        out.update(self.params)
        if self.ingraph is not None:
            out["ingraph"] = dict(self.ingraph)
        return out

    def ingraph_kwargs(self, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Constructor kwargs of the in-graph stage for this setting, ``options`` (``n_iter``,
        ``n_seeds``, ...) on top: :class:`~spoco_zoo.cluster.graph.GraphInstances` (with
        ``decoder="graph"``) for method ``"graph"``, else
        :class:`~spoco_zoo.cluster.ingraph.InGraphClustering`; for method ``"ingraph"`` with a package's
        record (:attr:`ingraph`), exactly the recorded arguments.

        Raises
        ------
        DataError
            A parameter the stage does not take, or a value of the wrong kind.

        Examples
        --------
        >>> ClusteringSetting.from_dict({"bandwidth": 0.4, "kernel": "gaussian", "min_size": 16}).ingraph_kwargs()
        {'bandwidth': 0.4, 'min_size': 16, 'gaussian': True}
        >>> ClusteringSetting("graph", min_size=8, edge_threshold=0.2).ingraph_kwargs({"n_iter": 6})
        {'decoder': 'graph', 'min_size': 8, 'edge_threshold': 0.2, 'n_iter': 6, 'foreground': 'none'}
        """
        if self.method == INGRAPH and self.ingraph is not None:
            spelled = dict(self.ingraph)  # the exporter's record of the arguments compiled into the model
            if spelled.get("decoder") != GRAPH_DECODER and spelled.get("bandwidth") is None:
                spelled["bandwidth"] = self.bandwidth
        else:
            spelled = self.as_dict()
            if self.method == "graph":
                spelled["decoder"] = GRAPH_DECODER
        spelled.update(options or {})
        return _constructor_kwargs(spelled)


#: Keys of a clustering dict that the in-graph mean-shift does not take (its own seeds; no blocks).
_INGRAPH_IGNORED = ("method", "seed", "device", "ingraph", "min_distance", *LOCAL_PARAMS)
#: Keys of a clustering dict that the in-graph local decoder does not take (no kernel, no blocks).
_GRAPH_IGNORED = ("method", "decoder", "seed", "device", "bandwidth", "ingraph", *LOCAL_PARAMS)
#: Constructor parameters of :class:`~spoco_zoo.cluster.graph.GraphInstances`.
_GRAPH_ARGS = ("min_size", "background_largest", "foreground", *GRAPH_PARAMS)
_INGRAPH_INTS = ("n_seeds", "n_samples", "n_iter", "max_instances", "min_size", "min_seeds", "n_jumps", "min_distance")
_INGRAPH_FLOATS = ("bandwidth", "merge_radius", "max_distance", "edge_threshold")


def _constructor_kwargs(spelled: Mapping[str, Any]) -> dict[str, Any]:
    """The in-graph constructor arguments of a clustering dict (``kernel``, ``background`` in their
    in-graph spelling), checked against the stage's parameters and given their types."""
    graph = spelled.get("decoder") == GRAPH_DECODER
    ignored, known = (_GRAPH_IGNORED, _GRAPH_ARGS) if graph else (_INGRAPH_IGNORED, INGRAPH_PARAMS)
    out: dict[str, Any] = {"decoder": GRAPH_DECODER} if graph else {}
    for key, value in spelled.items():
        if key in ignored or value is None:
            continue
        if key == "kernel" and not graph:
            if value not in ("flat", "gaussian"):
                raise DataError(f"clustering.kernel must be 'flat' or 'gaussian', got {value!r}")
            out["gaussian"] = value == "gaussian"
        elif key == "background":
            out["background_largest"] = _choice("background", value, BACKGROUND_MODES) == "largest"
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
    if "foreground" in out:
        out["foreground"] = _choice("clustering.foreground", out["foreground"], ("none", *FOREGROUND_MODES))
    elif graph:
        out["foreground"] = "none"
    return out
