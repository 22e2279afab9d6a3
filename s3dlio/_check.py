"""Argument checks for the public functions: one place, one message shape.

Every public function checks its arguments at the top with these, before any request, so a
wrong call fails the same way on every backend and engine (and in the ``_async`` twins, which
call the sync functions)::

    get_range: offset must be an int >= 0, got 1.5 (float)

A wrong type raises :class:`~s3dlio.errors.ArgumentTypeError` (a ``TypeError``), a wrong value
:class:`~s3dlio.errors.InvalidArgumentError` (a ``ValueError``). ``bool`` is not accepted where
an int is asked for. The checks return the value to use (a path-like URI as its ``str``, an
iterable as a list), so callers write ``uri = _check.uri("get", uri)``.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, NoReturn, cast

from .config import Config
from .errors import ArgumentTypeError, InvalidArgumentError
from .uri import ObjectUri

if TYPE_CHECKING:
    from collections.abc import Buffer

__all__ = [
    "boolean",
    "buffer",
    "config",
    "fail_type",
    "fail_value",
    "in_flight",
    "integer",
    "number",
    "optional_integer",
    "optional_str",
    "path",
    "put_items",
    "uri",
    "uris",
]

_URI_KINDS = "a URI (str, ObjectUri or os.PathLike)"
_BUFFER_KINDS = "a bytes-like object (bytes, bytearray, memoryview, numpy array)"


def _repr(value: object) -> str:
    """``repr(value)``, cut short."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _shown(value: object) -> str:
    """``value`` as the message shows it: its repr (cut short) and its type."""
    return f"{_repr(value)} ({type(value).__name__})"


def fail_type(func: str, name: str, expected: str, value: object, hint: str = "") -> NoReturn:
    """Raise ArgumentTypeError: ``func: name must be expected, got value (type)[; hint]``."""
    raise ArgumentTypeError(f"{func}: {name} must be {expected}, got {_shown(value)}{'; ' + hint if hint else ''}")


def fail_value(func: str, name: str, expected: str, value: object, hint: str = "") -> NoReturn:
    """Raise InvalidArgumentError: ``func: name must be expected, got value (type)[; hint]``."""
    raise InvalidArgumentError(
        f"{func}: {name} must be {expected}, got {_shown(value)}{'; ' + hint if hint else ''}"
    )


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def integer(func: str, name: str, value: Any, minimum: int | None = 0) -> int:
    """``value`` as an int; it must be an integer (numpy's too, never a bool) >= ``minimum``
    (any integer when ``minimum`` is None)."""
    if type(value) is int and (minimum is None or value >= minimum):  # the common case, first
        return value
    return _integer(func, name, value, minimum, "an int")


def optional_integer(func: str, name: str, value: Any, minimum: int | None = 0) -> int | None:
    """:func:`integer`, or None."""
    if value is None:
        return None
    if type(value) is int and (minimum is None or value >= minimum):
        return value
    return _integer(func, name, value, minimum, "None or an int")


def _integer(func: str, name: str, value: Any, minimum: int | None, kind: str) -> int:
    expected = kind if minimum is None else f"{kind} >= {minimum}"
    if not _is_int(value):
        fail_type(func, name, expected, value)
    if minimum is not None and value < minimum:
        fail_value(func, name, expected, value)
    return int(value)


def in_flight(func: str, value: Any) -> int | None:
    """``max_in_flight``: None (the configured default) or an int >= 1."""
    return optional_integer(func, "max_in_flight", value, 1)


def number(func: str, name: str, value: Any, minimum: float) -> float:
    """``value`` as a float; it must be a finite real number (never a bool) >= ``minimum``."""
    expected = f"a number >= {minimum:g}"
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        fail_type(func, name, expected, value)
    if not math.isfinite(value) or value < minimum:
        fail_value(func, name, expected, value)
    return float(value)


