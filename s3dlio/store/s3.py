"""S3 through boto3: the portable engine's ``s3://`` store.

boto3 is pure Python and survives ``fork``; clients are thread-safe, so a store builds one
per process, lazily. Non-bytes buffers are sent through :class:`BufferReader`, a file-like
over a memoryview that botocore reads in slices: no copy in Python (measured on moto, 50 MiB
PUT: 0.08 client cpu-s vs 0.12 s for ``bytes(view)``; equal at 4 KiB). Objects larger than
four parts go up as a multipart upload whose parts are slices of the caller's buffer.
"""

from __future__ import annotations

import builtins
import heapq
import os
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from datetime import UTC
from typing import TYPE_CHECKING, Any

import boto3
import botocore.config
import botocore.exceptions as bx

from ..buffers import BufferReader, byte_view
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
from ..retry import Attempts, ChangedError
from .base import (
    RESUME_CHUNK,
    DeleteFailure,
    ObjectMeta,
    ResumableRead,
    Store,
    check_length,
    check_range,
    check_reply,
    check_signing,
    outside_prefix,
)

#: SigV4 presigned URLs live at most 7 days.
_LONGEST_SIGNATURE = 7 * 86400

if TYPE_CHECKING:
    from collections.abc import Buffer

    from ..config import Config
    from .base import Upload

__all__ = ["S3Store", "map_errors"]

MiB = 1024 * 1024
#: S3's smallest part (but the last) and largest part count.
_MIN_PART = 5 * MiB
_MAX_PARTS = 10_000
#: Objects above this many parts go up as multipart uploads.
_MULTIPART_PARTS = 4
_DELETE_BATCH = 1000

_NOT_FOUND = frozenset({"NoSuchKey", "404", "NotFound", "NoSuchBucket", "NoSuchUpload", "NoSuchVersion"})
_DENIED = frozenset(
    {
        "AccessDenied",
        "403",
        "Forbidden",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "TokenRefreshRequired",
        "AllAccessDisabled",
        "AccountProblem",
        "InvalidSecurity",
    }
)
_BUSY = frozenset(
    {
        "SlowDown",
        "ServiceUnavailable",
        "InternalError",
        "RequestTimeout",
        "Throttling",
        "RequestTimeTooSkewed",
    }
)


@contextmanager
def map_errors(op: str, uri: str, config: Config | None = None) -> Iterator[None]:
    """Turn botocore errors from ``op`` on ``uri`` into s3dlio's (the one place for S3)."""
    try:
        yield
    except S3dlioError:
        raise
    except bx.ClientError as exc:
        raise _client_error(exc, op, uri, config) from exc
    except bx.BotoCoreError as exc:
        raise _botocore_error(exc, op, uri, config) from exc
    except RecursionError as exc:  # botocore's region redirector, redirected again and again
        raise _redirect_error(f"{op} {uri}", 0, None) from exc


def _redirect_error(where: str, status: int, location: str | None) -> TransferError:
    """A redirect botocore did not (or could not) follow: not retried, asking again is redirected again."""
    how = (f"HTTP {status}" + (f" to {location}" if location else "")) if status else "again and again"
    error = TransferError(
        f"{where}: the endpoint redirects ({how}); s3dlio does not follow "
        "redirects: use the endpoint of the bucket's region (AWS_ENDPOINT_URL, AWS_REGION)"
    )
    error.retried = True
    return error


