"""spoco_zoo.cluster.settings: the one owner of clustering methods, parameter names and defaults."""

from __future__ import annotations

import dataclasses
import inspect
import json
import subprocess
import sys
import typing

import numpy as np
import pytest

from spoco_zoo.cli.segment import checkpoint_clustering, package_clustering
from spoco_zoo.cluster import cluster_embeddings, cluster_setting
from spoco_zoo.cluster.clustering_setting import ClusteringSetting
from spoco_zoo.cluster.graph import GraphInstances
from spoco_zoo.cluster.ingraph import InGraphClustering
from spoco_zoo.cluster.settings import (
    DEFAULT_DELTA_VAR,
    INGRAPH_PARAMS,
    METHODS,
    POSTPROCESS_METHODS,
    graph_iterations,
)
from spoco_zoo.config import ClusteringConfig, LossConfig, TrainConfig
from spoco_zoo.errors import DataError


def test_method_list_and_defaults_have_one_source() -> None:
    assert METHODS == ("graph", "mean_shift", "hdbscan", "consistency", "watershed")
    assert POSTPROCESS_METHODS == (*METHODS, "ingraph")
    annotation = typing.get_type_hints(ClusteringConfig)["method"]
    literal, none = typing.get_args(annotation)
    assert typing.get_args(literal) == METHODS and none is type(None)
    assert LossConfig().delta_var == DEFAULT_DELTA_VAR == 0.5
    signature = inspect.signature(InGraphClustering.__init__).parameters
    assert tuple(name for name in signature if name != "self") == INGRAPH_PARAMS
    assert signature["bandwidth"].default == DEFAULT_DELTA_VAR


def recommended(clustering: ClusteringConfig, loss: LossConfig | None, **options: typing.Any) -> dict:
    return ClusteringSetting.from_config(clustering, loss, **options).as_dict()


def test_the_config_edge_derives_the_kernel_width_from_the_loss() -> None:
    loss = LossConfig(delta_var=0.4, delta_dist=2.0)
    local = {"block_shape": None, "overlap": None, "split_components": True}
    assert recommended(ClusteringConfig(), loss) == {
        "method": "mean_shift",
        "bandwidth": 0.4,
        "min_size": 16,
        "background": "largest",
        **local,
    }
    explicit = ClusteringConfig(method="consistency", bandwidth=0.3, min_size=4, params={"threshold": 0.6})
    setting = ClusteringSetting.from_config(explicit, loss)
    assert setting == ClusteringSetting(
        "consistency", 0.3, 4, "largest", split_components=True, params={"threshold": 0.6}
    )
    assert recommended(explicit, loss) == {
        "method": "consistency",
        "bandwidth": 0.3,
        "min_size": 4,
        "background": "largest",
        **local,
        "threshold": 0.6,
    }
    # another method: the configured bandwidth and params were meant for the configured one
    assert recommended(explicit, loss, method="mean_shift") == {
        "method": "mean_shift",
        "bandwidth": 0.4,
        "min_size": 4,
        "background": "largest",
        **local,
    }
    # local clustering: blocks of the training patch, a quarter-block overlap, unless configured
    patched = ClusteringSetting.from_config(ClusteringConfig(), loss, patch_shape=[256, 128])
    assert patched.block_shape == (256, 128) and patched.overlap == (64, 32)
    assert patched.as_dict()["block_shape"] == [256, 128]
    # the local decoder: blocks of twice the patch (the block-wise route only), the patch's overlap
    graph = ClusteringSetting.from_config(ClusteringConfig(method="graph"), loss, patch_shape=[32, 64, 64])
    assert graph.block_shape == (64, 128, 128) and graph.overlap == (16, 16, 16)
    given = ClusteringConfig(method="graph", block_shape=[40, 40, 40])
    assert ClusteringSetting.from_config(given, loss, patch_shape=[32, 64, 64]).block_shape == (40, 40, 40)
    chosen = ClusteringConfig(block_shape=[512, 512], overlap=[40, 40], split_components=False)
    assert recommended(chosen, loss, patch_shape=[256, 128])["block_shape"] == [512, 512]
    assert recommended(chosen, loss)["overlap"] == [40, 40]
    assert recommended(chosen, loss)["split_components"] is False
    assert "bandwidth" not in recommended(ClusteringConfig(method="hdbscan"), loss)
    assert recommended(ClusteringConfig(), None)["bandwidth"] == DEFAULT_DELTA_VAR
    with pytest.raises(DataError, match="choose one of graph, mean_shift, hdbscan, consistency"):
        recommended(ClusteringConfig(), loss, method="kmeans")
    # the TrainConfig shim and the checkpoint edge give the same setting
    config = TrainConfig.model_validate({"loss": {"delta_var": 0.3}, "clustering": {"method": "mean_shift"}})
    assert ClusteringSetting.from_checkpoint({"config": config}) == config.clustering_setting()
    assert config.recommended_clustering() == config.clustering_setting().as_dict()


