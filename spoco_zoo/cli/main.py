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

for _module in (train, export, validate, segment, evaluate, synthetic):
    _module.register(app)


def main() -> None:  # pragma: no cover - thin entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
