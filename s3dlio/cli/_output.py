"""What the commands print: human numbers, one-line errors, JSON, and a progress bar on stderr.

Numbers follow the original product: ``MB`` is 2^20 bytes, as s3-cli counted it (its
``downloaded 24000.00 MB`` is 25165824000 bytes), seconds have three decimals, and summary
lines keep s3-cli's fixed wording (``Uploaded 1 objects``: always plural) so that a script
matching ``Uploaded N objects`` works for any count.

The progress bar appears only when stderr is a terminal and the work runs past one second
(``S3DLIO_PROGRESS_DELAY`` seconds). Batch commands keep counters, never per-object lists:
:class:`Tally` holds counts and at most :data:`KEEP_ERRORS` error messages.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TextIO

import click

__all__ = [
    "KEEP_ERRORS",
    "MB",
    "SHOW_ERRORS",
    "PartialFailure",
    "Progress",
    "State",
    "Tally",
    "abort_open_uploads",
    "as_command",
    "emit_json",
    "error_lines",
    "mb",
    "on_interrupt",
    "plural",
    "rate",
    "remove_temp_files",
    "report_failure",
    "run_interrupt_hooks",
    "seconds",
    "wait_uploads_aborted",
]

_SPIN = "|/-\\"

#: Failed objects of a batch reported on stderr, one line each; the rest are only counted.
SHOW_ERRORS = 20
#: Failed objects of a batch kept for ``--json`` (``errors``); ``failed`` counts them all.
KEEP_ERRORS = 100


@dataclass
class State:
    """What the group's options leave for the commands (``ctx.obj``)."""

    verbose: int = 0


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 object``, ``2 objects``, ``0 objects``; ``many`` for irregular words (``entries``)."""
    return f"{n} {word}" if n == 1 else f"{n} {many or word + 's'}"


#: What the original s3-cli called a MB (and s3dlio's ``MB`` figures and ``mb_per_s`` still do).
MB = 2**20


def mb(nbytes: float) -> str:
    """``nbytes`` in s3-cli's MB (2^20 bytes), two decimals: 25165824000 is ``24000.00``."""
    return f"{nbytes / MB:.2f}"


def rate(count: float, secs: float) -> float:
    """``count`` per second; 0 when no time passed."""
    return count / secs if secs > 0 else 0.0


def seconds(secs: float) -> str:
    """A duration as the product prints it: ``4.345s``."""
    return f"{secs:.3f}s"


def emit_json(obj: dict[str, Any]) -> None:
    """Write ``obj`` as one JSON object on one line of stdout (secrets redacted)."""
    from .._redact import redact

    click.echo(redact(json.dumps(obj, default=str)))


def error_lines(exc: BaseException, verbose: int = 0) -> list[str]:
    """``s3dlio: error: <message>``, and with ``-v`` one ``caused by`` line per link of the chain."""
    lines = [f"s3dlio: error: {_message(exc)}"]
    if verbose:
        seen = {id(exc)}
        cause = exc.__cause__ or exc.__context__
        while cause is not None and id(cause) not in seen:
            seen.add(id(cause))
            lines.append(f"  caused by: {type(cause).__name__}: {cause}")
            cause = cause.__cause__ or cause.__context__
    from .._redact import redact

    return [redact(line) for line in lines]


