"""`spoco-zoo export` (placeholder until implemented)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("export")
    def _export() -> None:
        """Not implemented yet."""
        typer.echo("spoco-zoo export: not implemented yet", err=True)
        raise typer.Exit(2)
