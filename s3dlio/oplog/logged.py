"""The one decorator that records every store operation in the op-log.

It wraps any :class:`~s3dlio.store.Store`, so every backend and both engines are logged the
same way and nothing else in the code knows about logging.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from .._redact import redact_url
from ..store.base import DeleteFailure, ObjectMeta, Store, Upload
from .writer import OpLogWriter, error_text

if TYPE_CHECKING:
    from collections.abc import Buffer

__all__ = ["LoggedStore", "LoggedUpload"]

T = TypeVar("T")

_time_ns = time.time_ns


class LoggedStore(Store):
    """Forwards to ``inner`` and logs one line per operation (batch deletes: one line, n keys)."""

    def __init__(self, inner: Store, writer: OpLogWriter) -> None:
        self.inner = inner
        self.writer = writer
        self.scheme, self.bucket, self.config = inner.scheme, inner.bucket, inner.config
        self.endpoint, self.engine, self.in_process = inner.endpoint, inner.engine, inner.in_process
        self.endpoint = redact_url(self.endpoint)  # the op-log's endpoint column: no user:password@
        self._root = f"{inner.bucket}/" if inner.bucket else "/"

    def _log(
        self, op: str, key: str, start: int, *, error: BaseException | None = None, **fields: Any
    ) -> None:
        self.writer.log(
            op,
            file=self._root + key,
            endpoint=self.endpoint,
            start_ns=start,
            end_ns=_time_ns(),
            error="" if error is None else error_text(error),
            **fields,
        )

    def _emit(self, op: str, key: str, start: int, nbytes: int, first_byte: int | None = None) -> None:
        self.writer.log_ok(op, self.endpoint, self._root, key, start, _time_ns(), nbytes, first_byte)

    def _call(self, op: str, key: str, fn: Callable[[], T], size: Callable[[T], int] | None = None) -> T:
        start = _time_ns()
        try:
            result = fn()
        except BaseException as exc:
            self._log(op, key, start, error=exc)
            raise
        self._emit(op, key, start, size(result) if size else 0)
        return result

    def get(self, key: str) -> Buffer:
        return self.get_timed(key)[0]

    def get_timed(self, key: str) -> tuple[Buffer, int | None]:
        # The hottest path of all (a 4 KiB GET from memory costs ~3 us): no helper calls.
        start = _time_ns()
        try:
            data, first_byte = self.inner.get_timed(key)
        except BaseException as exc:
            self._log("GET", key, start, error=exc)
            raise
        self.writer.log_ok(
            "GET", self.endpoint, self._root, key, start, _time_ns(), memoryview(data).nbytes, first_byte
        )
        return data, first_byte

    def get_batch(
        self, keys: Sequence[str], *, return_exceptions: bool = False
    ) -> builtins.list[Buffer | BaseException]:
        # The calls run one after another, so each starts when the one before it ended: one
        # clock read per operation, and one queue entry for the whole run.
        get = self.inner.get_timed
        results: builtins.list[Buffer | BaseException] = []
        first_bytes: builtins.list[int | None] = []
        stamps = [_time_ns()]
        try:
            for key in keys:
                try:
                    data, first_byte = get(key)
                except Exception as exc:
                    results.append(exc)
                    first_bytes.append(None)
                    stamps.append(_time_ns())
                    if not return_exceptions:
                        raise
                    continue
                results.append(data)
                first_bytes.append(first_byte)
                stamps.append(_time_ns())
        finally:
            self.writer.log_run("GET", self.endpoint, self._root, keys, stamps, first_bytes, results)
        return results

    def drain(self, key: str, byte_range: tuple[int, int] | None = None) -> tuple[int, int | None]:
        begin = _time_ns()
        try:
            nbytes, first_byte = self.inner.drain(key, byte_range)
        except BaseException as exc:
            self._log("GET", key, begin, error=exc)
            raise
        self.writer.log_ok("GET", self.endpoint, self._root, key, begin, _time_ns(), nbytes, first_byte)
        return nbytes, first_byte

    def get_range(self, key: str, start: int, end: int) -> Buffer:
        return self._call(
            "GET", key, lambda: self.inner.get_range(key, start, end), lambda b: memoryview(b).nbytes
        )

    def get_range_etag(self, key: str, start: int, end: int) -> tuple[Buffer, str | None]:
        return self._call(
            "GET", key, lambda: self.inner.get_range_etag(key, start, end), lambda r: memoryview(r[0]).nbytes
        )

    def get_range_into(self, key: str, start: int, end: int, dest: memoryview, etag: str | None = None) -> int:
        return self._call(
            "GET", key, lambda: self.inner.get_range_into(key, start, end, dest, etag), lambda n: min(n, len(dest))
        )

    def head(self, key: str) -> ObjectMeta:
        return self._call("STAT", key, lambda: self.inner.head(key))

    def sign(self, key: str, method: str = "GET", expires: float = 3600) -> str:
        return self.inner.sign(key, method, expires)  # computed, not sent: nothing to log

    def list(self, prefix: str, *, delimiter: bool = False) -> Iterator[ObjectMeta | str]:
        start = _time_ns()
        count = 0
        try:
            for item in self.inner.list(prefix, delimiter=delimiter):
                count += 1
                yield item
        except BaseException as exc:
            if not isinstance(exc, GeneratorExit):
                self._log("LIST", prefix, start, n_objects=count, error=exc)
                raise
        self._log("LIST", prefix, start, n_objects=count)

    def put(self, key: str, data: Buffer) -> None:
        nbytes = memoryview(data).nbytes
        self._call("PUT", key, lambda: self.inner.put(key, data), lambda _: nbytes)

    def put_new(self, key: str, data: Buffer) -> None:
        nbytes = memoryview(data).nbytes
        self._call("PUT", key, lambda: self.inner.put_new(key, data), lambda _: nbytes)

    def open_upload(self, key: str, *, part_size: int, content_type: str | None = None) -> Upload:
        inner = self.inner.open_upload(key, part_size=part_size, content_type=content_type)
        return LoggedUpload(self, key, inner)

    def delete(self, key: str) -> None:
        self._call("DELETE", key, lambda: self.inner.delete(key))

    def delete_many(self, keys: Sequence[str]) -> builtins.list[DeleteFailure]:
        start = _time_ns()
        failures = self.inner.delete_many(keys)
        error = failures[0].error if failures else None
        self._log("DELETE", keys[0] if keys else "", start, n_objects=len(keys) - len(failures), error=error)
        return failures

    def create_bucket(self) -> None:
        self._call("CREATE_BUCKET", "", self.inner.create_bucket)

    def delete_bucket(self) -> None:
        self._call("DELETE_BUCKET", "", self.inner.delete_bucket)

    def list_buckets(self) -> builtins.list[str]:
        return self._call("LIST", "", self.inner.list_buckets)

    def close(self) -> None:
        self.inner.close()


class LoggedUpload:
    """One PUT line per streamed object (parts are not operations of their own in warp's log):
    from the first part to ``complete``, with all its bytes; an abort logs the PUT as failed."""

    def __init__(self, store: LoggedStore, key: str, inner: Upload) -> None:
        self._store, self._key, self._inner = store, key, inner
        self.part_size, self.max_parts, self.retry_parts = inner.part_size, inner.max_parts, inner.retry_parts
        self._start: int | None = None

    def upload_part(self, index: int, offset: int, data: memoryview) -> None:
        if self._start is None:
            self._start = _time_ns()
        self._inner.upload_part(index, offset, data)

    def complete(self, size: int) -> None:
        start = self._start or _time_ns()
        try:
            self._inner.complete(size)
        except BaseException as exc:
            self._store._log("PUT", self._key, start, error=exc)
            raise
        self._store._emit("PUT", self._key, start, size)

    def abort(self) -> None:
        start, self._start = self._start, None
        self._inner.abort()
        if start is not None:
            self._store._log("PUT", self._key, start, error=RuntimeError("upload aborted"))

    def put_whole(self, data: memoryview) -> None:
        nbytes = data.nbytes
        self._store._call("PUT", self._key, lambda: self._inner.put_whole(data), lambda _: nbytes)