def _message(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    from ..errors import S3dlioError

    if isinstance(exc, S3dlioError):
        return text
    return f"{type(exc).__name__}: {text}"  # an unexpected error: say what kind


#: Operation names the library's messages start with (``head s3://b/k: not found``).
_INTERNAL_OPS = (
    "head|get_range|get|put|list|delete_many|delete|create_bucket|delete_bucket|list_buckets"
    "|copy|download|upload|open_upload|stat"
)
_OP_PREFIX = re.compile(rf"^(?:{_INTERNAL_OPS}) (?=\S)")


def as_command(message: str, command: str) -> str:
    """``message`` naming ``command`` (what the user typed) instead of the library's operation.

    ``head s3://b/k: not found`` under ``s3dlio stat`` reads ``stat s3://b/k: not found``.
    """
    return _OP_PREFIX.sub(f"{command} ", message, count=1)


def _failure_line(what: str, exc: BaseException, verbose: int) -> str:
    lines = error_lines(exc, verbose)
    op, _, uri = what.partition(" ")
    body = as_command(lines[0].removeprefix("s3dlio: error: "), op)
    if uri not in body:
        body = f"{what}: {body}"
    from .._redact import redact

    return "\n".join([redact(f"s3dlio: error: {body}"), *lines[1:]])  # a key may carry a signature


def report_failure(what: str, exc: BaseException, verbose: int = 0) -> None:
    """One failed object of a batch, on stderr; ``what`` (op and URI) leads unless the message names it."""
    click.echo(_failure_line(what, exc, verbose), err=True)


# -- Ctrl-C ----------------------------------------------------------------------------------
_interrupt_hooks: list[Callable[[], None]] = []


def on_interrupt(hook: Callable[[], None]) -> None:
    """Run ``hook`` if this command is interrupted (Ctrl-C or SIGTERM), before the process
    exits, once the calls in flight had their moment to finish (remove the temporary files
    they left)."""
    _interrupt_hooks.append(hook)


def run_interrupt_hooks() -> None:
    """Run (and forget) the hooks of :func:`on_interrupt`; a failing hook does not stop the rest."""
    while _interrupt_hooks:
        hook = _interrupt_hooks.pop()
        with contextlib.suppress(Exception):  # best effort while exiting
            hook()


_aborting: list[threading.Thread] = []


def abort_open_uploads() -> None:
    """Start aborting the multipart upload of every writer still open in this process: those
    of ``put``, and the ones ``upload`` and ``cp`` stream through in the library. Called twice
    on an interrupt: writers opened meanwhile are caught by the second call."""
    from .. import writer

    _aborting.extend(writer.abort_open_uploads())


def wait_uploads_aborted(until: float) -> None:
    """Abort the writers opened since :func:`abort_open_uploads`, then wait for every abort
    until ``until`` (``time.monotonic()``): past the usual exit deadline when the server is
    slow to answer, since an upload left open is kept (and billed) until someone aborts it."""
    abort_open_uploads()
    for thread in _aborting:
        thread.join(max(0.0, until - time.monotonic()))


def remove_temp_files(root: str, recursive: bool = True) -> None:
    """Delete this process's temporary files in ``root`` (or the directory of the file ``root``
    names), and below it when ``recursive``: what a download or copy cut short left.

    They are the hidden ``.s3dlio-tmp-PID-...`` files of :func:`s3dlio.ops.write_file_atomic`
    and the file store (and the ``PATH.s3dlio-PID-THREAD.tmp`` of earlier versions), named
    with our pid: another process's are left alone.
    """
    pid = str(os.getpid())
    mine = re.compile(rf"(\.s3dlio-{pid}-\d+\.tmp|^\.s3dlio-tmp-{pid}-\w+)$")
    if not os.path.isdir(root):
        if recursive:  # a directory never created: nothing was written there
            return
        root = os.path.dirname(os.path.abspath(root))
    for folder, dirs, files in os.walk(root):
        if not recursive:
            dirs.clear()
        for name in files:
            if mine.search(name):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(folder, name))


