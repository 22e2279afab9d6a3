"""Optional write verification: after a PUT or multipart upload, ask the service what it holds.

On (``verify=True`` or ``S3DLIO_PUT_VERIFY=1``) a HEAD follows each write; the object's size
must match, and on S3 so must its ETag where S3 defines it as an MD5: ``md5(body)`` for a
single PUT, ``md5(md5(part1) + md5(part2) + ...)-N`` for N parts. SSE-KMS ETags and ETags of
other shapes are not MD5s and are not compared. A mismatch deletes the object (a wrong
object is worse than none) and raises :class:`~s3dlio.errors.TransferError`.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from .config import Config, default_config
from .errors import TransferError

if TYPE_CHECKING:
    from collections.abc import Buffer

    from .store.base import ObjectMeta, Store

__all__ = ["PartDigests", "verify_enabled", "verify_written", "verify_put"]

_MD5_ETAG = re.compile(r'^"?([0-9a-f]{32})(?:-(\d+))?"?$')


def verify_enabled(flag: bool | None = None, config: Config | None = None) -> bool:
    """``flag`` when given, else the ``put_verify`` setting (``S3DLIO_PUT_VERIFY``; off: it costs a HEAD)."""
    return (config or default_config()).put_verify if flag is None else flag


class PartDigests:
    """MD5 of each part as it is sent (hashlib releases the GIL on large buffers)."""

    def __init__(self) -> None:
        self._digests: dict[int, bytes] = {}
        self._lock = threading.Lock()

    def add(self, index: int, data: Buffer) -> None:
        digest = hashlib.md5(data, usedforsecurity=False).digest()
        with self._lock:
            self._digests[index] = digest

    def etag(self, multipart: bool) -> str | None:
        """The ETag S3 gives these parts: one MD5, or the MD5 of the MD5s with the count.

        None when the store joined several parts into one PUT (no per-object MD5 known).
        """
        parts = [self._digests[i] for i in sorted(self._digests)]
        if not multipart:
            return parts[0].hex() if len(parts) == 1 else None
        return f"{hashlib.md5(b''.join(parts), usedforsecurity=False).hexdigest()}-{len(parts)}"


def verify_written(store: Store, key: str, uri: str, size: int, digests: PartDigests) -> None:
    """Check an object the writer made (parts known); delete it and raise on a mismatch."""
    _check(store, key, uri, size, lambda multipart: digests.etag(multipart))


def verify_put(store: Store, key: str, uri: str, data: Buffer) -> None:
    """Check an object ``put`` wrote from ``data``; the MD5 is computed only if S3 can match it."""
    size = memoryview(data).nbytes
    _check(store, key, uri, size, lambda multipart: None if multipart else _md5(data))


def _md5(data: Buffer) -> str:
    view = memoryview(data)
    return hashlib.md5(view if view.c_contiguous else view.tobytes(), usedforsecurity=False).hexdigest()


def _check(store: Store, key: str, uri: str, size: int, expected_etag: Callable[[bool], str | None]) -> None:
    meta = store.head(key)
    problem = None
    if meta.size != size:
        problem = f"the service holds {meta.size} bytes, {size} were written"
    else:
        etag = _comparable_etag(store, meta)
        if etag is not None:
            want = expected_etag("-" in etag)
            if want is not None and want != etag:
                problem = f"ETag {etag} differs from the MD5 of the bytes sent ({want})"
    if problem is None:
        return
    try:
        store.delete(key)
    finally:
        raise TransferError(
            f"put {uri}: verification failed: {problem}; the object was deleted, write it again"
        )


def _comparable_etag(store: Store, meta: ObjectMeta) -> str | None:
    """The ETag when S3 defines it as an MD5 form, else None (other services, SSE-KMS)."""
    if store.scheme != "s3" or not meta.etag or meta.server_side_encryption == "aws:kms":
        return None
    match = _MD5_ETAG.match(meta.etag)
    if match is None:
        return None
    return match.group(1) + (f"-{match.group(2)}" if match.group(2) else "")
