"""The fast engine's in-process and local stores: ``mem://`` on obstore's ``MemoryStore`` (one
per name, shared by the process) and ``file://``, whose writes, listings and multipart
uploads use s3dlio's own file code so that a killed process leaves nothing visible."""

from __future__ import annotations

import builtins
import mimetypes
import os
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

import obstore
from obstore.store import LocalStore, MemoryStore

from ..config import Config
from ..errors import AlreadyExistsError, NotFoundError, S3dlioError
from .base import ObjectMeta, Store
from .fast import FastStore, build

if TYPE_CHECKING:
    from collections.abc import Buffer

    from .base import Upload

__all__ = ["FastLocalStore", "FastMemoryStore"]


class FastLocalStore(FastStore):
    """The local filesystem; keys are absolute paths without their leading ``/``."""

    _multipart = False
    _network = False

    def __init__(self, config: Config) -> None:
        super().__init__(
            "", config, build("file", LocalStore, prefix="/"), scheme="file", endpoint="file://"
        )
        from .local import LocalStore as Files

        self._files = Files(config)

    def put(self, key: str, data: Buffer) -> None:
        # obstore's LocalStore stages a put in a visible "key#N" file that a killed process
        # leaves behind; s3dlio's hidden temporary + rename (store/local.py) leaves only a
        # name listings skip and ``s3dlio cleanup`` removes.
        if self._for_marker(key) is None or memoryview(data).nbytes:  # a marker (a directory) is empty
            self._check_key("put", key)
        self._files.put(key, data)

    def put_new(self, key: str, data: Buffer) -> None:
        self._check_key("put", key)
        self._files.put_new(key, data)

    def _check_key(self, op: str, key: str) -> None:
        super()._check_key(op, key)
        if op in ("get", "head"):  # obstore opens a FIFO and waits for a writer forever
            from .local import check_regular_path

            check_regular_path(op, self._uri(key), "/" + key)

    def _drain(self, key: str, byte_range: tuple[int, int] | None) -> tuple[int, int | None]:
        return self._files.drain(key, byte_range)  # obstore streams files 8 KiB a read

    def _marker_store(self) -> Store | None:
        return self._files  # a folder marker here is a directory: the portable engine's os calls

    def _uri(self, key: str) -> str:
        return f"file:///{key}"

    def list(self, prefix: str, *, delimiter: bool = False) -> Iterator[ObjectMeta | str]:
        # obstore walks directories in no particular order, but every rank of a training job
        # must see one order: the portable engine's walk is sorted and streams just as well.
        from .local import LocalStore as Walker

        return Walker(self.config).list(prefix, delimiter=delimiter)

    def _default_content_type(self, key: str) -> str | None:
        # As the portable engine reports it, so both engines agree.
        return mimetypes.guess_type(key, strict=False)[0] or "application/octet-stream"

    def open_upload(self, key: str, *, part_size: int, content_type: str | None = None) -> Upload:
        from .upload_local import LocalUpload  # plain os calls: parts pwritten in place

        self._check_key("put", key)
        return LocalUpload(key, part_size, uri=self._uri(key))


_memory_stores: dict[str, MemoryStore] = {}
# Names that exist as buckets: created, or written to (stores spring up on first put, like
# directories), as in the portable engine's memory store.
_memory_buckets: set[str] = set()
_memory_lock = threading.Lock()


class FastMemoryStore(FastStore):
    """An in-process store shared by every ``mem://NAME`` store of this process."""

    _multipart = False
    _network = False
    in_process = True

    def __init__(self, name: str, config: Config) -> None:
        with _memory_lock:
            inner = _memory_stores.get(name)
            if inner is None:
                inner = _memory_stores[name] = MemoryStore()
        super().__init__(name, config, inner, scheme="mem", endpoint="mem://")

    def _default_content_type(self, key: str) -> str | None:
        return "application/octet-stream"

    def put(self, key: str, data: Buffer) -> None:
        super().put(key, data)
        self._exists_now()

    def put_new(self, key: str, data: Buffer) -> None:
        super().put_new(key, data)
        self._exists_now()

    def _exists_now(self) -> None:
        """A memory bucket springs up on its first write."""
        if self.bucket not in _memory_buckets:
            with _memory_lock:
                _memory_buckets.add(self.bucket)

    def _writable(self, data: Buffer) -> memoryview:
        # MemoryStore keeps the very buffer it is given: copy all but immutable objects, or a
        # later change to the caller's array would change the stored object (a read-only view
        # of a writable array is no promise that its bytes stay).
        view = super()._writable(data)
        return view if isinstance(view.obj, bytes | obstore.Bytes) else memoryview(view.tobytes())

    def create_bucket(self) -> None:
        with _memory_lock:
            if self.bucket in _memory_buckets:
                raise AlreadyExistsError(f"create_bucket mem://{self.bucket}: already exists")
            _memory_buckets.add(self.bucket)

    def delete_bucket(self) -> None:
        with _memory_lock:
            if self.bucket not in _memory_buckets:
                raise NotFoundError(f"delete_bucket mem://{self.bucket}: not found")
            if next(iter(obstore.list(self._inner, chunk_size=1)), None):
                raise S3dlioError(
                    f"delete_bucket mem://{self.bucket}: not empty; delete the objects first: "
                    f"s3dlio rm -r mem://{self.bucket}/"
                )
            _memory_buckets.discard(self.bucket)

    def list_buckets(self) -> builtins.list[str]:
        with _memory_lock:
            return sorted(_memory_buckets)


def _reset_after_fork() -> None:
    global _memory_lock
    _memory_lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_after_fork)
