"""spoco_zoo.cluster.settings: the one owner of clustering methods, parameter names and defaults."""

from __future__ import annotations

import inspect
import subprocess
import sys
import typing

import numpy as np
import pytest

from spoco_zoo.cli.segment import checkpoint_clustering, package_clustering
from spoco_zoo.cluster import cluster_embeddings
from spoco_zoo.cluster.ingraph import InGraphClustering
from spoco_zoo.cluster.settings import (
    DEFAULT_DELTA_VAR,
    INGRAPH_PARAMS,
    METHODS,
    POSTPROCESS_METHODS,
    fill_kernel_width,
    method_kwargs,
    recommended_clustering,
    recommended_ingraph,
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


def test_recommended_clustering_derives_the_kernel_width_from_the_loss() -> None:
    loss = LossConfig(delta_var=0.4, delta_dist=2.0)
    local = {"block_shape": None, "overlap": None, "split_components": True}
    assert recommended_clustering(ClusteringConfig(), loss) == {
        "method": "mean_shift",
        "bandwidth": 0.4,
        "min_size": 16,
        "background": "largest",
        **local,
    }
    explicit = ClusteringConfig(method="consistency", bandwidth=0.3, min_size=4, params={"threshold": 0.6})
    assert recommended_clustering(explicit, loss) == {
        "method": "consistency",
        "bandwidth": 0.3,
        "min_size": 4,
        "background": "largest",
        **local,
        "threshold": 0.6,
    }
    # another method: the configured bandwidth and params were meant for the configured one
    assert recommended_clustering(explicit, loss, method="mean_shift") == {
        "method": "mean_shift",
        "bandwidth": 0.4,
        "min_size": 4,
        "background": "largest",
        **local,
    }
    # local clustering: blocks of the training patch, a quarter-block overlap, unless configured
    patched = recommended_clustering(ClusteringConfig(), loss, patch_shape=[256, 128])
    assert patched["block_shape"] == [256, 128] and patched["overlap"] == [64, 32]
    chosen = ClusteringConfig(block_shape=[512, 512], overlap=[40, 40], split_components=False)
    assert recommended_clustering(chosen, loss, patch_shape=[256, 128])["block_shape"] == [512, 512]
    assert recommended_clustering(chosen, loss)["overlap"] == [40, 40]
    assert recommended_clustering(chosen, loss)["split_components"] is False
    assert "bandwidth" not in recommended_clustering(ClusteringConfig(method="hdbscan"), loss)
    assert recommended_clustering(ClusteringConfig(), None)["bandwidth"] == DEFAULT_DELTA_VAR
    with pytest.raises(DataError, match="choose one of graph, mean_shift, hdbscan, consistency"):
        recommended_clustering(ClusteringConfig(), loss, method="kmeans")


def test_method_kwargs_use_each_methods_own_name() -> None:
    assert method_kwargs("mean_shift", {"bandwidth": 0.4, "min_size": 3}) == {"bandwidth": 0.4, "min_size": 3}
    assert method_kwargs("consistency", {"bandwidth": 0.4}) == {"delta_var": 0.4}
    assert method_kwargs("consistency", {"delta_var": 0.4, "bandwidth": 0.4}) == {"delta_var": 0.4}
    assert method_kwargs("hdbscan", {"bandwidth": 0.4, "min_size": 3, "seed": None}) == {"min_size": 3}
    with pytest.raises(DataError, match="conflicting kernel widths"):
        method_kwargs("consistency", {"delta_var": 0.4, "bandwidth": 0.5})
    assert fill_kernel_width("consistency", {}, 0.25) == {"bandwidth": 0.25}
    assert fill_kernel_width("consistency", {"delta_var": 0.3}, 0.25) == {"delta_var": 0.3}
    assert fill_kernel_width("ingraph", {}, None) == {"bandwidth": DEFAULT_DELTA_VAR}


def test_every_caller_gets_the_same_recommendation() -> None:
    """segment (checkpoint route), the trainer's validation and the export ask the same function."""
    config = TrainConfig.model_validate(
        {"loss": {"delta_var": 0.3, "delta_dist": 1.5}, "clustering": {"method": "consistency", "min_size": 2}}
    )
    method, kwargs = checkpoint_clustering(config, None, {}, None)
    local = {"block_shape": [256, 256], "overlap": [64, 64], "split_components": True}  # the training patch
    common = {"bandwidth": 0.3, "min_size": 2, "background": "largest", **local, "foreground": "mask"}
    assert (method, kwargs) == ("consistency", common)
    method, kwargs = checkpoint_clustering(config, "mean_shift", {"kernel": "gaussian"}, 7)
    assert (method, kwargs["bandwidth"], kwargs["min_size"], kwargs["kernel"]) == ("mean_shift", 0.3, 7, "gaussian")
    # a model with a foreground mask: the local decoder, method graph's parameters (edge 0.3 x delta_var)
    ingraph = recommended_ingraph(config.clustering, config.loss, {"n_iter": 16}, config.foreground_mode())
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
        recommended_ingraph(config.clustering, config.loss, {"n_seeds": 64}, config.foreground_mode())
    # without one: the global mean-shift
    ingraph = recommended_ingraph(config.clustering, config.loss, {"n_seeds": 64}, None)
    assert ingraph == {"bandwidth": 0.3, "min_size": 2, "background_largest": True, "n_seeds": 64}
    # the recommendation runs as is: two blobs 3 units apart, kernel width 0.3
    emb = np.zeros((2, 6, 8), np.float32)
    emb[0, :, 4:] = 3.0
    labels = cluster_embeddings(emb, **recommended_clustering(config.clustering, config.loss))
    assert labels.tolist() == [[0, 0, 0, 0, 1, 1, 1, 1]] * 6
    rdf = {"spoco": {"clustering": {"method": "hdbscan", "min_size": 5}, "loss": {"delta_var": 0.3}}}
    assert package_clustering(rdf, "consistency", {}, None)["spoco"]["clustering"] == {
        "min_size": 5,
        "method": "consistency",
    }


def test_segment_command_does_not_import_the_trainer() -> None:
    code = "import sys, spoco_zoo.cli.segment; print('spoco_zoo.train.trainer' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "False"
