"""Files through the os module: the portable engine's ``file://`` store.

Keys are absolute paths without their leading ``/``. A put writes a temporary file in the
target directory and renames it over the key (``os.replace``), so a reader sees the old
object or the new one, never half of one. What survives a power loss (docs/cli.md):
``put_new`` (checkpoint manifests, the commit points) and puts of at least ``SYNC_AT``
bytes fsync the file before the rename (or link) and the directory after, as
``open_writer`` does (upload_local.py); directories they create are synced into their
parents. Small puts do not: an fsync per object makes 2,000 puts of 4 KiB 2.8x slower
(measured on ext4 here: 0.52 ms vs 1.46 ms a put), and after a power loss such a key may be
missing or, new, empty (ext4's ``auto_da_alloc`` covers only a rename over an existing file).

Listing treats ``prefix`` as a path prefix like S3 does (``data/obj_`` matches
``data/obj_1``), walks with ``os.scandir`` one directory at a time and yields keys in
lexicographic order, the order S3 uses. It enters symbolic links to directories by
``upload``'s rules (:class:`s3dlio.localpath.Rules`): inside the listed directory, never a loop.
"""

from __future__ import annotations

import errno
import mimetypes
import mmap
import os
import secrets
import stat
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..buffers import byte_view
from ..errors import (
    AlreadyExistsError,
    InvalidUriError,
    NotFoundError,
    PermissionDeniedError,
    S3dlioError,
    TransferError,
)
from ..localpath import Rules, Skipped
from .base import ObjectMeta, Store, check_range

if TYPE_CHECKING:
    from collections.abc import Buffer

    from ..config import Config
    from .base import Upload

__all__ = ["LocalStore", "local_keys", "map_errors"]

#: Name prefix of in-progress writes; listings skip them.
TMP_PREFIX = ".s3dlio-tmp-"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_READS = frozenset({"get", "get_range", "head"})
# A single read(2)/write(2) moves at most this much on Linux (0x7ffff000); stay below it.
_MAX_IO = 1 << 30
#: Puts of at least this many bytes are fsynced: for them the cost was within noise (8 MiB:
#: 9 to 20 ms a put with or without fsync), for 4 KiB puts it is 2.8x.
SYNC_AT = 8 << 20


@contextmanager
def map_errors(op: str, uri: str) -> Iterator[None]:
    """Turn OSError from ``op`` on ``uri`` into s3dlio's errors (one place for file stores)."""
    try:
        yield
    except S3dlioError:
        raise
    except OSError as exc:
        raise translate(exc, op, uri) from exc


def translate(exc: OSError, op: str, uri: str) -> S3dlioError:
    """The s3dlio error for one OSError; the message names the operation, the URI and a fix."""
    code = exc.errno
    where = f"{op} {uri}"
    if isinstance(exc, _NotRegularFile):
        return NotFoundError(f"{where}: not a regular file (a FIFO, socket or device); only files are objects")
    if code in (errno.ENOENT, errno.ENOTDIR) and (op in _READS or code == errno.ENOENT):
        return NotFoundError(f"{where}: not found")
    if code == errno.EISDIR and op in _READS:
        return NotFoundError(f"{where}: is a directory, not an object; list it with s3dlio ls {uri}/")
    if code in (errno.EISDIR, errno.ENOTDIR, errno.EEXIST):
        return AlreadyExistsError(
            f"{where}: a directory and a file are in each other's way ({exc.strerror}); choose another key"
        )
    if code in (errno.EACCES, errno.EPERM):
        return PermissionDeniedError(f"{where}: permission denied; check the owner and mode of the path")
    if code == errno.EROFS:
        return PermissionDeniedError(f"{where}: read-only filesystem; write somewhere else")
    if code == errno.ENAMETOOLONG:
        return S3dlioError(f"{where}: name too long (the filesystem allows 255 bytes per path part)")
    if code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        why = "file too large (for the filesystem, or the process's file-size limit)" if code == errno.EFBIG else (
            "no space left on the device (or quota exceeded); free some space")
        full = TransferError(f"{where}: {why}")
        full.retried = True  # a full disk stays full for the seconds a retry waits: raise at once
        return full
    return TransferError(f"{where}: {exc.strerror or exc}")


