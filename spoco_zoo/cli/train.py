"""``spoco-zoo train``: YAML config + CLI overrides -> trained checkpoints."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from spoco_zoo.cli.reporting import fail, reports_errors

_IMAGE_SUFFIXES = (".tif", ".tiff", ".h5", ".hdf5", ".hdf", ".zarr", ".png", ".jpg", ".jpeg", ".bmp")


def _expand(paths: list[Path] | None, what: str) -> list[str] | None:
    """Files as given; a directory stands for its image files, sorted by name."""
    if not paths:
        return None
    out: list[str] = []
    for path in paths:
        if path.is_dir() and path.suffix != ".zarr":
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
            if not found:
                raise typer.BadParameter(f"{path}: holds no TIFF/HDF5/Zarr/PNG/JPEG/BMP files", param_hint=what)
            out.extend(str(p) for p in found)
        elif path.exists():
            out.append(str(path))
        else:
            raise typer.BadParameter(f"{path}: no such file or directory", param_hint=what)
    return out


def register(app: typer.Typer) -> None:
    @app.command("train")
    @reports_errors(code=1)
    def train(
        config: Path | None = typer.Option(None, "--config", "-c", help="YAML config (defaults otherwise)."),
        preset: str | None = typer.Option(
            None, "--preset", help="cpu | gpu: a recipe below --config and --set (default: the gpu defaults)."
        ),
        override: list[str] = typer.Option([], "--set", help="Override a config key: --set loss.delta_var=0.4"),
        out: Path | None = typer.Option(None, "--out", "-o", help="Output directory (config out_dir)."),
        steps: int | None = typer.Option(None, help="Number of optimisation steps."),
        images: list[Path] | None = typer.Option(None, "--images", help="Training images (files or folders)."),
        labels: list[Path] | None = typer.Option(None, "--labels", help="Training labels, same order."),
        val_images: list[Path] | None = typer.Option(None, "--val-images"),
        val_labels: list[Path] | None = typer.Option(None, "--val-labels", help="Dense validation labels."),
        object_fraction: float | None = typer.Option(
            None, "--object-fraction", help="Fraction of objects kept as annotated (paper protocol)."
        ),
        label_convention: str | None = typer.Option(
            None,
            "--label-convention",
            help="objects_and_background (0 = background, -1 = not annotated; default) or objects_only "
            "(painted objects, every other pixel unknown).",
        ),
        three_d: bool = typer.Option(
            False, "--3d", help="Train a 3D model: the preset's 3D recipe (spoco_zoo.presets; synthetic: 3D volumes)."
        ),
        device: str | None = typer.Option(None, help="auto | cpu | cuda | cuda:N"),
        seed: int | None = typer.Option(None),
        resume: bool = typer.Option(False, "--resume", help="Continue from OUT/last.pt."),
        progress: bool = typer.Option(True, "--progress/--no-progress"),
        gpus: int = typer.Option(1, "--gpus", min=1, help="Train in N processes, one per GPU (runs torchrun)."),
    ) -> None:
        """Train a SPOCO embedding network from sparse instance labels.

        Without --images the built-in synthetic dataset (crowded, touching objects)
        is used with 10% of the objects annotated.
        """
        if gpus > 1 and "WORLD_SIZE" not in os.environ:  # start N processes that run this command
            from spoco_zoo.train.distributed import launch, without_option

            raise typer.Exit(launch(gpus, without_option(sys.argv[1:], "--gpus")))
        from spoco_zoo.config import apply_overrides, load_config, set_values
        from spoco_zoo.memory import keep_freed_memory
        from spoco_zoo.train.trainer import Trainer

        sets = list(override)
        # option values are set as they are (a path is never parsed as YAML)
        values: dict[str, object] = {}
        for key, value in (
            ("out_dir", None if out is None else str(out)),
            ("steps", steps),
            ("data.object_fraction", object_fraction),
            ("data.label_convention", label_convention),
            ("device", device),
            ("seed", seed),
        ):
            if value is not None:
                values[key] = value
        for key, paths, hint in (
            ("data.train_images", images, "--images"),
            ("data.train_labels", labels, "--labels"),
            ("data.val_images", val_images, "--val-images"),
            ("data.val_labels", val_labels, "--val-labels"),
        ):
            files = _expand(paths, hint)
            if files is not None:
                values[key] = files
        try:
            cfg = set_values(apply_overrides(load_config(config, preset, 3 if three_d else 2), sets), values)
        except ValueError as err:
            fail(str(err), 2)

        # the steps free and allocate activations of the same sizes over and over: reuse, not map them anew
        keep_freed_memory()
        # errors (bad data, a locked or unwritable --out, a refused checkpoint, a full disk) exit with 1
        result = Trainer(cfg, progress=progress).fit(resume=resume)
        first, last = (result.history[0], result.history[-1]) if result.history else ({}, {})
        typer.echo(f"steps: {result.step}  ({result.steps_per_second:.2f} steps/s)")
        if first:
            typer.echo(f"total loss: {first.get('total', float('nan')):.4f} -> {last.get('total', float('nan')):.4f}")
        if result.metrics:
            typer.echo("validation: " + "  ".join(f"{k}={v:.4f}" for k, v in result.metrics.items()))
        typer.echo(f"last checkpoint: {result.last_checkpoint}")
        typer.echo(f"best checkpoint: {result.best_checkpoint}")
        if result.interrupted:
            typer.echo("interrupted: resume with --resume", err=True)
            raise typer.Exit(130)
