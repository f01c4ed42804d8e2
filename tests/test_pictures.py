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
