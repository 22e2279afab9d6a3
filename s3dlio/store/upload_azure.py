"""Azure block-blob uploads: ``stage_block`` per part, ``commit_block_list`` to finish.

Used by both engines: obstore's streaming put does stage and commit blocks, but its abort is
a no-op on Azure and leaves the uncommitted blocks for Azure's week-long garbage collection.
Here an abort of a blob that did not exist commits an empty block list (only if the blob
still does not exist), which discards the staged blocks, and deletes that empty blob (only
if it is still ours). Replacing an existing blob and aborting leaves the blob as it was and
the staged blocks to Azure's clean-up: removing them would mean rewriting the blob.

A commit is taken only once a HEAD finds the blob it made (:func:`check_committed`: its size,
and the ETag the commit's reply gave): a faulty server or proxy may answer Put Block List with
201 and commit nothing. One more request per multi-block upload; single puts go without it.
"""

from __future__ import annotations

import base64
import secrets
import threading
import time
from typing import TYPE_CHECKING, Any

from ..errors import NotFoundError, TransferError
from .base import Store, bare_etag

if TYPE_CHECKING:
    from .azure import AzureStore

__all__ = ["AzureUpload", "check_committed"]

#: Azure's largest committed block count.
MAX_BLOCKS = 50_000


class AzureUpload:
    """An :class:`~s3dlio.store.base.Upload` made of staged blocks."""

    max_parts = MAX_BLOCKS
    retry_parts = True

    def __init__(self, store: AzureStore, key: str, part_size: int, content_type: str | None) -> None:
        self.part_size = part_size
        self._store = store
        self._key = key
        self._content_type = content_type
        # Block ids are unique to this upload, so parallel uploads of one key never mix.
        self._prefix = secrets.token_hex(8)
        self._staged = False
        self._lock = threading.Lock()

    def _blob(self) -> Any:
        return self._store._container.get_blob_client(self._key)

    def _block_id(self, index: int) -> str:
        return base64.b64encode(f"{self._prefix}-{index:08d}".encode()).decode()

    def _settings(self) -> Any:
        from azure.storage.blob import ContentSettings

        return ContentSettings(content_type=self._content_type) if self._content_type else None

    def upload_part(self, index: int, offset: int, data: memoryview) -> None:
        with self._store._errors("stage_block", self._key):
            self._blob().stage_block(self._block_id(index), data, length=len(data))
        self._staged = True

    def complete(self, size: int) -> None:
        began = time.monotonic()
        try:
            self._commit(size)
        except TransferError as exc:  # committing the same block list again is harmless
            self._store._again(self._commit, (size,), exc, began, "commit_block_list", self._key)
        self._staged = False

    def _commit(self, size: int) -> None:
        from azure.core.exceptions import HttpResponseError
        from azure.storage.blob import BlobBlock

        blocks = [BlobBlock(self._block_id(i)) for i in range(-(-size // self.part_size))]
        with self._store._errors("commit_block_list", self._key):
            try:
                reply = self._blob().commit_block_list(blocks, content_settings=self._settings())
            except HttpResponseError as exc:
                if getattr(exc, "error_code", None) != "InvalidBlockList":
                    raise
                # one commit drops every other upload's staged blocks of the same blob
                lost = TransferError(
                    f"put {self._store.uri(self._key)}: another upload of this blob committed while this one "
                    "ran, and Azure dropped this upload's staged blocks; nothing of it was kept: write it again"
                )
                lost.retried = True  # the parts are gone: no retry of the commit can succeed
                raise lost from None
        check_committed(self._store, self._key, self._store.uri(self._key), size, reply.get("etag"))

    def abort(self) -> None:
        from azure.core import MatchConditions
        from azure.core.exceptions import HttpResponseError

        with self._lock:
            staged, self._staged = self._staged, False
        if not staged:
            return
        blob = self._blob()
        with self._store._errors("abort", self._key):
            try:
                empty = blob.commit_block_list([], if_none_match="*")  # discards the staged blocks
            except HttpResponseError as exc:
                if exc.status_code in (409, 412):  # the blob exists: keep it as it is
                    return
                raise
            blob.delete_blob(etag=empty["etag"], match_condition=MatchConditions.IfNotModified)

    def put_whole(self, data: memoryview) -> None:
        with self._store._errors("put", self._key):
            self._store._container.upload_blob(
                self._key, data.tobytes(), overwrite=True, content_settings=self._settings()
            )


def check_committed(store: Store, key: str, uri: str, size: int, etag: str | None) -> None:
    """TransferError unless a HEAD finds the blob a block commit made: ``size`` bytes and, when
    the commit's reply gave one, its ETag. A 201 to Put Block List is not proof: a faulty server
    or proxy may answer so and commit nothing, and the write would be reported with no blob."""
    try:
        meta = store.head(key)
    except NotFoundError:
        meta = None
    if meta is not None and meta.size == size and (not etag or bare_etag(meta.etag) == bare_etag(etag)):
        return
    found = "no blob" if meta is None else f"{meta.size} bytes with ETag {meta.etag}"
    raise TransferError(
        f"put {uri}: Put Block List was acknowledged (ETag {etag}) but a HEAD finds {found}, not the "
        f"{size} bytes committed: the blob was not committed (a proxy or server that answers without "
        "committing)"
    )
