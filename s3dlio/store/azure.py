"""Azure Blob Storage through azure-storage-blob: the portable engine's ``az://`` store.

The SDK is an optional extra, imported when the first Azure store opens. Its single-shot
upload insists on ``bytes``, so a non-bytes buffer is copied once per upload (or once per
block for large ones); downloads return the SDK's bytes. Retries back off for seconds, not
the SDK default of 15 s and more, so an unreachable endpoint fails in seconds.
"""

from __future__ import annotations

import builtins
import io
import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .._redact import redact_url
from ..buffers import byte_view
from ..config import AZURITE_ACCOUNT, AZURITE_KEY
from ..errors import (
    UNSIGNED_DENIED,
    AlreadyExistsError,
    ConfigError,
    InvalidUriError,
    NotFoundError,
    PermissionDeniedError,
    S3dlioError,
    TransferError,
)
from ..retry import Attempts
from .base import DeleteFailure, ObjectMeta, Store, check_length, check_range, check_signing, outside_prefix

if TYPE_CHECKING:
    from collections.abc import Buffer

    from ..config import Config
    from .base import Upload

__all__ = ["PUT_BLOB_MAX", "AzureStore", "blob_too_large", "check_key", "denied_fix", "map_errors"]

#: Azure's limit of sub-requests per blob batch.
_DELETE_BATCH = 256
_SINGLE_PUT_PARTS = 4
#: The largest blob one Put Blob request writes (service versions since 2019-12-12).
PUT_BLOB_MAX = 5000 * 1024 * 1024
#: The permission a SAS must grant (its ``sp``) for each operation.
_SAS_GRANTS = {"get": "read", "get_range": "read", "head": "read", "list": "list", "put": "write",
               "stage_block": "write", "commit_block_list": "write", "abort": "write", "delete": "delete",
               "delete_many": "delete"}  # fmt: skip


def _code(exc: Any) -> str:
    code = getattr(exc, "error_code", None)
    return str(getattr(code, "value", code) or "")


@contextmanager
def map_errors(
    op: str, uri: str, endpoint: str = "the Azure endpoint", *, unsigned: bool = False, sas: bool = False
) -> Iterator[None]:
    """Turn azure-core errors from ``op`` on ``uri`` into s3dlio's (the one place for Azure).

    ``unsigned``: the requests carried no credentials, so a denial says that, not "check the key";
    ``sas``: a SAS signed them, so a denial names the SAS.
    """
    from azure.core import exceptions as ax

    try:
        yield
    except S3dlioError:
        raise
    except ax.AzureError as exc:
        raise _translate(exc, op, uri, endpoint, unsigned, sas) from exc
    except ValueError as exc:  # the SDK's argument checks, e.g. an empty blob name
        if "Content-Range" in str(exc):  # a reply without the range asked for: the service's fault
            raise TransferError(f"{op} {uri}: {exc}") from exc
        raise InvalidUriError(f"{op} {uri}: {exc}") from exc


