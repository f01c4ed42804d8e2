"""The weight formats a spoco-zoo package can carry, and the ``--formats`` option that picks them.

Imports the standard library only, so the CLI parses options without loading torch, onnx or
bioimageio.
"""

from __future__ import annotations

from collections.abc import Iterable

from spoco_zoo.errors import ExportError

__all__ = ["WEIGHT_FORMATS", "parse_formats"]

#: Weight formats we can write, in the order they are exported and tested.
WEIGHT_FORMATS: tuple[str, ...] = ("pytorch_state_dict", "torchscript", "onnx")


def parse_formats(value: None | str | Iterable[str]) -> tuple[str, ...]:
    """Normalise a ``--formats`` value to a tuple of weight-format names.

    Parameters
    ----------
    value:
        ``None`` (all formats), a comma-separated string such as
        ``"pytorch_state_dict,onnx"`` or an iterable of names. Order and
        duplicates do not matter; the result follows :data:`WEIGHT_FORMATS`.

    Raises
    ------
    ExportError
        Unknown or empty format names; the message lists the valid ones.

    Examples
    --------
    >>> parse_formats("onnx, torchscript")
    ('torchscript', 'onnx')
    """
    if value is None:
        return WEIGHT_FORMATS
    items: list[str] = []
    raw = [value] if isinstance(value, str) else list(value)
    for chunk in raw:
        items.extend(part.strip() for part in str(chunk).split(","))
    items = [item for item in items if item]
    valid = ", ".join(WEIGHT_FORMATS)
    if not items:
        raise ExportError(f"--formats: no weight format given; valid formats: {valid}")
    unknown = sorted({item for item in items if item not in WEIGHT_FORMATS})
    if unknown:
        raise ExportError(
            f"--formats: unknown weight format(s) {', '.join(map(repr, unknown))}; valid formats: {valid}"
        )
    return tuple(fmt for fmt in WEIGHT_FORMATS if fmt in items)
