"""`spoco-zoo validate` (placeholder until implemented)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("validate")
    def _validate() -> None:
        """Not implemented yet."""
        typer.echo("spoco-zoo validate: not implemented yet", err=True)
        raise typer.Exit(2)
