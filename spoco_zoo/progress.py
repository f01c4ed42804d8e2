"""One progress bar for long loops (training steps, prediction tiles): rich, or nothing at all."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["ProgressBar", "format_values"]


def format_values(*groups: Mapping[str, float]) -> str:
    """``{"loss": 0.51234}, {"sbd": 0.3}`` -> ``"loss=0.512 | sbd=0.300"`` (empty groups are skipped).

    >>> format_values({"total": 1.23456, "pull": 0.5}, {}, {"sbd": 0.25})
    'total=1.235 pull=0.500 | sbd=0.250'
    """
    parts = [" ".join(f"{k}={v:.3f}" for k, v in group.items()) for group in groups if group]
    return " | ".join(parts)


class ProgressBar:
    """A rich progress bar used as a context manager; every method is a no-op when disabled.

    Parameters
    ----------
    description:
        Shown in bold before the bar.
    total:
        Number of units (steps, tiles).
    enabled:
        ``False``: show nothing.
    completed:
        Units already done (a resumed run).
    stderr:
        Draw on stderr (keeps stdout for results).
    transient:
        Remove the bar when the loop ends.

    Examples
    --------
    >>> with ProgressBar("tiles", total=3, enabled=False) as bar:
    ...     for _ in range(3):
    ...         bar.advance()
    """

    def __init__(
        self,
        description: str,
        total: int,
        *,
        enabled: bool = True,
        completed: int = 0,
        stderr: bool = False,
        transient: bool = False,
    ) -> None:
        self.description = description
        self.total = int(total)
        self.enabled = bool(enabled)
        self.completed = int(completed)
        self.stderr = stderr
        self.transient = transient
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> ProgressBar:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[info]}"),
                console=Console(stderr=True) if self.stderr else None,
                transient=self.transient,
            )
            self._bar.__enter__()
            self._task = self._bar.add_task(self.description, total=self.total, completed=self.completed, info="")
        return self

    def update(self, completed: int, info: str = "") -> None:
        """Set the number of units done and the text after the bar."""
        if self._bar is not None:
            self._bar.update(self._task, completed=completed, info=info)

    def advance(self, units: int = 1) -> None:
        """Count ``units`` more units as done."""
        if self._bar is not None:
            self._bar.advance(self._task, units)

    def print(self, text: str) -> None:
        """A permanent line above the bar (kept in non-terminal logs)."""
        if self._bar is not None:
            self._bar.console.print(text, highlight=False)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
            self._bar = None
