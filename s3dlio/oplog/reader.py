"""Read op-log files: ours, warp's (13, 14 or 15 columns) and upstream s3dlio's, plain or zstd.

Columns are found by header name, so older layouts read with defaults for what they lack.
Compression is recognised by the zstd magic bytes, not the file name. Damage (a malformed line,
a truncated zstd stream) raises :class:`OpLogFormatError` naming the file and the line.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from typing import IO, Any

import zstandard

from ..errors import S3dlioError
from .record import Record, parse_ts

__all__ = ["OpLogFormatError", "ZSTD_MAGIC", "open_text", "read"]

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

# Columns a file may lack, with the text that stands in for them. idx "" -> line counter;
# duration_ns "" -> end - start.
_DEFAULTS: dict[str, str] = {
    "idx": "",
    "thread": "0",
    "client_id": "",
    "n_objects": "1",
    "bytes": "0",
    "endpoint": "",
    "file": "",
    "error": "",
    "first_byte": "",
    "last_byte": "",
    "duration_ns": "",
    "cat": "0",
}
_REQUIRED = ("op", "start", "end")
_INT_COLUMNS = ("idx", "thread", "n_objects", "bytes", "duration_ns", "cat")
_TS_COLUMNS = ("start", "first_byte", "last_byte", "end")


class OpLogFormatError(S3dlioError, ValueError):
    """A file that is not a readable op-log: no header, a malformed line, or truncated data."""

    def __init__(self, path: str, line: int | None, message: str) -> None:
        where = f"{path}, line {line}" if line is not None else path
        super().__init__(f"op-log {where}: {message}")
        self.path = path
        self.line = line


class _StreamError(Exception):
    """Raised inside the decompressing stream; :func:`read` adds the file and line."""


class _ZstdFrames(io.RawIOBase):
    """Decompress concatenated zstd frames and notice truncation.

    ``zstandard``'s stream reader returns a short read, not an error, when the input stops
    mid-frame; a half-written log must not pass for a complete one, so this tracks frame ends.
    """

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self._dctx = zstandard.ZstdDecompressor()
        self._obj = self._dctx.decompressobj()
        self._mid_frame = False
        self._pending = memoryview(b"")
        self._eof = False

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._pending:
            if self._eof:
                return 0
            chunk = self._raw.read(1 << 17)
            if not chunk:
                self._eof = True
                if self._mid_frame:
                    raise _StreamError(
                        "the zstd stream ends mid-frame: the file is truncated (was the writer finalized?)"
                    )
                return 0
            self._pending = memoryview(self._feed(chunk))
        n = min(len(b), len(self._pending))
        b[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def _feed(self, chunk: bytes) -> bytes:
        out: list[bytes] = []
        while chunk:
            try:
                out.append(self._obj.decompress(chunk))
            except zstandard.ZstdError as exc:
                raise _StreamError(f"corrupt zstd data: {exc}") from exc
            if self._obj.eof:
                chunk = self._obj.unused_data
                self._obj = self._dctx.decompressobj()
                self._mid_frame = False
            else:
                self._mid_frame = True
                chunk = b""
        return b"".join(out)

    def close(self) -> None:
        super().close()
        self._raw.close()


def open_text(source: str | os.PathLike[str] | IO[bytes]) -> io.TextIOWrapper:
    """A text stream of the decompressed file; lines end only at LF (CR stays data)."""
    raw: IO[bytes]
    raw = open(source, "rb") if isinstance(source, str | os.PathLike) else source  # noqa: SIM115
    buffered: Any = raw if hasattr(raw, "peek") else io.BufferedReader(raw)
    stream: Any = buffered
    if buffered.peek(4)[:4] == ZSTD_MAGIC:
        stream = io.BufferedReader(_ZstdFrames(buffered), 1 << 16)
    return io.TextIOWrapper(stream, encoding="utf-8", newline="\n")


def read(source: str | os.PathLike[str] | IO[bytes]) -> Iterator[Record]:
    """Stream the records of one op-log file (plain or zstd, detected by content).

    ``#`` comment lines and blank lines are skipped; a record whose quoted field holds line
    breaks spans several physical lines.
    """
    name = os.fspath(source) if isinstance(source, str | os.PathLike) else getattr(source, "name", "<stream>")
    name = str(name)
    lineno = 0
    with open_text(source) as text:
        lines = iter(text)
        try:
            header = None
            for line in lines:
                lineno += 1
                if line.startswith("#") or not line.strip():
                    continue
                header = line.rstrip("\r\n").split("\t")
                break
            if header is None:
                raise OpLogFormatError(name, None, "no header line: the file is empty, not an op-log")
            missing = [c for c in _REQUIRED if c not in header]
            if missing:
                raise OpLogFormatError(
                    name, lineno, f"header lacks column(s) {missing}: not an op-log? header: {header[:16]}"
                )
            ncol = len(header)
            # Missing columns point past the line's own fields, into a row of defaults appended to it.
            absent = [c for c in _DEFAULTS if c not in header]
            pad = [_DEFAULTS[c] for c in absent]
            pos = {c: i for i, c in enumerate(header)}
            pos.update({c: ncol + k for k, c in enumerate(absent)})
            i_idx, i_thread, i_op, i_client, i_nobj, i_bytes = (
                pos[c] for c in ("idx", "thread", "op", "client_id", "n_objects", "bytes")
            )
            i_ep, i_file, i_err, i_start, i_fb, i_lb, i_end, i_dur, i_cat = (
                pos[c]
                for c in (
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
            )
            count = 0
            for line in lines:
                lineno += 1
                first = lineno
                if line[0] == "#" or line in ("\n", "\r\n"):
                    continue
                if '"' in line:
                    # Balance quotes: a quoted field may hold LF, so the record may go on.
                    while line.count('"') % 2:
                        more = next(lines, None)
                        if more is None:
                            raise OpLogFormatError(name, first, "a quoted field is never closed")
                        lineno += 1
                        line += more
                    try:
                        rows = list(csv.reader([line.rstrip("\r\n")], delimiter="\t", strict=True))
                    except csv.Error as exc:
                        raise OpLogFormatError(name, first, f"bad quoting: {exc}") from None
                    if len(rows) != 1:
                        raise OpLogFormatError(name, first, "bad quoting: a quote inside an unquoted field")
                    fields = rows[0]
                else:
                    fields = line.rstrip("\r\n").split("\t")
                if len(fields) != ncol:
                    raise OpLogFormatError(
                        name,
                        first,
                        f"{len(fields)} fields where the header has {ncol}: a cut or malformed line",
                    )
                if pad:
                    fields += pad
                try:
                    start = parse_ts(fields[i_start])
                    end = parse_ts(fields[i_end])
                    fb = fields[i_fb]
                    lb = fields[i_lb]
                    dur = fields[i_dur]
                    idx = fields[i_idx]
                    yield Record(
                        int(idx) if idx else count,
                        int(fields[i_thread]),
                        fields[i_op],
                        fields[i_client],
                        int(fields[i_nobj]),
                        int(fields[i_bytes]),
                        fields[i_ep],
                        fields[i_file],
                        fields[i_err],
                        start,
                        parse_ts(fb) if fb else None,
                        parse_ts(lb) if lb else None,
                        end,
                        int(dur) if dur else end - start,
                        int(fields[i_cat]),
                    )
                except ValueError:
                    raise OpLogFormatError(name, first, _which_field(fields, pos)) from None
                count += 1
        except _StreamError as exc:
            raise OpLogFormatError(name, lineno + 1, str(exc)) from None
        except UnicodeDecodeError as exc:
            raise OpLogFormatError(
                name, lineno + 1, f"not UTF-8 text ({exc.reason}): not an op-log?"
            ) from None


def _which_field(fields: list[str], pos: dict[str, int]) -> str:
    """Name the first field that does not convert (only on the error path, so the fast path stays lean)."""
    for col in _TS_COLUMNS:
        value = fields[pos[col]]
        if value or col in _REQUIRED:
            try:
                parse_ts(value)
            except ValueError:
                return f"column {col}: {value!r} is not an RFC 3339 timestamp"
    for col in _INT_COLUMNS:
        value = fields[pos[col]]
        if value or col not in ("idx", "duration_ns"):
            try:
                int(value)
            except ValueError:
                return f"column {col}: {value!r} is not an integer"
    return "malformed line"
