"""What the commands print: human numbers, one-line errors, JSON, and a progress bar on stderr.

Numbers follow the original product: ``MB`` is 10^6 bytes, seconds have three decimals.
The progress bar appears only when stderr is a terminal and the work runs past one second.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TextIO

import click

__all__ = [
    "PartialFailure",
    "Progress",
    "State",
    "emit_json",
    "error_lines",
    "mb",
    "rate",
    "report_failure",
    "seconds",
]

_SPIN = "|/-\\"


@dataclass
class State:
    """What the group's options leave for the commands (``ctx.obj``)."""

    verbose: int = 0


def mb(nbytes: float) -> str:
    """``nbytes`` in MB (10^6 bytes), two decimals: ``24000.00``."""
    return f"{nbytes / 1e6:.2f}"


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


def report_failure(what: str, exc: BaseException, verbose: int = 0) -> None:
    """One failed object of a batch, on stderr; ``what`` (op and URI) leads unless the message names it."""
    lines = error_lines(exc, verbose)
    body = lines[0].removeprefix("s3dlio: error: ")
    uri = what.split(" ", 1)[-1]
    if uri not in body:
        body = f"{what}: {body}"
    click.echo("\n".join([f"s3dlio: error: {body}", *lines[1:]]), err=True)


class Progress:
    """A progress line on stderr, drawn only on a terminal and only after ``delay`` seconds.

    Thread-safe: workers call :meth:`advance`. Totals may be unknown (None): the line then
    shows counts and the rate alone.
    """

    def __init__(
        self,
        label: str,
        total: int | None = None,
        total_bytes: int | None = None,
        *,
        stream: TextIO | None = None,
        enabled: bool | None = None,
        delay: float = 1.0,
        interval: float = 0.2,
        counting: bool = True,
    ) -> None:
        self.label = label
        self.counting = counting
        self.total = total
        self.total_bytes = total_bytes
        self.done = 0
        self.nbytes = 0
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = _is_terminal(self.stream) if enabled is None else enabled
        self.delay = delay
        self.interval = interval
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start = time.perf_counter()
        self._drawn = False

    def advance(self, items: int = 1, nbytes: int = 0) -> None:
        """Count ``items`` more finished, carrying ``nbytes``."""
        with self._lock:
            self.done += items
            self.nbytes += nbytes

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
            self._thread.join()
        if self._drawn:
            try:
                self.stream.write("\r\x1b[K")
                self.stream.flush()
            except (OSError, ValueError):
                pass

    def _run(self) -> None:
        if self._stop.wait(self.delay):
            return
        while True:
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
            if self.total_bytes:
                frac = min(1.0, nbytes / self.total_bytes)
            filled = int(frac * 24)
            parts.append(f"[{'#' * filled}{'.' * (24 - filled)}] {done}/{self.total}")
        else:
            parts.append(f"{done}")
        parts.append(f"{mb(nbytes)} MB")
        parts.append(f"{mb(rate(nbytes, elapsed))} MB/s")
        parts.append(f"{elapsed:.0f}s")
        return "  ".join(parts)


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