def _client_error(exc: bx.ClientError, op: str, uri: str, config: Config | None = None) -> S3dlioError:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    where = f"{op} {uri}"
    bucket = uri.split("/")[2] if uri.startswith("s3://") else uri
    if code == "NoSuchBucket":
        return NotFoundError(
            f"{where}: bucket {bucket!r} does not exist; create it with s3dlio create-bucket s3://{bucket}"
        )
    if status in (301, 302, 303, 307, 308) or code == "PermanentRedirect":
        headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        return _redirect_error(where, status, headers.get("location") or error.get("Endpoint"))
    if code in _NOT_FOUND or status == 404:
        return NotFoundError(f"{where}: not found")
    if code in _DENIED or status in (401, 403):
        if config is not None and config.unsigned:
            return PermissionDeniedError(f"{where}: access denied ({code or status}); {UNSIGNED_DENIED}")
        return PermissionDeniedError(
            f"{where}: access denied ({code or status}); check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY "
            "(or AWS_PROFILE) and the bucket's policy"
        )
    if code == "BucketAlreadyOwnedByYou":
        return AlreadyExistsError(f"{where}: bucket {bucket!r} already exists (and is yours)")
    if code == "BucketAlreadyExists":
        return AlreadyExistsError(
            f"{where}: bucket name {bucket!r} is taken by another account; choose another"
        )
    if code == "BucketNotEmpty":
        return S3dlioError(
            f"{where}: bucket is not empty; delete the objects first: s3dlio rm -r s3://{bucket}/"
        )
    if code == "InvalidBucketName":
        return InvalidUriError(
            f"{where}: {bucket!r} is not a valid bucket name (3-63 lowercase letters, digits, '-')"
        )
    if code in _BUSY or status >= 500:
        return TransferError(
            f"{where}: the service answered {status} {code} on every attempt; try again later "
            "or lower S3DLIO_MAX_IN_FLIGHT"
        )
    message = str(error.get("Message", "")).strip()
    return S3dlioError(f"{where}: {status} {code}" + (f": {message}" if message else ""))


def _botocore_error(exc: bx.BotoCoreError, op: str, uri: str, config: Config | None) -> S3dlioError:
    where = f"{op} {uri}"
    endpoint = (config.endpoint_url if config else None) or "the S3 endpoint"
    if isinstance(exc, bx.SSLError):
        if "certificate verify failed" in str(exc).lower():
            return TransferError(  # the fast engine raises the same
                f"{where}: certificate verify failed for {endpoint}; "
                "trust your CA with AWS_CA_BUNDLE_PATH=/path/ca.pem"
            )
        return TransferError(
            f"{where}: TLS failed with {endpoint} ({exc}); check https:// vs http:// in the endpoint"
        )
    if isinstance(exc, bx.ProfileNotFound):
        return ConfigError(f"{where}: {exc}; set AWS_PROFILE to a profile in ~/.aws/config")
    if isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError | bx.CredentialRetrievalError):
        return ConfigError(
            f"{where}: no usable credentials ({exc}); set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
            "or AWS_PROFILE"
        )
    if isinstance(exc, bx.ConnectTimeoutError):
        seconds = f" after {config.connect_timeout:g} s" if config else ""
        return TransferError(
            f"{where}: timed out{seconds} connecting to {endpoint}; check the endpoint and network "
            "(S3DLIO_CONNECT_TIMEOUT)"
        )
    if isinstance(exc, bx.ReadTimeoutError):
        seconds = f" after {config.idle_timeout:g} s" if config else ""
        return TransferError(
            f"{where}: timed out{seconds} waiting for {endpoint} to send a byte (S3DLIO_READ_TIMEOUT)"
        )
    if isinstance(exc, bx.ConnectionClosedError) or "Connection reset" in str(exc):
        return TransferError(f"{where}: connection reset by the server {endpoint}")
    if isinstance(exc, bx.ResponseStreamingError | bx.IncompleteReadError):
        return TransferError(f"{where}: the connection closed before the whole reply arrived from {endpoint}")
    if isinstance(exc, bx.EndpointConnectionError | bx.ProxyConnectionError):
        error = TransferError(
            f"{where}: could not connect to {endpoint}; check AWS_ENDPOINT_URL and that the server is running"
        )
        error.retried = True  # botocore already retried connecting: do not wait out the time budget
        return error
    if isinstance(exc, bx.ParamValidationError):
        return InvalidUriError(f"{where}: {exc}")
    return TransferError(f"{where}: {exc}")


