"""`spoco-zoo train` (placeholder until implemented)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("train")
    def _train() -> None:
        """Not implemented yet."""
        typer.echo("spoco-zoo train: not implemented yet", err=True)
        raise typer.Exit(2)