def _translate(exc: Any, op: str, uri: str, endpoint: str, unsigned: bool = False, sas: bool = False) -> S3dlioError:
    from azure.core import exceptions as ax

    where = f"{op} {uri}"
    container = uri.split("/")[2] if uri.startswith("az://") else uri
    code = _code(exc)
    status = getattr(exc, "status_code", None) or 0
    inner = getattr(exc, "inner_exception", None)
    if isinstance(exc, ax.HttpResponseError) and not status and isinstance(inner, ax.AzureError):
        # A body that stalled or broke off: the SDK's downloader read it 3 times (1 s apart)
        # and wrapped the last error. After a stall (3 x read_timeout) s3dlio's layer does
        # not try again: that would multiply the time; a body cut short it retries as usual.
        error = _translate(inner, op, uri, endpoint, unsigned, sas)
        if isinstance(error, TransferError) and _timed_out(inner):
            error.retried = True
        return error
    if code == "ContainerNotFound":
        return NotFoundError(
            f"{where}: container {container!r} does not exist; create it with s3dlio create-bucket az://{container}"
        )
    if isinstance(exc, ax.ResourceNotFoundError) or status == 404:
        return NotFoundError(f"{where}: not found")
    if isinstance(exc, ax.ClientAuthenticationError) or status in (401, 403):
        fix = denied_fix(op, code, unsigned=unsigned, sas=sas)
        return PermissionDeniedError(f"{where}: access denied ({code or status}); {fix}")
    if code == "ContainerBeingDeleted":
        return TransferError(f"{where}: container {container!r} is being deleted; try again in a minute")
    if code == "InvalidBlobType":  # a 409 like "already exists", but about the blob's type
        return S3dlioError(
            f"{where}: an append or page blob of this name exists, and Azure stages blocks only into block "
            f"blobs, so a write in parts cannot replace it; delete it first (s3dlio rm {uri}) or write it with "
            "s3dlio.put, which replaces a blob of any type"
        )
    if isinstance(exc, ax.ResourceExistsError) or code.endswith("AlreadyExists"):
        return AlreadyExistsError(f"{where}: already exists")
    if isinstance(exc, ax.ServiceRequestError):
        if "certificate verify failed" in str(exc).lower():
            return TransferError(  # the fast engine raises the same
                f"{where}: certificate verify failed for {endpoint}; "
                "trust your CA with AWS_CA_BUNDLE_PATH=/path/ca.pem"
            )
        error = TransferError(
            f"{where}: could not connect to {endpoint}; check AZURE_STORAGE_ENDPOINT and that the service is running"
        )
        error.retried = True  # the SDK already retried connecting: do not wait out the time budget
        return error
    if isinstance(exc, ax.ServiceResponseError | ax.IncompleteReadError):
        text = str(exc)
        if _timed_out(exc):
            return TransferError(
                f"{where}: timed out waiting for {endpoint} to send a byte (S3DLIO_READ_TIMEOUT)"
            )
        if "reset" in text.lower() or "aborted" in text.lower():
            return TransferError(f"{where}: connection reset by the server {endpoint}")
        return TransferError(f"{where}: the connection to {endpoint} closed before the whole reply arrived")
    if status >= 500:
        return TransferError(
            f"{where}: the service answered {status} {code} on every attempt; try again later"
        )
    if status:
        return S3dlioError(f"{where}: {status} {code or getattr(exc, 'reason', '')}")
    return TransferError(f"{where}: {type(exc).__name__}")


def denied_fix(op: str, code: str | None, *, unsigned: bool, sas: bool) -> str:
    """What to check after ``op`` was denied with ``code`` (both engines say it): the SAS when
    one signed the request, which may lack the permission the operation needs."""
    if unsigned:
        return UNSIGNED_DENIED
    if not sas:
        return "check AZURE_STORAGE_ACCOUNT_KEY (or AZURE_STORAGE_CONNECTION_STRING) and the container's access policy"
    where = "AZURE_STORAGE_SAS_TOKEN or the connection string's SharedAccessSignature"
    if code == "AuthorizationPermissionMismatch" and op in _SAS_GRANTS:
        return f"the SAS does not grant {_SAS_GRANTS[op]}; use one that does ({where})"
    return f"check the SAS ({where}): its permissions, expiry and the container it is for"


def check_key(op: str, uri: str, key: str) -> None:
    """InvalidUriError for a key with a '.' or '..' segment, on both engines: URLs resolve such
    segments (the HTTP layer rewrites ``a/./b`` to ``a/b``), so no request can name the blob."""
    if any(part in (".", "..") for part in key.split("/")):
        raise InvalidUriError(
            f"{op} {uri}: the key has a '.' or '..' segment, and Azure Blob Storage cannot address such a "
            "name (URLs resolve those segments); choose a name without them"
        )


class _ChunkReader(io.RawIOBase):
    """A seekable file-like over a memoryview; reads copy one block to bytes (the SDK needs bytes)."""

    def __init__(self, view: memoryview) -> None:
        super().__init__()
        self._view, self._pos = view, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self._view)}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        stop = len(self._view) if size is None or size < 0 else min(len(self._view), self._pos + size)
        chunk = self._view[self._pos : stop].tobytes() if self._pos < stop else b""
        self._pos += len(chunk)
        return chunk