class S3Store(Store):
    """One S3 bucket through boto3."""

    scheme = "s3"
    engine = "portable"

    def __init__(self, bucket: str, config: Config) -> None:
        super().__init__(bucket, config)
        self.endpoint = config.endpoint_url or f"https://s3.{config.region or 'us-east-1'}.amazonaws.com"
        self._client_obj: Any = None
        self._pid = 0
        self._lock = threading.Lock()
        self._lock_pid = os.getpid()

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def _errors(self, op: str, key: str | None = None) -> Any:
        return map_errors(op, self.uri(key) if key is not None else f"s3://{self.bucket}", self.config)

    @property
    def _client(self) -> Any:
        """This process's boto3 client, built on first use (a forked child builds its own)."""
        pid = os.getpid()
        if self._client_obj is not None and self._pid == pid:
            return self._client_obj
        if self._lock_pid != pid:  # a lock held by a parent thread at fork would never be released
            self._lock, self._lock_pid = threading.Lock(), pid
        with self._lock:
            if self._client_obj is None or self._pid != pid:
                with self._errors("connect"):
                    self._client_obj = _build_client(self.config)
                self._pid = pid
        return self._client_obj

    # -- reads ---------------------------------------------------------------------------
    def get(self, key: str) -> Buffer:
        return self.get_timed(key)[0]

    def get_timed(self, key: str) -> tuple[Buffer, int | None]:
        began = time.monotonic()
        try:
            return self._get_timed(key)
        except TransferError as exc:  # a body cut short or stalled: botocore does not retry those
            return self._again(ResumableRead(self, key, None, None).timed, (), exc, began, "get", key)  # type: ignore[no-any-return]

    def _get_timed(self, key: str) -> tuple[Buffer, int | None]:
        with self._errors("get", key):
            body = self._client.get_object(Bucket=self.bucket, Key=key)["Body"]  # headers are in
            first_byte = time.time_ns()
            return body.read(), first_byte

    def _drain(self, key: str, byte_range: tuple[int, int] | None) -> tuple[int, int | None]:
        return self._drain_streamed(key, byte_range)

    def get_range(self, key: str, start: int, end: int) -> Buffer:
        return self.get_range_etag(key, start, end)[0]

    def get_range_etag(self, key: str, start: int, end: int) -> tuple[Buffer, str | None]:
        check_range(start, end)
        began = time.monotonic()
        try:
            return self._get_range(key, start, end)
        except TransferError as exc:
            return self._again(ResumableRead(self, key, start, end).tagged, (), exc, began, "get_range", key)  # type: ignore[no-any-return]

    def _get_range(self, key: str, start: int, end: int) -> tuple[Buffer, str | None]:
        with self._errors("get_range", key):
            if end <= start:
                self._client.head_object(Bucket=self.bucket, Key=key)  # still NotFoundError if missing
                return b"", None
            try:
                response = self._client.get_object(
                    Bucket=self.bucket, Key=key, Range=f"bytes={start}-{end - 1}"
                )
            except bx.ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "InvalidRange":
                    return b"", None  # start at or past the end, or an empty object
                raise
            first, last = self._reply(key, start, end, response)
            data = response["Body"].read()  # botocore checks it against Content-Length
        check_length(self.uri(key), len(data), first, last)
        return data, response.get("ETag")

    def _reply(self, key: str, start: int | None, end: int | None, response: dict[str, Any]) -> tuple[int, int]:
        """The bytes ``[first, last)`` a GET reply announces, checked against what was asked
        (:func:`check_reply`); a reply that fails is closed unread."""
        try:
            first, last, total = _content_range(response)
            check_reply(self.uri(key), start, end, first, last, total)
        except (TransferError, ValueError) as exc:
            response["Body"].close()
            if isinstance(exc, _Unmeasured):  # the same again on another attempt: not retried
                error = TransferError(f"get {self.uri(key)}: {exc}; s3dlio cannot tell whether it is whole "
                                      f"or resume it: check the endpoint {self.endpoint} or the proxy before it")  # fmt: skip
                error.retried = True
                raise error from None
            if isinstance(exc, ValueError):
                raise TransferError(f"get {self.uri(key)}: unreadable Content-Range {response.get('ContentRange')!r}") from exc
            raise
        return first, last

    def _open_range(
        self, key: str, start: int | None, end: int | None, etag: str | None
    ) -> tuple[str | None, int, int, Iterator[Buffer]]:
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if start is not None:
            args["Range"] = f"bytes={start}-{end - 1}" if end is not None else f"bytes={start}-"
        if etag is not None:
            args["IfMatch"] = etag
        with self._errors("get", key):
            try:
                r = self._client.get_object(**args)
            except bx.ClientError as exc:
                code = exc.response.get("Error", {}).get("Code")
                if code in ("PreconditionFailed", "412"):
                    raise ChangedError(
                        f"get {self.uri(key)}: the object changed while it was being read; reading it again"
                    ) from exc
                if code == "InvalidRange" and start is not None:
                    return None, start, start, iter(())
                raise
        first, last = self._reply(key, start, end, r)
        return r.get("ETag"), first, last, self._chunks(key, r["Body"])

    def _chunks(self, key: str, body: Any) -> Iterator[Buffer]:
        with self._errors("get", key):
            yield from body.iter_chunks(RESUME_CHUNK)

    def sign(self, key: str, method: str = "GET", expires: float = 3600) -> str:
        verb = check_signing(self.uri(key), method, expires, _LONGEST_SIGNATURE)
        action = {"GET": "get_object", "HEAD": "head_object", "PUT": "put_object", "DELETE": "delete_object"}[verb]
        with self._errors("sign", key):  # computed here: no request is sent
            url = self._client.generate_presigned_url(
                action, Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=int(expires)
            )
        return url  # type: ignore[no-any-return]

    def head(self, key: str) -> ObjectMeta:
        began = time.monotonic()
        try:
            return self._head(key)
        except TransferError as exc:
            return self._again(self._head, (key,), exc, began, "head", key)  # type: ignore[no-any-return]

    def _head(self, key: str) -> ObjectMeta:
        with self._errors("head", key):
            r = self._client.head_object(Bucket=self.bucket, Key=key)
        return ObjectMeta(
            key=key,
            size=r["ContentLength"],
            last_modified=r["LastModified"].astimezone(UTC),
            etag=r.get("ETag"),
            content_type=r.get("ContentType"),
            content_language=r.get("ContentLanguage"),
            storage_class=r.get("StorageClass"),
            metadata=dict(r.get("Metadata") or {}),
            version_id=r.get("VersionId"),
            replication_status=r.get("ReplicationStatus"),
            server_side_encryption=r.get("ServerSideEncryption"),
            ssekms_key_id=r.get("SSEKMSKeyId"),
        )

    def list(self, prefix: str, *, delimiter: bool = False) -> Iterator[ObjectMeta | str]:
        args: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        if delimiter:
            args["Delimiter"] = "/"
        tries: Attempts | None = None
        last: str | None = None  # the last key or common prefix yielded
        while True:
            resumed_at = last
            try:
                for item in self._listing(prefix, args, last):
                    last = item if isinstance(item, str) else item.key
                    yield item
                return
            except _CutShort as exc:  # a page with no token: list on after its last key, as
                if last == resumed_at:  # ListObjects (v1) does without NextMarker; stop if no key came
                    exc.retried = True
                    raise
            except TransferError as exc:  # a page cut short: list again after the last key
                if tries is None:
                    tries = Attempts(self.config.max_attempts, self.config.total_timeout, f"list {prefix}")
                tries.failed_with(exc)

    def _listing(self, prefix: str, args: dict[str, Any], after: str | None) -> Iterator[ObjectMeta | str]:
        """The listing from after ``after``; :class:`_CutShort` where a page says more follow
        but gives no token to ask for them (botocore's paginator would just stop there)."""
        if after is not None:
            args = {**args, "StartAfter": after}
        with self._errors("list", prefix):
            pages = iter(self._client.get_paginator("list_objects_v2").paginate(**args))
        while True:
            with self._errors("list", prefix):
                page = next(pages, None)
            if page is None:
                return
            objects = [_list_meta(o) for o in page.get("Contents", ())]
            # After a resumption the common prefix listed last comes again: it was yielded.
            prefixes = [p["Prefix"] for p in page.get("CommonPrefixes", ()) if after is None or p["Prefix"] > after]
            for key in (*(o.key for o in objects), *prefixes):
                if not key.startswith(prefix):
                    raise outside_prefix("list", self.uri(prefix), self.endpoint, key)
            # Both are sorted; S3 returns them apart, so merge them into one key order.
            yield from heapq.merge(
                objects, prefixes, key=lambda item: item if isinstance(item, str) else item.key
            )
            if page.get("IsTruncated") and not page.get("NextContinuationToken"):
                raise _CutShort(f"list {self.uri(prefix)}: the service said more keys follow but sent no "
                                "continuation token")  # fmt: skip

    # -- writes --------------------------------------------------------------------------
    def open_upload(self, key: str, *, part_size: int, content_type: str | None = None) -> Upload:
        from .upload_s3 import S3Upload

        return S3Upload(self, key, part_size, content_type)

    def put(self, key: str, data: Buffer) -> None:
        began = time.monotonic()
        try:
            self._put(key, data)
        except TransferError as exc:
            self._again(self._put, (key, data), exc, began, "put", key)

    def _put(self, key: str, data: Buffer) -> None:
        view = byte_view(data)
        part = max(self.config.part_size, _MIN_PART, -(-len(view) // _MAX_PARTS))
        with self._errors("put", key):
            if len(view) > _MULTIPART_PARTS * part:
                self._put_multipart(key, view, part)
                return
            body = data if type(data) is bytes else BufferReader(view, views=True)
            self._client.put_object(Bucket=self.bucket, Key=key, Body=body)

    def put_new(self, key: str, data: Buffer) -> None:
        with self._errors("put", key):
            try:
                self._client.put_object(Bucket=self.bucket, Key=key, Body=byte_view(data).tobytes(), IfNoneMatch="*")
            except bx.ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                    raise AlreadyExistsError(f"put {self.uri(key)}: already exists") from exc
                raise

    def _put_multipart(self, key: str, view: memoryview, part: int) -> None:
        """Upload slices of ``view`` as parts, several at once; abort the upload on failure."""
        from ..retry import retrying
        from .upload_s3 import abort_upload, complete_upload

        client = self._client
        upload = client.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]

        def send_once(number: int) -> dict[str, Any]:
            chunk = view[(number - 1) * part : number * part]
            with self._errors("upload_part", key):
                r = client.upload_part(
                    Bucket=self.bucket, Key=key, UploadId=upload, PartNumber=number, Body=BufferReader(chunk, views=True)
                )
            done = {"PartNumber": number, "ETag": r["ETag"]}
            done.update({k: v for k, v in r.items() if k.startswith("Checksum") and k != "ChecksumType"})
            return done

        def send(number: int) -> dict[str, Any]:
            return retrying(lambda: send_once(number), attempts=self.config.max_attempts,
                            budget=self.config.total_timeout, what=f"upload_part {self.uri(key)}")  # fmt: skip

        count = -(-len(view) // part)
        workers = max(1, min(count, self.config.max_in_flight, self.config.max_bytes_in_flight // part))
        pool = ThreadPoolExecutor(workers, thread_name_prefix="s3dlio-part")
        try:
            try:
                parts = list(pool.map(send, range(1, count + 1)))
            finally:
                pool.shutdown(cancel_futures=True)  # after a failure, send no more parts
            complete_upload(self, key, upload, parts, size=len(view))
        except BaseException:
            # Cleanup after a failure must not hide the failure.
            with suppress(S3dlioError):
                abort_upload(self, key, upload)
            raise

    def delete(self, key: str) -> None:
        began = time.monotonic()
        try:
            self._delete(key)
        except TransferError as exc:
            self._again(self._delete, (key,), exc, began, "delete", key)

    def _delete(self, key: str) -> None:
        with self._errors("delete", key):
            self._client.delete_object(Bucket=self.bucket, Key=key)

    def delete_many(self, keys: Sequence[str]) -> builtins.list[DeleteFailure]:
        """DeleteObjects in batches of 1000; missing keys count as deleted, as in S3."""
        failures: builtins.list[DeleteFailure] = []
        for first in range(0, len(keys), _DELETE_BATCH):
            batch = keys[first : first + _DELETE_BATCH]
            began = time.monotonic()
            try:
                failures += self._delete_batch(batch)
            except TransferError as exc:  # deleting is idempotent: the batch may be sent again
                failures += self._again(self._delete_batch, (batch,), exc, began, "delete_many", batch[0])
        return failures

    def _delete_batch(self, batch: Sequence[str]) -> builtins.list[DeleteFailure]:
        """One DeleteObjects, not quiet: every key must come back Deleted or with an Error. A
        reply that names none (HTML from a proxy, an empty result) proves nothing deleted;
        a key it leaves out is reported as failed, never taken as deleted."""
        with self._errors("delete_many", batch[0]):
            r = self._client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": False}
            )
        failures: builtins.list[DeleteFailure] = []
        for err in r.get("Errors", ()):
            fake = bx.ClientError({"Error": {"Code": err.get("Code"), "Message": err.get("Message")}}, "DeleteObjects")
            failures.append(DeleteFailure(err["Key"], _client_error(fake, "delete", self.uri(err["Key"]))))
        answered = {d.get("Key") for d in r.get("Deleted", ())} | {f.key for f in failures}
        missing = [key for key in batch if key not in answered]
        if len(missing) == len(batch):
            raise TransferError(
                f"delete_many {self.uri(batch[0])}: the reply to DeleteObjects ({len(batch)} keys) from "
                f"{self.endpoint} names none of them as deleted or failed; it is not a DeleteResult"
            )
        return failures + [
            DeleteFailure(key, TransferError(
                f"delete {self.uri(key)}: the reply to DeleteObjects from {self.endpoint} does not say "
                "whether it was deleted; delete it again"
            )) for key in missing
        ]  # fmt: skip

    # -- buckets -------------------------------------------------------------------------
    def create_bucket(self) -> None:
        """Create the bucket; AlreadyExistsError if it exists (us-east-1 answers 200 to a repeat)."""
        with self._errors("create_bucket"):
            try:
                self._client.head_bucket(Bucket=self.bucket)
            except bx.ClientError as exc:
                if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") not in (403, 404):
                    raise
            else:
                raise AlreadyExistsError(f"create_bucket s3://{self.bucket}: already exists")
            args: dict[str, Any] = {"Bucket": self.bucket}
            region = self._client.meta.region_name
            if region and region != "us-east-1":
                args["CreateBucketConfiguration"] = {"LocationConstraint": region}
            self._client.create_bucket(**args)

    def delete_bucket(self) -> None:
        with self._errors("delete_bucket"):
            self._client.delete_bucket(Bucket=self.bucket)

    def list_buckets(self) -> builtins.list[str]:
        with self._errors("list_buckets"):
            client = self._client
            if client.can_paginate("list_buckets"):
                pages = client.get_paginator("list_buckets").paginate()
                return [b["Name"] for page in pages for b in page.get("Buckets", ())]
            return [b["Name"] for b in client.list_buckets().get("Buckets", ())]

    def close(self) -> None:
        client, self._client_obj = self._client_obj, None
        if client is not None and self._pid == os.getpid():
            client.close()

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle settings, not connections: the unpickled store builds its own client."""
        return (type(self), (self.bucket, self.config))


def aws_session(config: Config) -> boto3.session.Session:
    """The boto3 session whose credentials sign ``config``'s requests on both engines: the keys
    or the profile, whichever :meth:`Config.aws_credentials` ranks first, else boto3's chain. A
    named profile must exist even where keys win (as in botocore): else a ConfigError naming
    it and the files looked in, never a fallback to other keys."""
    keys: dict[str, Any] = {}
    if config.aws_credentials() == "keys":
        keys = {"aws_access_key_id": config.access_key_id, "aws_secret_access_key": config.secret_access_key,
                "aws_session_token": config.session_token}  # fmt: skip
    try:  # a profile_name given to boto3 turns its env provider off: the profile's own keys sign
        return boto3.session.Session(profile_name=config.profile, **keys)
    except bx.ProfileNotFound:
        name = "profile" if config.is_explicit("profile") else "AWS_PROFILE"
        files = " and ".join(
            f"{os.path.expanduser(os.environ.get(var) or default)} ({var})"
            for var, default in (("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials"),
                                 ("AWS_CONFIG_FILE", "~/.aws/config"))
        )  # fmt: skip
        raise ConfigError(
            f"{name}={config.profile!r}: no such AWS profile in {files}; name a profile that exists there"
        ) from None


def _build_client(config: Config) -> Any:
    """A boto3 S3 client from settings: the keys or profile :func:`aws_session` picks, else boto3's chain."""
    session = boto3.session.Session() if config.unsigned else aws_session(config)
    options = botocore.config.Config(
        s3={
            **({"addressing_style": "path"} if config.endpoint_url else {}),
            **({"payload_signing_enabled": True} if config.sign_payload else {}),
        },
        connect_timeout=config.connect_timeout,
        read_timeout=config.idle_timeout,
        retries={"total_max_attempts": config.engine_attempts, "mode": "standard"},
        max_pool_connections=config.max_in_flight,
        # SigV4, which requests use anyway; said outright so presigned URLs use it too (not SigV2)
        signature_version=botocore.UNSIGNED if config.unsigned else "s3v4",
    )
    client = session.client(
        "s3",
        endpoint_url=config.endpoint_url,
        region_name=config.region or session.region_name or "us-east-1",
        config=options,
        verify=config.ca_bundle,
    )
    _no_retry_on_timeout(client, config.engine_attempts)
    if config.endpoint_url:
        client.meta.events.register("before-call.s3", _no_region_redirect)
    return client


def _no_region_redirect(context: dict[str, Any], **kwargs: Any) -> None:
    """Mark each request as redirected already, so that botocore's S3 region redirector leaves
    it alone: behind a custom endpoint a redirect names no region, and the redirector's
    lookup (HeadBucket, redirected too) recursed until RecursionError. A redirect is then an error."""
    context.setdefault("s3_redirect", {})["redirected"] = True


def _no_retry_on_timeout(client: Any, max_attempts: int) -> None:
    """botocore retries a timed-out request up to ``max_attempts`` times with no time limit, so
    a silent server would hold one call ``max_attempts x read_timeout``. Its retry handler is
    wrapped to leave timeouts to s3dlio's layer (retry.py), which stops at ``total_timeout``;
    throttling, 5xx and resets are still retried here. Kept as is if botocore changes shape."""
    from botocore.retries import standard

    event, unique_id = "needs-retry.s3", "retry-config-s3"
    try:
        client.meta.events.unregister(event, unique_id=unique_id)
        handler = standard.register_retry_handler(client, max_attempts=max_attempts)
        client.meta.events.unregister(event, unique_id=unique_id)
    except (AttributeError, TypeError):  # pragma: no cover - another botocore
        return

    def needs_retry(caught_exception: BaseException | None = None, **kwargs: Any) -> Any:
        if isinstance(caught_exception, bx.ReadTimeoutError | bx.ConnectTimeoutError):
            return None
        return handler.needs_retry(caught_exception=caught_exception, **kwargs)

    client.meta.events.register(event, needs_retry, unique_id=unique_id)


def _content_range(response: dict[str, Any]) -> tuple[int, int, int | None]:
    """``(first, last, total)`` of a GET reply: its Content-Range ``bytes FIRST-LAST/TOTAL``
    (total None for ``*``), or for a 200 the whole object, Content-Length bytes."""
    content_range = response.get("ContentRange")
    if not content_range:
        if response.get("ContentLength") is None:  # a chunked reply: no length to check or resume by
            raise _Unmeasured("the reply has neither Content-Length nor Content-Range (chunked)")
        size = int(response["ContentLength"])
        return 0, size, size
    span, _, total = content_range.partition(" ")[2].partition("/")
    first, _, last = span.partition("-")
    return int(first), int(last) + 1, None if total.strip() in ("", "*") else int(total)


class _Unmeasured(ValueError):
    """A GET reply that says neither its length nor its range (:func:`_content_range`)."""


class _CutShort(TransferError):
    """A listing page marked truncated without a continuation token (:meth:`S3Store._listing`)."""


def _list_meta(item: dict[str, Any]) -> ObjectMeta:
    return ObjectMeta(
        key=item["Key"],
        size=item["Size"],
        last_modified=item["LastModified"].astimezone(UTC),
        etag=item.get("ETag"),
        storage_class=item.get("StorageClass"),
    )
