"""Checks of clustering parameters shared by the settings and the methods. Imports the standard library only.

:mod:`spoco_zoo.cluster.settings` (standard library only) and the methods (numpy and torch) check
integer parameters with the same function, so both say the same thing about the same value.
"""

from __future__ import annotations

import numbers

from spoco_zoo.errors import DataError

__all__ = ["check_integer"]


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