def test_graph_rounds_follow_the_dimensionality_and_reach_the_package() -> None:
    """Images get 4 rounds of label propagation, volumes 12 (their porous edge graphs), and a volume
    model's in-graph decoder is built with the same count."""
    loss = LossConfig()
    graph = ClusteringConfig(method="graph")
    image = ClusteringSetting.from_config(graph, loss, patch_shape=[256, 256], foreground="mask")
    volume = ClusteringSetting.from_config(graph, loss, patch_shape=[32, 64, 64], foreground="mask")
    assert (image.n_iter, volume.n_iter) == (4, 12)
    assert volume.ingraph_kwargs({})["n_iter"] == 12 and image.ingraph_kwargs({})["n_iter"] == 4
    # graph.py imports only torch, so its default spells the volumes' rounds again: they must agree
    assert inspect.signature(GraphInstances.__init__).parameters["n_iter"].default == graph_iterations(3)


def test_method_kwargs_use_each_methods_own_name() -> None:
    assert ClusteringSetting("mean_shift", 0.4, 3).method_kwargs() == {"bandwidth": 0.4, "min_size": 3}
    assert ClusteringSetting("consistency", 0.4).method_kwargs() == {"delta_var": 0.4}
    assert ClusteringSetting.from_dict(
        {"method": "consistency", "delta_var": 0.4, "bandwidth": 0.4}
    ).method_kwargs() == {"delta_var": 0.4}
    hdbscan = ClusteringSetting.from_dict({"method": "hdbscan", "bandwidth": 0.4, "min_size": 3, "seed": None})
    assert hdbscan.method_kwargs() == {"min_size": 3}  # HDBSCAN has no kernel width
    # local clustering and the foreground channel are the pipeline's, not the method's
    local = ClusteringSetting("mean_shift", 0.5, 2, "largest", (64, 64), (16, 16), True, "mask", params={"seed": 1})
    assert local.method_kwargs() == {"min_size": 2, "background": "largest", "seed": 1, "bandwidth": 0.5}
    with pytest.raises(DataError, match="conflicting kernel widths"):
        ClusteringSetting.from_dict({"method": "consistency", "delta_var": 0.4, "bandwidth": 0.5})
    with pytest.raises(DataError, match="foreground"):
        ClusteringSetting(foreground="all")
    with pytest.raises(DataError, match="min_distance"):
        ClusteringSetting("graph", min_distance=2.5)
    with pytest.raises(DataError, match="fields of the setting"):
        ClusteringSetting(params={"bandwidth": 0.3})


def test_window_kwargs_sample_a_share_of_each_window() -> None:
    setting = ClusteringSetting("mean_shift", 0.3, 40, "largest", params={"kernel": "flat"})
    # every cluster is kept in a window: background and min_size act after stitching
    assert setting.window_kwargs() == {"kernel": "flat", "bandwidth": 0.3, "background": "none", "min_size": 0}
    assert setting.window_kwargs(384 * 384)["n_samples"] == 4096  # 1/36 of the window
    assert setting.window_kwargs(100 * 100)["n_samples"] == 4000  # at least 4000
    fixed = ClusteringSetting("mean_shift", params={"n_samples": 9000})
    assert fixed.window_kwargs(10**6)["n_samples"] == 9000
    assert "n_samples" not in ClusteringSetting("consistency", 0.3).window_kwargs(10**6)


