"""The op-log writer: producers put tuples on a bounded queue; one daemon thread formats and writes.

Formatting and compression happen off the I/O path, so :meth:`OpLogWriter.log` costs a tuple and
a ``queue.SimpleQueue.put`` (C, lock-free for the caller: ~0.5 us where ``queue.Queue.put`` took
1-4 us because of its Python-level lock and condition). The bound is kept by checking ``qsize()``
first: in lossy mode (the default) a full queue drops the entry and counts it, so a slow disk
never slows the workload; in lossless mode producers wait for room instead.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any

import zstandard

from .._redact import redact
from ..config import parse_bool
from ..errors import ConfigError
from ..sizes import parse_size
from .record import HEADER, format_line, format_ts, quote_field, secret_free

__all__ = [
    "OpLogSettings", "OpLogWriter", "check_client_id", "default_client_id", "error_text", "per_process_path",
]  # fmt: skip

log = logging.getLogger("s3dlio.oplog")

_get_ident = threading.get_ident
_STOP = object()  # queue sentinel: drain what is left, then close
_IDLE_FLUSH_S = 1.0  # with no new entries for this long, push buffered lines to the file
# While operations keep coming, the writer wakes at most every _BATCH_S to move entries off the
# queue, and formats them only once the producers pause for _BATCH_S or _DEFER_MAX entries wait:
# a wake-up per entry, or formatting during a burst, competes for the GIL with the very I/O
# being logged (measured: +60..180% on 4 KiB GETs from mem://; deferred: a few percent).
_BATCH_S = 0.01
_DEFER_MAX = 16384


def default_client_id() -> str:
    """``host:pid``: unique per process, so logs of many clients and workers can be merged."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    return parse_bool(name, raw)


def _env_int(name: str, default: int, *, size: bool = False) -> int:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    if size:
        return parse_size(raw)
    try:
        return int(raw.strip())
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: not an integer") from None


@dataclass(frozen=True, slots=True)
class OpLogSettings:
    """How a writer buffers and compresses. Build with :meth:`resolve` (arguments > environment)."""

    queue_size: int = 2048
    wbufcap: int = 262144
    level: int = 1
    lossless: bool = False

    def __post_init__(self) -> None:
        if self.queue_size < 1:
            raise ConfigError(f"S3DLIO_OPLOG_BUF={self.queue_size}: the queue needs at least 1 entry")
        if self.wbufcap < 0:
            raise ConfigError(f"S3DLIO_OPLOG_WBUFCAP={self.wbufcap}: must be 0 or more bytes")
        hi = zstandard.MAX_COMPRESSION_LEVEL
        if not -7 <= self.level <= hi:
            raise ConfigError(
                f"S3DLIO_OPLOG_LEVEL={self.level}: use a zstd level from 1 to {hi} (or -7..-1, faster still)"
            )

    @classmethod
    def resolve(
        cls,
        queue_size: int | None = None,
        wbufcap: int | None = None,
        level: int | None = None,
        lossless: bool | None = None,
    ) -> OpLogSettings:
        """Settings from the arguments, else ``S3DLIO_OPLOG_BUF/WBUFCAP/LEVEL/LOSSLESS``, else defaults."""
        return cls(
            queue_size=queue_size if queue_size is not None else _env_int("S3DLIO_OPLOG_BUF", 2048),
            wbufcap=wbufcap if wbufcap is not None else _env_int("S3DLIO_OPLOG_WBUFCAP", 262144, size=True),
            level=level if level is not None else _env_int("S3DLIO_OPLOG_LEVEL", 1),
            lossless=lossless if lossless is not None else _env_bool("S3DLIO_OPLOG_LOSSLESS", False),
        )


def per_process_path(path: str | os.PathLike[str], pid: int) -> str:
    """``path`` with ``.<pid>`` before its extension: ``run.tsv.zst`` -> ``run.<pid>.tsv.zst``.

    A compression suffix (``.zst``) and the format suffix before it stay together at the end,
    so the name still says what the file is; a name without an extension gets ``.<pid>`` appended.
    """
    head, name = os.path.split(os.fspath(path))
    tail = ""
    if name.endswith(".zst") and len(name) > 4:
        name, tail = name[:-4], ".zst"
    stem, ext = os.path.splitext(name)
    return os.path.join(head, f"{stem}.{pid}{ext}{tail}")


