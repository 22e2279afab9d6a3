"""File uploads (``file://``, ``direct://``): parts written in place into a temporary file.

Each part is a ``pwrite`` at its offset, so parts land in parallel and in any order; on
``complete`` the file is fsynced and renamed over the key, so a reader never sees half a
file and a crash leaves only a hidden temporary (listings skip it). ``abort`` deletes it.
With O_DIRECT, part sizes are whole 4 KiB blocks and the writer's part buffers are
page-aligned; an unaligned caller buffer and the last, partial block go through an aligned
staging buffer, and the file is truncated to its real size at the end.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import secrets
import sys
import threading

__all__ = ["LocalUpload", "ALIGN"]

#: O_DIRECT's alignment of offsets, lengths and buffer addresses (covers 512 B and 4K devices).
ALIGN = 4096
_MAX_IO = 1 << 30  # one write(2) moves at most 0x7ffff000 bytes on Linux


class LocalUpload:
    """An :class:`~s3dlio.store.base.Upload` into ``/<key>`` through a temporary file."""

    max_parts = sys.maxsize
    retry_parts = True

    def __init__(self, key: str, part_size: int, *, uri: str, direct: bool = False) -> None:
        self.part_size = -(-part_size // ALIGN) * ALIGN if direct else part_size
        self._uri = uri
        self._path = "/" + key
        self._direct = direct
        self._fd: int | None = None
        self._tmp = ""
        self._lock = threading.Lock()

    def _open(self) -> int:
        from .local import TMP_PREFIX, make_dirs, map_errors

        with self._lock:
            if self._fd is None:
                with map_errors("put", self._uri):
                    directory = os.path.dirname(self._path)
                    make_dirs(directory, sync=True)  # complete() makes the file durable: its path too
                    self._tmp = os.path.join(directory, f"{TMP_PREFIX}{os.getpid()}-{secrets.token_hex(6)}")
                    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
                    self._fd = os.open(self._tmp, flags | (os.O_DIRECT if self._direct else 0), 0o666)
            return self._fd

    def upload_part(self, index: int, offset: int, data: memoryview) -> None:
        from .local import map_errors

        fd = self._open()
        with map_errors("put", self._uri):
            if self._direct and (len(data) % ALIGN or not _aligned(data)):
                _pwrite_staged(fd, data, offset)
            else:
                _pwrite_all(fd, data, offset)

    def complete(self, size: int) -> None:
        from .local import fsync_dir, map_errors

        fd = self._open()
        with map_errors("put", self._uri):
            if self._direct:
                os.ftruncate(fd, size)  # the last block was padded
            os.fsync(fd)
            os.close(fd)
            self._fd = None
            os.replace(self._tmp, self._path)
            fsync_dir(os.path.dirname(self._path))

    def abort(self) -> None:
        with self._lock:
            fd, self._fd = self._fd, None
        if fd is None:
            return
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._tmp)

    def put_whole(self, data: memoryview) -> None:
        try:
            if len(data):
                self.upload_part(0, 0, data)
            self.complete(len(data))
        except BaseException:
            self.abort()
            raise


def _pwrite_all(fd: int, view: memoryview, offset: int) -> None:
    done = 0
    while done < len(view):
        done += os.pwrite(fd, view[done : done + _MAX_IO], offset + done)


def close_stage(view: memoryview, stage: mmap.mmap) -> None:
    """Release an O_DIRECT staging buffer. After a failed write the traceback still holds
    slices of it, and ``close`` would raise BufferError over the real error: the buffer is
    then left to the garbage collector."""
    view.release()
    with contextlib.suppress(BufferError):
        stage.close()


def _pwrite_staged(fd: int, view: memoryview, offset: int) -> None:
    """Copy ``view`` through an aligned buffer, the last block zero-padded (O_DIRECT)."""
    padded = -(-len(view) // ALIGN) * ALIGN
    stage = mmap.mmap(-1, padded)  # page-aligned, zero-filled
    staged = memoryview(stage)
    try:
        staged[: len(view)] = view
        _pwrite_all(fd, staged, offset)
    finally:
        close_stage(staged, stage)


def _aligned(view: memoryview) -> bool:
    import numpy as np

    return bool(np.frombuffer(view, dtype=np.uint8).ctypes.data % ALIGN == 0) if len(view) else True
