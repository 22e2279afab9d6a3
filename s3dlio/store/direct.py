"""O_DIRECT files (``direct://``): reads and writes that bypass the page cache.

O_DIRECT needs the buffer address, the file offset and the length aligned to the device's
logical block; 4096 covers 512-byte and 4K devices. Buffers come from anonymous ``mmap``,
which is page-aligned. Reads fetch whole blocks and return a memoryview trimmed to the
bytes asked for (no second copy). Writes go through an aligned staging buffer (the caller's
buffer is used directly when it is already aligned), the last partial block padded with
zeros and the file then truncated to its real size; the temporary file is renamed over the
key as in :mod:`.local`, whose head, list and delete this store shares.
"""

from __future__ import annotations

import errno
import mmap
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from ..errors import ConfigError
from .local import _MAX_IO, LocalStore, _regular_stat
from .upload_local import close_stage

if TYPE_CHECKING:
    from collections.abc import Buffer

__all__ = ["ALIGN", "DirectStore"]

ALIGN = 4096
#: Staging buffer for writes: memory stays flat however large the object.
_STAGE = 8 * 1024 * 1024
#: Below this size the staging copy is cheaper than finding the caller buffer's address.
_ZERO_COPY_MIN = 1024 * 1024


class DirectStore(LocalStore):
    """The filesystem root with O_DIRECT I/O; keys are absolute paths without the leading ``/``."""

    scheme = "direct"
    endpoint = "direct://"
    engine = "direct"

    _drain_flags, _drain_align = getattr(os, "O_DIRECT", 0), ALIGN

    def _drain_file(self, path: str, start: int, end: int | None) -> tuple[int, int | None]:
        with _direct_io(path):
            return super()._drain_file(path, start, end)

    def _read(self, path: str, start: int, end: int | None) -> tuple[Buffer, os.stat_result]:
        """Whole blocks around ``[start, end)`` into an aligned buffer, trimmed without a copy."""
        with _direct_io(path):
            fd = os.open(path, os.O_RDONLY | os.O_DIRECT | os.O_CLOEXEC)
            try:
                st = _regular_stat(fd)
                stop = st.st_size if end is None else min(end, st.st_size)
                if start >= stop:
                    return b"", st
                first = start - start % ALIGN
                buf = mmap.mmap(-1, _round_up(stop) - first)
                view = memoryview(buf)
                got = _pread_blocks(fd, view, first)
                return view[start - first : max(start, min(stop, first + got)) - first], st
            finally:
                os.close(fd)

    def _write_file(self, path: str, view: memoryview) -> None:
        """Create ``path`` holding ``view``, writing whole aligned blocks with O_DIRECT."""
        with _direct_io(path):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_DIRECT | os.O_CLOEXEC, 0o666)
            try:
                size = len(view)
                done = 0
                if size >= _ZERO_COPY_MIN and _is_aligned(view):
                    full = size - size % ALIGN
                    while done < full:
                        done += _pwrite_all(fd, view[done : min(full, done + _MAX_IO)], done)
                if done < size:
                    _write_staged(fd, view, done)
                if size % ALIGN:
                    os.ftruncate(fd, size)
            finally:
                os.close(fd)


@contextmanager
def _direct_io(path: str) -> Iterator[None]:
    """EINVAL from aligned O_DIRECT I/O means the filesystem does not support it: say so."""
    try:
        yield
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        raise ConfigError(
            f"direct:///{path.lstrip('/')}: direct:// needs a filesystem with O_DIRECT support "
            "(not tmpfs or some network filesystems); use file:// there"
        ) from exc


def _write_staged(fd: int, view: memoryview, offset: int) -> None:
    """Write ``view[offset:]`` through an aligned staging buffer; the tail block zero-padded."""
    stage = mmap.mmap(-1, min(_STAGE, _round_up(len(view) - offset)))
    sv = memoryview(stage)
    try:
        while offset < len(view):
            n = min(len(sv), len(view) - offset)
            sv[:n] = view[offset : offset + n]
            padded = _round_up(n)
            if padded > n:
                sv[n:padded] = bytes(padded - n)
            _pwrite_all(fd, sv[:padded], offset)
            offset += n
    finally:
        close_stage(sv, stage)


def _pwrite_all(fd: int, view: memoryview, offset: int) -> int:
    done = 0
    while done < len(view):
        done += os.pwrite(fd, view[done:], offset + done)
    return done


def _pread_blocks(fd: int, view: memoryview, offset: int) -> int:
    """Fill ``view`` from the aligned ``offset``; stop at the end of the file."""
    got = 0
    while got < len(view):
        n = os.preadv(fd, [view[got : got + _MAX_IO]], offset + got)
        got += n
        if n == 0 or n % ALIGN:  # the file ended: the next offset would not be aligned
            break
    return got


def _is_aligned(view: memoryview) -> bool:
    import numpy as np

    address: int = np.frombuffer(view, dtype=np.uint8).ctypes.data
    return address % ALIGN == 0


def _round_up(n: int) -> int:
    return -(-n // ALIGN) * ALIGN