def check_client_id(name: str) -> str:
    """``name`` if it can sit unquoted in a tab-separated column (warp never quotes client_id)."""
    if not name or any(c in name for c in '\t\r\n"'):
        raise ConfigError(f"client id {name!r}: must be non-empty, without tabs, quotes or line breaks")
    return name


def error_text(exc: BaseException) -> str:
    """The ``error`` column for ``exc``: its message on one line, or its type's name."""
    return redact(" ".join(str(exc).split())) or type(exc).__name__


def _run_lines(item: tuple[Any, ...], idx: int, thread: int, client_id: str) -> list[str]:
    """The lines of a run from :meth:`OpLogWriter.log_run`, numbered from ``idx``.

    ``format_line``'s layout, with what the run shares formatted once: the constant columns,
    and each timestamp boundary (one operation's end is the next one's start).
    """
    op, endpoint, root, keys, stamps, first_bytes, results, _ = item
    ts = [format_ts(t) for t in stamps[: len(results) + 1]]
    head = f"\t{thread}\t{op}\t{client_id}\t1\t"
    ep = quote_field(secret_free(endpoint))
    lines = []
    for i, result in enumerate(results):
        start, end, file = stamps[i], stamps[i + 1], root + keys[i]
        if isinstance(result, BaseException):
            lines.append(format_line(idx + i, thread, op, client_id, 1, 0, endpoint, file, error_text(result), start, None, None, end))  # fmt: skip
            continue
        fb = first_bytes[i]
        lines.append(
            f"{idx + i}{head}{memoryview(result).nbytes}\t{ep}\t{quote_field(secret_free(file))}\t\t{ts[i]}\t"
            f"{'' if fb is None else format_ts(fb)}\t\t{ts[i + 1]}\t{end - start}\t0\n"
        )
    return lines