def boolean(func: str, name: str, value: Any, *, optional: bool = False) -> bool | None:
    """``value`` when it is a bool (or None, when ``optional``)."""
    if value is True or value is False or (optional and value is None):
        return value  # type: ignore[no-any-return]
    fail_type(func, name, "None, True or False" if optional else "True or False", value)


def config(func: str, value: Any) -> Config | None:
    """``config``: None (the process-wide settings) or a :class:`~s3dlio.config.Config`."""
    if value is None or isinstance(value, Config):
        return value
    fail_type(func, "config", "None or an s3dlio.Config", value, "build one with s3dlio.Config(...)")


def optional_str(func: str, name: str, value: Any) -> str | None:
    """``value`` when it is a str or None."""
    if value is None or isinstance(value, str):
        return value
    fail_type(func, name, "None or a str", value)


def uri(func: str, value: Any, name: str = "uri") -> str:
    """A URI to parse: a str or ObjectUri as given, an ``os.PathLike`` (a local path) as its str.

    Typed ``str``, the public signatures' type: an ObjectUri comes back as itself (everything
    it reaches, ``parse``/``resolve`` and f-strings, takes both).
    """
    if type(value) is str:  # the common case, first
        return value
    if isinstance(value, str | ObjectUri):
        return cast(str, value)
    if isinstance(value, os.PathLike):
        text = os.fspath(value)
        if isinstance(text, str):
            return text
    fail_type(func, name, _URI_KINDS, value)


def path(func: str, name: str, value: Any) -> str:
    """A local path: a str, or an ``os.PathLike`` as its str."""
    if isinstance(value, str):
        return value
    if isinstance(value, os.PathLike):
        text = os.fspath(value)
        if isinstance(text, str):
            return text
    fail_type(func, name, "a local path (str or os.PathLike)", value)


def iterable(func: str, name: str, value: Any, what: str, hint: str) -> Iterable[Any]:
    if isinstance(value, str | bytes | ObjectUri | os.PathLike):
        raise ArgumentTypeError(
            f"{func}: {name} must be an iterable of {what}, not a {type(value).__name__} "
            f"({_repr(value)}); {hint}"
        )
    if not isinstance(value, Iterable):
        fail_type(func, name, f"an iterable of {what}", value)
    return value


def uris(func: str, value: Any, name: str = "uris") -> list[str]:
    """A batch of URIs as a list; one URI (a str) on its own is refused, not read per character."""
    items = iterable(func, name, value, "URI strings", "wrap one URI in a list")
    return [uri(func, item, f"{name}[{i}]") for i, item in enumerate(items)]


def put_items(func: str, value: Any, name: str = "items") -> list[tuple[str, Buffer]]:
    """A batch of ``(uri, data)`` pairs as a list, each URI and buffer checked."""
    items = iterable(func, name, value, "(uri, data) pairs", "pass [(uri, data)]")
    checked: list[tuple[str, Buffer]] = []
    for i, item in enumerate(items):
        if not isinstance(item, tuple | list) or len(item) != 2:
            fail_type(func, f"{name}[{i}]", "a (uri, data) pair", item)
        checked.append((uri(func, item[0], f"{name}[{i}][0]"), buffer(func, f"{name}[{i}][1]", item[1])))
    return checked


def buffer(func: str, name: str, value: Any, *, writable: bool = False) -> Buffer:
    """``value`` when it exposes the buffer protocol (contiguous and writable, when ``writable``)."""
    if type(value) is bytes and not writable:  # the common case, first
        return value
    try:
        view = memoryview(value)
    except TypeError:
        hint = "encode it first: data.encode()" if isinstance(value, str) else ""
        kinds = "a writable, contiguous buffer (bytearray, numpy array)" if writable else _BUFFER_KINDS
        fail_type(func, name, kinds, value, hint)
    if writable:
        if view.readonly:
            fail_type(func, name, "a writable buffer (bytearray, numpy array)", value, "it is read-only")
        if not view.c_contiguous:
            fail_type(func, name, "a C-contiguous buffer", value, "pass numpy.ascontiguousarray(x)")
    return value  # type: ignore[no-any-return]
