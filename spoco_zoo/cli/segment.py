"""`spoco-zoo segment` (placeholder until implemented)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("segment")
    def _segment() -> None:
        """Not implemented yet."""
        typer.echo("spoco-zoo segment: not implemented yet", err=True)
        raise typer.Exit(2)
