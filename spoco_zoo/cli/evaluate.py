"""``spoco-zoo evaluate``: score predicted instance label images against ground truth.

Pairing: every ground-truth TIFF ``GT_DIR/<stem>.tif`` (or ``.tiff``) is paired
with the first existing of ``PRED_DIR/<stem>_instances.tif``,
``<stem>_instances.tiff``, ``<stem>.tif``, ``<stem>.tiff`` (the first two are
what ``spoco-zoo segment`` writes; for ``<name>.ome.tif`` ground truth,
``<name>_instances.tif`` is also accepted). Ground-truth files without a prediction
are listed and skipped; no pair at all is an error.

Scores per image are :func:`spoco_zoo.metrics.evaluate_instances` (SBD,
AP50/AP75/mAP, F1/precision/recall at IoU 0.5, adapted Rand error, VOI
split/merge); ``--ignore-label`` gt pixels (default ``-1``, the sparse-label
convention) are not counted. A rich table shows one row per image and the mean;
``--csv`` / ``--json`` write the same numbers (atomically).

``--figures DIR`` writes ``DIR/<stem>.png`` per image: ``image | ground truth | prediction`` with
false merges and false splits outlined (:mod:`spoco_zoo.comparison`); the image panel needs
``--images DIR``, where the raw image of ``<stem>`` is the first existing ``<stem><ext>``
(:data:`IMAGE_SUFFIXES`).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from spoco_zoo.cli.reporting import fail, reports_errors

if TYPE_CHECKING:
    import numpy as np

_TIFF = (".tif", ".tiff")
#: Extensions tried, in order, for the raw image of a ground-truth stem (``--images``).
IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp", ".h5", ".hdf5", ".hdf", ".zarr")


def pair_files(pred_dir: Path, gt_dir: Path) -> tuple[list[tuple[str, Path, Path]], list[Path]]:
    """``([(stem, pred, gt), ...], [gt files without prediction])`` (see the module docstring)."""
    pairs: list[tuple[str, Path, Path]] = []
    missing: list[Path] = []
    gts = sorted(
        p for p in gt_dir.iterdir() if p.is_file() and p.suffix.lower() in _TIFF and not p.name.startswith(".")
    )
    for gt in gts:
        stem = gt.name[: -len(gt.suffix)]
        stems = [stem] + ([stem[:-4]] if stem.lower().endswith(".ome") and len(stem) > 4 else [])
        candidates = [pred_dir / f"{s}_instances{ext}" for s in stems for ext in _TIFF]
        candidates += [pred_dir / f"{stem}{ext}" for ext in _TIFF]
        pred = next((c for c in candidates if c.is_file()), None)
        if pred is None:
            missing.append(gt)
        else:
            pairs.append((stem, pred, gt))
    return pairs, missing


def find_image(images_dir: Path, stem: str) -> Path | None:
    """The raw image of ``stem`` in ``images_dir`` (first existing ``<stem><ext>``), or ``None``."""
    return next((images_dir / f"{stem}{ext}" for ext in IMAGE_SUFFIXES if (images_dir / f"{stem}{ext}").exists()), None)


def _csv_text(rows: list[dict[str, object]], keys: tuple[str, ...]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["image", *keys, "pred", "gt"], lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k, "") for k in ["image", *keys, "pred", "gt"]})
    return buffer.getvalue()


def _write_figure(
    figures: Path,
    images: Path | None,
    stem: str,
    gt: np.ndarray,
    pred: np.ndarray,
    scores: dict[str, float],
    ignore_label: int,
) -> Path:
    """``figures/<stem>.png``: the comparison picture of one image (its raw image from ``images`` when found)."""
    from spoco_zoo.comparison import write_comparison
    from spoco_zoo.data.io import read_image
    from spoco_zoo.errors import DataError

    image = None
    if images is not None:
        image_path = find_image(images, stem)
        if image_path is None:
            typer.echo(f"warning: no image {stem}.* in {images}: figure without the image panel", err=True)
        else:
            try:
                image = read_image(image_path, spatial_dims=gt.ndim)
            except DataError as err:
                fail(str(err))
            if image.shape[1:] != gt.shape:
                fail(f"{image_path}: image shape {image.shape[1:]} does not match ground truth shape {gt.shape}")
    title = f"{stem}   SBD {scores['sbd']:.3f}   AP50 {scores['ap50']:.3f}   mAP {scores['map']:.3f}"
    figures.mkdir(parents=True, exist_ok=True)
    return write_comparison(figures / f"{stem}.png", gt, pred, image, title=title, ignore_label=ignore_label)


def register(app: typer.Typer) -> None:
    @app.command("evaluate")
    @reports_errors(code=1)
    def evaluate(
        pred_dir: Path = typer.Argument(
            ..., help="Folder of predicted label TIFFs (<stem>_instances.tif or <stem>.tif)."
        ),
        gt_dir: Path = typer.Argument(..., help="Folder of ground-truth label TIFFs (<stem>.tif)."),
        csv_path: Path | None = typer.Option(None, "--csv", help="Write per-image scores and the mean to CSV."),
        json_path: Path | None = typer.Option(None, "--json", help="Write per-image scores and the mean to JSON."),
        ignore_label: int = typer.Option(-1, "--ignore-label", help="Ground-truth value of unannotated pixels."),
        figures: Path | None = typer.Option(
            None,
            "--figures",
            help="Write DIR/<stem>.png per image: image | ground truth | prediction, false merges and splits outlined.",
        ),
        images: Path | None = typer.Option(
            None, "--images", help="Folder of the raw images (<stem>.tif, .png, ...) shown by --figures."
        ),
    ) -> None:
        """Score instance segmentations (SBD, AP, F1, ARand, VOI) against ground truth, per image and on average."""
        for path, name in ((pred_dir, "PRED_DIR"), (gt_dir, "GT_DIR")):
            if not path.is_dir():
                fail(f"{path}: {name} is not a folder")
        for target, option, example in ((csv_path, "--csv", "scores.csv"), (json_path, "--json", "scores.json")):
            if target is not None and target.is_dir():
                fail(f"{option} {target}: is a folder; give a file name, e.g. {target / example}")
        if images is not None and not images.is_dir():
            fail(f"--images {images}: is not a folder")
        if images is not None and figures is None:
            fail("--images: only used with --figures; add --figures DIR")
        if figures is not None and figures.exists() and not figures.is_dir():
            fail(f"--figures {figures}: is a file; give a folder")
        pairs, missing = pair_files(pred_dir, gt_dir)
        if not pairs:
            fail(
                f"no prediction in {pred_dir} matches a ground-truth TIFF in {gt_dir} "
                "(expected <stem>_instances.tif or <stem>.tif for each <stem>.tif)"
            )
        for gt in missing:
            typer.echo(f"warning: {gt}: no prediction found in {pred_dir}, skipped", err=True)

        import numpy as np
        from rich.console import Console
        from rich.table import Table

        from spoco_zoo.atomic import atomic_write_bytes
        from spoco_zoo.data.io import read_labels
        from spoco_zoo.errors import DataError
        from spoco_zoo.metrics import METRIC_KEYS, evaluate_instances

        rows: list[dict[str, object]] = []
        for stem, pred_path, gt_path in pairs:
            try:
                pred_labels = read_labels(pred_path)
                gt_labels = read_labels(gt_path, ignore_label=ignore_label)
            except DataError as err:
                fail(str(err))
            if pred_labels.shape != gt_labels.shape:
                fail(
                    f"{pred_path}: prediction shape {pred_labels.shape} does not match ground truth {gt_path} "
                    f"shape {gt_labels.shape}"
                )
            try:
                scores = evaluate_instances(pred_labels, gt_labels, ignore_label=ignore_label)
            except ValueError as err:
                fail(f"{pred_path} vs {gt_path}: {err}")
            rows.append({"image": stem, **scores, "pred": str(pred_path), "gt": str(gt_path)})
            if figures is not None:
                picture = _write_figure(figures, images, stem, gt_labels, pred_labels, scores, ignore_label)
                typer.echo(f"figure: {picture}")

        mean = {k: float(np.mean([float(r[k]) for r in rows])) for k in METRIC_KEYS}  # type: ignore[arg-type]

        table = Table(title=f"instance metrics ({len(rows)} image{'s' if len(rows) != 1 else ''})")
        table.add_column("image")
        for k in METRIC_KEYS:
            table.add_column(k, justify="right")
        for row in rows:
            table.add_row(str(row["image"]), *(f"{float(row[k]):.4f}" for k in METRIC_KEYS))  # type: ignore[arg-type]
        table.add_section()
        table.add_row("[bold]mean", *(f"[bold]{mean[k]:.4f}" for k in METRIC_KEYS))
        console = Console()
        if not console.is_terminal:
            console = Console(width=160)  # pipes / captured output: do not squeeze the columns
        console.print(table)

        if csv_path is not None:
            text = _csv_text(rows + [{"image": "mean", **mean}], METRIC_KEYS)
            atomic_write_bytes(csv_path, text.encode("utf-8"))
            typer.echo(f"csv: {csv_path}")
        if json_path is not None:
            payload = {
                "pred_dir": str(pred_dir),
                "gt_dir": str(gt_dir),
                "ignore_label": ignore_label,
                "metrics": list(METRIC_KEYS),
                "images": rows,
                "mean": mean,
                "unmatched_gt": [str(p) for p in missing],
            }
            atomic_write_bytes(json_path, (json.dumps(payload, indent=2) + "\n").encode("utf-8"))
            typer.echo(f"json: {json_path}")
