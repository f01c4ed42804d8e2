"""Atomic file writes: a temporary file in the target's folder, flushed to disk, renamed into place.

A reader never sees a half-written file and a failed write leaves an existing file untouched.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_bytes", "check_writable"]


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path``.

    The temporary file ``.<stem>.<random>.tmp<suffix>`` lives in the same folder (so the final
    :func:`os.replace` is atomic) and keeps the suffix (writers that check it, such as
    ``bioimageio.spec``'s zip writer, accept it). The caller writes it; on leaving the block it is
    fsync'ed and renamed over ``path``. On an exception it is removed and the exception propagates
    (an ``OSError`` about the temporary file is raised again naming ``path``: "no space left" for
    ``run/last.pt``, not for ``run/.last.1a2b.tmp.pt``). The file is created with the usual
    permissions (umask), parent folders are created.

    Examples
    --------
    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "a.txt"
    >>> with atomic_path(target) as tmp:
    ...     _ = tmp.write_text("done")
    >>> target.read_text(), sorted(p.name for p in target.parent.iterdir())
    ('done', ['a.txt'])
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:12]}.tmp{path.suffix}")
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(err, OSError) and err.errno is not None and err.filename in (None, str(tmp), tmp):
            # name the file the caller asked for, not the temporary one
            raise type(err)(err.errno, err.strerror, str(path)) from err
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`); returns ``path``."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def check_writable(folder: str | Path) -> Path:
    """Create ``folder`` (and parents) and a file in it, then remove the file: fail before long work.

    Returns ``folder``. Raises the ``OSError`` of the first step that fails (read-only folder, a
    file where a folder is expected, full disk), naming the path.

    Examples
    --------
    >>> import tempfile
    >>> folder = check_writable(Path(tempfile.mkdtemp()) / "new" / "folder")
    >>> folder.is_dir(), list(folder.iterdir())
    (True, [])
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    probe = folder / f".spoco-zoo-write-test.{uuid.uuid4().hex[:12]}"
    with open(probe, "xb") as fh:
        fh.write(b"ok")
    os.unlink(probe)
    return folder
