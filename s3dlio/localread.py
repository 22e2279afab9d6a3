"""Reading a local file for upload: regular files only, and a change while it is read is caught.

A size and mtime compared before and after the read miss a write in place: the kernel stamps
a file when a ``write()`` starts, from a clock that ticks every few milliseconds, so a write
in the same tick or still running when the read ends leaves both stats equal, and the upload
would publish old and new bytes mixed. So :class:`LocalFile` compares (size, mtime, ctime,
inode, device) and, on Linux, watches the file with inotify from before its first read to
after its last check (a write that ends meanwhile is an event). One inotify instance serves
the process: a per-file one would soon hit ``max_user_instances`` (128, for all of a user's
processes). Without inotify (another OS, no instance or watch left) the stat check stands alone.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import stat as _stat
import struct
import sys
import threading
import time
from typing import Any

from .errors import InvalidUriError
from .retry import ChangedError
from .store.local import map_errors

# <sys/inotify.h>: a write ended, attributes (mtime, ctime, links) changed, a writer closed it,
# the file was moved or deleted; IN_Q_OVERFLOW: events were lost.
_MASK = 0x2 | 0x4 | 0x8 | 0x800 | 0x400
_Q_OVERFLOW = 0x4000
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len (the name that follows: none for a file)


class _Inotify:
    """The process's inotify instance; each watched file counts the events seen for its watch."""

    def __init__(self, libc: Any, fd: int) -> None:
        self._libc, self._fd, self._lock = libc, fd, threading.Lock()
        self._watches: dict[int, list[int]] = {}  # wd -> [files watching it, events seen]

    def watch(self, path: str) -> tuple[int, int] | None:
        """Watch ``path`` (before it is opened: should the path be replaced meanwhile, the
        inode watched loses its link, an event); ``(wd, events so far)``, or None when no
        watch can be had. Events queued but not yet read count as news: a file watched
        twice at once (the same inode) may be refused, never missed."""
        with self._lock:  # with unwatch's rm_watch of the same inode on one side or the other
            wd = self._libc.inotify_add_watch(self._fd, os.fsencode(path), _MASK)
            if wd < 0:
                return None
            entry = self._watches.setdefault(wd, [0, 0])
            entry[0] += 1
            return wd, entry[1]

    def seen(self, token: tuple[int, int]) -> bool:
        """True when the watched file had an event since :meth:`watch`."""
        with self._lock:
            self._drain()
            return self._watches[token[0]][1] != token[1]

    def unwatch(self, token: tuple[int, int]) -> None:
        with self._lock:
            entry = self._watches[token[0]]
            entry[0] -= 1
            if not entry[0]:
                del self._watches[token[0]]
                self._libc.inotify_rm_watch(self._fd, token[0])

    def _drain(self) -> None:
        while True:
            try:
                buf = os.read(self._fd, 65536)
            except BlockingIOError:
                return
            at = 0
            while at < len(buf):
                wd, mask, _, length = _EVENT.unpack_from(buf, at)
                at += _EVENT.size + length
                if mask & _Q_OVERFLOW:  # lost events: any watched file may have changed
                    for entry in self._watches.values():
                        entry[1] += 1
                elif wd in self._watches:
                    self._watches[wd][1] += 1


_inotify: _Inotify | None = None
_started = False
_inotify_lock = threading.Lock()


def _watcher() -> _Inotify | None:
    """The process's instance, made at first use; None where there is none."""
    global _inotify, _started
    with _inotify_lock:
        if not _started and sys.platform.startswith("linux"):
            _started = True
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
            except (OSError, AttributeError):
                fd = -1
            if fd >= 0:
                _inotify = _Inotify(libc, fd)
        return _inotify


def _forget_after_fork() -> None:
    """A forked child makes its own instance: reading the parent's would take its events."""
    global _inotify, _started, _inotify_lock
    if _inotify is not None:
        os.close(_inotify._fd)
    _inotify, _started, _inotify_lock = None, False, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


# The clock the kernel stamps files with (Linux's CLOCK_REALTIME_COARSE, which ``time`` lacks).
_COARSE = 5 if sys.platform.startswith("linux") else time.CLOCK_REALTIME
_CLOCK_TICK = max(int(time.clock_getres(_COARSE) * 1e9), 1_000_000)


def _tick(ctime_ns: int) -> int:
    """Nanoseconds within which two writes may get one timestamp: the kernel's clock tick, or
    a second where the filesystem keeps whole seconds (a ctime of a whole second)."""
    return 1_000_000_000 if ctime_ns % 1_000_000_000 == 0 else _CLOCK_TICK


