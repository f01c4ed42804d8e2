"""Model documentation (the package's ``README.md``) from a template in ``templates/``."""

from __future__ import annotations

import string
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from spoco_zoo.errors import ExportError

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

__all__ = ["DEFAULT_TEMPLATE", "default_template", "render_model_card"]

DEFAULT_TEMPLATE = "spoco_model.md"


def default_template() -> Traversable:
    """The model-card template shipped as package data (``spoco_zoo/export/templates/spoco_model.md``).

    Found through :mod:`importlib.resources`, so it works from a source tree, an editable install
    and a wheel alike.
    """
    return resources.files("spoco_zoo.export").joinpath("templates").joinpath(DEFAULT_TEMPLATE)


def render_model_card(values: Mapping[str, object], template: Path | None = None) -> str:
    """Fill the template's ``${placeholders}`` with ``values``.

    Parameters
    ----------
    values:
        Placeholder name -> value (converted with ``str``).
    template:
        Template file; default :func:`default_template` (the card shipped with spoco-zoo).

    Raises
    ------
    ExportError
        The template cannot be read or uses a placeholder not in ``values`` (named in the message).
    """
    source: Traversable | Path = default_template() if template is None else Path(template)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as err:
        raise ExportError(f"{source}: cannot read model-card template: {err}") from err
    origin = str(source)
    try:
        return string.Template(text).substitute({k: str(v) for k, v in values.items()})
    except KeyError as err:
        raise ExportError(f"{origin}: unknown placeholder ${{{err.args[0]}}} (known: {sorted(values)})") from err
    except ValueError as err:
        raise ExportError(f"{origin}: invalid placeholder syntax ({err}); write a literal dollar sign as $$") from err
