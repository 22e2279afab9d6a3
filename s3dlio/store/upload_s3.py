"""S3 multipart uploads through boto3 (the portable engine).

Parts are sent from memoryview slices through :class:`~s3dlio.store.s3.BufferReader`, so
botocore reads the caller's bytes without a copy in Python. The multipart upload is created
on the first part; objects of at most one part go up with one ``PutObject``. Each part is
its own request, so the writer can send a failed part again alone.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .s3 import S3Store

__all__ = ["S3Upload", "MIN_PART", "MAX_PARTS"]

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

    def _upload_id(self) -> str:
        if self._id is None:
            with self._lock:
                if self._id is None:
                    with self._store._errors("create_multipart_upload", self._key):
                        r = self._store._client.create_multipart_upload(
                            Bucket=self._store.bucket, Key=self._key, **self._extra
                        )
                    self._id = r["UploadId"]
        return self._id

    def upload_part(self, index: int, offset: int, data: memoryview) -> None:
        from .s3 import BufferReader

        upload_id = self._upload_id()
        with self._store._errors("upload_part", self._key):
            r = self._store._client.upload_part(
                Bucket=self._store.bucket,
                Key=self._key,
                UploadId=upload_id,
                PartNumber=index + 1,
                Body=BufferReader(data),
            )
        done = {"PartNumber": index + 1, "ETag": r["ETag"]}
        done.update({k: v for k, v in r.items() if k.startswith("Checksum") and k != "ChecksumType"})
        with self._lock:
            self._parts[index] = done

    def complete(self, size: int) -> None:
        parts = [self._parts[i] for i in sorted(self._parts)]
        with self._store._errors("complete_multipart_upload", self._key):
            self._store._client.complete_multipart_upload(
                Bucket=self._store.bucket,
                Key=self._key,
                UploadId=self._upload_id(),
                MultipartUpload={"Parts": parts},
            )
        self._id = None

    def abort(self) -> None:
        upload_id, self._id = self._id, None
        if upload_id is None:
            return
        with self._store._errors("abort_multipart_upload", self._key):
            self._store._client.abort_multipart_upload(
                Bucket=self._store.bucket, Key=self._key, UploadId=upload_id
            )

    def put_whole(self, data: memoryview) -> None:
        from .s3 import BufferReader

        with self._store._errors("put", self._key):
            self._store._client.put_object(
                Bucket=self._store.bucket, Key=self._key, Body=BufferReader(data), **self._extra
            )
