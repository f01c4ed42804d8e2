"""``spoco-zoo validate``: bioimage.io format check + bioimageio.core test per weight format.

Prints a table (check, status, max error on the test tensors, message, time).
Exit codes: 0 all passed; 1 any check failed, or not a package at all (not a zip,
no rdf.yaml, unsafe member names: one line naming the package); 2 bad arguments
(unknown weight format). Needs no network and runs no Python from the package unless
``--trust-package-code`` is given (see :mod:`spoco_zoo.zoo.validate`).
"""

from __future__ import annotations

from pathlib import Path

import typer

from spoco_zoo.cli.reporting import fail, reports_errors


def register(app: typer.Typer) -> None:
    @app.command("validate")
    @reports_errors(code=1)
    def validate(
        package: Path = typer.Argument(..., help="bioimage.io package (.zip) or rdf.yaml."),
        formats: str | None = typer.Option(None, "--formats", help="Only these weight formats (comma-separated)."),
        device: list[str] = typer.Option([], "--device", help="Device, e.g. cpu or cuda (repeatable)."),
        trust_package_code: bool = typer.Option(
            False,
            "--trust-package-code",
            help="Also run Python shipped in the package (architecture source, custom processing) when it is "
            "not the installed spoco-zoo's. Only for packages whose author you trust.",
        ),
    ) -> None:
        """Validate a model package like the bioimage.io model zoo, every weight format separately."""
        from rich.console import Console

        from spoco_zoo.errors import ExportError
        from spoco_zoo.zoo.validate import validate_package, validation_table

        if not package.exists():
            fail(f"{package}: no such package", 2)
        try:
            report = validate_package(
                package, formats=formats, devices=device or None, trust_package_code=trust_package_code
            )
        except ExportError as err:
            fail(str(err), 2)
        console = Console(highlight=False)
        if not console.is_terminal:  # pipes/logs: do not squeeze the table into 80 columns
            console = Console(highlight=False, width=160)
        console.print(validation_table(report))
        if not report.passed:
            typer.echo(f"error: {package}: validation FAILED for: {', '.join(report.failed)}", err=True)
            raise typer.Exit(1)
        typer.echo(f"{package}: all checks passed ({', '.join(c.name for c in report.checks)})")
