"""Training history on disk: ``metrics.csv``, a PNG plot of the curves, TensorBoard logs.

:class:`TrainingLog` is what the trainer calls: :meth:`~TrainingLog.log` after logged steps (loss
terms) and validations (metrics). Every call appends one row to ``OUT/metrics.csv`` (columns: step,
then every name seen so far; a new name rewrites the file with the wider header) and, when the
``tensorboard`` package is installed, writes the values to ``OUT/tensorboard/``;
:meth:`~TrainingLog.close` draws ``OUT/training_curves.png`` (loss terms on the left, validation
metrics on the right; Pillow). :func:`plot_history` redraws the plot from a CSV.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["METRICS_CSV", "CURVES_PNG", "TrainingLog", "read_history", "plot_history"]

METRICS_CSV = "metrics.csv"
CURVES_PNG = "training_curves.png"
_VALIDATION = ("sbd", "map", "ap50", "object_dice", "object_ap50", "false_foreground", "val_embedding_loss")


class TrainingLog:
    """Append-only record of a run in ``out_dir`` (see the module docstring).

    Parameters
    ----------
    out_dir:
        The run folder.
    resume:
        Keep an existing ``metrics.csv`` (a resumed run) instead of starting a new one.
    tensorboard:
        Also write TensorBoard event files when ``torch.utils.tensorboard`` can be imported.
    """

    def __init__(self, out_dir: str | Path, resume: bool = False, tensorboard: bool = True) -> None:
        self.out_dir = Path(out_dir)
        self.csv_path = self.out_dir / METRICS_CSV
        self.rows: list[dict[str, float]] = read_history(self.csv_path) if resume and self.csv_path.exists() else []
        self.columns: list[str] = ["step", *dict.fromkeys(k for r in self.rows for k in r if k != "step")]
        if not resume or not self.csv_path.exists():
            self._rewrite()
        self.writer: Any = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard not installed
                pass
            else:
                self.writer = SummaryWriter(str(self.out_dir / "tensorboard"))

    def _rewrite(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with open(self.csv_path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.columns, restval="")
            writer.writeheader()
            writer.writerows(self.rows)

    def log(self, step: int, values: Mapping[str, float]) -> None:
        """Record ``values`` (loss terms or validation metrics) at ``step``."""
        row = {"step": float(step), **{k: float(v) for k, v in values.items()}}
        self.rows.append(row)
        new = [k for k in row if k not in self.columns]
        if new:
            self.columns += new
            self._rewrite()
        else:
            with open(self.csv_path, "a", newline="") as f:
                csv.DictWriter(f, fieldnames=self.columns, restval="").writerow(row)
        if self.writer is not None:
            for key, value in values.items():
                group = "validation" if key in _VALIDATION else "train"
                self.writer.add_scalar(f"{group}/{key}", float(value), step)

    def close(self) -> Path | None:
        """Flush TensorBoard and draw the curves; returns the PNG (``None`` without rows)."""
        if self.writer is not None:
            self.writer.close()
        return plot_history(self.rows, self.out_dir / CURVES_PNG) if self.rows else None


def read_history(path: str | Path) -> list[dict[str, float]]:
    """Rows of a ``metrics.csv`` (empty cells left out)."""
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]


def _series(rows: Sequence[Mapping[str, float]], key: str) -> tuple[np.ndarray, np.ndarray]:
    pts = [(r["step"], r[key]) for r in rows if key in r and math.isfinite(r[key])]
    arr = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
    return arr[:, 0], arr[:, 1]


_PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75)]


def _panel(draw: Any, box: tuple[int, int, int, int], title: str, curves: dict[str, tuple[np.ndarray, np.ndarray]]):
    x0, y0, x1, y1 = box
    left, top, right, bottom = x0 + 52, y0 + 22, x1 - 10, y1 - 28
    draw.rectangle([left, top, right, bottom], outline=(0, 0, 0))
    draw.text((x0 + 52, y0 + 4), title, fill=(0, 0, 0))
    curves = {k: v for k, v in curves.items() if len(v[0])}
    if not curves:
        draw.text((left + 10, top + 10), "no values", fill=(90, 90, 90))
        return
    xs = np.concatenate([v[0] for v in curves.values()])
    ys = np.concatenate([v[1] for v in curves.values()])
    xmin, xmax = float(xs.min()), float(xs.max()) if xs.max() > xs.min() else float(xs.min()) + 1
    ymin, ymax = float(ys.min()), float(ys.max())
    if ymax <= ymin:
        ymin, ymax = ymin - 0.5, ymax + 0.5

    def to_px(x: np.ndarray, y: np.ndarray) -> list[tuple[float, float]]:
        px = left + (x - xmin) / (xmax - xmin) * (right - left)
        py = bottom - (y - ymin) / (ymax - ymin) * (bottom - top)
        return list(zip(px.tolist(), py.tolist()))

    for frac in (0.0, 0.5, 1.0):
        value = ymin + frac * (ymax - ymin)
        level = bottom - frac * (bottom - top)
        draw.line([left - 4, level, left, level], fill=(0, 0, 0))
        draw.text((x0 + 2, level - 6), f"{value:.3g}", fill=(0, 0, 0))
        tick = left + frac * (right - left)
        draw.line([tick, bottom, tick, bottom + 4], fill=(0, 0, 0))
        draw.text((tick - 12, bottom + 6), f"{xmin + frac * (xmax - xmin):.0f}", fill=(0, 0, 0))
    draw.text((right - 30, bottom + 14), "step", fill=(0, 0, 0))
    for i, (name, (x, y)) in enumerate(curves.items()):
        colour = _PALETTE[i % len(_PALETTE)]
        pts = to_px(x, y)
        if len(pts) > 1:
            draw.line(pts, fill=colour, width=2)
        for px, py in pts if len(pts) <= 30 else []:
            draw.ellipse([px - 2, py - 2, px + 2, py + 2], fill=colour)
        draw.text((right - 150, top + 4 + 12 * i), name, fill=colour)


def plot_history(rows: Sequence[Mapping[str, float]] | str | Path, path: str | Path) -> Path:
    """Draw the training curves (losses left, validation metrics right) into a PNG at ``path``.

    ``rows`` are the history rows (or the path of a ``metrics.csv``).
    """
    from PIL import Image, ImageDraw

    if isinstance(rows, (str, Path)):
        rows = read_history(rows)
    keys = list(dict.fromkeys(k for r in rows for k in r if k != "step"))
    losses = {k: _series(rows, k) for k in keys if k not in _VALIDATION}
    metrics = {k: _series(rows, k) for k in keys if k in _VALIDATION}
    image = Image.new("RGB", (960, 360), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    _panel(draw, (0, 0, 480, 360), "training loss terms", losses)
    _panel(draw, (480, 0, 960, 360), "validation", metrics)
    path = Path(path)
    image.save(path)
    return path
