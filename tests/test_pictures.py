"""Pictures: training curves (matplotlib), overlay outlines (scikit-image), the evaluate figure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from spoco_zoo.overlay import outline_mask, overlay_rgb, write_png


def history_rows() -> list[dict[str, float]]:
    """Loss terms every 10 steps, validations at 50, 100 and 150 (SBD best at 100)."""
    rows: list[dict[str, float]] = [
        {"step": float(s), "total": 4.0 / s, "pull": 1.0 / s, "push": 0.0} for s in range(10, 160, 10)
    ]
    for step, sbd in ((50, 0.4), (100, 0.8), (150, 0.7)):
        rows.append({"step": float(step), "sbd": sbd, "map": sbd / 2, "val_embedding_loss": 1.0 / step})
    return rows


def test_curves_figure_has_a_log_loss_panel_a_score_panel_and_the_best_step() -> None:
    from spoco_zoo.train.history import BEST_GID, best_step, curves_figure

    rows = history_rows()
    assert best_step(rows) == 100
    fig = curves_figure(rows)
    loss_ax, score_ax = fig.axes
    assert loss_ax.get_yscale() == "log" and score_ax.get_yscale() == "linear"
    assert loss_ax.get_xlabel() == score_ax.get_xlabel() == "step"
    assert loss_ax.get_ylabel() == "loss" and score_ax.get_ylabel() == "score"
    loss_names = {line.get_label() for line in loss_ax.get_lines()}
    score_names = {line.get_label() for line in score_ax.get_lines()}
    assert {"total", "pull", "push", "embedding loss (validation)"} <= loss_names
    assert {"SBD", "mAP"} <= score_names and "total" not in score_names and "SBD" not in loss_names
    for ax in (loss_ax, score_ax):
        (best,) = [line for line in ax.get_lines() if line.get_gid() == BEST_GID]
        assert list(best.get_xdata()) == [100, 100] and "step 100" in str(best.get_label())
        legend = ax.get_legend()
        assert legend is not None
        # the legend lies right of the axes, not over the curves
        fig.canvas.draw()
        assert legend.get_window_extent().x0 >= ax.get_window_extent().x1


def test_curves_without_validation_have_no_best_marker(tmp_path: Path) -> None:
    import imageio.v3 as iio

    from spoco_zoo.train.history import BEST_GID, curves_figure, plot_history

    rows = [r for r in history_rows() if "sbd" not in r]
    fig = curves_figure(rows)
    assert not [line for ax in fig.axes for line in ax.get_lines() if line.get_gid() == BEST_GID]
    png = plot_history(rows, tmp_path / "curves.png")
    picture = iio.imread(png)
    assert picture.shape == (420, 1200, 3) and picture.std() > 10  # drawn, not blank


def test_overlay_outlines_lie_on_object_boundaries() -> None:
    """Coloured pixels are exactly the object pixels with a 4-neighbour of another label."""
    rng = np.random.default_rng(2)
    labels = np.zeros((40, 50), np.int32)
    for i, (y, x) in enumerate(rng.integers(4, 36, size=(6, 2)), start=1):
        labels[y - 4 : y + 4, x - 3 : x + 5] = i
    padded = np.pad(labels, 1, mode="edge")
    centre = padded[1:-1, 1:-1]
    differs = np.zeros(labels.shape, bool)
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        differs |= padded[dy : dy + 40, dx : dx + 50] != centre
    expected = differs & (labels > 0)
    assert np.array_equal(outline_mask(labels), expected)

    image = np.full(labels.shape, 0.5)
    rgb = overlay_rgb(image, labels).astype(int)
    coloured = (rgb.max(axis=-1) - rgb.min(axis=-1)) > 0
    assert np.array_equal(coloured, expected)


def test_write_png_round_trips(tmp_path: Path) -> None:
    import imageio.v3 as iio

    rgb = np.random.default_rng(0).integers(0, 256, (7, 9, 3), dtype=np.uint8)
    assert np.array_equal(iio.imread(write_png(tmp_path / "a.png", rgb)), rgb)


def test_overlay_rejects_an_image_of_another_shape() -> None:
    with pytest.raises(ValueError, match="image: shape"):
        overlay_rgb(np.zeros((5, 5)), np.zeros((4, 4), np.int32))


# ------------------------------------------------------------------ false merges and splits
def discs(shape: tuple[int, int], centres: list[tuple[int, int]], radius: int) -> np.ndarray:
    """Label image of discs numbered 1, 2, ... in the order of ``centres``."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    labels = np.zeros(shape, np.int32)
    for i, (y, x) in enumerate(centres, start=1):
        labels[(yy - y) ** 2 + (xx - x) ** 2 <= radius**2] = i
    return labels


