"""``spoco-zoo`` command line: train, export, validate, segment, evaluate, synthetic.

Each command lives in its own module exposing ``register(app)``; heavy imports
(bioimageio.core, onnxruntime, ...) happen inside the command bodies so that
``spoco-zoo --help`` stays fast.
"""

from __future__ import annotations

import typer

from spoco_zoo.cli import evaluate, export, segment, synthetic, train, validate

app = typer.Typer(
    name="spoco-zoo",
    help="Train SPOCO instance segmentation from sparse labels and ship it to bioimage.io.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        from spoco_zoo import __version__

        typer.echo(f"spoco-zoo {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """Train SPOCO instance segmentation from sparse labels and ship it to bioimage.io."""


for _module in (train, export, validate, segment, evaluate, synthetic):
    _module.register(app)


def main() -> None:  # pragma: no cover - thin entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
