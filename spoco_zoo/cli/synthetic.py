"""``spoco-zoo synthetic``: write the built-in synthetic dataset to TIFF files."""

from __future__ import annotations

from pathlib import Path

import typer

from spoco_zoo.cli.reporting import reports_errors


def register(app: typer.Typer) -> None:
    @app.command("synthetic")
    @reports_errors(code=1)
    def synthetic(
        out: Path = typer.Argument(..., help="Output folder (gets images/ and labels/)."),
        n: int = typer.Option(4, "--n", min=1, help="Number of images."),
        shape: list[int] | None = typer.Option(
            None, "--shape", help="Image shape, repeat per axis (default 256 256; 3D: 32 128 128)."
        ),
        n_objects: int = typer.Option(40, "--n-objects", min=1),
        three_d: bool = typer.Option(False, "--3d", help="3D volumes (zyx)."),
        seed: int = typer.Option(0),
        object_fraction: float | None = typer.Option(
            None, "--object-fraction", help="Also write sparse labels keeping this fraction of objects."
        ),
        label_convention: str = typer.Option(
            "objects_and_background",
            "--label-convention",
            help="Sparse labels as objects_and_background (0 = background, -1 = not annotated) or "
            "objects_only (painted objects, 0 = unknown).",
        ),
        style: str = typer.Option(
            "crowded",
            "--style",
            help="crowded (touching irregular objects filling most of the image) or nuclei (like fluorescence "
            "nuclei: mostly background, soft edges, dim and bright objects, uneven illumination, clumps).",
        ),
    ) -> None:
        """Generate synthetic objects (crowded or nuclei-like) with dense ground truth (no download)."""
        from spoco_zoo.data.synthetic import STYLES, write_synthetic_dataset

        if not shape:
            shape = [32, 128, 128] if three_d else [256, 256]
        if len(shape) not in (2, 3):
            raise typer.BadParameter(f"shape {shape} must have 2 or 3 axes", param_hint="--shape")
        from spoco_zoo.data.conventions import LABEL_CONVENTIONS

        if label_convention not in LABEL_CONVENTIONS:
            raise typer.BadParameter(
                f"{label_convention!r} is not one of {', '.join(LABEL_CONVENTIONS)}", param_hint="--label-convention"
            )
        if style not in STYLES:
            raise typer.BadParameter(f"{style!r} is not one of {', '.join(STYLES)}", param_hint="--style")
        # arguments are checked before anything is written (DataError naming the argument, exit 1)
        paths = write_synthetic_dataset(
            out, n, shape, n_objects, seed, sparse_fraction=object_fraction, convention=label_convention, style=style
        )
        for key, files in paths.items():
            typer.echo(f"{key}: {len(files)} files in {Path(files[0]).parent if files else out}")
