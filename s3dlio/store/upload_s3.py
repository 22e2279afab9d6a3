"""S3 multipart uploads through boto3 (the portable engine).

Parts are sent from memoryview slices through :class:`~s3dlio.buffers.BufferReader`, so
botocore reads the caller's bytes without a copy in Python. The multipart upload is created
on the first part; objects of at most one part go up with one ``PutObject``. Each part is
its own request, so the writer can send a failed part again alone.

Completing and aborting are retried (s3dlio.retry). A CompleteMultipartUpload whose reply is
lost may have made the object anyway, and its retry then meets ``NoSuchUpload``: either way
the object is checked (HEAD: the multipart ETag the parts give) before any error is raised,
so a written object is never reported missing. A reply that says nothing of the object (200
with an empty body from a faulty proxy: no CompleteMultipartUploadResult, no ETag) is not taken
for a write either: the same HEAD must find the object, else TransferError (retried). An abort
that keeps failing is retried until the time budget ends, so no upload is left behind by a
passing fault.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..buffers import BufferReader
from ..errors import NotFoundError, S3dlioError, TransferError
from .base import bare_etag

if TYPE_CHECKING:
    from .s3 import S3Store

__all__ = ["S3Upload", "MIN_PART", "MAX_PARTS", "abort_upload", "complete_upload", "multipart_etag"]

#: S3's smallest part (but the last) and largest part count.
MIN_PART = 5 * 1024 * 1024
MAX_PARTS = 10_000


class S3Upload:
    """An :class:`~s3dlio.store.base.Upload` made of ``UploadPart`` requests."""

    max_parts = MAX_PARTS
    retry_parts = True

    def __init__(self, store: S3Store, key: str, part_size: int, content_type: str | None) -> None:
        self.part_size = max(part_size, MIN_PART)
        self._store = store
        self._key = key
        self._extra: dict[str, Any] = {"ContentType": content_type} if content_type else {}
        self._id: str | None = None
        self._parts: dict[int, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._aborted = False

    def _upload_id(self) -> str:
        if self._id is None:
            with self._lock:
                if self._aborted:  # a part sent after abort() must not start a new upload
                    raise TransferError(f"upload_part s3://{self._store.bucket}/{self._key}: the upload was aborted")
                if self._id is None:
                    with self._store._errors("create_multipart_upload", self._key):
                        r = self._store._client.create_multipart_upload(
                            Bucket=self._store.bucket, Key=self._key, **self._extra
                        )
                    self._id = r["UploadId"]
        return self._id

    def upload_part(self, index: int, offset: int, data: memoryview) -> None:
        upload_id = self._upload_id()
        with self._store._errors("upload_part", self._key):
            r = self._store._client.upload_part(
                Bucket=self._store.bucket,
                Key=self._key,
                UploadId=upload_id,
                PartNumber=index + 1,
                Body=BufferReader(data, views=True),
            )
        done = {"PartNumber": index + 1, "ETag": r["ETag"]}
        done.update({k: v for k, v in r.items() if k.startswith("Checksum") and k != "ChecksumType"})
        with self._lock:
            self._parts[index] = done

    def complete(self, size: int) -> None:
        parts = [self._parts[i] for i in sorted(self._parts)]
        complete_upload(self._store, self._key, self._upload_id(), parts, size)
        self._id = None

    def abort(self) -> None:
        with self._lock:  # a CreateMultipartUpload in flight finishes first, and its upload is aborted
            self._aborted = True
            upload_id, self._id = self._id, None
        if upload_id is None:
            return
        abort_upload(self._store, self._key, upload_id)

    def put_whole(self, data: memoryview) -> None:
        with self._store._errors("put", self._key):
            self._store._client.put_object(
                Bucket=self._store.bucket, Key=self._key, Body=BufferReader(data, views=True), **self._extra
            )


def multipart_etag(parts: Sequence[dict[str, Any]]) -> str:
    """The ETag S3 gives the object these parts make: MD5 of the parts' MD5s, ``-`` part count."""
    digests = b"".join(bytes.fromhex(bare_etag(str(p["ETag"]))) for p in parts)
    return f"{hashlib.md5(digests, usedforsecurity=False).hexdigest()}-{len(parts)}"


def _written(store: S3Store, key: str, parts: Sequence[dict[str, Any]], size: int | None = None) -> bool:
    """Whether ``key`` is the object these parts make, of ``size`` bytes when given (its reply
    was lost, not the object)."""
    try:
        want = multipart_etag(parts)
    except ValueError:  # part ETags that are not MD5s (encrypted with KMS): nothing to compare
        return False
    try:
        meta = store.head(key)
    except S3dlioError:
        return False
    return bare_etag(meta.etag) == want and size in (None, meta.size)


def _code(exc: BaseException | None) -> str:
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


def complete_upload(
    store: S3Store, key: str, upload_id: str, parts: Sequence[dict[str, Any]], size: int | None = None
) -> None:
    """CompleteMultipartUpload, retried, and checked against the object before an error is raised,
    or before a success is reported where the reply has no ETag (nothing says the object was made)."""

    def attempt() -> None:
        try:
            with store._errors("complete_multipart_upload", key):
                reply = store._client.complete_multipart_upload(
                    Bucket=store.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": list(parts)}
                )
        except (TransferError, NotFoundError) as exc:
            if _written(store, key, parts):
                return  # a lost reply, or an earlier attempt completed it (NoSuchUpload now)
            if isinstance(exc, NotFoundError) and _code(exc.__cause__) == "NoSuchUpload":
                raise NotFoundError(
                    f"complete_multipart_upload {store.uri(key)}: the multipart upload no longer exists "
                    "(NoSuchUpload: aborted, or expired by a lifecycle rule) and the object was not written"
                ) from exc
            raise
        if not reply.get("ETag") and not _written(store, key, parts, size):
            made = "the object the parts make" + (f" ({size} bytes)" if size is not None else "")
            raise TransferError(
                f"complete_multipart_upload {store.uri(key)}: the reply holds no CompleteMultipartUploadResult "
                f"(no ETag) and a HEAD does not find {made}: it was not written (a proxy or server that "
                "answers without completing the upload)"
            )

    began = time.monotonic()
    try:
        attempt()
    except TransferError as exc:
        store._again(attempt, (), exc, began, "complete_multipart_upload", key)


def abort_upload(store: S3Store, key: str, upload_id: str) -> None:
    """AbortMultipartUpload, retried within the time budget; an upload already gone is fine."""

    def attempt() -> None:
        try:
            with store._errors("abort_multipart_upload", key):
                store._client.abort_multipart_upload(Bucket=store.bucket, Key=key, UploadId=upload_id)
        except NotFoundError:
            return  # NoSuchUpload: an earlier attempt aborted it

    began = time.monotonic()
    try:
        attempt()
    except TransferError as exc:
        store._again(attempt, (), exc, began, "abort_multipart_upload", key)