def test_merges_and_splits_on_constructed_cases() -> None:
    from spoco_zoo.metrics import merges_and_splits

    gt = discs((40, 80), [(20, 12), (20, 34), (20, 62)], 8)  # discs 1 and 2 are 6 px apart

    perfect = merges_and_splits(gt * 3, gt)  # other ids, same objects
    assert all(len(ids) == 0 for ids in (perfect.merges, perfect.merged, perfect.splits, perfect.pieces))

    merged = np.where(gt == 3, 9, 0)
    merged[8:32, 2:44] = 5  # one box over discs 1 and 2
    found = merges_and_splits(merged, gt)
    assert found.merges.tolist() == [5] and found.merged.tolist() == [1, 2]
    assert found.splits.size == 0 and found.pieces.size == 0

    split = np.where(gt == 3, 0, gt)
    split[(gt == 3) & (np.arange(80) < 62)] = 7  # disc 3 cut in two halves
    split[(gt == 3) & (np.arange(80) >= 62)] = 8
    found = merges_and_splits(split, gt)
    assert found.splits.tolist() == [3] and found.pieces.tolist() == [7, 8]
    assert found.merges.size == 0 and found.merged.size == 0


def test_thresholds_of_merges_and_splits() -> None:
    """A piece of 16 % of a ground-truth object is no split, one of 30 % is; covering two objects by
    16 % and 30 % is no merge."""
    from spoco_zoo.metrics import merges_and_splits

    gt = discs((40, 80), [(20, 12), (20, 34)], 8)
    x = np.arange(80)
    pred = gt.copy()
    pred[(gt == 1) & (x >= 17)] = 3
    pred[(gt == 2) & (x < 32)] = 3
    covers = [((pred == 3) & (gt == i)).sum() / (gt == i).sum() for i in (1, 2)]
    assert 0.15 < covers[0] < 0.2 and 0.2 < covers[1] < 0.5
    found = merges_and_splits(pred, gt)
    assert found.splits.tolist() == [2] and found.pieces.tolist() == [2, 3]
    assert found.merges.size == 0 and found.merged.size == 0
    assert merges_and_splits(pred, gt, split_cover=0.35).splits.size == 0
    assert merges_and_splits(pred, gt, merge_cover=0.15).merges.tolist() == [3]


def test_comparison_figure_outlines_the_errors() -> None:
    from spoco_zoo.comparison import MERGE_COLOUR, SPLIT_COLOUR, comparison_figure
    from spoco_zoo.figures import figure_rgb

    gt = discs((40, 80), [(20, 12), (20, 34), (20, 62)], 8)
    pred = np.where(gt == 3, 0, gt)
    pred[(gt == 1) | (gt == 2)] = 4  # discs 1 and 2 merged
    pred[(gt == 3) & (np.arange(80) < 62)] = 7  # disc 3 split
    pred[(gt == 3) & (np.arange(80) >= 62)] = 8
    fig = comparison_figure(gt, pred, image=gt.astype(float))
    assert [ax.get_title() for ax in fig.axes] == ["image", "ground truth (3 objects)", "prediction (3 objects)"]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["false merge (1)", "false split (1)"]
    prediction = fig.axes[2].get_images()[0].get_array()
    colours = {tuple(np.round(c, 3)) for c in np.asarray(prediction).reshape(-1, 3)}
    assert tuple(np.round(MERGE_COLOUR, 3)) in colours and tuple(np.round(SPLIT_COLOUR, 3)) in colours
    assert figure_rgb(fig).shape == (round(400 * 40 / 80) + 95, 3 * 400, 3)


def test_evaluate_figures_writes_one_png_per_image(tmp_path: Path) -> None:
    import imageio.v3 as iio
    import tifffile
    from typer.testing import CliRunner

    from spoco_zoo.cli.main import app

    gt_dir, pred_dir, image_dir, out = (tmp_path / name for name in ("gt", "pred", "images", "figures"))
    for folder in (gt_dir, pred_dir, image_dir):
        folder.mkdir()
    gt = discs((40, 80), [(20, 12), (20, 34), (20, 62)], 8).astype(np.uint16)
    merged = gt.copy()
    merged[merged == 2] = 1
    for stem, pred in (("a", gt), ("b", merged)):
        tifffile.imwrite(gt_dir / f"{stem}.tif", gt)
        tifffile.imwrite(pred_dir / f"{stem}_instances.tif", pred)
    tifffile.imwrite(image_dir / "a.tif", gt.astype(np.float32))  # b has no image: two panels

    runner = CliRunner()
    args = ["evaluate", str(pred_dir), str(gt_dir), "--figures", str(out), "--images", str(image_dir)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]
    assert iio.imread(out / "a.png").shape == (200 + 95, 1200, 3)
    assert iio.imread(out / "b.png").shape == (200 + 95, 800, 3)
    assert "no image b.*" in result.output

    lonely = runner.invoke(app, ["evaluate", str(pred_dir), str(gt_dir), "--images", str(image_dir)])
    assert lonely.exit_code != 0 and "--figures" in lonely.output
