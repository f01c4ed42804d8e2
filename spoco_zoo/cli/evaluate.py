"""`spoco-zoo evaluate` (placeholder until implemented)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("evaluate")
    def _evaluate() -> None:
        """Not implemented yet."""
        typer.echo("spoco-zoo evaluate: not implemented yet", err=True)
        raise typer.Exit(2)
