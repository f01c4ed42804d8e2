"""Training history on disk: ``metrics.csv``, a PNG plot of the curves, TensorBoard logs.

:class:`TrainingLog` is what the trainer calls: :meth:`~TrainingLog.log` after logged steps (loss
terms) and validations (metrics). Every call appends one row to ``OUT/metrics.csv`` (columns: step,
then every name seen so far; a new name rewrites the file with the wider header) and, when the
``tensorboard`` package is installed, writes the values to ``OUT/tensorboard/``;
:meth:`~TrainingLog.close` draws ``OUT/training_curves.png``. :func:`curves_figure` is that plot as a
matplotlib figure: the loss terms (and the validation loss, dashed) on a log scale on the left, the
validation scores on the right, both against the training step, the step of the best checkpoint
(:func:`checkpoint_score`, the trainer's rule for ``best.pt``) marked on both. :func:`plot_history`
writes it, from rows or a CSV.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "METRICS_CSV",
    "CURVES_PNG",
    "TrainingLog",
    "read_history",
    "checkpoint_score",
    "best_step",
    "curves_figure",
    "plot_history",
]

METRICS_CSV = "metrics.csv"
CURVES_PNG = "training_curves.png"
_VALIDATION = ("sbd", "map", "ap50", "object_dice", "object_ap50", "false_foreground", "val_embedding_loss")
#: Validation values drawn with the losses (log scale) rather than with the scores.
_VALIDATION_LOSSES = ("val_embedding_loss",)
#: Legend names of the validation values.
_NAMES = {
    "sbd": "SBD",
    "map": "mAP",
    "ap50": "AP50",
    "object_dice": "object Dice",
    "object_ap50": "object AP50",
    "false_foreground": "false foreground",
    "val_embedding_loss": "embedding loss (validation)",
}
#: Gid of the best-checkpoint lines (one per panel), for finding them in a figure.
BEST_GID = "best-checkpoint"


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


def checkpoint_score(metrics: Mapping[str, float]) -> float:
    """Higher is better: SBD when available, else the partial score on objects set aside, else minus
    the validation loss (the trainer keeps ``best.pt`` where this is highest).

    >>> checkpoint_score({"sbd": 0.7, "val_embedding_loss": 0.2}), checkpoint_score({"val_embedding_loss": 0.2})
    (0.7, -0.2)
    """
    if "sbd" in metrics:
        return float(metrics["sbd"])
    if "object_dice" in metrics:
        from spoco_zoo.metrics.partial import partial_score

        return partial_score(metrics)
    if "val_embedding_loss" in metrics:
        return -float(metrics["val_embedding_loss"])
    return -math.inf


def best_step(rows: Sequence[Mapping[str, float]]) -> int | None:
    """Step of the best validation (the first of equal scores, as the trainer keeps it); ``None`` without one.

    >>> best_step([{"step": 10, "total": 1.0}, {"step": 20, "sbd": 0.5}, {"step": 40, "sbd": 0.8},
    ...            {"step": 60, "sbd": 0.8}])
    40
    """
    best, step = -math.inf, None
    for row in rows:
        if any(k in row for k in _VALIDATION):
            score = checkpoint_score(row)
            if score > best:
                best, step = score, int(row["step"])
    return step


def _series(rows: Sequence[Mapping[str, float]], key: str) -> tuple[np.ndarray, np.ndarray]:
    pts = [(r["step"], r[key]) for r in rows if key in r and math.isfinite(r[key])]
    arr = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
    return arr[:, 0], arr[:, 1]


def _draw(ax: Axes, curves: Mapping[str, tuple[np.ndarray, np.ndarray]], validation: bool) -> None:
    """One panel: a line per series (with dots when there are few points), the legend outside, on the right."""
    for key, (x, y) in curves.items():
        dashed = key in _VALIDATION_LOSSES
        ax.plot(
            x,
            y,
            linestyle="--" if dashed else "-",
            marker="o" if (validation or dashed) and len(x) <= 40 else None,
            markersize=4,
            linewidth=2.0 if validation or dashed or key == "total" else 1.1,
            color="black" if dashed else None,
            label=_NAMES.get(key, key),
        )
    ax.set_xlabel("step")
    ax.grid(True, which="major", alpha=0.3)
    if not curves:
        ax.text(0.5, 0.5, "no values", transform=ax.transAxes, ha="center", va="center", color="grey")


def curves_figure(rows: Sequence[Mapping[str, float]]) -> Figure:
    """The training curves as a matplotlib :class:`~matplotlib.figure.Figure` (no pyplot state).

    Parameters
    ----------
    rows:
        History rows (``step`` and the values logged at it), as :func:`read_history` returns them.

    Returns
    -------
    matplotlib.figure.Figure
        Two axes: ``loss`` (training loss terms, solid, and the validation loss, dashed; log scale
        when any value is positive) and ``validation score`` (SBD, mAP, ...), both against ``step``.
        A vertical line (gid :data:`BEST_GID`) on each marks the step of the best checkpoint.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    keys = list(dict.fromkeys(k for r in rows for k in r if k != "step"))
    losses = {k: _series(rows, k) for k in keys if k not in _VALIDATION or k in _VALIDATION_LOSSES}
    scores = {k: _series(rows, k) for k in keys if k in _VALIDATION and k not in _VALIDATION_LOSSES}
    losses = {k: v for k, v in losses.items() if len(v[0])}
    scores = {k: v for k, v in scores.items() if len(v[0])}

    fig = Figure(figsize=(12.0, 4.2), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    loss_ax, score_ax = fig.subplots(1, 2, sharex=True)
    _draw(loss_ax, losses, validation=False)
    loss_ax.set_title("training loss terms")
    loss_ax.set_ylabel("loss")
    if any((v[1] > 0).any() for v in losses.values()):
        loss_ax.set_yscale("log")
    _draw(score_ax, scores, validation=True)
    score_ax.set_title("validation")
    score_ax.set_ylabel("score")
    if all(0.0 <= v[1].min() and v[1].max() <= 1.0 for v in scores.values()):
        score_ax.set_ylim(-0.02, 1.02)  # scores in [0, 1]: the whole range, comparable across runs
    score_ax.tick_params(labelbottom=True)
    best = best_step(rows)
    if best is not None:
        for ax in (loss_ax, score_ax):
            ax.axvline(
                best,
                color="tab:red",
                linestyle=":",
                linewidth=1.5,
                label=f"best checkpoint (step {best})",
                gid=BEST_GID,
            )
        if scores:  # a star on the first score (SBD when validated on ground truth) at that step
            x, y = next(iter(scores.values()))
            score_ax.plot(x[x == best], y[x == best], marker="*", markersize=13, color="tab:red", linestyle="none")
    for ax in (loss_ax, score_ax):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)
    return fig


def plot_history(rows: Sequence[Mapping[str, float]] | str | Path, path: str | Path) -> Path:
    """Write :func:`curves_figure` as a PNG at ``path``; ``rows`` are history rows or a ``metrics.csv`` path."""
    from spoco_zoo.figures import write_figure

    if isinstance(rows, (str, Path)):
        rows = read_history(rows)
    return write_figure(curves_figure(rows), path)
