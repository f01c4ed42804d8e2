"""The local decoder (``spoco_zoo.cluster.graph``): quality, locality, export parity, memory."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import same_partition

from spoco_zoo.cluster import cluster_embeddings
from spoco_zoo.cluster.common import relabel_sequential
from spoco_zoo.cluster.graph import GraphInstances
from spoco_zoo.cluster.graph_method import graph_segmentation, graph_segmentations_by_min_size, ingraph_module
from spoco_zoo.cluster.settings import graph_iterations
from spoco_zoo.errors import DataError
from spoco_zoo.metrics import evaluate_instances


def tiled_objects(size: int, cell: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Touching objects filling a ``size`` x ``size`` image (jittered Voronoi cells about ``cell`` px
    across) with background gaps, their embeddings (4 channels + a foreground logit) and labels."""
    rng = np.random.default_rng(seed)
    n = size // cell
    yy, xx = np.mgrid[:n, :n]
    centres = (np.stack([yy, xx], -1).reshape(-1, 2) + 0.5 + rng.uniform(-0.3, 0.3, (n * n, 2))) * cell
    grid = np.mgrid[:size, :size].reshape(2, -1).T.astype(np.float32)
    # nearest centre among the 3x3 neighbouring cells (exact for jitter < half a cell)
    cy, cx = (grid[:, 0] // cell).astype(int), (grid[:, 1] // cell).astype(int)
    best = np.full(len(grid), np.inf, np.float32)
    owner = np.zeros(len(grid), np.int64)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            idx = np.clip(cy + dy, 0, n - 1) * n + np.clip(cx + dx, 0, n - 1)
            dist = ((grid - centres[idx]) ** 2).sum(1)
            closer = dist < best
            best[closer], owner[closer] = dist[closer], idx[closer]
    labels = (owner + 1).reshape(size, size)
    background = rng.random(n * n) < 0.1  # every tenth cell is background
    labels[background[labels - 1]] = 0
    codes = rng.normal(size=(n * n + 1, 4)).astype(np.float32) * 3.0  # distinct object embeddings
    emb = codes[labels].transpose(2, 0, 1) + rng.normal(scale=0.02, size=(4, size, size)).astype(np.float32)
    logit = np.where(labels > 0, 4.0, -4.0).astype(np.float32)[None]
    from skimage.segmentation import relabel_sequential

    return np.concatenate([emb, logit]), relabel_sequential(labels)[0]


def test_many_touching_objects_at_1024_are_all_found(one_thread: None) -> None:
    emb, truth = tiled_objects(1024)
    labels = cluster_embeddings(emb, "graph", foreground="mask", edge_threshold=0.5, min_size=50)
    scores = evaluate_instances(labels, truth)
    assert labels.max() == truth.max() > 900
    assert scores["sbd"] > 0.99 and scores["map"] > 0.95


def test_the_result_is_local_a_crop_gives_the_same_objects() -> None:
    emb, _ = tiled_objects(256, seed=3)
    module = GraphInstances(edge_threshold=0.5, min_size=50)
    whole = module(torch.from_numpy(emb)[None])[0, 0].numpy()
    crop = module(torch.from_numpy(np.ascontiguousarray(emb[:, 64:192, 64:192]))[None])[0, 0].numpy()
    inner = whole[64:192, 64:192]
    # objects that do not touch the crop border: the same masks (ids renumbered)
    from skimage.segmentation import clear_border

    kept = clear_border(crop)
    assert len(np.unique(kept)) > 4
    for obj in np.unique(kept[kept > 0]):
        mask = kept == obj
        assert len(np.unique(inner[mask])) == 1 and ((inner == inner[mask][0]) == mask).all()
    # tiles decoded separately (as a tiling consumer runs the model): no id is used in two tiles
    tiles = [
        module(torch.from_numpy(np.ascontiguousarray(emb[:, y : y + 64, x : x + 64]))[None])
        for y, x in [(0, 0), (0, 64), (64, 0), (64, 64), (128, 128), (192, 64)]
    ]
    ids = [set(np.unique(t.numpy()).tolist()) - {0} for t in tiles]
    assert sum(len(i) for i in ids) == len(set().union(*ids)) > 30


def serpentine(rows: int, width: int) -> np.ndarray:
    """One winding object: ``rows`` horizontal runs ``width`` px long, joined alternately at the right
    and the left end (``[2 rows - 1, width]``): the label of its first pixel turns two corners per row."""
    mask = np.zeros((2 * rows - 1, width), bool)
    mask[::2] = True
    mask[1::4, -1] = True
    mask[3::4, 0] = True
    return mask


def test_label_propagation_joins_a_winding_object_in_a_volume_by_default() -> None:
    """A 60-row serpentine (two slices of it: a volume) is one object: 4 rounds of propagation, the 2D
    default, leave it in pieces; the volume default joins it, in the Python route and the module alike."""
    mask = np.stack([serpentine(60, 70)] * 2)
    emb = np.zeros((2, *mask.shape), np.float32)
    pieces = {n: len(np.unique(graph_segmentation(emb, mask, n_iter=n, min_size=0))) - 1 for n in (4, None)}
    assert graph_iterations(2) == 4 and pieces[4] > 10 and pieces[None] == 1, pieces
    x = torch.zeros(1, 3, *mask.shape)
    x[:, 2] = torch.from_numpy(np.where(mask, 5.0, -5.0))
    labels = GraphInstances()(x)[0, 0].numpy()
    assert len(np.unique(labels[mask])) == 1 and not (labels[~mask] != 0).any()


def test_shape_split_separates_touching_discs_and_merges_fragments(touching_discs: np.ndarray) -> None:
    truth = touching_discs
    emb = np.zeros((3, 40, 60), np.float32)
    emb[2] = np.where(truth > 0, 5.0, -5.0)
    shape = graph_segmentation(emb[:2], emb[2] > 0, split="shape", min_distance=5)
    assert shape.max() == 2 and evaluate_instances(shape, truth)["sbd"] > 0.9
    # one embedding for both discs: the embedding split merges them; a 3-pixel fragment with its own
    # embedding joins its neighbour
    emb[0, 20, 17:20] = 9.0
    merged = graph_segmentation(emb[:2], emb[2] > 0, edge_threshold=0.5)
    assert merged.max() == 2 and (merged[20, 17:20] != merged[20, 30]).all()
    assert graph_segmentation(emb[:2], emb[2] > 0, edge_threshold=0.5, min_size=10).max() == 1
    with pytest.raises(DataError, match="needs one"):
        graph_segmentation(emb[:2], None, split="shape")
    with pytest.raises(DataError, match="split"):
        graph_segmentation(emb[:2], None, split="watershed")


def test_without_a_mask_the_largest_component_is_the_background() -> None:
    emb = np.zeros((2, 30, 30), np.float32)
    emb[0, 5:12, 5:12] = 3.0
    emb[1, 18:25, 18:25] = 3.0
    labels = graph_segmentation(emb, None, edge_threshold=0.5)
    assert labels.max() == 2 and labels[0, 0] == 0
    module = GraphInstances(edge_threshold=0.5, foreground="none")
    np.testing.assert_array_equal(relabel_sequential(module(torch.from_numpy(emb)[None])[0, 0].numpy()), labels)


def speckled_objects(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """:func:`tiled_objects` at 128x128 with 40 speckles of 1-9 pixels carrying their own embedding and
    called foreground: fragments (inside objects or alone in the background) that a ``min_size``
    between their sizes merges or removes in part."""
    emb, truth = tiled_objects(128, seed=seed)
    rng = np.random.default_rng(seed)
    for _ in range(40):
        y, x, h, w = *rng.integers(4, 120, 2), *rng.integers(1, 4, 2)
        emb[:4, y : y + h, x : x + w] = rng.normal(size=(4, 1, 1)) * 3.0
        emb[4, y : y + h, x : x + w] = 4.0
    return emb, truth


@pytest.mark.parametrize("case", ["embedding-mask", "embedding-largest-is-background", "shape"])
def test_one_split_cleaned_with_several_min_sizes_equals_each_decode(case: str, touching_discs: np.ndarray) -> None:
    emb, _ = speckled_objects()
    emb, mask = emb[:4], emb[4] > 0 if case == "embedding-mask" else None
    params: dict = {"edge_threshold": 0.5}
    if case == "shape":  # two touching discs and specks of 1, 4 and 9 pixels in the background
        mask = touching_discs > 0
        mask[2, 2], mask[2:4, 50:52], mask[35:38, 5:8] = True, True, True
        emb, params = np.zeros((2, *mask.shape), np.float32), {"split": "shape", "min_distance": 5}
    sizes = [0, 3, 8, 200]
    together = graph_segmentations_by_min_size(emb, mask, sizes, **params)
    alone = [graph_segmentation(emb, mask, min_size=m, **params) for m in sizes]
    for a, b in zip(together, alone):
        np.testing.assert_array_equal(a, b)
    counts = [int(labels.max()) for labels in together]
    assert counts == sorted(counts, reverse=True) and counts[0] > counts[-1], counts  # min_size acts
    with pytest.raises(DataError, match="min_size"):
        graph_segmentations_by_min_size(emb, mask, [4, -1], **params)
    with pytest.raises(DataError, match="at least one"):
        graph_segmentations_by_min_size(emb, mask, np.array([], int), **params)


def test_the_tuning_grid_scores_what_each_setting_decodes() -> None:
    """The end-of-training grid of method "graph" splits each image once per threshold; its table
    holds, row by row, the scores of decoding with that row's parameters."""
    from spoco_zoo.cluster import cluster_setting
    from spoco_zoo.cluster.clustering_setting import ClusteringSetting
    from spoco_zoo.train.tuning import score_segmentation, tune_clustering

    images = [speckled_objects(seed) for seed in (1, 2)]
    setting = ClusteringSetting("graph", None, min_size=10, foreground="mask", edge_threshold=0.5)
    result = tune_clustering([emb for emb, _ in images], [truth for _, truth in images], setting)
    assert len(result.table) == 28  # (4 thresholds + 3 shape distances) x 4 min_size
    for row in result.table:
        params = {k: row[k] for k in ("split", "edge_threshold", "min_distance") if k in row}
        call = ClusteringSetting("graph", None, min_size=int(row["min_size"]), foreground="mask", **params)
        expected = [score_segmentation(cluster_setting(emb, call), truth) for emb, truth in images]
        assert row["sbd"] == pytest.approx(np.mean([e["sbd"] for e in expected]), abs=1e-9), row
    assert len({round(row["score"], 6) for row in result.table}) > 5  # the grid's settings decode differently


def _ingraph_cases() -> list[tuple[dict, np.ndarray]]:
    emb2, _ = tiled_objects(96, cell=24, seed=1)
    emb3 = np.repeat(emb2[:, None, :48, :48], 12, axis=1)  # columns of objects through z
    return [
        ({"decoder": "graph", "edge_threshold": 0.5, "min_size": 30, "foreground": "mask"}, emb2),
        ({"decoder": "graph", "split": "shape", "min_distance": 5, "min_size": 30, "foreground": "mask"}, emb2),
        ({"decoder": "graph", "edge_threshold": 0.5, "min_size": 30, "foreground": "mask"}, emb3),
        ({"decoder": "graph", "edge_threshold": 0.3, "seed_size": 200, "foreground": "mask"}, bridged_volume()[0]),
    ]


@pytest.mark.parametrize("case", range(4), ids=["2d-embedding", "2d-shape", "3d-embedding", "3d-seeded"])
def test_torchscript_and_onnx_labels_equal_eager_at_other_sizes(case: int, tmp_path: Path) -> None:
    """Exported once at one size, run at another (symbolic axes): the labels of eager PyTorch."""
    onnxruntime = pytest.importorskip("onnxruntime")
    kwargs, emb = _ingraph_cases()[case]
    module = ingraph_module(kwargs).eval()
    x = torch.from_numpy(emb)[None]
    expected = module(x).numpy()
    assert expected.dtype == np.int32 and expected.max() > 3
    scripted = torch.jit.script(module)
    np.testing.assert_array_equal(scripted(x).numpy(), expected)
    spatial = list(range(2, x.dim()))
    example = torch.zeros([1, x.shape[1]] + [16] * len(spatial))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (example,),
            str(tmp_path / "decoder.onnx"),
            opset_version=17,
            dynamo=False,
            input_names=["embeddings"],
            output_names=["instances"],
            dynamic_axes={"embeddings": {a: f"s{a}" for a in [0, *spatial]}, "instances": {0: "b"}},
        )
    session = onnxruntime.InferenceSession(str(tmp_path / "decoder.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(session.run(None, {"embeddings": x.numpy()})[0], expected)


@pytest.mark.parametrize("case", range(4), ids=["2d-embedding", "2d-shape", "3d-embedding", "3d-seeded"])
def test_settling_gives_the_labels_of_every_round_with_fewer_shifts(case: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The eager route's shortcut (``settle``: no scan along a run of edges that exists nowhere, no round after
    one that changed nothing) decodes what the packages' fixed scans and rounds decode, with fewer shifts; a
    scripted module with it on does too."""
    import spoco_zoo.cluster.graph as graph

    kwargs, emb = _ingraph_cases()[case]
    x = torch.from_numpy(emb)[None]
    real = graph.graph_pad_shift
    shifts = {"n": 0}

    def counted(x: torch.Tensor, axis: int, step: int, fill: float) -> torch.Tensor:
        shifts["n"] += 1
        return real(x, axis, step, fill)

    monkeypatch.setattr(graph, "graph_pad_shift", counted)
    labels, used = {}, {}
    for settle in (False, True):
        module = ingraph_module(kwargs).eval()
        module.settle = settle
        shifts["n"] = 0
        labels[settle], used[settle] = module(x).numpy(), shifts["n"]
    shifts["n"] = 0
    params = {k: v for k, v in kwargs.items() if k not in ("decoder", "foreground")}
    eager = graph_segmentation(emb[:-1], emb[-1] > 0, **params)  # segment's route: settles
    monkeypatch.undo()
    np.testing.assert_array_equal(labels[True], labels[False])
    assert labels[True].max() > 3 and used[True] < 0.6 * used[False], used
    assert shifts["n"] == used[True] and same_partition(eager, labels[False][0, 0])
    np.testing.assert_array_equal(torch.jit.script(module)(x).numpy(), labels[False])


def _peak_bytes(module: torch.nn.Module, x: torch.Tensor) -> int:
    """Peak of the bytes held by the tensors ``module(x)`` allocates (the profiler's allocation records)."""
    from torch.profiler import ProfilerActivity, profile

    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        module(x)
    held = peak = 0
    for event in sorted((e for e in prof.events() if e.cpu_parent is None), key=lambda e: e.time_range.start):
        held += event.self_cpu_memory_usage
        peak = max(peak, held)
    return peak


def test_memory_grows_linearly_with_the_image() -> None:
    """Peak memory of decoding 256^2 and 512^2 images: 4x the pixels, 4x the memory (no N^2 tensor)."""
    module = GraphInstances(edge_threshold=0.15, min_size=20, n_iter=4)
    peaks = []
    for size in (256, 512):
        x = torch.randn(1, 17, size, size)
        x[:, -1] = 1.0
        peaks.append(_peak_bytes(module, x))
    assert peaks[0] > 17 * 256 * 256 and 3.5 < peaks[1] / peaks[0] < 4.5, peaks


def bridged_volume(n_objects: int = 4, width: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Objects side by side along x in an ``8 x 16 x (n_objects * width)`` volume, each with its own
    embedding, every two neighbours joined through one row of voxels whose embedding steps from one to
    the other by 0.26 (below an edge threshold of 0.3, above the seeds' 0.24). Embeddings (2 channels + a
    foreground logit, all foreground) and labels."""
    rng = np.random.default_rng(seed)
    shape = (8, 16, n_objects * width)
    labels = np.repeat(np.arange(1, n_objects + 1), width)[None, None, :] * np.ones(shape, np.int64)
    emb = np.zeros((3, *shape), np.float32)
    emb[0] = 1.04 * (labels - 1).astype(np.float32)  # neighbouring objects 1.04 apart: four steps of 0.26
    emb[1] = rng.normal(scale=0.01, size=shape)
    for k in range(1, n_objects):  # the bridge: x = k * width - 1 .. k * width + 1 on one row
        for i, x in enumerate(range(k * width - 1, k * width + 2)):
            emb[0, 4, 8, x] = 1.04 * (k - 1) + 0.26 * (i + 1)
    emb[2] = 4.0
    return emb, labels


def test_seeds_keep_apart_objects_that_touch_through_one_row_of_close_voxels() -> None:
    """Components join the four objects through their one-voxel bridges; seeds from the stricter graph
    (0.8 x the threshold) keep every object whole and apart, and seeds smaller than ``seed_size`` do not count."""
    emb, truth = bridged_volume()
    mask = emb[-1] > 0
    plain = graph_segmentation(emb[:-1], mask, edge_threshold=0.3)
    assert plain.max() == 1  # one component: the failure seeds mend
    seeded = graph_segmentation(emb[:-1], mask, edge_threshold=0.3, seed_size=200)
    assert seeded.max() == 4
    assert evaluate_instances(seeded, truth)["sbd"] > 0.99
    too_large = graph_segmentation(emb[:-1], mask, edge_threshold=0.3, seed_size=8 * 16 * 16 + 1)
    np.testing.assert_array_equal(too_large, plain)  # no seed: the components, as without seeds
    with pytest.raises(DataError, match="seed_size"):
        graph_segmentation(emb[:-1], mask, edge_threshold=0.3, seed_size=-1)


def test_a_volume_models_tuning_tries_seeds_and_stores_the_choice() -> None:
    """The end-of-training grid of a volume model tries every threshold with and without seeds (its
    configured ``min_size``) and stores ``seed_size`` with the choice. On the bridged objects every
    threshold of the grid (0.27-0.54) joins them; seeded at 0.27 they stay apart, and the tuning takes it."""
    from spoco_zoo.cluster.clustering_setting import ClusteringSetting
    from spoco_zoo.train.tuning import tune_clustering

    volumes = [bridged_volume(seed=s) for s in (1, 2)]
    setting = ClusteringSetting("graph", None, min_size=100, foreground="mask", edge_threshold=0.45)
    result = tune_clustering([emb for emb, _ in volumes], [truth for _, truth in volumes], setting)
    assert len(result.table) == 44  # (4 thresholds x 2 seeds + 3 shape distances) x 4 min_size
    assert sum("seed_size" in row for row in result.table) == 16
    assert result.params == {"split": "embedding", "edge_threshold": 0.27, "seed_size": 100}
    plain = [row["score"] for row in result.table if row["split"] == "embedding" and "seed_size" not in row]
    assert max(plain) < 1.0  # without seeds every threshold merges
    assert result.score > 1.9  # SBD + mAP of the seeded decode: every object whole


def test_a_stored_seed_size_reaches_segment_and_the_packages_decoder() -> None:
    """``seed_size`` in the clustering's ``params`` (where the tuning stores it): ``segment``'s route and the
    block-wise route decode with seeds, and the in-graph constructor arguments carry it as an integer."""
    from spoco_zoo.blockwise.volume import label_embeddings
    from spoco_zoo.cluster import cluster_setting
    from spoco_zoo.cluster.clustering_setting import ClusteringSetting

    emb, truth = bridged_volume()
    setting = ClusteringSetting("graph", None, foreground="mask", edge_threshold=0.3, params={"seed_size": 200.0})
    assert evaluate_instances(cluster_setting(emb, setting), truth)["sbd"] > 0.99
    blocks = np.zeros(truth.shape, np.int32)
    local = {**setting.as_dict(), "block_shape": [8, 16, 32], "overlap": [4, 8, 8]}
    assert label_embeddings(emb, "graph", local, blocks) == 4
    assert evaluate_instances(blocks, truth)["sbd"] > 0.99
    plain = {**local, "seed_size": 0}
    assert label_embeddings(emb, "graph", plain, blocks) == 1  # without seeds the windows join them too
    kwargs = setting.ingraph_kwargs()
    assert kwargs["seed_size"] == 200 and isinstance(kwargs["seed_size"], int)
    decoded = ingraph_module(kwargs)(torch.from_numpy(emb)[None])[0, 0].numpy()
    assert evaluate_instances(relabel_sequential(decoded), truth)["sbd"] > 0.99