class Progress:
    """A progress line on stderr, drawn only on a terminal and only after ``delay`` seconds.

    Thread-safe: workers call :meth:`advance` as each object finishes, and :meth:`echo` prints
    a line (an error) without tearing the bar. Totals may be unknown (None): the line then
    shows counts and the rate alone. ``show_bytes=False`` (deletes) shows objects per second.
    """

    def __init__(
        self,
        label: str,
        total: int | None = None,
        total_bytes: int | None = None,
        *,
        stream: TextIO | None = None,
        enabled: bool | None = None,
        delay: float | None = None,
        interval: float | None = None,
        counting: bool = True,
        show_bytes: bool = True,
    ) -> None:
        self.label = label
        self.counting = counting
        self.show_bytes = show_bytes
        self.total = total
        self.total_bytes = total_bytes
        self.done = 0
        self.nbytes = 0
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = _is_terminal(self.stream) if enabled is None else enabled
        self.delay = _env_seconds("S3DLIO_PROGRESS_DELAY", 1.0, 0.0) if delay is None else delay
        self.interval = _env_seconds("S3DLIO_PROGRESS_INTERVAL", 0.2, 0.01) if interval is None else interval
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start = time.perf_counter()
        self._drawn = False

    def advance(self, items: int = 1, nbytes: int = 0) -> None:
        """Count ``items`` more finished, carrying ``nbytes``."""
        with self._lock:
            self.done += items
            self.nbytes += nbytes

    def echo(self, text: str) -> None:
        """Print ``text`` on a line of its own on the stream, clearing the bar first."""
        with self._write_lock:
            try:
                if self._drawn:
                    self.stream.write("\r\x1b[K")
                self.stream.write(text + "\n")
                self.stream.flush()
            except (OSError, ValueError):
                pass

    def __enter__(self) -> Progress:
        self._start = time.perf_counter()
        if self.enabled:
            self._thread = threading.Thread(target=self._run, name="s3dlio-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(1.0)  # a Ctrl-C must not wait on a stuck terminal
        if self._drawn:
            with self._write_lock:
                try:
                    self.stream.write("\r\x1b[K")
                    self.stream.flush()
                except (OSError, ValueError):
                    pass

    def _run(self) -> None:
        if self._stop.wait(self.delay):
            return
        while True:
            with self._write_lock:
                if self._stop.is_set():
                    return
                try:
                    self.stream.write("\r" + self.line() + "\x1b[K")
                    self.stream.flush()
                except (OSError, ValueError):
                    return
                self._drawn = True
            if self._stop.wait(self.interval):
                return

    def line(self) -> str:
        """The text of the progress line as it stands now."""
        with self._lock:
            done, nbytes = self.done, self.nbytes
        elapsed = time.perf_counter() - self._start
        parts = [self.label]
        if not self.counting:  # work that reports no progress of its own: show that it runs
            spin = _SPIN[int(elapsed / self.interval) % len(_SPIN)]
            return f"{self.label}  {spin}  {elapsed:.0f}s"
        if self.total:
            frac = min(1.0, done / self.total)
            if self.total_bytes and self.show_bytes:
                frac = min(1.0, nbytes / self.total_bytes)
            filled = int(frac * 24)
            word = "object" if self.total == 1 else "objects"
            parts.append(f"[{'#' * filled}{'.' * (24 - filled)}] {done}/{self.total} {word}")
        else:
            parts.append(plural(done, "object"))
        if self.show_bytes:
            parts.append(f"{mb(nbytes)} MB")
            parts.append(f"{mb(rate(nbytes, elapsed))} MB/s")
        else:
            parts.append(f"{rate(done, elapsed):.1f} objects/s")
        parts.append(f"{elapsed:.0f}s")
        return "  ".join(parts)


def _env_seconds(name: str, default: float, least: float) -> float:
    """Seconds from the variable ``name`` (at least ``least``): ``S3DLIO_PROGRESS_DELAY`` before
    the bar appears (default 1), ``S3DLIO_PROGRESS_INTERVAL`` between redraws (default 0.2)."""
    try:
        return max(least, float(os.environ.get(name, default)))
    except ValueError:
        return default


class Tally:
    """Counts of a batch command, thread-safe, in constant memory whatever the batch size.

    Workers call :meth:`ok` and :meth:`fail`; each failure of a batch of more than one object
    is reported on stderr as it happens (the first :data:`SHOW_ERRORS`), and the first
    :data:`KEEP_ERRORS` are kept for ``--json``.
    """

    def __init__(self, op: str, total: int, progress: Progress, verbose: int = 0) -> None:
        self.op = op
        self.total = total
        self.progress = progress
        self.verbose = verbose
        self.done = 0
        self.nbytes = 0
        self.failed = 0
        self.errors: list[dict[str, str]] = []
        self.first: BaseException | None = None
        self._lock = threading.Lock()

    def ok(self, nbytes: int) -> None:
        """One more object finished, carrying ``nbytes``."""
        self.advance(1, nbytes)

    def advance(self, objects: int, nbytes: int) -> None:
        """``objects`` more finished, carrying ``nbytes`` (the library's ``on_object`` callback)."""
        with self._lock:
            self.done += objects
            self.nbytes += nbytes
        self.progress.advance(objects, nbytes)

    def fail(self, uri: object, exc: BaseException) -> None:
        """One object failed: count it, keep and report it while under the limits."""
        with self._lock:
            self.failed += 1
            n = self.failed
            if self.first is None:
                self.first = exc
            if n <= KEEP_ERRORS:
                self.errors.append({"uri": str(uri), "error": as_command(str(exc), self.op)})
        if self.total != 1 and n <= SHOW_ERRORS:
            self.progress.echo(_failure_line(f"{self.op} {uri}", exc, self.verbose))

    def end(self) -> None:
        """Exit 1 when some objects failed; a batch of one raises its own error."""
        if not self.failed:
            return
        if self.total == 1 and self.first is not None:
            raise self.first
        more = self.failed - min(self.failed, SHOW_ERRORS)
        shown = "each is reported above" if not more else f"the first {SHOW_ERRORS} are reported above"
        raise PartialFailure(f"{self.failed} of {plural(self.total, 'object')} failed ({shown})")


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty() and os.environ.get("TERM") != "dumb"
    except (AttributeError, ValueError):
        return False


class PartialFailure(click.ClickException):
    """Some objects of a batch failed (each already reported): exit status 1, one summary line."""

    exit_code = 1

    def show(self, file: Any = None) -> None:
        click.echo(f"s3dlio: error: {self.format_message()}", file=file, err=True)
