"""Every error type of spoco-zoo, with messages that name the offending file (or argument) and the problem.

================================  ==============  ===================================================
error                             base            raised for
================================  ==============  ===================================================
:class:`DataError`                ``ValueError``  bad input data or argument (images, labels, devices,
                                                  clustering parameters)
:class:`CheckpointError`          ``ValueError``  a checkpoint that is missing, unreadable or not
                                                  spoco-zoo's
:class:`ExportError`              ``RuntimeError`` an export step: bad option, conversion or parity
                                                  failure, a description the spec rejects
================================  ==============  ===================================================

All derive from :class:`SpocoZooError`, so a caller can catch everything spoco-zoo raises on purpose.
"""

from __future__ import annotations

__all__ = ["SpocoZooError", "DataError", "CheckpointError", "ExportError"]


class SpocoZooError(Exception):
    """Base of the errors spoco-zoo raises on purpose (each message names the file or argument)."""


class DataError(SpocoZooError, ValueError):
    """Bad input data: the message starts with the file (or argument) and says what is wrong."""


class CheckpointError(SpocoZooError, ValueError):
    """A checkpoint file is missing, unreadable or not a spoco-zoo checkpoint."""


class ExportError(SpocoZooError, RuntimeError):
    """An export step failed: bad option, unsupported config, conversion or parity failure.

    The message says which step failed and, for parity failures, the numbers.
    """