def not_a_file(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` exists and is no regular file (a FIFO, socket or device)."""
    try:
        return not _stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False  # gone: opening it says so


def _stamp(st: os.stat_result) -> tuple[int, int, int, int, int]:
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev


class LocalFile:
    """A regular local file open for upload (a context manager). The open never blocks (a
    FIFO's would wait for a writer), and anything but a regular file is refused before a
    byte is read: a device such as ``/dev/zero`` never ends."""

    def __init__(self, op: str, path: str, uri: str) -> None:
        self.op, self.path, self.uri = op, path, uri
        self._inotify = _watcher()
        self._token = self._inotify.watch(path) if self._inotify is not None else None
        try:
            with map_errors(op, path):
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
            self.file = os.fdopen(fd, "rb", buffering=0)
        except BaseException:
            self._unwatch()
            raise
        self.before = os.fstat(fd)
        if not _stat.S_ISREG(self.before.st_mode):
            self.close()
            raise InvalidUriError(
                f"{op} {path}: not a regular file (a FIFO, socket or device); nothing was written"
            )
        self.size = self.before.st_size

    def __enter__(self) -> LocalFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._unwatch()
        self.file.close()

    def _unwatch(self) -> None:
        if self._token is not None and self._inotify is not None:
            self._inotify.unwatch(self._token)
            self._token = None

    def read_into(self, view: memoryview) -> int:
        """Fill ``view``; fewer bytes only at the file's end."""
        got = 0
        while got < len(view):
            n = self.file.readinto(view[got:])
            if not n:
                break
            got += n
        return got

    def read(self, n: int) -> bytes:
        return self.file.read(n) or b""

    def check(self, got: int) -> None:
        """Raise ChangedError unless the file read (``got`` bytes) is the one opened, unchanged.

        A ``write()`` stamps the file when it starts and is an inotify event when it ends, so
        one still running is seen by neither: first wait for it (:func:`_wait_for_writers`).
        Without inotify, a file stamped within one clock tick of now may have a write running
        that no stat shows yet: one tick's wait lets a next write restamp it."""
        fd = self.file.fileno()
        _wait_for_writers(fd, self.before.st_dev)
        after = os.fstat(fd)
        quiet = _stamp(after) == _stamp(self.before) and got == self.size
        if quiet and self._token is not None and self._inotify is not None:
            quiet = not self._inotify.seen(self._token)
        elif quiet and after.st_ctime_ns + (tick := _tick(after.st_ctime_ns)) > time.clock_gettime_ns(_COARSE):
            time.sleep(tick / 1e9)
            quiet = _stamp(os.fstat(fd)) == _stamp(self.before)
        if quiet:
            return
        how = (f"{self.size} bytes at the start, {got} read, {after.st_size} now"
               if got != self.size or after.st_size != self.size else "written to meanwhile")  # fmt: skip
        error = ChangedError(
            f"{self.op} {self.path}: the file changed while it was read ({how}); nothing was written to "
            f"{self.uri}: upload it once it is complete"
        )
        error.retried = True
        raise error


# Filesystems whose SEEK_DATA takes the inode lock that a buffered write() holds throughout:
# ext2/3/4, tmpfs, btrfs. Elsewhere (xfs, network filesystems: a round trip) it is not asked.
_LOCKING_SEEK = {0xEF53, 0x01021994, 0x9123683E}
_seek_waits: dict[int, bool] = {}


def _wait_for_writers(fd: int, dev: int) -> None:
    """Let a ``write()`` still running on the file end (and post its inotify event): an
    ``lseek(SEEK_DATA)`` waits for the inode lock the writer holds, and changes nothing."""
    waits = _seek_waits.get(dev)
    if waits is None:
        waits = _seek_waits[dev] = _fs_type(fd) in _LOCKING_SEEK
    if waits:
        with contextlib.suppress(OSError):  # ENXIO: no data past 0 (an empty file); the lock was taken
            os.lseek(fd, 0, os.SEEK_DATA)


def _fs_type(fd: int) -> int | None:
    """``fstatfs(fd).f_type`` (Linux), or None."""
    if not sys.platform.startswith("linux"):
        return None
    buf = ctypes.create_string_buffer(512)  # struct statfs, f_type (a long) first
    try:
        if ctypes.CDLL(None, use_errno=True).fstatfs(fd, buf) != 0:
            return None
    except (OSError, AttributeError):
        return None
    return ctypes.c_long.from_buffer(buf).value & 0xFFFFFFFF
