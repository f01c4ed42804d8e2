"""Local clustering: connected components, block grid, stitching, the recommended segmentation."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.measure import label as skimage_label

from spoco_zoo.cluster.blockwise import (
    block_grid,
    label_offsets,
    local_region,
    match_overlap,
    match_windows,
    overlapping_pairs,
    stitch_table,
)
from spoco_zoo.cluster.components import split_connected_components
from spoco_zoo.cluster.instances import segment_embeddings
from spoco_zoo.data.synthetic import make_synthetic_sample
from spoco_zoo.errors import DataError
from spoco_zoo.metrics import evaluate_instances


def fake_embeddings(labels: np.ndarray, dim: int = 8, n_codes: int = 12, noise: float = 0.05, seed: int = 0):
    """Embeddings that separate neighbours only: object i sits at code (i mod n_codes)."""
    rng = np.random.default_rng(seed)
    codes = rng.normal(size=(n_codes + 1, dim)).astype(np.float32) * 3.0
    codes[0] = 0.0  # background
    ids = np.where(labels > 0, (labels - 1) % n_codes + 1, 0)
    emb = codes[ids] + rng.normal(scale=noise, size=(*labels.shape, dim)).astype(np.float32)
    return np.moveaxis(emb, -1, 0)


@pytest.mark.parametrize("shape", [(64, 80), (12, 40, 30)])
def test_connected_components_match_scikit_image(shape: tuple) -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, shape)
    ours = split_connected_components(labels)
    reference = skimage_label(labels, background=0, connectivity=1)
    assert ours.dtype == np.int32 and ours.max() == reference.max()
    # same partition: a one-to-one map between the two id sets
    pairs = np.unique(np.stack([ours.ravel(), reference.ravel()]), axis=1)
    assert pairs.shape[1] == ours.max() + 1
    assert np.array_equal(ours == 0, labels == 0)


def test_connected_components_without_background_and_bad_dtype() -> None:
    labels = np.array([[1, 1, 2], [2, 2, 2]])
    assert split_connected_components(labels).tolist() == [[1, 1, 2], [2, 2, 2]]
    with pytest.raises(DataError, match="labels"):
        split_connected_components(labels.astype(np.float32))


def test_block_grid_cores_tile_the_image() -> None:
    shape = (70, 45)
    grid = block_grid(shape, (32, 20), 6)
    covered = np.zeros(shape, dtype=int)
    for block in grid:
        covered[block.core] += 1
        for window, core, extent in zip(block.window, block.core, shape):
            assert window.start == max(0, core.start - 6) and window.stop == min(extent, core.stop + 6)
    assert (covered == 1).all()
    assert len(grid) == 3 * 3
    with pytest.raises(DataError, match="block_shape"):
        block_grid(shape, (0, 20), 6)
    with pytest.raises(DataError, match="overlap"):
        block_grid(shape, 16, -1)


def test_match_overlap_requires_mutual_best_iou() -> None:
    a = np.array([1, 1, 1, 1, 2, 2, 0, 0])
    b = np.array([5, 5, 5, 6, 6, 6, 6, 6])
    # 1 <-> 5 (IoU 3/4); 2's best is 6 (IoU 2/5 < 0.5): no match
    assert match_overlap(a, b) == [(1, 5)]
    assert match_overlap(a, b, min_iou=0.3) == [(1, 5), (2, 6)]
    assert match_overlap(np.zeros(4, int), b[:4]) == []


def test_stitching_reassembles_a_partition_cut_into_blocks() -> None:
    """Labels of overlapping windows cut from one label image (ids scrambled per block) stitch back to it."""
    _, truth = make_synthetic_sample((160, 160), 30, seed=3)
    grid = block_grid(truth.shape, 48, 16)
    rng = np.random.default_rng(0)
    block_labels = []
    for block in grid:
        window = truth[block.window]
        scramble = rng.permutation(int(truth.max()) + 1) + 1
        scramble[0] = 0
        block_labels.append(scramble[window])
    from spoco_zoo.cluster.pipeline import segment_blocks

    stitched = np.zeros(truth.shape, np.int32)
    count = segment_blocks(truth.shape, grid, lambda i: block_labels[i], stitched, masked=True, split_components=False)
    assert count == len(np.unique(truth)) - 1
    assert evaluate_instances(stitched, truth)["sbd"] == 1.0


def reference_stitch(shape, grid, block_labels) -> np.ndarray:
    """One label image from overlapping windows' labels, all in memory (ids not consecutive)."""
    offsets, total = label_offsets([int(np.max(labels, initial=0)) for labels in block_labels])
    matches = [
        match_windows(grid[i], grid[j], block_labels[i], block_labels[j], offsets[i], offsets[j])
        for i, j in overlapping_pairs(grid)
    ]
    table = stitch_table(total, np.concatenate([np.zeros((0, 2), np.int64), *matches]))
    out = np.zeros(shape, dtype=np.int64)
    for block, labels, offset in zip(grid, block_labels, offsets):
        core = np.asarray(labels[local_region(block.core, block.window)]).astype(np.int64)
        out[block.core] = np.where(core > 0, table[np.where(core > 0, core + offset, 0)], 0)
    return out