class AzureStore(Store):
    """One Azure Blob container."""

    scheme = "az"
    engine = "portable"

    def __init__(self, container: str, config: Config, account: str | None = None) -> None:
        super().__init__(container, config)
        try:
            import azure.storage.blob  # noqa: F401
        except ImportError:
            raise ConfigError(
                "az:// on the portable engine needs the Azure SDK: pip install 's3dlio[azure]'"
            ) from None
        self._uri_account = account  # what the URI named: a pickled copy resolves the same way
        self._target = azure_target(config, account, container)
        self.account, self.endpoint = self._target.account, self._target.endpoint
        self._service_obj: Any = None
        self._container_obj: Any = None
        self._pid = 0
        self._lock = threading.Lock()
        self._lock_pid = os.getpid()

    def uri(self, key: str | None = None) -> str:
        return f"az://{self.bucket}" + ("" if key is None else f"/{key}")

    def _errors(self, op: str, key: str | None = None) -> Any:
        return map_errors(op, self.uri(key), self.endpoint, unsigned=self.config.unsigned, sas=bool(self._target.sas))

    def _check_key(self, op: str, key: str) -> None:
        check_key(op, self.uri(key), key)

    @property
    def _service(self) -> Any:
        """This process's BlobServiceClient, built on first use (a forked child builds its own)."""
        pid = os.getpid()
        if self._service_obj is not None and self._pid == pid:
            return self._service_obj
        if self._lock_pid != pid:  # a lock held by a parent thread at fork would never be released
            self._lock, self._lock_pid = threading.Lock(), pid
        with self._lock:
            if self._service_obj is None or self._pid != pid:
                with self._errors("connect"):
                    self._service_obj = _build_service(self.config, self._target)
                    self._container_obj = None
                self._pid = pid
        return self._service_obj

    @property
    def _container(self) -> Any:
        """This process's ContainerClient (none for a store opened only to list containers)."""
        service = self._service
        container = self._container_obj
        if container is None:
            with self._errors("connect"):
                container = self._container_obj = service.get_container_client(self.bucket)
        return container

    # -- reads ---------------------------------------------------------------------------
    def get(self, key: str) -> Buffer:
        self._check_key("get", key)
        began = time.monotonic()
        try:
            return self._get(key)
        except TransferError as exc:
            return self._again(self._get, (key,), exc, began, "get", key)  # type: ignore[no-any-return]

    def _get(self, key: str) -> Buffer:
        with self._errors("get", key):
            stream = self._container.download_blob(key, max_concurrency=self._workers())
            data = stream.readall()
        check_length(self.uri(key), len(data), 0, stream.size)  # the SDK never compares them
        return data  # type: ignore[no-any-return]

    def _drain(self, key: str, byte_range: tuple[int, int] | None) -> tuple[int, int | None]:
        self._check_key("get", key)
        return self._drain_streamed(key, byte_range)

    def _drain_once(self, key: str, byte_range: tuple[int, int] | None) -> tuple[int, int | None]:
        from azure.core.exceptions import HttpResponseError

        offset, length = (None, None) if byte_range is None else (byte_range[0], byte_range[1] - byte_range[0])
        with self._errors("get", key):
            try:  # one request after another, chunk by chunk (the SDK's first one is up to 32 MiB)
                stream = self._container.download_blob(key, offset=offset, length=length, max_concurrency=1)
            except HttpResponseError as exc:
                if offset is not None and exc.status_code == 416:  # start past the end, or an empty blob
                    return 0, None
                raise
            got = sum(len(chunk) for chunk in stream.chunks())  # the SDK reads a chunk before returning
        check_length(self.uri(key), got, 0, stream.size)
        return got, None

    def get_range(self, key: str, start: int, end: int) -> Buffer:
        return self.get_range_etag(key, start, end)[0]

    def get_range_etag(self, key: str, start: int, end: int) -> tuple[Buffer, str | None]:
        check_range(start, end)
        self._check_key("get_range", key)
        began = time.monotonic()
        try:
            return self._get_range(key, start, end)
        except TransferError as exc:
            return self._again(self._get_range, (key, start, end), exc, began, "get_range", key)  # type: ignore[no-any-return]

    def _get_range(self, key: str, start: int, end: int) -> tuple[Buffer, str | None]:
        from azure.core.exceptions import HttpResponseError

        with self._errors("get_range", key):
            if end <= start:
                self._container.get_blob_client(key).get_blob_properties()  # NotFoundError if missing
                return b"", None
            try:  # the SDK pins its ranges after the first to that reply's ETag
                stream = self._container.download_blob(
                    key, offset=start, length=end - start, max_concurrency=self._workers()
                )
                data = stream.readall()
            except HttpResponseError as exc:
                if exc.status_code == 416:  # start past the end, or an empty blob
                    return b"", None
                raise
        # stream.size: what the SDK worked out from the first reply's Content-Range (the range
        # asked, clipped to the blob); it never compares the bytes it then got with it
        check_length(self.uri(key), len(data), start, start + stream.size)
        return data, stream.properties.etag

    def sign(self, key: str, method: str = "GET", expires: float = 3600) -> str:
        """A SAS URL for the blob: signed with the account key when there is one, else with a
        user delegation key (Entra ID credentials); anonymous access has nothing to sign."""
        from datetime import datetime, timedelta

        from azure.storage.blob import BlobSasPermissions, generate_blob_sas

        verb = check_signing(self.uri(key), method, expires, None)
        self._check_key("sign", key)
        blob = self._container.get_blob_client(key)
        if self.config.unsigned:
            return blob.url  # type: ignore[no-any-return]
        permission = BlobSasPermissions(read=verb in ("GET", "HEAD"), create=verb == "PUT", write=verb == "PUT",
                                        delete=verb == "DELETE")  # fmt: skip
        service = self._service
        start = datetime.now(UTC)
        expiry = start + timedelta(seconds=expires)
        account_key = getattr(service.credential, "account_key", None)
        if not account_key and not hasattr(service.credential, "get_token"):
            raise ConfigError(f"sign {self.uri(key)}: these credentials (a SAS, or none) cannot sign a URL; "
                              "give the account key (AZURE_STORAGE_ACCOUNT_KEY) or Entra ID credentials")  # fmt: skip
        with self._errors("sign", key):
            if account_key:
                sas = generate_blob_sas(service.account_name, self.bucket, key, account_key=account_key,
                                        permission=permission, expiry=expiry)  # fmt: skip
            else:
                delegation = service.get_user_delegation_key(start, expiry)
                sas = generate_blob_sas(service.account_name, self.bucket, key, user_delegation_key=delegation,
                                        permission=permission, expiry=expiry)  # fmt: skip
        return f"{blob.url}?{sas}"

    def head(self, key: str) -> ObjectMeta:
        self._check_key("head", key)
        began = time.monotonic()
        try:
            return self._head(key)
        except TransferError as exc:
            return self._again(self._head, (key,), exc, began, "head", key)  # type: ignore[no-any-return]

    def _head(self, key: str) -> ObjectMeta:
        with self._errors("head", key):
            p = self._container.get_blob_client(key).get_blob_properties()
        settings = p.content_settings
        replication = None
        if p.object_replication_destination_policy:
            replication = "REPLICA"
        elif p.object_replication_source_properties:
            rules = p.object_replication_source_properties[0].rules
            replication = str(rules[0].status).upper() if rules else None
        return ObjectMeta(
            key=key,
            size=p.size,
            last_modified=p.last_modified.astimezone(UTC) if p.last_modified else None,
            etag=p.etag,
            content_type=settings.content_type,
            content_language=settings.content_language,
            storage_class=str(getattr(p.blob_tier, "value", p.blob_tier)) if p.blob_tier else None,
            metadata=dict(p.metadata or {}),
            version_id=p.version_id,
            replication_status=replication,
            server_side_encryption="AES256" if p.server_encrypted else None,
            ssekms_key_id=p.encryption_scope,
        )

    def list(self, prefix: str, *, delimiter: bool = False) -> Iterator[ObjectMeta | str]:
        from azure.storage.blob import BlobPrefix

        with self._errors("list", prefix):
            container = self._container
            if delimiter:
                paged = container.walk_blobs(name_starts_with=prefix or None, delimiter="/", include=["metadata"])
            else:  # metadata: ADLS Gen2's directories are zero-byte blobs with hdi_isfolder=true
                paged = container.list_blobs(name_starts_with=prefix or None, include=["metadata"])
            pages = paged.by_page()
        seen: set[str] = set()
        tries: Attempts | None = None
        while True:
            try:  # a failed page is asked for again: the SDK's pager keeps its place
                with self._errors("list", prefix):
                    page = next(pages, None)
                    items = None if page is None else list(page)
            except TransferError as exc:
                if tries is None:
                    tries = Attempts(self.config.max_attempts, self.config.total_timeout, f"list {prefix}")
                tries.failed_with(exc)
                continue
            if items is None:
                return
            token = getattr(pages, "continuation_token", None)
            if token in seen:  # the SDK would follow it forever
                raise TransferError(
                    f"list {self.uri(prefix)}: the service sent the continuation token {token!r} twice; stopped"
                )
            if token:
                seen.add(token)
            for item in items:
                if not item.name.startswith(prefix):
                    raise outside_prefix("list", self.uri(prefix), self.endpoint, item.name)
            # Azurite returns a page's prefixes before its blobs; sort into key order.
            items.sort(key=lambda item: item.name)
            for item in items:
                if isinstance(item, BlobPrefix):
                    yield item.name
                else:
                    yield _list_meta(item)

    # -- writes --------------------------------------------------------------------------
    def open_upload(self, key: str, *, part_size: int, content_type: str | None = None) -> Upload:
        from .upload_azure import AzureUpload

        self._check_key("put", key)
        return AzureUpload(self, key, part_size, content_type)

    def put(self, key: str, data: Buffer) -> None:
        self._check_key("put", key)
        began = time.monotonic()
        try:
            self._put(key, data)
        except TransferError as exc:
            self._again(self._put, (key, data), exc, began, "put", key)

    def _put(self, key: str, data: Buffer) -> None:
        from azure.core.exceptions import HttpResponseError

        view = byte_view(data)
        if len(view) <= _SINGLE_PUT_PARTS * self.config.part_size:
            body: Any = data if type(data) is bytes else view.tobytes()
        else:
            body = _ChunkReader(view)
        with self._errors("put", key):
            try:
                self._container.upload_blob(
                    key, body, length=len(view), overwrite=True, max_concurrency=self._workers()
                )
            except HttpResponseError as exc:
                if not isinstance(body, _ChunkReader) or _code(exc) != "InvalidBlobType":
                    raise
                self._put_blob(key, data, view)
                return
        if isinstance(body, _ChunkReader):  # committed as a block list: a 201 to it is no proof
            from .upload_azure import check_committed

            check_committed(self, key, self.uri(key), len(view), None)  # the SDK hands back no ETag

    def _put_blob(self, key: str, data: Buffer, view: memoryview) -> None:
        """``data`` in one Put Blob, over an append or page blob its blocks could not be staged
        into: Put Blob replaces a blob of any type, and the old one stays until it succeeds."""
        blob_too_large(self.uri(key), len(view))
        body = data if type(data) is bytes else view.tobytes()  # the SDK's single put takes bytes only
        service = _build_service(self.config, self._target, single_put=len(body))
        try:
            service.get_blob_client(self.bucket, key).upload_blob(body, length=len(body), overwrite=True)
        finally:
            service.close()

    def put_new(self, key: str, data: Buffer) -> None:
        self._check_key("put", key)
        view = byte_view(data)
        with self._errors("put", key):  # the service's BlobAlreadyExists: AlreadyExistsError
            self._container.upload_blob(key, view.tobytes(), length=len(view), overwrite=False)

    def delete(self, key: str) -> None:
        self._check_key("delete", key)
        began = time.monotonic()
        try:
            self._delete(key)
        except TransferError as exc:
            self._again(self._delete, (key,), exc, began, "delete", key)

    def _delete(self, key: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        with self._errors("delete", key):
            try:
                self._container.delete_blob(key, delete_snapshots="include")
            except ResourceNotFoundError as exc:
                if _code(exc) != "BlobNotFound":
                    raise

    def delete_many(self, keys: Sequence[str]) -> builtins.list[DeleteFailure]:
        """Blob batch deletes of 256; missing blobs count as deleted, as in S3."""
        failures: builtins.list[DeleteFailure] = []
        named = []
        for key in keys:  # as on the fast engine: a key no request can name fails alone
            try:
                self._check_key("delete", key)
                named.append(key)
            except InvalidUriError as exc:
                failures.append(DeleteFailure(key, exc))
        keys = named
        for first in range(0, len(keys), _DELETE_BATCH):
            batch = list(keys[first : first + _DELETE_BATCH])
            with self._errors("delete_many", batch[0]):
                responses = self._container.delete_blobs(
                    *batch, delete_snapshots="include", raise_on_any_failure=False
                )
            for key, response in zip(batch, responses, strict=True):
                if response.status_code < 300:
                    continue
                code = response.headers.get("x-ms-error-code", "")
                if code == "BlobNotFound":
                    continue
                if code == "ContainerNotFound":
                    raise NotFoundError(
                        f"delete_many {self.uri()}: container {self.bucket!r} does not exist; "
                        f"create it with s3dlio create-bucket az://{self.bucket}"
                    )
                fix = denied_fix("delete", code, unsigned=self.config.unsigned, sas=bool(self._target.sas))
                failures.append(DeleteFailure(key, _batch_error(response.status_code, code, self.uri(key), fix)))
        return failures

    # -- containers ----------------------------------------------------------------------
    def create_bucket(self) -> None:
        with self._errors("create_bucket"):
            self._container.create_container()

    def delete_bucket(self) -> None:
        """Delete the container if it is empty: Azure would delete its blobs too, S3 refuses."""
        with self._errors("delete_bucket"):
            if next(iter(self._container.list_blobs(results_per_page=1)), None) is not None:
                raise S3dlioError(
                    f"delete_bucket {self.uri()}: container is not empty; "
                    f"delete the objects first: s3dlio rm -r az://{self.bucket}/"
                )
            self._container.delete_container()

    def list_buckets(self) -> builtins.list[str]:
        with self._errors("list_buckets"):
            return [c.name for c in self._service.list_containers()]

    def _workers(self) -> int:
        return max(1, min(8, self.config.max_in_flight))

    def close(self) -> None:
        service, self._service_obj, self._container_obj = self._service_obj, None, None
        if service is not None and self._pid == os.getpid():
            service.close()

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle settings, not connections: the unpickled store builds its own client."""
        return (type(self), (self.bucket, self.config, self._uri_account))


def blob_too_large(uri: str, size: int) -> None:
    """S3dlioError when ``size`` bytes cannot go in one Put Blob (over a blob that is not a block blob)."""
    if size > PUT_BLOB_MAX:
        raise S3dlioError(
            f"put {uri}: an append or page blob of this name exists; Azure replaces it only with one Put Blob, "
            f"of at most {PUT_BLOB_MAX} bytes, and this write has {size}: delete it first (s3dlio rm {uri})"
        )


def _build_service(config: Config, target: AzureTarget, *, single_put: int = 0) -> Any:
    """A BlobServiceClient with s3dlio's timeouts, retries, pool size and CA bundle; it puts
    blobs of up to ``single_put`` bytes (default: 4 parts) in one request."""
    import requests
    from azure.core.pipeline.transport import RequestsTransport
    from azure.storage.blob import BlobServiceClient

    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=config.max_in_flight)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    options: dict[str, Any] = {
        "transport": RequestsTransport(
            session=session,
            session_owner=True,
            connection_timeout=config.connect_timeout,
            read_timeout=config.idle_timeout,
            connection_verify=config.ca_bundle or True,
            # Bytes per read of a response body: 4 KiB (azure-core's default) costs 6.1 client
            # cpu-s per GiB on Azurite, 1 MiB 2.5 cpu-s and 3.7x the throughput.
            connection_data_block_size=1024 * 1024,
        ),
        "retry_policy": _retry_policy(config),
        "max_block_size": config.part_size,
        "max_single_put_size": max(single_put, _SINGLE_PUT_PARTS * config.part_size),
        "max_chunk_get_size": config.part_size,
    }
    credential: Any = None  # anonymous
    if target.account_key:
        credential = {"account_name": target.account, "account_key": target.account_key}
    elif target.sas:
        credential = target.sas
    elif not target.anonymous:
        credential = _default_credential()
    return BlobServiceClient(target.endpoint, credential=credential, **options)


def _retry_policy(config: Config) -> Any:
    """The SDK's retries of one request, kept inside s3dlio's deadline (docs/configuration.md).

    Waits of about 2, 3 and 4 s (the SDK's default starts at 15 s); a refused connection is
    asked once more, not three times, so an endpoint that is down fails in about 2 s. As with
    botocore, a request that timed out is not retried here: s3dlio's layer (retry.py) does
    that within ``total_timeout``, so a silent server is not waited out ``engine_attempts``
    times. Nor is any request retried once ``total_timeout`` has passed since its first
    attempt (obstore's ``retry_timeout``), counting the wait before the retry.
    """
    from azure.core.exceptions import ServiceResponseError
    from azure.storage.blob import ExponentialRetry

    class Retry(ExponentialRetry):
        def configure_retries(self, request: Any) -> dict[str, Any]:
            settings: dict[str, Any] = super().configure_retries(request)
            settings["s3dlio_until"] = time.monotonic() + config.total_timeout
            return settings

        def increment(self, settings: dict[str, Any], request: Any, response: Any = None,
                      error: Any = None) -> bool:  # fmt: skip
            if isinstance(error, ServiceResponseError) and _timed_out(error):
                return False
            if not super().increment(settings, request, response, error):
                return False
            # the wait sleep() takes next, drawn once here so that the check and the wait agree
            settings["s3dlio_wait"] = wait = super().get_backoff_time(settings)
            return bool(time.monotonic() + wait < settings["s3dlio_until"])

        def get_backoff_time(self, settings: dict[str, Any]) -> float:
            return float(settings.pop("s3dlio_wait", None) or super().get_backoff_time(settings))

    return Retry(
        initial_backoff=0.5,  # type: ignore[arg-type]  # typed int, used as float
        increment_base=1.5,  # type: ignore[arg-type]
        random_jitter_range=0.5,  # type: ignore[arg-type]
        retry_total=config.engine_attempts - 1,
        retry_connect=1,
    )


def _timed_out(exc: Any) -> bool:
    inner = getattr(exc, "inner_exception", None) or exc
    return "timed out" in str(exc).lower() or "timeout" in type(inner).__name__.lower()


def _default_credential() -> Any:
    """Entra ID through azure-identity when installed; else anonymous (public containers)."""
    try:
        from azure.identity import DefaultAzureCredential  # type: ignore[import-untyped, unused-ignore]
    except ImportError:
        return None
    return DefaultAzureCredential()


@dataclass(frozen=True)
class AzureTarget:
    """Where an Azure store sends its requests and what it signs them with: one answer for
    both engines (:func:`azure_target`). No key, no SAS and not anonymous: Entra ID."""

    account: str
    endpoint: str
    account_key: str | None = field(default=None, repr=False)
    sas: str | None = field(default=None, repr=False)
    anonymous: bool = False


def azure_target(config: Config, uri_account: str | None, container: str) -> AzureTarget:
    """The account, endpoint and credentials for ``container``, decided so that credentials
    reach only their own account.

    Credentials, first that applies: none with ``unsigned``; of a connection string, the account
    key and a SAS, the first given explicitly, else the first set (in that order); Azurite's
    published key for the emulator; else Entra ID. Credentials that name their account (the
    string's AccountName or BlobEndpoint host, AZURE_STORAGE_ACCOUNT_NAME with a key or SAS, the
    emulator's account) are sent to no other: a URI naming another account is a ConfigError.

    Endpoint, first that applies: the host a URI names (``https://ACCOUNT.blob.core.windows.net/...``);
    an explicit ``azure_endpoint`` (unless the connection string was given explicitly too); the
    connection string's BlobEndpoint (or the one its AccountName and EndpointSuffix make),
    which belongs to its credentials; ``AZURE_STORAGE_ENDPOINT`` from the environment or
    ``.env``; the emulator's; ``https://ACCOUNT.blob.core.windows.net``.
    """
    conn = _parse_connection_string(config.azure_connection_string)
    emulator = config.azure_use_emulator or conn.pop("usedevelopmentstorage", "").lower() == "true"
    # A credential given explicitly beats one from the environment; an explicit endpoint beats a
    # connection string from the environment, not one given too.
    string_given = config.is_explicit("azure_connection_string")
    chosen = _credential_source(config, bool(conn))
    use_string = chosen == "azure_connection_string"
    string_endpoint = conn.get("blobendpoint", "").rstrip("/") or None
    if use_string and not string_endpoint and conn.get("accountname"):
        string_endpoint = (f"{conn.get('defaultendpointsprotocol', 'https')}://{conn['accountname']}.blob."
                           f"{conn.get('endpointsuffix', 'core.windows.net')}")  # fmt: skip
    key = sas = bound = None
    if config.unsigned:
        pass
    elif use_string:
        key, sas = conn.get("accountkey"), conn.get("sharedaccesssignature")
        bound = conn.get("accountname") or _account_of(string_endpoint)
    elif chosen == "azure_account_key":
        key, bound = config.azure_account_key, config.azure_account_name
    elif chosen == "azure_sas_token":
        sas, bound = config.azure_sas_token, config.azure_account_name
    elif emulator:
        key, bound = AZURITE_KEY, AZURITE_ACCOUNT
    account = (uri_account or bound or config.azure_account_name or conn.get("accountname")
               or (AZURITE_ACCOUNT if emulator else None))  # fmt: skip
    if not account:
        raise ConfigError(
            f"az://{container}: no Azure storage account; set AZURE_STORAGE_ACCOUNT_NAME "
            f"(or write https://ACCOUNT.blob.core.windows.net/{container}/key)"
        )
    # credentials bound to an endpoint whose account is unknown: to that endpoint only
    owner = bound or (string_endpoint if use_string and (key or sas) else None)
    if uri_account:
        endpoint = f"https://{uri_account}.blob.core.windows.net"
        if owner and owner not in (uri_account, endpoint):
            raise ConfigError(
                f"{endpoint}/{container}: the configured Azure credentials are for storage account "
                f"{redact_url(owner)!r}, the URI names {uri_account!r}; s3dlio sends credentials only to their "
                "own account: give that account's, or unsigned=True (S3DLIO_UNSIGNED) for a public container"
            )
    elif config.azure_endpoint and config.is_explicit("azure_endpoint") and not (use_string and string_given):
        endpoint = config.azure_endpoint
    elif use_string and string_endpoint:
        endpoint = string_endpoint
    elif config.azure_endpoint:
        endpoint = config.azure_endpoint
    elif emulator:
        endpoint = f"http://127.0.0.1:10000/{account}"
    else:
        endpoint = f"https://{account}.blob.core.windows.net"
    anonymous = config.unsigned or (use_string and not key and not sas)
    sas = (sas or "").lstrip("?")  # a SAS copied with its URL's '?'
    return AzureTarget(account, endpoint.rstrip("/"), key or None, sas or None, anonymous)


def _credential_source(config: Config, have_string: bool) -> str | None:
    """Which of the connection string, account key and SAS signs: the first given explicitly,
    else the first set (adlfs's order: a string, then a key, then a SAS)."""
    names = ("azure_connection_string", "azure_account_key", "azure_sas_token")
    have = [n for n in names if (have_string if n == "azure_connection_string" else getattr(config, n))]
    return next((n for n in have if config.is_explicit(n)), have[0] if have else None)


def _account_of(endpoint: str | None) -> str | None:
    """The account an endpoint serves: ``ACCOUNT.blob.<suffix>``, or the first path segment
    (``http://127.0.0.1:10000/devstoreaccount1``, Azurite's form); None when it names none."""
    if not endpoint:
        return None
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    if ".blob." in host:
        return host.split(".", 1)[0]
    return parts.path.strip("/").split("/", 1)[0] or None


def _parse_connection_string(value: str | None) -> dict[str, str]:
    """``Key=Value;...`` pairs, keys lower-cased (values such as account keys contain ``=``)."""
    if not value:
        return {}
    pairs = (part.split("=", 1) for part in value.split(";") if "=" in part)
    return {k.strip().lower(): v.strip() for k, v in pairs if k.strip()}


def _list_meta(item: Any) -> ObjectMeta:
    return ObjectMeta(
        key=item.name,
        size=item.size,
        last_modified=item.last_modified.astimezone(UTC) if item.last_modified else None,
        etag=item.etag,
        content_type=item.content_settings.content_type if item.content_settings else None,
        storage_class=str(getattr(item.blob_tier, "value", item.blob_tier)) if item.blob_tier else None,
        metadata=dict(item.metadata or {}),
    )


def _batch_error(status: int, code: str, uri: str, fix: str) -> S3dlioError:
    if status in (401, 403):
        return PermissionDeniedError(f"delete {uri}: access denied ({code or status}); {fix}")
    if status >= 500:
        return TransferError(f"delete {uri}: the service answered {status} {code}")
    return S3dlioError(f"delete {uri}: {status} {code}")
