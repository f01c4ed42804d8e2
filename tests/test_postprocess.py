"""spoco_zoo.postprocess: one function from package outputs + RDF config to instances, numpy + torch only."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

import numpy as np
import pytest
import torch

from spoco_zoo.metrics.sbd import symmetric_best_dice
from spoco_zoo.postprocess import embeddings_to_instances

HEAVY = (
    "sklearn",
    "scipy",
    "skimage",
    "hdbscan",
    "bioimageio",
    "typer",
    "onnx",
    "onnxruntime",
    "onnxscript",
    "xarray",
    "pydantic",
    "yaml",
    "tifffile",
    "h5py",
    "zarr",
    "rich",
)


sbd = symmetric_best_dice  # the project's SBD (spoco_zoo.metrics), objects = ids > 0


def blocks(shape=(60, 72), dims: int = 8, seed: int = 0):
    """Labels: background 0 (the largest region) and 7 rectangles; embeddings: one centre per label."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.int64)
    boxes = [
        (5, 20, 5, 25),
        (5, 20, 30, 45),
        (5, 20, 50, 68),
        (25, 40, 5, 30),
        (25, 40, 35, 50),
        (45, 57, 10, 40),
        (45, 57, 45, 65),
    ]
    for i, (a, b, c, d) in enumerate(boxes, start=1):
        labels[..., a:b, c:d] = i
    centres = np.eye(8, dims, dtype=np.float32) * 3.0  # 8 points, pairwise >= 3 apart
    centres[0] = 0.0
    emb = np.moveaxis(centres[labels], -1, 0) + 0.05 * rng.standard_normal((dims, *shape)).astype(np.float32)
    return emb.astype(np.float32), labels


CONFIGS: dict[str, dict[str, Any]] = {
    "mean_shift": {
        "method": "mean_shift",
        "bandwidth": 0.5,
        "kernel": "flat",
        "min_size": 16,
        "background": "largest",
        "seed": 0,
        "device": "cpu",
    },
    "consistency": {"method": "consistency", "bandwidth": 0.5, "min_size": 16, "seed": 0, "device": "cpu"},
    "ingraph": {"method": "ingraph", "bandwidth": 0.5, "min_size": 16, "n_seeds": 512},
    "hdbscan": {"method": "hdbscan", "min_size": 16},
}


@pytest.mark.parametrize("method", sorted(CONFIGS))
def test_each_method_recovers_known_clusters(method: str) -> None:
    if method == "hdbscan":
        pytest.importorskip("hdbscan")
    emb, labels = blocks()
    out = embeddings_to_instances(emb, CONFIGS[method])
    assert out.dtype == np.int32 and out.shape == labels.shape
    assert sbd(out, labels) > 0.99


@pytest.mark.parametrize("method", ["mean_shift", "ingraph"])
def test_batch_axis_torch_and_3d_inputs(method: str) -> None:
    emb, labels = blocks()
    ref = embeddings_to_instances(emb, CONFIGS[method])
    assert np.array_equal(embeddings_to_instances(emb[None], CONFIGS[method]), ref)  # bioimage.io [1,E,y,x]
    assert np.array_equal(embeddings_to_instances(torch.from_numpy(emb)[None], CONFIGS[method]), ref)
    vol = np.stack([emb] * 4, axis=1)  # [E, z=4, y, x]
    out3d = embeddings_to_instances(vol[None], CONFIGS[method])
    assert out3d.shape == (4, *labels.shape) and sbd(out3d, np.stack([labels] * 4)) > 0.99


def test_xarray_like_inputs() -> None:
    class DataArrayLike:  # xarray.DataArray / bioimageio.core Tensor expose .values / .data
        def __init__(self, values: np.ndarray) -> None:
            self.values = values

    class TensorLike:
        def __init__(self, data: Any) -> None:
            self.data = data

    emb, labels = blocks()
    ref = embeddings_to_instances(emb, CONFIGS["ingraph"])
    assert np.array_equal(embeddings_to_instances(DataArrayLike(emb[None]), CONFIGS["ingraph"]), ref)
    assert np.array_equal(embeddings_to_instances(TensorLike(DataArrayLike(emb)), CONFIGS["ingraph"]), ref)


