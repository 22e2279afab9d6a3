"""The fast engine's errors: obstore's exceptions (and the OS errors of its local store) turned
into s3dlio's at one edge, by type first and by message text only where obstore has no type,
with one-line messages that name what happened; obstore's own error stays the ``__cause__``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from obstore import exceptions as obx

from .._redact import redact, redact_url
from ..config import Config
from ..errors import (
    UNSIGNED_DENIED,
    AlreadyExistsError,
    InvalidUriError,
    NotFoundError,
    PermissionDeniedError,
    S3dlioError,
    TransferError,
)

__all__ = ["FIX_ENGINE", "bucket_missing", "map_errors", "range_past_end", "short"]

FIX_ENGINE = "use the portable engine for it (S3DLIO_ENGINE=portable)"


@contextmanager
def map_errors(
    op: str, target: str, *, endpoint: str | None = None, hint: str = "", config: Config | None = None
) -> Iterator[None]:
    """Turn obstore and OS errors raised inside the block into s3dlio's, once, at the edge.

    ``target`` is the URI the operation was about; ``hint`` is appended to credential errors;
    ``config`` gives the timeouts a timed-out request names. The message is one line; the
    obstore error (with its debug dump) stays chained as ``__cause__``.
    """
    try:
        yield
    except S3dlioError:
        raise
    except Exception as exc:
        raise _translate(op, target, exc, endpoint, hint, config) from exc


_STATUS = re.compile(r"status(?: code)?: (\d{3})")
_CODE = re.compile(r"<Code>([^<]{1,100})</Code>")
_OS_ERROR = re.compile(r"\(os error (\d+)\)")
_BUCKET_MISSING = ("NoSuchBucket", "ContainerNotFound", "container does not exist", "bucket does not exist")


def _translate(
    op: str, target: str, exc: Exception, endpoint: str | None, hint: str, config: Config | None = None
) -> S3dlioError:
    text = str(exc)
    status = int(m.group(1)) if (m := _STATUS.search(text)) else None
    code = m.group(1) if (m := _CODE.search(text)) else None
    os_errno = int(m.group(1)) if (m := _OS_ERROR.search(text)) else None
    why = f" ({code})" if code else ""
    where = f" {redact_url(endpoint)}" if endpoint else " the endpoint"
    if isinstance(exc, ValueError | obx.InvalidPathError):
        return InvalidUriError(
            f"{op} {target}: the fast engine (obstore) cannot address this key; {FIX_ENGINE}"
        )
    if bucket_missing(text):
        bucket = target.split("://", 1)[-1].split("/", 1)[0]
        return NotFoundError(
            f"{op} {target}: bucket/container '{bucket}' does not exist; create it first or check the name"
        )
    if os_errno in (20, 21) or isinstance(exc, NotADirectoryError | IsADirectoryError):
        cls = AlreadyExistsError if op == "put" else NotFoundError
        return cls(f"{op} {target}: a file or directory is in the way ({short(text)})")
    if isinstance(exc, FileNotFoundError | obx.NotFoundError) or status == 404 or os_errno == 2:
        return NotFoundError(f"{op} {target}: not found")
    if "169.254.169.254" in text or (status is None and "credential" in text.lower()):
        return PermissionDeniedError(
            f"{op} {target}: could not obtain credentials; set AWS_ACCESS_KEY_ID and "
            f"AWS_SECRET_ACCESS_KEY, or AWS_PROFILE ({short(text)})"
        )
    if (
        isinstance(exc, PermissionError | obx.PermissionDeniedError | obx.UnauthenticatedError)
        or status in (401, 403)
        or os_errno in (1, 13)
    ):
        fix = (
            UNSIGNED_DENIED
            if config is not None and config.unsigned
            else f"check the credentials and their permissions{hint}"
        )
        return PermissionDeniedError(f"{op} {target}: access denied{why}; {fix}")
    if isinstance(exc, FileExistsError | obx.AlreadyExistsError) or os_errno == 17:
        return AlreadyExistsError(f"{op} {target}: already exists")
    if isinstance(exc, obx.PreconditionError) or status == 412:
        return TransferError(f"{op} {target}: the object changed while it was being read; read it again")
    if "InvalidCertificate" in text or "certificate verify failed" in text:
        error = TransferError(f"{op} {target}: TLS certificate verification failed for{where}; {_tls_fix(text, config)}")
        error.retried = True  # the same certificate fails every attempt: say so at once
        return error
    if status is None and ("ConnectionReset" in text or "Connection reset" in text or "BrokenPipe" in text):
        return TransferError(f"{op} {target}: connection reset by the server{where}")
    if isinstance(exc, TimeoutError) or "timed out" in text or "kind: Timeout" in text or "TimedOut" in text:
        return TransferError(f"{op} {target}: {_timed_out(text, where, config)}")
    if status is None and ("IncompleteBody" in text or "UnexpectedEof" in text or "body error" in text):
        return TransferError(f"{op} {target}: the connection closed before the whole reply arrived from{where}")
    if status is None and ("error sending request" in text or "kind: Connect" in text or "dns error" in text):
        error = TransferError(
            f"{op} {target}: cannot reach{where}; check the endpoint (AWS_ENDPOINT_URL / AZURE_STORAGE_ENDPOINT) "
            "and that the server is running"
        )
        # obstore already retried connecting: do not make a refused connection wait out the budget
        error.retried = "refused" in text.lower() or "dns error" in text
        return error
    if status is not None:
        return TransferError(f"{op} {target}: the service answered HTTP {status}{why}")
    if os_errno == 28:
        full = TransferError(f"{op} {target}: no space left on device")
        full.retried = True  # not worth a retry: raise at once
        return full
    return TransferError(f"{op} {target}: {short(text)}")


def _tls_fix(text: str, config: Config | None) -> str:
    """What to do about a certificate the fast engine (rustls) refused."""
    if "CaUsedAsEndEntity" in text:  # openssl req -x509 and MinIO's certgen make such certificates
        return (
            "the server presents a CA certificate as its own (a self-signed certificate with CA:TRUE), which "
            "the fast engine's TLS refuses even when AWS_CA_BUNDLE_PATH names it: give the server a certificate "
            "issued by that CA (CA:FALSE), or use the portable engine (S3DLIO_ENGINE=portable)"
        )
    if config is not None and config.ca_bundle:
        return f"the CA bundle {config.ca_bundle} (AWS_CA_BUNDLE_PATH) does not vouch for the server's certificate"
    return "if it uses a private CA, set AWS_CA_BUNDLE_PATH to that CA's PEM bundle"


def _timed_out(text: str, where: str, config: Config | None) -> str:
    """Which limit a timed-out request hit, with its value and setting."""
    connect = config.connect_timeout if config else None
    idle = config.idle_timeout if config else None
    if "kind: Connect" in text or "ConnectTimeout" in text:
        return f"timed out after {_secs(connect)} connecting to{where} (S3DLIO_CONNECT_TIMEOUT)"
    if "kind: Body" in text:
        return (f"timed out after {_secs(idle)} with no byte from{where} in the middle of the reply "
                "(S3DLIO_READ_TIMEOUT)")  # fmt: skip
    return f"timed out after {_secs(idle)} waiting for{where} to answer (S3DLIO_READ_TIMEOUT, S3DLIO_REQUEST_TIMEOUT)"


def _secs(value: float | None) -> str:
    return "the configured time" if value is None else f"{value:g} s"


def bucket_missing(text: str) -> bool:
    return any(marker in text for marker in _BUCKET_MISSING)


def short(text: str) -> str:
    """First line of an obstore message, without bodies, and with its secrets (signed queries,
    userinfo, ...) masked."""
    line = redact(text.split("\n", 1)[0].split(": <?xml", 1)[0])
    return line if len(line) <= 200 else line[:197] + "..."


def range_past_end(text: str) -> bool:
    # "bytes 0--1/0": Azurite's Content-Range for a range of an empty blob, which obstore rejects.
    return "StartTooLarge" in text or "InvalidRange" in text or "status code: 416" in text or "--1/0" in text


# -- the store -------------------------------------------------------------------------------
