"""``spoco-zoo export``: checkpoint -> bioimage.io model package (.zip), validated by default.

Exit codes: 0 package written (and validated); 1 package written but validation
failed (the zip is kept for inspection, the failing formats are named); 2 export
failed (bad option, unreadable checkpoint, conversion or parity failure) -- no
package is written and an existing file at ``--output`` is left untouched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from spoco_zoo.cli.reporting import reports_errors


def _parse_kv(items: list[str], hint: str) -> dict[str, Any]:
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise typer.BadParameter(f"{item!r}: expected KEY=VALUE", param_hint=hint)
        key, value = item.split("=", 1)
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as err:
            raise typer.BadParameter(f"{item!r}: the value is not valid YAML ({err})", param_hint=hint) from None
    return out


def register(app: typer.Typer) -> None:
    @app.command("export")
    @reports_errors(code=2)
    def export(
        checkpoint: Path = typer.Argument(..., help="spoco-zoo checkpoint (best.pt / last.pt)."),
        output: Path = typer.Option(..., "--output", "-o", help="Package to write (.zip)."),
        formats: str = typer.Option(
            "pytorch_state_dict,torchscript,onnx", "--formats", help="Comma-separated weight formats."
        ),
        weights: str = typer.Option("student", "--weights", help="student | teacher (EMA) weights."),
        variant: str = typer.Option(
            "full",
            "--variant",
            help="full: embeddings + instances (bioimageio.core, Python); instances: one output, instance "
            "labels (ilastik, deepImageJ); embeddings: embeddings only.",
        ),
        name: str | None = typer.Option(None, "--name", help="Model name (letters, digits, spaces, _+-())."),
        author: list[str] = typer.Option(
            [],
            "--author",
            help="Author (repeatable): 'Name' or 'Name;github_user=...;affiliation=...;orcid=...;email=...'.",
        ),
        maintainer: list[str] = typer.Option(
            [], "--maintainer", help="Maintainer (repeatable): 'Name;github_user=USER' (github_user required)."
        ),
        license_id: str = typer.Option("MIT", "--license", help="SPDX license identifier, e.g. MIT, CC-BY-4.0."),
        git_repo: str | None = typer.Option(None, "--git-repo", help="Source repository URL (https://...)."),
        model_version: str | None = typer.Option(None, "--model-version", help="Model version (SemVer), e.g. 1.0.0."),
        description: str | None = typer.Option(None, "--description", help="One-paragraph description."),
        tag: list[str] = typer.Option(
            [], "--tag", help="Extra tag (repeatable), e.g. --tag fluorescence-light-microscopy."
        ),
        halo: int | None = typer.Option(
            None, "--halo", min=0, help="Halo in pixels (default: measured on the weights, see docs/design.md)."
        ),
        ingraph: list[str] = typer.Option(
            [], "--ingraph", help="In-graph clustering option KEY=VALUE, e.g. n_seeds=1024."
        ),
        test_shape: str | None = typer.Option(None, "--test-shape", help="Test tensor shape, e.g. 128,128."),
        pixel_size: str | None = typer.Option(
            None,
            "--pixel-size",
            help="Micrometres per pixel along z,y,x (3D) or y,x (2D), e.g. 2,0.5,0.5: the scale of the package's "
            "space axes.",
        ),
        onnx_exporter: str = typer.Option("auto", "--onnx-exporter", help="auto | dynamo | legacy."),
        opset: int = typer.Option(
            17, "--opset", help="ONNX opset (>= 17; 17 is the newest deepImageJ's ONNX Runtime 1.13 runs)."
        ),
        card_template: Path | None = typer.Option(None, "--card-template", help="Model-card template (Markdown)."),
        validate: bool = typer.Option(True, "--validate/--no-validate", help="Run bioimageio.core tests afterwards."),
        device: list[str] = typer.Option([], "--device", help="Device for validation, e.g. cpu (repeatable)."),
    ) -> None:
        """Export a checkpoint as a bioimage.io model (pytorch_state_dict, torchscript, onnx).

        TorchScript and ONNX weights are checked against eager PyTorch (max abs
        difference < 1e-4 on two inputs of different sizes) before anything is
        written; the zip is written atomically. Works offline.
        """
        from rich.console import Console

        console = Console(highlight=False)
        if not console.is_terminal:  # pipes/logs: do not squeeze the table into 80 columns
            console = Console(highlight=False, width=160)
        from spoco_zoo.exporters.options import ExportOptions
        from spoco_zoo.exporters.package import export_package

        # every option is checked here, when the options are made; failures (bad option, refused or
        # unreadable checkpoint, conversion, parity, an unwritable --output) exit with 2 through
        # reports_errors, and an existing --output is left untouched
        options = ExportOptions(
            formats=formats,
            weights=weights,
            variant=variant,
            name=name,
            authors=author,
            maintainers=maintainer,
            license=license_id,
            git_repo=git_repo,
            version=model_version,
            description=description,
            tags=tag,
            ingraph=_parse_kv(ingraph, "--ingraph"),
            test_shape=test_shape,
            pixel_size=pixel_size,
            halo=halo,
            onnx_exporter=onnx_exporter,
            opset=opset,
            card_template=card_template,
        )
        result = export_package(checkpoint, output, options, log=lambda msg: console.print(f"[dim]export[/dim] {msg}"))

        for fmt, parity in result.parity.items():
            if fmt != "pytorch_state_dict":
                console.print(
                    f"parity {fmt}: max |diff| vs eager PyTorch {parity.max_abs:.2e} (< {parity.tolerance:.0e})"
                )
        halo_text = str(result.halo[0]) if len(set(result.halo)) == 1 else "x".join(str(h) for h in result.halo)
        console.print(
            f"package: {result.path} ({result.size_bytes / 1e6:.2f} MB, variant {result.variant}: outputs "
            f"{', '.join(result.outputs)}; {', '.join(result.formats)}; halo {halo_text}) in {result.seconds:.1f} s"
        )
        for consumer, text in result.consumers.items():
            console.print(f"[dim]consumer[/dim] {consumer}: {text}")
        for note in result.notes:
            console.print(f"[yellow]note[/yellow] {note}")
        if not validate:
            return

        from spoco_zoo.zoo.validate import validate_package, validation_table

        # the parity of every format was measured by the export itself (printed above)
        report = validate_package(result.path, devices=device or None, measure_errors=False)
        console.print(validation_table(report))
        if not report.passed:
            typer.echo(
                f"error: {result.path} was written but validation FAILED for: {', '.join(report.failed)} "
                "(package kept for inspection; see the table above)",
                err=True,
            )
            raise typer.Exit(1)
        console.print(f"[green]validation passed[/green] for {', '.join(c.name for c in report.checks)}")
