"""Values from a worker thread to the main thread, through a queued Qt signal."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qtpy.QtCore import QObject, Signal

__all__ = ["Relay"]


class Relay(QObject):
    """Call ``receiver(value)`` in the thread that owns the relay (the GUI thread) for every
    :meth:`send` from any thread: Qt queues signals that cross threads, so the worker never
    touches a widget or a layer itself."""

    delivered = Signal(object)

    def __init__(self, receiver: Callable[[Any], None]) -> None:
        super().__init__()
        self.delivered.connect(receiver)

    def send(self, value: Any) -> None:
        """Hand ``value`` to the receiver (returns at once when called from another thread)."""
        self.delivered.emit(value)