def test_rdf_round_trip_and_older_packages() -> None:
    config = TrainConfig.model_validate(
        {"loss": {"delta_var": 0.3}, "clustering": {"method": "graph", "min_size": 12, "params": {"split": "shape"}}}
    )
    setting = config.clustering_setting()
    assert setting.split == "shape" and setting.min_distance == 2 and setting.foreground == "mask"
    rdf = {"config": {"spoco": {"clustering": json.loads(json.dumps(setting.as_dict())), "loss": {"delta_var": 0.3}}}}
    assert ClusteringSetting.from_rdf(rdf) == setting
    recorded = dataclasses.replace(setting, ingraph={"decoder": "graph", "min_size": 12, "split": "shape"})
    assert ClusteringSetting.from_dict(recorded.as_dict()) == recorded
    # an older package spelled the kernel width delta_var; a width missing is the loss's pull margin
    old = {"spoco": {"clustering": {"method": "consistency", "delta_var": 0.25}, "loss": {"delta_var": 0.3}}}
    assert ClusteringSetting.from_rdf(old).method_kwargs() == {"delta_var": 0.25}
    assert ClusteringSetting.from_rdf(old).as_dict()["bandwidth"] == 0.25
    bare = {"spoco": {"clustering": {"method": "mean_shift", "min_size": 4}, "loss": {"delta_var": 0.3}}}
    assert ClusteringSetting.from_rdf(bare).bandwidth == 0.3
    conflicting = {"method": "mean_shift", "bandwidth": 0.3, "delta_var": 0.4}
    with pytest.raises(DataError, match="conflicting kernel widths"):
        ClusteringSetting.from_rdf(conflicting)
    with pytest.raises(DataError, match="no clustering method"):
        ClusteringSetting.from_rdf({"spoco": {"loss": {"delta_var": 0.3}}})


def test_every_caller_gets_the_same_recommendation() -> None:
    """segment (checkpoint route), the trainer's validation and the export ask the same object."""
    config = TrainConfig.model_validate(
        {"loss": {"delta_var": 0.3, "delta_dist": 1.5}, "clustering": {"method": "consistency", "min_size": 2}}
    )
    setting = checkpoint_clustering(config, None, {}, None)
    assert setting == config.clustering_setting()
    local = {"block_shape": [256, 256], "overlap": [64, 64], "split_components": True}  # the training patch
    common = {"bandwidth": 0.3, "min_size": 2, "background": "largest", **local, "foreground": "mask"}
    assert setting.as_dict() == {"method": "consistency", **common}
    setting = checkpoint_clustering(config, "mean_shift", {"kernel": "gaussian"}, 7)
    assert (setting.method, setting.bandwidth, setting.min_size, setting.params) == (
        "mean_shift",
        0.3,
        7,
        {"kernel": "gaussian"},
    )
    # --param delta_var=... replaces the kernel width (one name inside)
    assert checkpoint_clustering(config, None, {"delta_var": 0.2}, None).method_kwargs()["delta_var"] == 0.2
    # a model with a foreground mask: the local decoder, method graph's parameters (edge 0.3 x delta_var)
    ingraph = config.clustering_setting("ingraph").ingraph_kwargs({"n_iter": 16})
    assert ingraph == {
        "decoder": "graph",
        "min_size": 2,
        "background_largest": True,
        "min_distance": 2,
        "foreground": "mask",
        "split": "embedding",
        "edge_threshold": 0.09,
        "n_iter": 16,
    }
    with pytest.raises(DataError, match="n_seeds: not a parameter of the in-graph local decoder"):
        config.clustering_setting("ingraph").ingraph_kwargs({"n_seeds": 64})
    # without one: the global mean-shift
    plain = config.model_copy(update={"model": config.model.model_copy(update={"foreground": False})})
    ingraph = plain.clustering_setting("ingraph").ingraph_kwargs({"n_seeds": 64})
    assert ingraph == {"bandwidth": 0.3, "min_size": 2, "background_largest": True, "n_seeds": 64}
    # the recommendation runs as is: two blobs 3 units apart, kernel width 0.3
    emb = np.zeros((2, 6, 8), np.float32)
    emb[0, :, 4:] = 3.0
    labels = cluster_setting(emb, plain.clustering_setting())
    assert labels.tolist() == [[0, 0, 0, 0, 1, 1, 1, 1]] * 6
    assert np.array_equal(cluster_embeddings(emb, **plain.recommended_clustering()), labels)
    rdf = {"spoco": {"clustering": {"method": "hdbscan", "min_size": 5}, "loss": {"delta_var": 0.3}}}
    switched = package_clustering(rdf, "consistency", {}, None)
    assert switched == ClusteringSetting("consistency", 0.3, 5)


def test_segment_command_does_not_import_the_trainer() -> None:
    code = "import sys, spoco_zoo.cli.segment; print('spoco_zoo.train.trainer' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "False"
