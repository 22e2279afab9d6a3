"""Parse and format the URIs every s3dlio call takes.

Supported forms::

    s3://bucket/key
    az://container/key                       account from the settings (AZURE_STORAGE_ACCOUNT_NAME)
    https://ACCOUNT.blob.core.windows.net/container/key
    file:///abs/path   or a plain path       (relative paths resolve against the cwd)
    direct:///abs/path                       O_DIRECT file I/O
    mem://name/key                           in-process store, for tests and demos

Keys are taken literally: no percent-decoding, so spaces, ``+`` and ``%`` round-trip.

A URI carries no credentials: ``s3://KEY:SECRET@bucket/...`` and an ``http(s)://`` URL with a
query (an Azure "Blob SAS URL", a presigned URL) are refused with an error that shows neither
the userinfo nor the query and names the settings that take them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from typing import Literal, cast

from ._redact import MASK
from .errors import InvalidUriError

__all__ = ["Scheme", "ObjectUri", "parse", "join"]

Scheme = Literal["s3", "az", "gs", "file", "direct", "mem"]

_SCHEMES: tuple[str, ...] = ("s3", "az", "file", "direct", "mem")
_AZURE_HTTPS = re.compile(r"^https://([a-z0-9]+)\.blob\.core\.windows\.net/(.*)$")
_S3_BUCKET = re.compile(r"^[A-Za-z0-9._-]{1,255}$")
_URL = re.compile(r"(?i)^https?://")
_AZ_CONTAINER = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}$")


@dataclass(frozen=True, slots=True)
class ObjectUri:
    """A parsed URI: which store (scheme, bucket, account) and which key inside it.

    For ``file`` and ``direct`` the store is the filesystem root and ``key`` is the absolute
    path without its leading ``/``.
    """

    scheme: Scheme
    bucket: str
    key: str
    account: str | None = None

    @property
    def store_uri(self) -> str:
        """The URI of the store alone (no key), e.g. ``s3://bucket``."""
        if self.scheme in ("file", "direct"):
            return f"{self.scheme}://"
        return f"{self.scheme}://{self.bucket}"

    @property
    def is_prefix(self) -> bool:
        """True when the URI names a directory-like prefix (empty key or trailing ``/``)."""
        return self.key == "" or self.key.endswith("/")

    @property
    def name(self) -> str:
        """The last path part of the key."""
        return self.key.rstrip("/").rsplit("/", 1)[-1]

    def with_key(self, key: str) -> ObjectUri:
        """The same store with another key."""
        return replace(self, key=key)

    def __str__(self) -> str:
        if self.scheme in ("file", "direct"):
            return f"{self.scheme}:///{self.key}"
        return f"{self.scheme}://{self.bucket}/{self.key}"


