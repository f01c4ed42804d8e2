"""Checks of clustering parameters shared by the settings and the methods. Imports the standard library only.

:mod:`spoco_zoo.cluster.settings` (standard library only) and the methods (numpy and torch) check
integer parameters with the same function, so both say the same thing about the same value.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from spoco_zoo.errors import DataError

__all__ = ["check_integer", "check_choice", "check_positive", "check_extents"]


def check_integer(name: str, value: object, low: int | None = None) -> int:
    """``value`` as an ``int``; :class:`~spoco_zoo.errors.DataError` unless it is an integer ``>= low`` (bools are not).

    Parameters
    ----------
    name:
        The parameter's name, first word of the message.
    value:
        The value given (an ``int``, a numpy integer or an integral float).
    low:
        The smallest accepted value (``None``: any integer).

    Examples
    --------
    >>> check_integer("n_seeds", 3, 1), check_integer("n_iter", 4.0)
    (3, 4)
    >>> check_integer("n_seeds", 0, 1)
    Traceback (most recent call last):
    ...
    spoco_zoo.errors.DataError: n_seeds: must be an integer >= 1, got 0
    """
    integral = isinstance(value, numbers.Real) and not isinstance(value, bool) and float(value).is_integer()
    if not integral or (low is not None and value < low):  # type: ignore[operator]
        bound = "" if low is None else f" >= {low}"
        raise DataError(f"{name}: must be an integer{bound}, got {value!r}")
    return int(value)  # type: ignore[call-overload]


def check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> str | None:
    """``value`` (a ``str``) if it is one of ``allowed``, ``None`` if it is ``None``; else :class:`DataError`.

    >>> check_choice("background", "none", ("largest", "none")), check_choice("split", None, ("shape",))
    ('none', None)
    """
    if value is not None and value not in allowed:
        raise DataError(f"{name}: must be one of {allowed} or None, got {value!r}")
    return None if value is None else str(value)


def check_positive(name: str, value: Any) -> float | None:
    """``value`` as a positive ``float`` (``None`` stays ``None``); else :class:`DataError`.

    >>> check_positive("bandwidth", 1), check_positive("bandwidth", None)
    (1.0, None)
    """
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, (bool, str)) or not number > 0:
        raise DataError(f"{name}: must be positive, got {value!r}")
    return number


def check_extents(name: str, value: Any) -> tuple[int, ...] | None:
    """Sizes per axis (one number: one entry, for every axis) as a tuple of integers ``>= 0``.

    >>> check_extents("block_shape", [256, 256.0]), check_extents("overlap", 16)
    ((256, 256), (16,))
    """
    if value is None:
        return None
    values = [value] if isinstance(value, numbers.Real) else list(value)
    return tuple(check_integer(name, v, 0) for v in values)
