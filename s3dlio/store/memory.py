"""In-process stores (``mem://name/key``) for tests and demos.

Each name is one process-wide dict, shared by every MemoryStore of that name and guarded by
one lock. A put copies (the caller may mutate its buffer afterwards); a get returns a
read-only view of the stored bytes (no copy). Stores spring into existence on the first put,
like directories; ``create_bucket``/``delete_bucket`` exist for code that manages buckets.
A forked child gets a copy of the parent's stores.
"""

from __future__ import annotations

import builtins
import itertools
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..buffers import byte_view
from ..errors import AlreadyExistsError, NotFoundError, S3dlioError
from .base import DeleteFailure, ObjectMeta, Store, check_range

if TYPE_CHECKING:
    from collections.abc import Buffer

    from ..config import Config

__all__ = ["MemoryStore"]


@dataclass(frozen=True, slots=True)
class _Object:
    data: bytes
    modified: datetime
    etag: str


@dataclass
class _Bucket:
    objects: dict[str, _Object] = field(default_factory=dict)


_buckets: dict[str, _Bucket] = {}
_lock = threading.Lock()
# Etags as obstore's in-memory store makes them: a process-wide write counter.
_etags = itertools.count()


class MemoryStore(Store):
    """One named in-process store."""

    scheme = "mem"
    endpoint = "mem://"
    engine = "portable"
    in_process = True

    def __init__(self, name: str, config: Config) -> None:
        super().__init__(name, config)

    def uri(self, key: str) -> str:
        return f"mem://{self.bucket}/{key}"

    def _object(self, op: str, key: str) -> _Object:
        bucket = _buckets.get(self.bucket)
        obj = bucket.objects.get(key) if bucket is not None else None
        if obj is None:
            raise NotFoundError(f"{op} {self.uri(key)}: not found")
        return obj

    # -- reads ---------------------------------------------------------------------------
    def get(self, key: str) -> Buffer:
        return memoryview(self._object("get", key).data)

    def get_range(self, key: str, start: int, end: int) -> Buffer:
        return self.get_range_etag(key, start, end)[0]

    def get_range_etag(self, key: str, start: int, end: int) -> tuple[Buffer, str | None]:
        check_range(start, end)
        obj = self._object("get_range", key)
        return memoryview(obj.data)[start:end], obj.etag

    def head(self, key: str) -> ObjectMeta:
        obj = self._object("head", key)
        return ObjectMeta(
            key=key,
            size=len(obj.data),
            last_modified=obj.modified,
            etag=obj.etag,
            content_type="application/octet-stream",
        )

    def list(self, prefix: str, *, delimiter: bool = False) -> Iterator[ObjectMeta | str]:
        with _lock:
            bucket = _buckets.get(self.bucket)
            items = (
                sorted((k, o) for k, o in bucket.objects.items() if k.startswith(prefix)) if bucket else []
            )
        last_prefix = None
        for key, obj in items:
            if delimiter:
                cut = key.find("/", len(prefix))
                if cut >= 0:
                    common = key[: cut + 1]
                    if common != last_prefix:
                        last_prefix = common
                        yield common
                    continue
            yield ObjectMeta(key=key, size=len(obj.data), last_modified=obj.modified, etag=obj.etag)

    # -- writes --------------------------------------------------------------------------
    def put(self, key: str, data: Buffer) -> None:
        obj = _Object(byte_view(data).tobytes(), datetime.now(UTC), f'"{next(_etags)}"')
        with _lock:
            _buckets.setdefault(self.bucket, _Bucket()).objects[key] = obj

    def put_new(self, key: str, data: Buffer) -> None:
        obj = _Object(byte_view(data).tobytes(), datetime.now(UTC), f'"{next(_etags)}"')
        with _lock:
            objects = _buckets.setdefault(self.bucket, _Bucket()).objects
            if key in objects:
                raise AlreadyExistsError(f"put {self.uri(key)}: already exists")
            objects[key] = obj

    def delete(self, key: str) -> None:
        with _lock:
            bucket = _buckets.get(self.bucket)
            if bucket is not None:
                bucket.objects.pop(key, None)

    def delete_many(self, keys: Sequence[str]) -> builtins.list[DeleteFailure]:
        with _lock:
            bucket = _buckets.get(self.bucket)
            if bucket is not None:
                for key in keys:
                    bucket.objects.pop(key, None)
        return []

    # -- containers ----------------------------------------------------------------------
    def create_bucket(self) -> None:
        with _lock:
            if self.bucket in _buckets:
                raise AlreadyExistsError(f"create_bucket mem://{self.bucket}: already exists")
            _buckets[self.bucket] = _Bucket()

    def delete_bucket(self) -> None:
        with _lock:
            bucket = _buckets.get(self.bucket)
            if bucket is None:
                raise NotFoundError(f"delete_bucket mem://{self.bucket}: not found")
            if bucket.objects:
                raise S3dlioError(
                    f"delete_bucket mem://{self.bucket}: not empty; "
                    f"delete the objects first: s3dlio rm -r mem://{self.bucket}/"
                )
            del _buckets[self.bucket]

    def list_buckets(self) -> builtins.list[str]:
        with _lock:
            return sorted(_buckets)

    def __reduce__(self) -> tuple[Any, ...]:
        """The name travels, not the objects: another process has its own stores."""
        return (type(self), (self.bucket, self.config))


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)