class LocalStore(Store):
    """The filesystem root as a store; keys are absolute paths without the leading ``/``."""

    scheme = "file"
    endpoint = "file://"
    engine = "portable"

    def __init__(self, config: Config) -> None:
        super().__init__("", config)

    def uri(self, key: str) -> str:
        """The URI of ``key`` in this store, for messages."""
        return f"{self.scheme}:///{key}"

    # -- reads ---------------------------------------------------------------------------
    def get(self, key: str) -> Buffer:
        with map_errors("get", self.uri(key)):
            return self._read("/" + key, 0, None)[0]

    def get_range(self, key: str, start: int, end: int) -> Buffer:
        return self.get_range_etag(key, start, end)[0]

    def get_range_etag(self, key: str, start: int, end: int) -> tuple[Buffer, str | None]:
        check_range(start, end)
        with map_errors("get_range", self.uri(key)):
            data, st = self._read("/" + key, start, end)
        return data, file_meta(key, st).etag  # the file the bytes came from (its inode, time, size)

    def _drain(self, key: str, byte_range: tuple[int, int] | None) -> tuple[int, int | None]:
        start, end = byte_range if byte_range is not None else (0, None)
        with map_errors("get", self.uri(key)):
            return self._drain_file("/" + key, start, end)

    #: How drains open a file, and the alignment their offsets and lengths keep.
    _drain_flags, _drain_align = 0, 1

    def _drain_file(self, path: str, start: int, end: int | None) -> tuple[int, int | None]:
        """Read ``[start, end)`` of the file (clipped to its size) through this thread's
        window, keeping nothing; returns the count and when the first read returned."""
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | self._drain_flags)
        try:
            size = _regular_stat(fd).st_size
            stop = size if end is None else min(end, size)
            align = self._drain_align
            at = start - start % align
            window = _drain_window()
            first_byte = None
            while at < stop:
                want = min(len(window), stop - at)
                n = os.preadv(fd, [window[: -(-want // align) * align]], at)
                first_byte = first_byte or time.time_ns()
                at += n
                if n == 0 or n % align:  # the file ended
                    break
            return max(0, min(at, stop) - start), first_byte
        finally:
            os.close(fd)

    def _read(self, path: str, start: int, end: int | None) -> tuple[Buffer, os.stat_result]:
        """Bytes ``[start, end)`` of the file, clipped to its size, and the file's stat; one
        copy (kernel to user)."""
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)  # a FIFO must not block the open
        try:
            st = _regular_stat(fd)
            stop = st.st_size if end is None else min(end, st.st_size)
            if start >= stop:
                return b"", st
            buf = bytearray(stop - start)
            got = _pread_into(fd, memoryview(buf), start)
            return (buf if got == len(buf) else memoryview(buf)[:got]), st
        finally:
            os.close(fd)

    def head(self, key: str) -> ObjectMeta:
        with map_errors("head", self.uri(key)):
            st = os.stat("/" + key)
            _check_regular(st)
        guessed, _ = mimetypes.guess_type(key, strict=False)
        return file_meta(key, st, content_type=guessed or "application/octet-stream")

    def list(self, prefix: str, *, delimiter: bool = False) -> Iterator[ObjectMeta | str]:
        return self.walk(prefix, delimiter=delimiter)

    def walk(
        self, prefix: str, *, delimiter: bool = False, follow_links: bool = False,
        on_skip: Callable[[Skipped], object] | None = None,
    ) -> Iterator[ObjectMeta | str]:  # fmt: skip
        """:meth:`list`, walking as ``upload`` walks a tree (:class:`s3dlio.localpath.Rules`,
        rooted at the prefix's directory). A symbolic link to a directory is entered when it
        stays inside that directory (with ``follow_links``, wherever it leads), never when it
        loops. A plain listing (``on_skip`` None) shows every file and file link, so ``rm``
        never reaches through a directory link that leaves the tree; with ``on_skip``, every
        rule applies to files too and each item left out goes to it (``copy`` from a local
        directory). A directory that cannot be listed raises."""
        directory, _, name_prefix = prefix.rpartition("/")
        directory = directory + "/" if directory else ""
        rules = Rules(("/" + directory).rstrip("/") or "/", follow_links)
        return self._walk(directory, name_prefix, delimiter, self.uri(prefix), rules, frozenset(), on_skip)

    def _walk(
        self, directory: str, name_prefix: str, delimiter: bool, uri: str, rules: Rules,
        chain: frozenset[tuple[int, int]], on_skip: Callable[[Skipped], object] | None,
    ) -> Iterator[ObjectMeta | str]:  # fmt: skip
        """Entries of ``/directory`` whose names start with ``name_prefix``, in key order."""
        with map_errors("list", uri):
            try:
                here = os.stat("/" + directory)
                with os.scandir("/" + directory) as it:
                    entries = [
                        e for e in it if e.name.startswith(name_prefix) and not e.name.startswith(TMP_PREFIX)
                    ]
            except (FileNotFoundError, NotADirectoryError):
                return
            chain = chain | {(here.st_dev, here.st_ino)}
            dirs: set[str] = set()
            taken: dict[str, os.stat_result | None] = {}  # files, and the status of links to them
            for e in sorted(entries, key=lambda e: e.name):  # skips are reported in a stable order
                if e.is_dir(follow_symlinks=False):
                    dirs.add(e.name)
                    continue
                link = e.is_symlink()
                if not link and on_skip is None:
                    taken[e.name] = None  # its status comes below (special files are dropped there)
                    continue
                st = rules.stat(e.path, link)
                if isinstance(st, OSError):
                    raise st
                if st is None or isinstance(st, Skipped):
                    if st is not None and on_skip is not None:
                        on_skip(st)
                    continue
                if on_skip is None and not stat.S_ISDIR(st.st_mode):
                    taken[e.name] = st  # a plain listing shows file links wherever they lead
                elif (skipped := rules.skip(e.path, link, st, chain)) is not None:
                    if on_skip is not None:
                        on_skip(skipped)
                elif stat.S_ISDIR(st.st_mode):
                    dirs.add(e.name)
                else:
                    taken[e.name] = st
            # A directory's keys continue with "/", so it sorts as name + "/" among its siblings.
            names = sorted([*dirs, *taken], key=lambda name: name + "/" if name in dirs else name)
        for name in names:
            key = directory + name
            path = "/" + key
            if name in dirs:
                if not delimiter:
                    yield from self._walk(key + "/", "", False, uri, rules, chain, on_skip)
                elif _has_files(path):
                    yield key + "/"
                continue
            st = taken[name]
            if st is None:
                with map_errors("list", uri):
                    try:
                        st = os.stat(path)
                    except FileNotFoundError:  # removed meanwhile
                        continue
            if stat.S_ISREG(st.st_mode):
                yield file_meta(key, st)

    # -- writes --------------------------------------------------------------------------
    def _check_key(self, op: str, key: str) -> None:
        """Refuse to write or delete at a key with an empty, ``.`` or ``..`` segment: the path
        would not be the one the key names (``dest/../x`` is ``x``; ``a//b`` is ``a/b``)."""
        body = key[:-1] if key.endswith("/") else key
        if "" in body.split("/") or any(part in (".", "..") for part in body.split("/")):
            raise InvalidUriError(
                f"{op} {self.uri(key)}: the key has an empty, '.' or '..' segment, so the file would "
                "not be where the key says (it could leave the target directory); name the path plainly"
            )

    def open_upload(self, key: str, *, part_size: int, content_type: str | None = None) -> Upload:
        from .upload_local import LocalUpload

        self._check_key("put", key)
        return LocalUpload(key, part_size, uri=self.uri(key), direct=self.scheme == "direct")

    def put(self, key: str, data: Buffer) -> None:
        self._check_key("put", key)
        view = byte_view(data)
        with map_errors("put", self.uri(key)):
            if key.endswith("/") and not view:  # an empty "dir/" object: S3's folder marker
                os.makedirs("/" + key, exist_ok=True)
                return
            self._write_atomic("/" + key, view)

    def put_new(self, key: str, data: Buffer) -> None:
        """Create ``key`` only where none is, durably: a commit point (checkpoint manifests)."""
        self._check_key("put", key)
        path, uri = "/" + key, self.uri(key)
        directory = os.path.dirname(path)
        with map_errors("put", uri):
            make_dirs(directory, sync=True)
            tmp = os.path.join(directory, f"{TMP_PREFIX}{os.getpid()}-{secrets.token_hex(6)}")
            try:
                self._write_file(tmp, byte_view(data))
                fsync_path(tmp)
                os.link(tmp, path)  # whole, and only where no file is (rename would replace one)
            except FileExistsError:
                raise AlreadyExistsError(f"put {uri}: already exists") from None
            finally:
                with suppress(OSError):
                    os.unlink(tmp)
            fsync_dir(directory)  # the new name (and the temporary's removal) persist

    def _write_atomic(self, path: str, view: memoryview) -> None:
        """Write to a temporary file beside ``path``, then rename it over ``path``; fsynced
        from ``SYNC_AT`` bytes."""
        directory = os.path.dirname(path)
        sync = len(view) >= SYNC_AT
        make_dirs(directory, sync=sync)
        tmp = os.path.join(directory, f"{TMP_PREFIX}{os.getpid()}-{secrets.token_hex(6)}")
        try:
            self._write_file(tmp, view)
            if sync:
                fsync_path(tmp)
            os.replace(tmp, path)
        except BaseException:
            with suppress(OSError):
                os.unlink(tmp)
            raise
        if sync:
            fsync_dir(directory)

    def _write_file(self, path: str, view: memoryview) -> None:
        """Create ``path`` (which must not exist) holding ``view``."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        try:
            done = 0
            while done < len(view):
                done += os.write(fd, view[done : done + _MAX_IO])
        finally:
            os.close(fd)

    def delete(self, key: str) -> None:
        self._check_key("delete", key)
        with map_errors("delete", self.uri(key)), suppress(FileNotFoundError, NotADirectoryError):
            if key.endswith("/"):  # a folder marker: the directory goes if empty, its files stay
                with suppress(OSError):
                    os.rmdir("/" + key)
                return
            os.unlink("/" + key)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.config,))


def local_keys(
    what: str, key: str, recursive: bool, *, follow_links: bool = False,
    on_skip: Callable[[Skipped], object] | None = None, config: Config | None = None,
) -> list[str]:  # fmt: skip
    """The file keys that ``copy`` of the ``file://`` key (a file, a prefix ``dir/``, a regex)
    takes: the selection of a listing, walked with ``upload``'s rules. Each item left out (a
    link leaving the directory unless ``follow_links``, a loop, a broken link, a FIFO) goes
    to ``on_skip``, or else all into one ``UserWarning`` headed by ``what``."""
    from .._select import select
    from ..config import default_config

    sel = select(key, recursive=recursive, exact=True)
    skipped: list[Skipped] = []
    walk = LocalStore(config or default_config()).walk(
        sel.prefix, delimiter=not sel.recursive, follow_links=follow_links, on_skip=on_skip or skipped.append
    )
    keys = [m.key for m in walk if isinstance(m, ObjectMeta) and sel.matches(m.key)]
    if sel.literal and not sel.recursive and key in keys:
        keys = [key]  # an exact key wins over its reading as a regex
    if skipped:
        lines = "".join(f"\n  {item}" for item in skipped)
        warnings.warn(f"{what}: skipped {len(skipped)}:{lines}", UserWarning, stacklevel=3)
    return keys


def file_meta(key: str, st: os.stat_result, content_type: str | None = None) -> ObjectMeta:
    """Metadata of a file; the etag is obstore's (inode, mtime in µs, size), so engines agree."""
    micros = st.st_mtime_ns // 1000
    return ObjectMeta(
        key=key,
        size=st.st_size,
        last_modified=_EPOCH + timedelta(microseconds=micros),
        etag=f'"{st.st_ino:x}-{micros:x}-{st.st_size:x}"',
        content_type=content_type,
    )


#: Bytes a drain reads at a time (one window per thread, page-aligned for O_DIRECT).
_DRAIN_WINDOW = 8 * 1024 * 1024
_drain_windows = threading.local()


def _drain_window() -> memoryview:
    view: memoryview | None = getattr(_drain_windows, "view", None)
    if view is None:
        view = _drain_windows.view = memoryview(mmap.mmap(-1, _DRAIN_WINDOW))
    return view


def check_regular_path(op: str, uri: str, path: str) -> None:
    """Raise the error for reading ``path`` when it exists and is not a regular file."""
    with map_errors(op, uri):
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return  # the read itself says "not found"
        _check_regular(st)


def _regular_stat(fd: int) -> os.stat_result:
    return _check_regular(os.fstat(fd))


def _check_regular(st: os.stat_result) -> os.stat_result:
    """``st`` when it is a regular file's: only those are objects (a FIFO would block a read
    forever, a device read as empty or without end)."""
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, "is a directory")
    if not stat.S_ISREG(st.st_mode):
        raise _NotRegularFile(errno.EINVAL, "not a regular file")
    return st


class _NotRegularFile(OSError):
    """A path that is neither a file nor a directory: no object, as listings skip it."""


def _pread_into(fd: int, view: memoryview, offset: int) -> int:
    """Fill ``view`` from ``offset``; fewer bytes only when the file ends first."""
    got = 0
    while got < len(view):
        n = os.preadv(fd, [view[got : got + _MAX_IO]], offset + got)
        if n == 0:
            break
        got += n
    return got


def _has_files(path: str) -> bool:
    """True when the tree under ``path`` holds a file: S3 shows no common prefix for empty dirs."""
    stack = [path]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    if entry.name.startswith(TMP_PREFIX):
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    else:
                        return True
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
    return False


def fsync_path(path: str) -> None:
    """fsync the file at ``path`` (any descriptor of a file flushes all of its data)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(directory: str) -> None:
    """Persist a directory's entries (a rename or link into it), as databases do."""
    fd = os.open(directory or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs(directory: str, *, sync: bool) -> None:
    """``os.makedirs(directory, exist_ok=True)``; ``sync``: each directory it creates is fsynced
    into its parent, so a durable file's path survives a power loss too."""
    if not sync:
        os.makedirs(directory, exist_ok=True)
        return
    missing: list[str] = []
    while directory and not os.path.isdir(directory):
        missing.append(directory)
        directory = os.path.dirname(directory)
    for new in reversed(missing):
        with suppress(FileExistsError):  # another writer made it: it syncs it too
            os.mkdir(new)
        fsync_dir(os.path.dirname(new))