def parse(uri: str | ObjectUri) -> ObjectUri:
    """Parse ``uri`` or raise :class:`InvalidUriError` saying what is wrong and how to write it."""
    if isinstance(uri, ObjectUri):
        return uri
    if not isinstance(uri, str):
        raise InvalidUriError(f"expected a URI string, got {type(uri).__name__}: {uri!r}")
    if not uri:
        raise InvalidUriError("empty URI; write s3://bucket/key, az://container/key, file:///path, ...")
    if _URL.match(uri):
        if "?" in uri:
            raise InvalidUriError(
                f"{uri.split('?', 1)[0] + '?' + MASK!r}: a URL's query is not part of the object's name, "
                "and s3dlio takes no SAS or signature in a URI; pass the URL without its query, and set "
                "AZURE_STORAGE_CONNECTION_STRING='BlobEndpoint=https://ACCOUNT.blob.core.windows.net;"
                f"SharedAccessSignature={MASK}' with the SAS (the query) in place of {MASK}"
            )
        authority = uri.split("://", 1)[1].split("/", 1)[0]
        _refuse_userinfo(authority, uri, "https://ACCOUNT.blob.core.windows.net/container/key", port=True)
    match = _AZURE_HTTPS.match(uri)
    if match:
        return _bucketed("az", match.group(2), uri, account=match.group(1))
    if "://" not in uri:
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:/", uri):
            scheme = uri.split(":", 1)[0]
            raise InvalidUriError(
                f"{uri!r}: one slash after '{scheme}:'; write {scheme}://{uri.split(':/', 1)[1].lstrip('/')}"
            )
        return _path("file", os.path.abspath(uri) + ("/" if uri.endswith("/") else ""), uri)
    scheme, rest = uri.split("://", 1)
    scheme = scheme.lower()
    if scheme in ("file", "direct"):
        if not rest.startswith("/"):
            raise InvalidUriError(
                f"{uri!r}: {scheme}:// needs an absolute path; write {scheme}:///abs/path (three slashes)"
            )
        return _path(cast(Scheme, scheme), rest, uri)
    if scheme in ("s3", "az", "mem"):
        return _bucketed(cast(Scheme, scheme), rest, uri, account=None)  # az://: the store's settings name it
    if scheme == "gs":
        raise InvalidUriError(
            f"{uri!r}: gs:// is not supported yet; use an S3-compatible endpoint "
            "(GCS interoperability: s3:// with AWS_ENDPOINT_URL=https://storage.googleapis.com)"
        )
    raise InvalidUriError(f"{uri!r}: unknown scheme '{scheme}://'; use one of {', '.join(_SCHEMES)}")


def _path(scheme: Scheme, path: str, original: str) -> ObjectUri:
    trailing = path.endswith("/") and path != "/"
    norm = os.path.normpath(path)
    if norm.startswith("//"):
        norm = "/" + norm.lstrip("/")
    key = norm.lstrip("/")
    if trailing and key:
        key += "/"
    return ObjectUri(scheme, "", key)


def _refuse_userinfo(authority: str, original: str, fix: str, *, port: bool = False) -> None:
    """Refuse ``user:password@`` (or ``token@``) before the host: a bucket, a container or a
    host holds neither ``@`` nor ``:`` (but a URL's host may be followed by ``:PORT``)."""
    _, colon, after = authority.rpartition(":")
    if "@" in authority or (colon and not (port and (after.isdigit() or after.endswith("]")))):
        raise InvalidUriError(
            f"{original!r}: a URI cannot carry credentials (user:password@); write {fix} and set them "
            "in the environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AZURE_STORAGE_ACCOUNT_KEY "
            "or AZURE_STORAGE_CONNECTION_STRING) or pass them to s3dlio.Client"
        )


def _bucketed(scheme: Scheme, rest: str, original: str, *, account: str | None) -> ObjectUri:
    bucket, _, key = rest.partition("/")
    _refuse_userinfo(bucket, original, f"{scheme}://{'container' if scheme == 'az' else 'bucket'}/key")
    if not bucket:
        what = "container" if scheme == "az" else "bucket" if scheme == "s3" else "store name"
        raise InvalidUriError(f"{original!r}: the {what} is empty; write {scheme}://{what.split()[0]}/key")
    if scheme == "s3" and not _S3_BUCKET.match(bucket):
        raise InvalidUriError(
            f"{original!r}: {bucket!r} is not a valid S3 bucket name (letters, digits, '.', '-', '_')"
        )
    if scheme == "az" and not _AZ_CONTAINER.match(bucket):
        raise InvalidUriError(
            f"{original!r}: {bucket!r} is not a valid Azure container name "
            "(3-63 characters: lowercase letters, digits, single '-')"
        )
    return ObjectUri(scheme, bucket, key, account)


def join(base: str | ObjectUri, *parts: str) -> ObjectUri:
    """Append path parts to ``base`` with exactly one ``/`` between them."""
    uri = parse(base)
    key = uri.key
    for part in parts:
        if not part:
            continue
        key = (key.rstrip("/") + "/" + part.lstrip("/")) if key else part.lstrip("/")
    return uri.with_key(key)