def test_segment_embeddings_splits_far_objects_sharing_a_code() -> None:
    """Embeddings that only separate neighbours: global clustering merges far-apart objects,
    connected components and local clustering recover them."""
    _, truth = make_synthetic_sample((192, 192), 90, seed=4)
    emb = fake_embeddings(truth, n_codes=12)
    merged = segment_embeddings(emb, bandwidth=0.5, split_components=False, device="cpu")
    split = segment_embeddings(emb, bandwidth=0.5, device="cpu")
    local = segment_embeddings(emb, bandwidth=0.5, block_shape=64, overlap=24, device="cpu")
    scores = {
        name: evaluate_instances(pred, truth)["sbd"]
        for name, pred in [("merged", merged), ("split", split), ("local", local)]
    }
    assert merged.max() <= 13 and scores["merged"] < 0.4
    assert scores["split"] > 0.9
    assert scores["local"] > 0.9


# ------------------------------------------------------------------ block-wise == whole image
def reference_absorb(labels: np.ndarray, min_size: int, max_rounds: int = 8) -> np.ndarray:
    """The merge rounds pixel by pixel, as the whole-image pipeline first implemented them."""
    out = labels.astype(np.int64, copy=True)
    if min_size <= 1:
        return out
    for _ in range(max_rounds):
        sizes = np.bincount(out.reshape(-1))
        small = sizes < min_size
        small[0] = False
        if not small[out].any():
            break
        firsts, seconds = [], []
        for axis in range(out.ndim):
            low = np.take(out, np.arange(out.shape[axis] - 1), axis=axis).reshape(-1)
            high = np.take(out, np.arange(1, out.shape[axis]), axis=axis).reshape(-1)
            for a, b in ((low, high), (high, low)):
                keep = (a != b) & small[a]
                firsts.append(a[keep])
                seconds.append(b[keep])
        first, second = np.concatenate(firsts), np.concatenate(seconds)
        if first.size == 0:
            break
        width = np.int64(len(sizes))
        pairs, counts = np.unique(first * width + second, return_counts=True)
        source, target = pairs // width, pairs % width
        order = np.lexsort((-counts, small[target], source))
        best = np.ones(len(order), dtype=bool)
        best[1:] = source[order][1:] != source[order][:-1]
        mapping = np.arange(len(sizes), dtype=np.int64)
        mapping[source[order][best]] = target[order][best]
        out = mapping[out]
    return out


def reference_segmentation(shape, grid, window_labels, split: bool, min_size: int, background: bool) -> np.ndarray:
    """Stitch in memory, then background, connected components (scikit-image), absorb, renumber."""
    from spoco_zoo.cluster.common import relabel_sequential, set_largest_to_background

    labels = reference_stitch(shape, grid, window_labels)
    if background:
        labels = set_largest_to_background(labels)
    if split:
        labels = skimage_label(labels, background=0, connectivity=1)
    return relabel_sequential(reference_absorb(labels, min_size))


