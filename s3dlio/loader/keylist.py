"""A million URIs without a million Python strings: one newline-joined buffer + numpy offsets.

A listing is written line by line (to a key file, or a bytearray) and never held as ``str``
objects; ``keys[i]`` decodes one line on demand. A key file is mapped with ``mmap``, so the
page cache holds it once for every process on the machine, and a pickled key list ships only
its path.

Key file format: one URI per line. Files written by s3dlio start with a header
``#s3dlio-keys 1 base=<prefix>`` and then hold URIs relative to that prefix.
"""

from __future__ import annotations

import mmap
import os
import zlib
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, overload

import numpy as np

from ..errors import ConfigError, InvalidUriError, NotFoundError

if TYPE_CHECKING:
    from collections.abc import Buffer

__all__ = ["KeyList", "HEADER"]

HEADER = b"#s3dlio-keys 1 base="


class KeyList(Sequence[str]):
    """Read-only sequence of URIs stored compactly (``base`` + one line per key)."""

    def __init__(self, buffer: Buffer, base: str = "", path: str | None = None) -> None:
        view = memoryview(buffer).cast("B")
        self._buffer = buffer  # keeps an mmap alive
        self._view = view
        self.base = base
        #: The key file this list maps, if any (pickles as the path).
        self.path = path
        data = np.frombuffer(view, dtype=np.uint8)
        ends = np.flatnonzero(data == 10)
        if len(view) and view[-1] != 10:
            ends = np.append(ends, len(view))
        self._starts = (
            np.concatenate(([0], ends[:-1] + 1)).astype(np.int64) if len(ends) else np.zeros(0, np.int64)
        )
        self._ends = ends.astype(np.int64)
        if len(ends) and (np.any(self._ends == self._starts) or np.any(data == 13)):
            raise ConfigError(
                f"key list {path or '(in memory)'}: blank lines or CR line endings; write one URI per line, LF only"
            )
        self._fingerprint: str | None = None

    # -- building ------------------------------------------------------------------------
    @classmethod
    def from_uris(cls, uris: Iterable[str], base: str | None = None) -> KeyList:
        """A list held in memory; ``base`` defaults to the URIs' common prefix (stored once)."""
        items: Iterable[str] = uris
        if base is None:
            items = list(uris)
            common = os.path.commonprefix(items) if items else ""
            base = common[: common.rfind("/") + 1]
        blob = bytearray()
        for uri in items:
            blob += encode_line(uri, base)
        return cls(bytes(blob), base)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> KeyList:
        """Map a key file (s3dlio's, or any file with one URI per line)."""
        path = os.fspath(path)
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                buffer: Buffer = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        except FileNotFoundError:
            raise NotFoundError(f"key file {path!r} does not exist; write one URI per line") from None
        return cls.from_buffer(buffer, path)

    @classmethod
    def from_buffer(cls, buffer: Buffer, path: str | None = None) -> KeyList:
        """Parse key-file bytes (an optional s3dlio header, then one key per line)."""
        view = memoryview(buffer).cast("B")
        base = ""
        if bytes(view[: len(HEADER)]) == HEADER:
            end = bytes(view[:4096]).find(b"\n")
            if end < 0:
                end = len(view)
            base = bytes(view[len(HEADER) : end]).decode()
            view = view[end + 1 :]
        return cls(view, base, path)

    def write(self, path: str) -> None:
        """Write this list as an s3dlio key file, atomically."""
        tmp = f"{path}.{os.getpid()}.tmp"
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(HEADER + self.base.encode() + b"\n")
            f.write(self._view)
        os.replace(tmp, path)

    # -- Sequence ------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._starts)

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> list[str]: ...
    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        start, end = int(self._starts[index]), int(self._ends[index])  # IndexError as a list would
        return self.base + bytes(self._view[start:end]).decode()

    def __iter__(self) -> Iterator[str]:
        for i in range(len(self)):
            yield self[i]

    def fingerprint(self) -> str:
        """Count and CRC32 of the keys: checks that a resume state fits this list."""
        if self._fingerprint is None:
            crc = zlib.crc32(self._view, zlib.crc32(self.base.encode()))
            self._fingerprint = f"{len(self)}:{crc:08x}"
        return self._fingerprint

    def __reduce__(self) -> tuple[object, ...]:
        if self.path is not None:
            return (_reload, (self.path, self.fingerprint()))
        return (KeyList, (bytes(self._view), self.base))

    def __repr__(self) -> str:
        where = self.path or "memory"
        return f"<KeyList {len(self)} keys base={self.base!r} in {where}>"


def encode_line(uri: str, base: str) -> bytes:
    """One line of a key list: ``uri`` without ``base``, newline-terminated."""
    if "\n" in uri or "\r" in uri:
        raise InvalidUriError(f"{uri!r}: the key holds a line break, which s3dlio key lists cannot store")
    if not uri.startswith(base):
        raise AssertionError(f"{uri!r} is not under base {base!r}")
    return uri[len(base) :].encode() + b"\n"


def _reload(path: str, fingerprint: str) -> KeyList:
    keys = KeyList.load(path)
    if keys.fingerprint() != fingerprint:
        raise ConfigError(
            f"key file {path!r} changed after the dataset was built (another process refreshed it?); "
            "rebuild the dataset"
        )
    return keys