class OpLogWriter:
    """Writes one op-log file from any number of producer threads.

    ``path`` ending in ``.zst`` is zstd-compressed; anything else is plain text. Call
    :meth:`finalize` (or use ``with``) so the zstd frame is closed and the file is readable.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        queue_size: int | None = None,
        wbufcap: int | None = None,
        level: int | None = None,
        lossless: bool | None = None,
        client_id: str | None = None,
    ) -> None:
        self.settings = OpLogSettings.resolve(queue_size, wbufcap, level, lossless)
        self.path = os.fspath(path)
        self.pid = os.getpid()
        self._client_id = check_client_id(client_id) if client_id is not None else default_client_id()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._put = self._queue.put
        self._qsize = self._queue.qsize
        self._cap = self.settings.queue_size
        self._lossless = self.settings.lossless
        self._dropped = 0
        self._drop_lock = threading.Lock()
        self._room = threading.Condition()  # lossless producers wait here for the writer to drain
        self._waiting = 0
        self._bad = False
        self._closed = False
        self._finalize_lock = threading.Lock()
        self._written = 0
        self._tids: dict[int, int] = {}  # Python thread ident -> small thread number (writer thread only)
        self._buf: list[str] = []  # formatted lines not yet handed to the file (writer thread only)
        self._size = 0  # characters in _buf
        self._dirty = False  # lines sit in the compressor but not yet in the file
        self._error: BaseException | None = None

        self._raw: IO[bytes] = open(self.path, "wb")  # noqa: SIM115 - closed in finalize
        self._out: Any = self._raw
        if self.path.endswith(".zst"):
            self._out = zstandard.ZstdCompressor(level=self.settings.level).stream_writer(
                self._raw, closefd=False
            )
        self._out.write((HEADER + "\n").encode())
        self._thread = threading.Thread(target=self._run, name="s3dlio-oplog", daemon=True)
        self._thread.start()

    # -- producer side (hot path) ---------------------------------------------------------------

    def log(
        self,
        op: str,
        *,
        file: str,
        endpoint: str,
        start_ns: int,
        end_ns: int,
        bytes: int = 0,  # noqa: A002 - the column's name
        n_objects: int = 1,
        error: str = "",
        first_byte_ns: int | None = None,
        last_byte_ns: int | None = None,
        thread: int | None = None,
        cat: int = 0,
    ) -> None:
        """Record one operation. Cheap: one queue put; formatting happens on the writer thread.

        ``thread`` defaults to a small integer per Python thread (0, 1, 2... in order of first
        use). Entries logged after :meth:`finalize` are ignored.
        """
        if self._closed:
            return
        item = (
            op,
            thread,
            threading.get_ident() if thread is None else 0,
            n_objects,
            bytes,
            endpoint,
            file,
            error,
            start_ns,
            first_byte_ns,
            last_byte_ns,
            end_ns,
            cat,
        )
        if self._qsize() < self._cap:
            self._put(item)
        else:
            self._full(item)

    def log_ok(
        self,
        op: str,
        endpoint: str,
        root: str,
        key: str,
        start_ns: int,
        end_ns: int,
        nbytes: int,
        first_byte_ns: int | None,
    ) -> None:
        """:meth:`log` for a successful one-object operation on ``root + key``: the store
        decorator's hot path, where a 4 KiB GET from memory costs ~3 us and every step shows,
        so it queues a short tuple and leaves even the path's concatenation to the writer."""
        if self._closed:
            return
        item = (op, endpoint, root, key, start_ns, end_ns, nbytes, first_byte_ns, _get_ident())
        if self._qsize() < self._cap:
            self._put(item)
        else:
            self._full(item)

    def log_run(
        self,
        op: str,
        endpoint: str,
        root: str,
        keys: Sequence[str],
        stamps: Sequence[int],
        first_bytes: Sequence[int | None],
        results: Sequence[Any],
    ) -> None:
        """Operations run one after another on ``root + keys[i]``, from ``stamps[i]`` to
        ``stamps[i + 1]``; ``results[i]`` is the data read (its size is taken on the writer
        thread, which holds it until then) or the exception raised. Keys past the results
        did not run. One queue entry for the whole run."""
        if self._closed:
            return
        item = (op, endpoint, root, keys, stamps, first_bytes, results, _get_ident())
        if self._qsize() < self._cap:
            self._put(item)
        else:
            self._full(item, len(results))

    def _full(self, item: tuple[Any, ...], entries: int = 1) -> None:
        """Slow path: the queue is at its bound. Lossy: count a drop. Lossless: wait for room."""
        if not self._lossless:
            with self._drop_lock:
                self._dropped += entries
            return
        with self._room:
            self._waiting += 1
            try:
                while self._qsize() >= self._cap and not self._closed:
                    self._room.wait(0.1)
            finally:
                self._waiting -= 1
        self._put(item)

    @property
    def dropped(self) -> int:
        """Entries lost so far because the queue was full (always 0 in lossless mode)."""
        return self._dropped

    @property
    def written(self) -> int:
        """Lines formatted so far (they reach the file at the latest at :meth:`finalize`)."""
        return self._written

    @property
    def client_id(self) -> str:
        return self._client_id

    def set_client_id(self, name: str) -> None:
        """Name this client in the ``client_id`` column of lines written from now on."""
        self._client_id = check_client_id(name)

    @property
    def closed(self) -> bool:
        return self._closed

    def finalize(self) -> int:
        """Write everything queued, close the zstd frame and the file; return the dropped count.

        Safe to call twice (the second call only returns the count). Logs a warning when entries
        were dropped, naming the setting that prevents it.
        """
        with self._finalize_lock:
            if not self._closed:
                self._closed = True
                self._put(_STOP)  # past the bound: the sentinel must arrive
                self._thread.join()
                self._close_file()
                if self._dropped:
                    log.warning(
                        "op-log %s: %d operations dropped because the queue was full; "
                        "set S3DLIO_OPLOG_LOSSLESS=true (or a larger S3DLIO_OPLOG_BUF) to keep them all",
                        self.path,
                        self._dropped,
                    )
            return self._dropped

    close = finalize

    def __enter__(self) -> OpLogWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.finalize()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"OpLogWriter({self.path!r}, {state}, written={self._written}, dropped={self._dropped})"

    def _abandon(self) -> None:
        """Disarm this writer in a forked child, whose copy still holds the parent's buffers.

        The child's copy of the file descriptor shares the parent's file offset, so any flush of
        the inherited buffers (say, when they are garbage collected) would splice stale bytes into
        the parent's file. Pointing the child's descriptor at /dev/null makes such writes harmless.
        """
        self._closed = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, self._raw.fileno())
            finally:
                os.close(devnull)
        except (OSError, ValueError):
            pass

    # -- writer thread --------------------------------------------------------------------------

    def _run(self) -> None:
        get = self._queue.get
        get_nowait = self._queue.get_nowait
        pending: list[tuple[Any, ...]] = []  # entries taken off the queue, not yet formatted
        stopping = False
        while not stopping:
            try:
                item = get(timeout=_BATCH_S if pending else _IDLE_FLUSH_S)
            except queue.Empty:
                if pending:
                    self._format(pending)  # the producers paused: format now
                elif self._buf or self._dirty:
                    self._emit(self._buf, flush=True)  # idle for a while: push lines to the file
                    self._buf, self._size, self._dirty = [], 0, False
                continue
            while True:  # take everything already queued in one go
                if item is _STOP:
                    stopping = True  # entries racing with finalize are taken too, never waited for
                else:
                    pending.append(item)
                try:
                    item = get_nowait()
                except queue.Empty:
                    break
            if self._waiting:
                self._wake_producers()
            if len(pending) >= _DEFER_MAX or stopping:
                self._format(pending)
            elif not self._waiting:
                time.sleep(_BATCH_S)  # let the burst gather: one wake-up per batch, not per entry
        self._emit(self._buf, flush=False)

    def _format(self, pending: list[tuple[Any, ...]]) -> None:
        """Format ``pending`` (emptied) into lines; hand them to the file ``wbufcap`` bytes at a time."""
        cap = self.settings.wbufcap
        buf, size = self._buf, self._size
        idx = self._written
        client_id = self._client_id
        for item in pending:
            try:
                if len(item) == 8:  # from log_run
                    lines = _run_lines(item, idx, self._thread_number(item[7]), client_id)
                else:
                    lines = [self._line(item, idx, client_id)]
            except Exception as exc:  # a caller's bad value must not kill the writer thread
                self._bad_entry(item, exc)
                continue
            idx += len(lines)
            buf += lines
            size += sum(map(len, lines))
            if size >= cap:
                self._emit(buf, flush=False)
                buf, size, self._dirty = [], 0, True
        pending.clear()
        self._buf, self._size, self._written = buf, size, idx

    def _line(self, item: tuple[Any, ...], idx: int, client_id: str) -> str:
        if len(item) == 9:  # from log_ok
            op, endpoint, root, file, start, end, nbytes, fb, ident = item
            file, thread, n_objects, error, lb, cat = root + file, None, 1, "", None, 0
        else:
            (op, thread, ident, n_objects, nbytes, endpoint, file, error, start, fb, lb, end, cat) = item
        if thread is None:
            thread = self._thread_number(ident)
        return format_line(
            idx, thread, op, client_id, n_objects, nbytes, endpoint, file, error, start, fb, lb, end, cat
        )

    def _thread_number(self, ident: int) -> int:
        """A small number per Python thread, in order of first use."""
        number = self._tids.get(ident)
        if number is None:
            number = self._tids[ident] = len(self._tids)
        return number

    def _bad_entry(self, item: tuple[Any, ...], exc: Exception) -> None:
        with self._drop_lock:
            self._dropped += 1
            first = not self._bad
            self._bad = True
        if first:
            log.error(
                "op-log %s: cannot format entry %r (%s); such entries are counted as dropped",
                self.path,
                item,
                exc,
            )

    def _wake_producers(self) -> None:
        with self._room:
            self._room.notify_all()

    def _emit(self, lines: list[str], *, flush: bool) -> None:
        if self._error is not None:
            return
        try:
            if lines:
                self._out.write("".join(lines).encode())
            if flush:
                if self._out is not self._raw:
                    self._out.flush(zstandard.FLUSH_BLOCK)
                self._raw.flush()
        except Exception as exc:  # disk full, file removed...: keep draining so producers never hang
            self._error = exc
            log.error("op-log %s: writing failed, further operations are not recorded: %s", self.path, exc)

    def _close_file(self) -> None:
        try:
            if self._out is not self._raw and self._error is None:
                self._out.flush(zstandard.FLUSH_FRAME)
            self._raw.close()
        except Exception as exc:
            log.error("op-log %s: closing failed: %s", self.path, exc)
            self._error = self._error or exc
