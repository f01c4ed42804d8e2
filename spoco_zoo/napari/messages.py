"""Errors as napari notifications: one line naming the layer or file and the problem, never a traceback."""

from __future__ import annotations

from spoco_zoo.errors import SpocoZooError

__all__ = ["error_text", "report_error"]


def error_text(action: str, err: BaseException) -> str:
    """The notification text of ``err`` raised while doing ``action``.

    spoco-zoo's own errors (and ``OSError``/``ValueError``, which the library raises with the file
    in the message) are shown as they are; anything else gets its type name, so that an unexpected
    failure is still one line a user can report.

    >>> error_text("Train", FileNotFoundError("/runs/a: holds no run to continue"))
    'Train: /runs/a: holds no run to continue'
    >>> error_text("Segment", KeyError("embeddings"))
    "Segment failed: KeyError: 'embeddings'"
    """
    if isinstance(err, (SpocoZooError, OSError, ValueError)):
        return f"{action}: {err}"
    return f"{action} failed: {type(err).__name__}: {err}"


def report_error(action: str, err: BaseException) -> str:
    """Show ``err`` as a napari error notification (:func:`error_text`); returns the text."""
    from napari.utils.notifications import show_error

    text = error_text(action, err)
    show_error(text)
    return text
