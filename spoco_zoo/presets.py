"""Training presets: the GPU default and a CPU recipe that fits a laptop's budget.

A preset is a partial :class:`~spoco_zoo.config.TrainConfig` (nested dict) applied on top of
the defaults and below a config file and ``--set`` overrides (``spoco-zoo train --preset cpu``).
The numbers behind each choice are in ``docs/benchmarks.md``.
"""

from __future__ import annotations

from typing import Any

from spoco_zoo.errors import DataError

__all__ = ["PRESETS", "preset_values", "merge_nested"]

#: ``gpu`` is the defaults themselves; ``cpu`` trains the same network for fewer steps (1200 steps,
#: ~7 min on 2 CPU cores: the quickstart's budget; held-out SBD ~0.8 on the synthetic data).
PRESETS: dict[str, dict[str, Any]] = {
    "gpu": {},
    "cpu": {
        "steps": 1200,
        "val_every": 400,
        "data": {"batch_size": 1},
    },
}


def preset_values(name: str) -> dict[str, Any]:
    """The nested overrides of preset ``name``.

    >>> preset_values("cpu")["steps"]
    1200
    """
    if name not in PRESETS:
        raise DataError(f"preset: unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return merge_nested({}, PRESETS[name])


def merge_nested(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``update`` merged in, recursively for nested dicts (a new dict).

    >>> merge_nested({"a": {"b": 1, "c": 2}}, {"a": {"c": 3}, "d": 4})
    {'a': {'b': 1, 'c': 3}, 'd': 4}
    """
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_nested(out[key], value)
        else:
            out[key] = value
    return out
