"""One op-log line: the :class:`Record` type and the warp-compatible text encoding of its fields.

Timestamps are integer nanoseconds since the epoch (``time.time_ns()``) everywhere in memory, so
nothing loses precision between the clock, the file and the statistics; they become RFC 3339 text
(``2026-11-28T12:00:00.123456789Z``) only at the file edge.
"""

from __future__ import annotations

import calendar
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from .._redact import redact

__all__ = [
    "COLUMNS",
    "HEADER",
    "Record",
    "format_line",
    "format_ts",
    "parse_ts",
    "quote_field",
    "secret_free",
]

#: Column names of the warp >= 1.5 op-log, in file order.
COLUMNS: tuple[str, ...] = (
    "idx",
    "thread",
    "op",
    "client_id",
    "n_objects",
    "bytes",
    "endpoint",
    "file",
    "error",
    "start",
    "first_byte",
    "last_byte",
    "end",
    "duration_ns",
    "cat",
)
#: First line of every file we write (without its newline).
HEADER = "\t".join(COLUMNS)

_NS = 1_000_000_000


@dataclass(slots=True)
class Record:
    """One operation. Timestamps are ns since the epoch; ``first_byte``/``last_byte`` are None when not measured."""

    idx: int
    thread: int
    op: str
    client_id: str
    n_objects: int
    bytes: int
    endpoint: str
    file: str
    error: str
    start: int
    first_byte: int | None
    last_byte: int | None
    end: int
    duration_ns: int
    cat: int = 0

    @property
    def ok(self) -> bool:
        """True when the operation succeeded (empty ``error``)."""
        return not self.error

    @property
    def start_dt(self) -> datetime:
        """``start`` as an aware UTC datetime (microsecond precision; ``start`` keeps the ns)."""
        return _to_dt(self.start)

    @property
    def end_dt(self) -> datetime:
        """``end`` as an aware UTC datetime."""
        return _to_dt(self.end)

    @property
    def first_byte_dt(self) -> datetime | None:
        """``first_byte`` as an aware UTC datetime, or None."""
        return None if self.first_byte is None else _to_dt(self.first_byte)

    @property
    def last_byte_dt(self) -> datetime | None:
        """``last_byte`` as an aware UTC datetime, or None."""
        return None if self.last_byte is None else _to_dt(self.last_byte)

    @property
    def ttfb_ns(self) -> int | None:
        """Time to first byte in ns, or None when not measured."""
        return None if self.first_byte is None else self.first_byte - self.start

    def to_line(self) -> str:
        """This record as one file line (with its newline), exactly as the writer writes it."""
        return format_line(
            self.idx,
            self.thread,
            self.op,
            self.client_id,
            self.n_objects,
            self.bytes,
            self.endpoint,
            self.file,
            self.error,
            self.start,
            self.first_byte,
            self.last_byte,
            self.end,
            self.cat,
            self.duration_ns,
        )


def _to_dt(ns: int) -> datetime:
    sec, rem = divmod(ns, _NS)
    return datetime.fromtimestamp(sec, UTC).replace(microsecond=rem // 1000)


# -- timestamps ---------------------------------------------------------------------------------

# Seconds -> "YYYY-MM-DDTHH:MM:SS". Operations cluster in time, so a small cache turns strftime
# into a dict hit for almost every line. Cleared when it grows; dict ops are atomic under the GIL.
_prefix_cache: dict[int, str] = {}
_CACHE_MAX = 4096


def format_ts(ns: int) -> str:
    """RFC 3339 UTC with nanoseconds: ``2026-11-28T12:00:00.123456789Z``."""
    sec = ns // _NS
    prefix = _prefix_cache.get(sec)
    if prefix is None:
        if len(_prefix_cache) >= _CACHE_MAX:
            _prefix_cache.clear()
        prefix = _prefix_cache[sec] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    return prefix + ".%09dZ" % (ns - sec * _NS)  # noqa: UP031 - measured faster than an f-string


_parse_cache: dict[str, int] = {}
_TS = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(?:[Zz]|([+-])(\d\d):(\d\d))\Z"
)


def parse_ts(text: str) -> int:
    """ns since the epoch from RFC 3339 text; accepts Go's trimmed fractions and ``+hh:mm`` offsets.

    Raises ValueError on anything else (the reader turns that into a located error).
    """
    # Fast path: the fixed-width form we write ("...:SS.nnnnnnnnnZ", 30 characters).
    if len(text) == 30 and text[19] == "." and text[29] == "Z":
        sec = _parse_cache.get(text[:19])
        if sec is not None:
            frac = text[20:29]
            if frac.isdigit():
                return sec * _NS + int(frac)
    m = _TS.match(text)
    if m is None:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    year, mon, day, hh, mm, ss, frac, sign, oh, om = m.groups()
    key = text[:19]
    sec = _parse_cache.get(key)
    if sec is None:
        sec = calendar.timegm((int(year), int(mon), int(day), int(hh), int(mm), int(ss), 0, 0, 0))
        if len(_parse_cache) >= _CACHE_MAX:
            _parse_cache.clear()
        _parse_cache[key] = sec
    if sign is not None:
        offset = int(oh) * 3600 + int(om) * 60
        sec = sec - offset if sign == "+" else sec + offset
    return sec * _NS + (int(frac.ljust(9, "0")) if frac else 0)


# -- fields -------------------------------------------------------------------------------------

_NEEDS_QUOTES = re.compile(r'[\t"\r\n]')


def quote_field(value: str) -> str:
    """``value`` as warp writes a free-text field: quoted (``""`` inside) only when it must be.

    Quoting is needed when the value holds a tab, a quote, CR or LF, starts with white space, or
    is ``\\.`` (warp quotes that too) — otherwise a tab-separated reader would split or misread it.
    """
    # Fast path: tab, CR and LF are not printable, so a printable value without a quote is safe
    # unless it starts with a space.
    if not value or (value.isprintable() and '"' not in value and value[0] != " " and value != "\\."):
        return value
    if _NEEDS_QUOTES.search(value) is None and not value[0].isspace() and value != "\\.":
        return value
    return '"' + value.replace('"', '""') + '"'


def secret_free(value: str) -> str:
    """``value`` (an ``endpoint`` or ``file`` column) with what could be a secret masked by
    :func:`~s3dlio._redact.redact`: userinfo (``@``), signed queries and connection-string keys
    (``=``). Values with neither, nearly every key, are returned after two ``in`` tests."""
    return redact(value) if "@" in value or "=" in value else value


def format_line(
    idx: int,
    thread: int,
    op: str,
    client_id: str,
    n_objects: int,
    nbytes: int,
    endpoint: str,
    file: str,
    error: str,
    start: int,
    first_byte: int | None,
    last_byte: int | None,
    end: int,
    cat: int = 0,
    duration_ns: int | None = None,
) -> str:
    """One op-log line, newline included. ``duration_ns`` defaults to ``end - start``. No secret
    reaches the file: ``endpoint`` and ``file`` pass :func:`secret_free`, ``error`` is redacted."""
    return (
        f"{idx}\t{thread}\t{op}\t{client_id}\t{n_objects}\t{nbytes}\t{quote_field(secret_free(endpoint))}\t"
        f"{quote_field(secret_free(file))}\t{quote_field(redact(error))}\t{format_ts(start)}\t"
        f"{'' if first_byte is None else format_ts(first_byte)}\t"
        f"{'' if last_byte is None else format_ts(last_byte)}\t{format_ts(end)}\t"
        f"{end - start if duration_ns is None else duration_ns}\t{cat}\n"
    )