def test_rdf_config_wrappers_and_loss_margin_default() -> None:
    emb, labels = blocks()
    clustering = {"method": "mean_shift", "bandwidth": None, "min_size": 16, "params": {"device": "cpu"}}
    spoco = {"clustering": clustering, "loss": {"delta_var": 0.4, "delta_dist": 2.0}}
    direct = embeddings_to_instances(emb, {**clustering, "bandwidth": 0.4})
    for config in (spoco, {"spoco": spoco}, {"config": {"spoco": spoco}, "name": "a model"}):
        assert np.array_equal(embeddings_to_instances(emb, config), direct)
    # the exporter's layout: Python method + the compiled-in in-graph arguments under "ingraph"
    exported = {
        "method": "mean_shift",
        "bandwidth": 0.5,
        "min_size": 16,
        "background": "largest",
        "device": "cpu",
        "ingraph": {"bandwidth": 0.5, "n_seeds": 512, "gaussian": False},
    }
    assert sbd(embeddings_to_instances(emb, exported), labels) > 0.99
    as_ingraph = embeddings_to_instances(emb, {**exported, "method": "ingraph"})
    assert sbd(as_ingraph, labels) > 0.99


def test_pydantic_clustering_config_is_accepted() -> None:
    from spoco_zoo.config import TrainConfig

    config = TrainConfig.model_validate(
        {"clustering": {"method": "mean_shift", "min_size": 16, "params": {"device": "cpu"}}}
    )
    emb, labels = blocks()
    assert sbd(embeddings_to_instances(emb, config), labels) > 0.99


@pytest.mark.parametrize(
    "config",
    [
        {"method": "watershed"},
        {"bandwidth": 0.5},
        {"spoco": {"loss": {}}},
        {"method": "mean_shift", "no_such_parameter": 1},
        {"method": "mean_shift", "params": [1, 2]},
        {"method": "ingraph", "kernel": "triangular"},
        {"method": "ingraph", "ingraph": "n_seeds=4"},
        "mean_shift",
    ],
)
def test_bad_configs_raise_value_error(config: Any) -> None:
    emb, _ = blocks()
    with pytest.raises(ValueError):
        embeddings_to_instances(emb, config)


@pytest.mark.parametrize("shape", [(6, 60), (1, 1, 60, 72), (3, 6, 4, 60, 72), (1, 6, 1, 4, 60, 72), (6, 0, 72)])
def test_bad_shapes_raise_value_error(shape) -> None:
    with pytest.raises(ValueError):
        embeddings_to_instances(np.zeros(shape, np.float32), CONFIGS["ingraph"])


def test_non_finite_embeddings_raise_value_error() -> None:
    emb, _ = blocks()
    emb[0, 3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        embeddings_to_instances(emb, CONFIGS["ingraph"])


def _run_python(code: str) -> dict[str, Any]:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_import_and_numpy_torch_methods_need_no_heavy_packages() -> None:
    report = _run_python(
        f"""
        import json, sys
        import numpy as np
        heavy = {HEAVY!r}
        loaded = lambda: sorted({{m.split(".")[0] for m in sys.modules}} & set(heavy))
        import spoco_zoo.postprocess as pp
        after_import = loaded()
        emb = np.zeros((3, 16, 20), np.float32); emb[0, :, 12:] = 3.0
        for method in ("mean_shift", "consistency", "ingraph"):
            out = pp.embeddings_to_instances(emb, {{"method": method, "device": "cpu"}} if method != "ingraph"
                                             else {{"method": method, "n_seeds": 64}})
            assert out[0, 15] > 0 and out[0, 0] == 0, (method, out)
        print(json.dumps({{"import": after_import, "run": loaded()}}))
        """
    )
    assert report == {"import": [], "run": []}


def test_hdbscan_without_the_package_says_what_is_missing() -> None:
    report = _run_python(
        """
        import json, sys
        sys.modules["hdbscan"] = None  # as if it were not installed
        import numpy as np
        from spoco_zoo.postprocess import embeddings_to_instances
        try:
            embeddings_to_instances(np.zeros((2, 8, 8), np.float32), {"method": "hdbscan"})
        except ImportError as err:
            print(json.dumps({"error": str(err)}))
        else:
            print(json.dumps({"error": None}))
        """
    )
    assert report["error"] and "hdbscan" in report["error"] and "pip install" in report["error"]
