"""Work around bioimageio.spec 0.5.12 wrap-serializers failing with recent pydantic-core.

Three serializers in bioimageio.spec call the pydantic wrap handler as
``handler(value, info)`` (``package_file_descr_serializer``, ``package_weights``
and ``ValidatedStringWithInnerNode._serialize``). pydantic-core >= 2.4x checks
the handler's second argument (an index key: int or str) and raises
``TypeError: 'index_key' is expected to be an integer or a string``. As every
model description is dumped while it is validated, *no* model can then be
built, loaded, packaged or tested (``bioimageio test`` fails the same way).

:func:`ensure_compat` first probes whether the installed pydantic-core rejects
such a call. Only then it re-routes the three functions through a trampoline
that hands them a handler proxy which drops the stray ``info`` argument; the
functions' own logic is unchanged. Idempotent; a no-op on compatible versions.
The proper fix is a bioimageio.spec release that calls ``handler(value)`` (or a
pydantic-core pin); remove this module then.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

__all__ = ["ensure_compat", "needs_patch"]

_PATCHED: list[str] = []
_CHECKED = False


class _HandlerProxy:
    """A wrap-serializer handler that tolerates ``handler(value, info)``."""

    def __init__(self, handler: Any) -> None:
        self._handler = handler

    def __call__(self, value: Any, *args: Any) -> Any:
        if args and isinstance(args[0], (int, str)):
            return self._handler(value, args[0])
        return self._handler(value)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handler, name)


def _trampoline(a, b, c, _spoco_orig=None, _spoco_proxy=None):  # pragma: no cover - runs as patched code
    return _spoco_orig(a, _spoco_proxy(b), c)


def needs_patch() -> bool:
    """``True`` if pydantic-core rejects ``handler(value, info)`` in a wrap serializer."""
    from typing import Annotated

    from pydantic import BaseModel, WrapSerializer

    def wrap(value: Any, handler: Any, info: Any) -> Any:
        return handler(value, info)

    class _Probe(BaseModel):
        x: Annotated[int, WrapSerializer(wrap)] = 1

    try:
        _Probe().model_dump()
    except Exception as err:  # PydanticSerializationError wrapping the TypeError
        return "index_key" in str(err)
    return False


def _reroute(func: Callable[..., Any]) -> None:
    if getattr(func, "__defaults__", None) and any(
        isinstance(d, type) and d is _HandlerProxy for d in func.__defaults__
    ):
        return  # already patched
    original = types.FunctionType(func.__code__, func.__globals__, func.__name__, func.__defaults__, func.__closure__)
    original.__kwdefaults__ = func.__kwdefaults__
    func.__code__ = _trampoline.__code__
    func.__defaults__ = (original, _HandlerProxy)
    _PATCHED.append(f"{func.__module__}.{func.__qualname__}")


def ensure_compat() -> list[str]:
    """Apply the work-around when needed; returns the re-routed functions (empty when not needed)."""
    global _CHECKED
    if _CHECKED:
        return list(_PATCHED)
    _CHECKED = True
    if not needs_patch():
        return []
    from bioimageio.spec._internal import io_packaging
    from bioimageio.spec._internal.validated_string_with_inner_node import ValidatedStringWithInnerNode
    from bioimageio.spec.model import v0_4

    for func in (
        io_packaging.package_file_descr_serializer,
        v0_4.package_weights,
        ValidatedStringWithInnerNode.__dict__["_serialize"].wrapped,
    ):
        _reroute(func)
    return list(_PATCHED)
