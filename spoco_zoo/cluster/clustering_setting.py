"""``ClusteringSetting``: one clustering -- a method and its parameters -- parsed once at an edge.

Its rules (methods, names, defaults) are :mod:`spoco_zoo.cluster.settings`; a training config's
clustering (:class:`~spoco_zoo.cluster.clustering_config.ClusteringConfig`), a checkpoint, a
package's RDF, the command line's overrides and ``cluster_embeddings`` keywords become a
:class:`ClusteringSetting` at their edge, and every consumer asks it for what it needs. The
constants named below (``:data:``) are those of :mod:`spoco_zoo.cluster.settings`. Imports the
standard library only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from spoco_zoo.cluster.checks import check_choice, check_extents, check_integer, check_positive
from spoco_zoo.cluster.settings import (
    BACKGROUND_MODES,
    DEFAULT_DELTA_VAR,
    DEFAULT_MIN_SIZE,
    EDGE_THRESHOLD_FRACTION,
    FOREGROUND_MODES,
    GRAPH_DECODER,
    INGRAPH,
    KERNEL_WIDTH_PARAM,
    NOTE_KEYS,
    POSTPROCESS_METHODS,
    SETTING_KEYS,
    SPLIT_MODES,
    WINDOW_SAMPLE_SHARE,
    WINDOW_SAMPLES_MIN,
    ClusteringFields,
    PullMargin,
    TrainFields,
    check_method,
    default_method,
    default_overlap,
    graph_block_shape,
    graph_iterations,
    ingraph_arguments,
    min_distance_from_size,
    pull_margin,
    rdf_clustering,
    relative_spacing,
    uses_kernel_width,
)
from spoco_zoo.errors import DataError

__all__ = ["ClusteringSetting"]


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
            "bandwidth": check_positive("bandwidth", self.bandwidth),
            "min_size": None if self.min_size is None else check_integer("min_size", self.min_size, 0),
            "background": check_choice("background", self.background, BACKGROUND_MODES),
            "block_shape": check_extents("block_shape", self.block_shape),
            "overlap": check_extents("overlap", self.overlap),
            "split_components": None if self.split_components is None else bool(self.split_components),
            "foreground": check_choice("foreground", self.foreground, FOREGROUND_MODES),
            "split": check_choice("split", self.split, SPLIT_MODES),
            "edge_threshold": check_positive("edge_threshold", self.edge_threshold),
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
            method=merged.pop("method") if "method" in merged else "mean_shift",
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
        voxel_size: Sequence[float] | None = None,
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
            clustering unless ``clustering.block_shape`` is set (method ``"graph"``: twice it per axis,
            :func:`~spoco_zoo.cluster.settings.graph_block_shape`); with neither, the image is clustered
            in one piece.
        foreground:
            What the network's foreground channel is for (:data:`FOREGROUND_MODES`; ``None``: the
            network has none): ``TrainConfig.foreground_mode()``.
        voxel_size:
            The training data's voxel size (``TrainConfig.data.voxel_size``): method ``"graph"`` then
            scales its edge threshold per axis by the relative voxel size (``spacing``,
            :func:`relative_spacing`), unless the config's clustering ``params`` set one.

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
                return cls.from_config(
                    clustering,
                    loss,
                    method="graph",
                    patch_shape=patch_shape,
                    foreground=foreground,
                    voxel_size=voxel_size,
                )
            width = float(clustering.bandwidth) if clustering.bandwidth else pull_margin(loss)
            kernel = clustering.params.get("kernel")
            params = {"kernel": kernel} if kernel in ("flat", "gaussian") else {}
            return cls(INGRAPH, width, min_size, "largest", foreground=foreground, params=params)
        configured = clustering.method or default_method(foreground)
        chosen = check_method(method or configured)
        same = chosen == configured
        out: dict[str, Any] = {"method": chosen}
        if uses_kernel_width(chosen):
            given = clustering.bandwidth if same else None
            out["bandwidth"] = float(given) if given else pull_margin(loss)
        out["min_size"] = min_size
        out["background"] = "largest"
        # blocks and their overlap scale with the configured block or else the training patch; the local
        # decoder (method graph) gets larger blocks of the patch, the same overlap
        patch = list(patch_shape) if patch_shape is not None else None
        scale = list(clustering.block_shape) if clustering.block_shape else patch
        if chosen == "graph" and not clustering.block_shape and patch is not None:
            out["block_shape"] = graph_block_shape(patch)
        else:
            out["block_shape"] = scale
        if scale is None:
            out["overlap"] = None
        else:
            out["overlap"] = list(clustering.overlap) if clustering.overlap is not None else default_overlap(scale)
        out["split_components"] = bool(clustering.split_components)
        dims = len(patch_shape) if patch_shape is not None else 2
        if chosen in ("watershed", "graph"):  # object centres at least the radius of a min_size disk (ball) apart
            out["min_distance"] = min_distance_from_size(min_size, dims)
        if chosen == "graph":  # local by construction: components are its output (blocks: block-wise route only)
            out["split_components"] = False
            out["split"] = "embedding"
            out["edge_threshold"] = round(EDGE_THRESHOLD_FRACTION * pull_margin(loss), 6)
            out["n_iter"] = graph_iterations(dims)
            spacing = relative_spacing(voxel_size)
            if spacing is not None:
                out["spacing"] = spacing
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
            voxel_size=config.data.voxel_size,
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
        node, margin = rdf_clustering(rdf)
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
            elif "foreground" in spelled:  # after the method's own arguments, as packages have recorded it
                spelled["foreground"] = spelled.pop("foreground")
        spelled.update(options or {})
        return ingraph_arguments(spelled)
