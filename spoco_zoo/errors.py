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
:class:`PackageError`             ``ValueError``  a model package that is not one (not a zip, no
                                                  ``rdf.yaml``, unsafe member names) or that would
                                                  run Python code that is not spoco-zoo's
:class:`LockError`                ``RuntimeError`` an output folder in use by another run (or a lock
                                                  spoco-zoo cannot prove stale)
================================  ==============  ===================================================

All derive from :class:`SpocoZooError`, so a caller can catch everything spoco-zoo raises on purpose.
"""

from __future__ import annotations

__all__ = ["SpocoZooError", "DataError", "CheckpointError", "ExportError", "PackageError", "LockError"]


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


class PackageError(SpocoZooError, ValueError):
    """A bioimage.io package that cannot be used safely; the message starts with the package path.

    Raised for a file that is not a package (not a zip, no ``rdf.yaml``), zip members with absolute
    paths or ``..``, and packages whose Python code (architecture source, custom processing) is not
    the installed spoco-zoo's and was not trusted explicitly (``--trust-package-code``).
    """


class LockError(SpocoZooError, RuntimeError):
    """An output folder is in use by another run; the message names the folder, the owner and what to do."""