def noisy_window_labels(truth: np.ndarray, grid, seed: int, n_codes: int) -> list[np.ndarray]:
    """Each window: the truth with ids scrambled, a few objects split in two and merged with a neighbour's id."""
    rng = np.random.default_rng(seed)
    out = []
    for block in grid:
        window = truth[block.window]
        scramble = rng.permutation(int(truth.max()) + 1) % n_codes + 1  # objects share ids: components split them
        labels = scramble[window]
        noise = rng.random(window.shape) < 0.01  # isolated pixels of a random cluster: small fragments
        labels[noise] = rng.integers(1, 12, int(noise.sum()))
        out.append(labels)
    return out


@pytest.mark.parametrize(
    ("shape", "block", "overlap", "n_objects", "n_codes"),
    [((96, 120), 32, 8, 40, 9), ((20, 40, 36), (8, 16, 16), 4, 12, 13)],
)
@pytest.mark.parametrize(("split", "min_size", "background"), [(True, 12, True), (False, 12, True), (True, 0, False)])
def test_block_pipeline_equals_whole_image_pipeline(
    shape, block, overlap, n_objects, n_codes, split, min_size, background
) -> None:
    """Identical labels (ids included) to stitching in memory and post-processing the whole image."""
    from spoco_zoo.cluster.pipeline import segment_blocks

    _, truth = make_synthetic_sample(shape, n_objects, seed=7)
    grid = block_grid(shape, block, overlap)
    windows = noisy_window_labels(truth, grid, seed=1, n_codes=n_codes)
    expected = reference_segmentation(shape, grid, windows, split, min_size, background)
    labels = np.zeros(shape, np.int32)
    count = segment_blocks(
        shape,
        grid,
        lambda i: windows[i],
        labels,
        masked=not background,
        split_components=split,
        min_size=min_size,
    )
    assert count == expected.max() > 5
    assert np.array_equal(labels, expected)


def test_background_is_the_largest_cluster_of_most_blocks_not_a_longer_chain() -> None:
    """Far-apart objects that share an embedding share one cluster in every window, and stitching
    chains them across the image into one group. Here that chain has more pixels than either of the
    two background groups (an object band cuts the background's stitch), but in every block core the
    background is the largest cluster: the background must be a background group, and every object
    must stay an object (the 4096x4096 case that lost 35 % of its objects)."""
    from spoco_zoo.cluster.pipeline import segment_blocks

    shape = (8, 64)
    code = np.ones(shape, np.int64)  # the same labels in every window: 1 background, 2 objects
    code[:, 28:36] = 2  # a band over the whole overlap of blocks 1 and 2: the background splits in two
    squares = [(1, c) for c in (2, 8, 14, 20, 40, 46, 52, 58)] + [(5, c) for c in (5, 11, 43, 49, 55)]
    for r, c in squares:
        code[r : r + 3, c : c + 3] = 2
    blocks = block_grid(shape, (8, 16), (0, 4))
    objects = code == 2
    assert objects.sum() > (~objects[:, :32]).sum() and objects.sum() > (~objects[:, 32:]).sum()
    assert all((~objects[b.core]).sum() > objects[b.core].sum() for b in blocks)

    labels = np.zeros(shape, np.int32)
    segment_blocks(shape, blocks, lambda i: code[blocks[i].window], labels)
    for r, c in squares:  # each square is one object of its own
        patch = labels[r : r + 3, c : c + 3]
        assert (patch > 0).all() and len(np.unique(patch)) == 1
    assert (labels[:, 28:36] > 0).all()
    assert (labels[0, :2] == 0).all() or (labels[0, 62:] == 0).all()  # one background group is 0


def test_match_overlap_counts_small_and_large_ids_alike() -> None:
    """Small ids are counted in a dense table, large ones by sorting: the same matches either way."""
    rng = np.random.default_rng(3)
    a = rng.integers(0, 12, 5000) * (rng.random(5000) > 0.1)
    b = (a * 7 + rng.integers(0, 2, 5000)) % 40  # mostly one-to-one with some splits
    dense = match_overlap(a, b, min_iou=0.3)
    big = 10**9
    sparse = match_overlap(np.where(a > 0, a + big, 0), np.where(b > 0, b + 2 * big, 0), min_iou=0.3)
    assert len(dense) >= 5
    assert sparse == [(x + big, y + 2 * big) for x, y in dense]
