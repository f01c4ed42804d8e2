"""One error-reporting path for every command: one line on stderr and an exit code, never a traceback.

Commands are wrapped with :func:`reports_errors`:

=====================================================  ====================================================
raised in the command                                  reported as
=====================================================  ====================================================
:class:`~spoco_zoo.errors.SpocoZooError`,              ``error: <message>`` (messages start with the file
``ValueError``, ``ArithmeticError``                    or option), exit ``code``
``OSError``                                            ``error: <path>: <what went wrong>`` (read-only
                                                       folder, full disk, a file where a folder is
                                                       expected, ...), exit ``code``
``KeyboardInterrupt``                                  ``interrupted``, exit 130
anything else                                          ``error: unexpected <Type>: <message>``, exit 1
=====================================================  ====================================================

typer's own exits and usage errors (``typer.Exit``, ``typer.BadParameter``, ...) pass through.
With the environment variable ``SPOCO_ZOO_DEBUG=1`` nothing is caught, for a traceback.
"""

from __future__ import annotations

import errno
import functools
import os
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import typer

from spoco_zoo.errors import SpocoZooError

__all__ = ["describe_os_error", "fail", "reports_errors"]

F = TypeVar("F", bound=Callable[..., Any])

_OS_PROBLEMS = {
    errno.EACCES: "permission denied (read-only folder or file?)",
    errno.EPERM: "operation not permitted (read-only folder or file?)",
    errno.EROFS: "the file system is read-only",
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.ENOTDIR: "a part of this path is a file, not a folder",
    errno.EISDIR: "is a folder, expected a file",
    errno.EEXIST: "already exists (a file where a folder is expected?)",
    errno.ENOENT: "no such file or folder",
    errno.ENAMETOOLONG: "the name is too long",
}


def describe_os_error(err: OSError) -> str:
    """``"<path>: <problem>"`` for an ``OSError`` (the path it names, the problem in words).

    Examples
    --------
    >>> describe_os_error(OSError(errno.ENOSPC, "No space left on device", "run/last.pt"))
    'run/last.pt: no space left on the device'
    >>> describe_os_error(PermissionError(errno.EACCES, "Permission denied", "out"))
    'out: permission denied (read-only folder or file?)'
    >>> describe_os_error(OSError("socket closed"))
    'socket closed'
    """
    problem = _OS_PROBLEMS.get(err.errno) if err.errno is not None else None
    if problem is None:
        problem = err.strerror or str(err)
    paths = [os.fsdecode(p) for p in (err.filename, err.filename2) if p is not None]
    return f"{' -> '.join(paths)}: {problem}" if paths else problem


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``error: <message>`` on stderr and exit with ``code``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def reports_errors(code: int = 1) -> Callable[[F], F]:
    """Decorate a typer command: errors become one line on stderr and exit ``code`` (see the module docstring).

    Parameters
    ----------
    code:
        Exit code for the errors of the command (``SpocoZooError``, ``ValueError``, ``OSError``);
        unexpected exceptions exit with 1, an interrupt with 130.
    """

    def decorate(command: F) -> F:
        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if os.environ.get("SPOCO_ZOO_DEBUG", "") not in ("", "0"):
                return command(*args, **kwargs)
            try:
                return command(*args, **kwargs)
            except (typer.Exit, typer.Abort, typer.TyperException):
                raise
            except KeyboardInterrupt:
                typer.echo("interrupted", err=True)
                raise typer.Exit(130) from None
            except OSError as err:
                fail(describe_os_error(err), code)
            except (SpocoZooError, ValueError, ArithmeticError) as err:
                fail(_one_line(str(err)) or type(err).__name__, code)
            except MemoryError:
                fail("out of memory", code)
            except Exception as err:
                fail(
                    f"unexpected {type(err).__name__}: {_one_line(str(err))} "
                    "(set SPOCO_ZOO_DEBUG=1 to see where it came from)",
                    1,
                )

        return wrapper  # type: ignore[return-value]

    return decorate


def _one_line(text: str) -> str:
    """Messages with several lines (pydantic, YAML) joined with ``; ``."""
    return "; ".join(line.strip() for line in text.strip().splitlines() if line.strip())
