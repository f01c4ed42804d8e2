"""Error types with messages that name the offending file and the problem."""

from __future__ import annotations

__all__ = ["DataError"]


class DataError(ValueError):
    """Bad input data: the message starts with the file (or argument) and says what is wrong."""
