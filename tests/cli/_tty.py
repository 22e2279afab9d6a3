"""Run the installed ``s3dlio`` with stderr on a pseudo-terminal, as a user at a terminal sees it."""

from __future__ import annotations

import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


def s3dlio_exe() -> str:
    """The installed console script, next to this interpreter or on PATH."""
    here = os.path.join(os.path.dirname(sys.executable), "s3dlio")
    return here if os.path.isfile(here) else (shutil.which("s3dlio") or "s3dlio")

#: ``12/80 objects`` of a progress frame with a total; ``12 objects`` of one without.
_WITH_TOTAL = re.compile(r"(\d+)/(\d+) objects?")
_COUNT_ONLY = re.compile(r"\s(\d+) objects?\s")


@dataclass
class TtyRun:
    """One run: exit status, stdout (a pipe), what the terminal got on stderr, and seconds taken."""

    code: int
    out: str
    tty: str
    seconds: float
    interrupted_after: float | None = None
    frames: list[str] = field(default_factory=list)

    def counts(self) -> list[int]:
        """The object counts the progress frames showed, in order."""
        seen = []
        for frame in self.frames:
            match = _WITH_TOTAL.search(frame) or _COUNT_ONLY.search(frame)
            if match:
                seen.append(int(match.group(1)))
        return seen

    def __str__(self) -> str:
        return f"exit {self.code} in {self.seconds:.2f}s\n--- stdout\n{self.out}\n--- tty\n{self.tty!r}"


def run_on_tty(
    *args: str,
    cwd: Path,
    timeout: float = 120,
    env: dict[str, str] | None = None,
    interrupt_when: Callable[[str], bool] | None = None,
    signum: int = signal.SIGINT,
) -> TtyRun:
    """Run ``s3dlio ARGS`` with stderr on a pty (stdout on a pipe); progress shows at once.

    ``interrupt_when(tty_so_far)`` turning true sends ``signum`` (SIGINT: Ctrl-C);
    ``interrupted_after`` is then the seconds from the signal to the exit.
    """
    fast = {"TERM": "xterm", "S3DLIO_PROGRESS_DELAY": "0", "S3DLIO_PROGRESS_INTERVAL": "0.02"}
    environ = {**os.environ, **fast, **(env or {})}
    master, slave = pty.openpty()
    start = time.monotonic()
    proc = subprocess.Popen(
        [s3dlio_exe(), *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave,
        cwd=cwd, env=environ,
    )  # fmt: skip
    os.close(slave)
    chunks: list[bytes] = []
    out: list[bytes] = []
    reader = threading.Thread(target=lambda: out.append(proc.stdout.read() if proc.stdout else b""))
    reader.start()
    signalled: float | None = None
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 0.02)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    data = b""
                if not data:
                    break
                chunks.append(data)
            so_far = b"".join(chunks).decode(errors="replace")
            if signalled is None and interrupt_when is not None and interrupt_when(so_far):
                proc.send_signal(signum)
                signalled = time.monotonic()
            if time.monotonic() - start > timeout:
                proc.kill()
                raise AssertionError(f"s3dlio {' '.join(args)} ran past {timeout}s")
        code = proc.wait(timeout=timeout)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
        reader.join(timeout)
    end = time.monotonic()
    tty = b"".join(chunks).decode(errors="replace")
    return TtyRun(
        code, b"".join(out).decode(errors="replace"), tty, end - start,
        None if signalled is None else end - signalled, [f for f in tty.split("\r") if f.strip()],
    )  # fmt: skip
