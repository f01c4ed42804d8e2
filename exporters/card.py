"""Model documentation (the package's ``README.md``) from a template in ``model_cards/``."""

from __future__ import annotations

import string
from collections.abc import Mapping
from pathlib import Path

from exporters.common import ExportError

__all__ = ["DEFAULT_TEMPLATE", "default_template_path", "render_model_card"]

DEFAULT_TEMPLATE = "spoco_model.md"

# Used only when the repository's model_cards/ folder is not available (e.g. a wheel install
# without it); keeps the export working and the required sections present.
_MINIMAL = """# ${name}

${description}

SPOCO pixel-embedding U-Net (${spatial_dims}, ${embedding_dim} embedding channels), exported by
spoco-zoo ${spoco_zoo_version}. Input `raw` (${input_axes}), output `embeddings` (${output_axes}).

${preprocessing}

${instances_text}

## Validation

${metrics}

${parity}

Clustering (`config.spoco.clustering`):

```json
${clustering_json}
```

## Citation

${citation} DOI: ${doi}

## License

${license}
"""


def default_template_path() -> Path | None:
    """``<repo>/model_cards/spoco_model.md`` if it exists, else ``None``."""
    path = Path(__file__).resolve().parent.parent / "model_cards" / DEFAULT_TEMPLATE
    return path if path.is_file() else None


def render_model_card(values: Mapping[str, object], template: Path | None = None) -> str:
    """Fill the template's ``${placeholders}`` with ``values``.

    Parameters
    ----------
    values:
        Placeholder name -> value (converted with ``str``).
    template:
        Template file; default :func:`default_template_path` (a minimal built-in card when the
        ``model_cards/`` folder is missing).

    Raises
    ------
    ExportError
        The template cannot be read or uses a placeholder not in ``values`` (named in the message).
    """
    if template is None:
        template = default_template_path()
    if template is None:
        text = _MINIMAL
        origin = "built-in minimal model card"
    else:
        try:
            text = Path(template).read_text(encoding="utf-8")
        except OSError as err:
            raise ExportError(f"{template}: cannot read model-card template: {err}") from err
        origin = str(template)
    try:
        return string.Template(text).substitute({k: str(v) for k, v in values.items()})
    except KeyError as err:
        raise ExportError(f"{origin}: unknown placeholder ${{{err.args[0]}}} (known: {sorted(values)})") from err
    except ValueError as err:
        raise ExportError(f"{origin}: invalid placeholder syntax ({err}); write a literal dollar sign as $$") from err
