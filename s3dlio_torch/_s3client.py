"""s3torchconnector's ``S3Client``: object operations by bucket and key, run by s3dlio.

>>> from s3dlio_torch._s3client import S3Client                          # doctest: +SKIP
>>> client = S3Client("us-east-1")
>>> with client.put_object("bucket", "a/b.bin") as writer:
...     writer.write(data)
>>> client.get_object("bucket", "a/b.bin").read()

Each method is one s3dlio operation on ``s3://{bucket}/{key}`` with this client's settings
(``region``/``endpoint``/``s3client_config`` applied over the process-wide ones, which stay as
they are). Results have s3torchconnector's shapes: readers with ``bucket`` and ``key``, a
writer whose object appears on ``close``, ``HeadObjectResult``, and pages of ``ObjectInfo``.
Errors are s3dlio's; ``S3Exception`` is their base class (``NotFoundError`` for a missing
object is also a ``FileNotFoundError``).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from s3dlio import __version__
from s3dlio.client import Client
from s3dlio.config import Config
from s3dlio.errors import ArgumentTypeError, ConfigError, InvalidArgumentError, S3dlioError
from s3dlio.large import ObjectWriter, open_reader, open_writer
from s3dlio.ops import Entry, get, list_entries, resolve, stat

from ._compat import ReaderConstructor, S3ClientConfig, client_config
from ._compat import reader_constructor as checked_reader_constructor
from .reader import RangedS3Reader, S3Reader, SequentialS3Reader

if TYPE_CHECKING:
    from s3dlio.store import ObjectMeta

__all__ = [
    "HeadObjectResult",
    "ListObjectResult",
    "ListObjectStream",
    "ObjectInfo",
    "S3Client",
    "S3ClientConfig",
    "S3Exception",
    "S3Writer",
]

#: s3torchconnector's name for what ``put_object`` (and ``S3Checkpoint.writer``) return.
S3Writer = ObjectWriter
#: s3torchconnector's name for the base of the errors it raises: s3dlio's base error here.
S3Exception = S3dlioError


@dataclass(frozen=True, slots=True)
class HeadObjectResult:
    """``head_object``'s answer; ``last_modified`` in Unix seconds, as s3torchconnector's."""

    etag: str
    size: int
    last_modified: int
    storage_class: str | None = None
    restore_status: None = None  # s3dlio does not report Glacier restores


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """One listed object, as s3torchconnector's ``ObjectInfo``."""

    key: str
    etag: str
    size: int
    last_modified: int
    storage_class: str | None = None
    restore_status: None = None


@dataclass(frozen=True, slots=True)
class ListObjectResult:
    """One page of a listing: objects and common prefixes, ``max_keys`` of them together."""

    object_info: list[ObjectInfo] = field(default_factory=list)
    common_prefixes: list[str] = field(default_factory=list)


def _described(meta: ObjectMeta) -> dict[str, Any]:
    """The fields heads and listings share; what the backend does not report is "" or 0."""
    seconds = 0 if meta.last_modified is None else int(meta.last_modified.timestamp())
    return {"etag": meta.etag or "", "size": meta.size, "last_modified": seconds,
            "storage_class": meta.storage_class}  # fmt: skip


class ListObjectStream:
    """The pages of one listing, each fetched when iteration reaches it (one pass, as upstream's)."""

    def __init__(
        self, bucket: str, prefix: str, delimiter: str, max_keys: int, entries: Iterator[Entry]
    ) -> None:
        self.bucket, self.prefix, self.delimiter, self.max_keys = bucket, prefix, delimiter, max_keys
        self._pages = _pages(entries, max_keys, f"s3://{bucket}/")

    def __iter__(self) -> ListObjectStream:
        return self

    def __next__(self) -> ListObjectResult:
        return next(self._pages)


def _pages(entries: Iterator[Entry], max_keys: int, root: str) -> Iterator[ListObjectResult]:
    page = ListObjectResult()
    for entry in entries:
        if len(page.object_info) + len(page.common_prefixes) == max_keys:
            yield page
            page = ListObjectResult()
        if entry.meta is None:
            page.common_prefixes.append(entry.uri.removeprefix(root))
        else:
            page.object_info.append(ObjectInfo(entry.meta.key, **_described(entry.meta)))
    yield page  # the last one; an empty listing is one empty page, as S3 answers it


def _bucket(where: str, name: str, bucket: object) -> str:
    if not isinstance(bucket, str):
        raise ArgumentTypeError(f"{where}: {name} must be a str, got {type(bucket).__name__}")
    if not bucket or "/" in bucket:
        raise InvalidArgumentError(f"{where}: {name}={bucket!r}: give a bucket name (not empty, no '/')")
    return bucket


def _object_uri(where: str, bucket: object, key: object, side: str = "") -> str:
    """``s3://{bucket}/{key}``, or an error naming the argument (``src_key`` with ``side="src_"``)."""
    _bucket(where, f"{side}bucket", bucket)
    if not isinstance(key, str):
        raise ArgumentTypeError(f"{where}: {side}key must be a str, got {type(key).__name__}")
    if not key or key.endswith("/"):
        raise InvalidArgumentError(
            f"{where}: {side}key={key!r}: name an object (not empty, not ending in '/', which s3dlio "
            "reads as a prefix)"
        )
    return f"s3://{bucket}/{key}"


class S3Client:
    """s3torchconnector's ``S3Client(region, *, endpoint=None, user_agent=None, s3client_config=None)``.

    ``region``, ``endpoint`` and ``s3client_config`` apply to this client's requests only;
    ``config`` replaces the process-wide settings as their base; ``client`` (an
    :class:`s3dlio.Client`) gives all the settings instead (as for ``S3Checkpoint``).
    ``user_agent`` is accepted and not sent (s3dlio's engines send their own); its prefix is
    ``user_agent_prefix``. Holds settings only, so it is cheap, thread-safe, and pickles
    (connections are opened per process on first use).
    """

    def __init__(
        self,
        region: str | None = None,
        *,
        endpoint: str | None = None,
        user_agent: Any = None,
        s3client_config: S3ClientConfig | None = None,
        client: Client | None = None,
        config: Config | None = None,
    ) -> None:
        self.config = client_config(region, endpoint, s3client_config, config, client, "S3Client")
        self._user_agent_prefix = str(getattr(user_agent, "prefix", user_agent) or f"s3dlio/{__version__}")
        self._s3client_config = s3client_config or S3ClientConfig(
            part_size=self.config.part_size, max_attempts=self.config.max_attempts
        )

    @property
    def region(self) -> str | None:
        """The region requests are signed for (the process-wide one unless given)."""
        return self.config.region

    @property
    def user_agent_prefix(self) -> str:
        """s3torchconnector's attribute: the given ``user_agent``'s prefix, else ``s3dlio/<version>``.
        Informational: requests carry the engines' own User-Agent."""
        return self._user_agent_prefix

    @property
    def s3client_config(self) -> S3ClientConfig:
        """The ``S3ClientConfig`` given, or one holding the part size and attempts in effect."""
        return self._s3client_config

    def get_object(
        self,
        bucket: str,
        key: str,
        *,
        object_info: Any = None,
        reader_constructor: ReaderConstructor | None = None,
    ) -> S3Reader:
        """A seekable reader (``read``, ``readinto``, ``seek``, ``tell``, ``bucket``, ``key``).

        ``S3ReaderConstructor.sequential()`` (the default): the object is fetched whole now, by
        parallel ranges when large, so a missing one raises here. ``range_based(buffer_size)``:
        nothing is fetched until a read, then ranged GETs in ``buffer_size`` blocks (4 KiB at
        least; reads of two blocks or more go straight into the caller's buffer); one HEAD
        gives the size. ``object_info`` is accepted and unused: the readers learn the size themselves.
        """
        uri = _object_uri("S3Client.get_object", bucket, key)
        constructor = checked_reader_constructor(reader_constructor)
        if constructor.kind == "range_based":
            return RangedS3Reader(uri, self.config, constructor.buffer_size)
        if constructor.kind != "sequential":  # dcp_optimized: it needs a DCP load plan's ranges
            raise ConfigError(
                f"S3Client.get_object: S3ReaderConstructor.{constructor.kind}() is for dcp.S3StorageReader; "
                "use S3ReaderConstructor.sequential() or .range_based()"
            )
        return SequentialS3Reader(uri, get(uri, config=self.config))

    def put_object(self, bucket: str, key: str, storage_class: str | None = None) -> ObjectWriter:
        """A write-only stream (``write``, ``flush``, ``tell``, ``close``, ``with``).

        Parts go up while it is written; the object appears on ``close`` and not before. An
        exception inside ``with``, or ``abort()``, discards it. ``storage_class`` None or
        ``"STANDARD"`` (the default class, what s3dlio writes); any other is refused.
        """
        uri = _object_uri("S3Client.put_object", bucket, key)
        if storage_class not in (None, "STANDARD"):
            raise ConfigError(
                f"S3Client.put_object(storage_class={storage_class!r}): s3dlio cannot set a storage class; "
                "pass None or 'STANDARD' (the default class) and move objects with a lifecycle rule"
            )
        return open_writer(uri, config=self.config)

    def head_object(self, bucket: str, key: str) -> HeadObjectResult:
        """Size, ETag (quoted, as S3 sends it), modification time and storage class of one object."""
        return HeadObjectResult(
            **_described(stat(_object_uri("S3Client.head_object", bucket, key), config=self.config))
        )

    def delete_object(self, bucket: str, key: str) -> None:
        """Delete one object; deleting a missing one is not an error, as on S3."""
        parsed, store = resolve(_object_uri("S3Client.delete_object", bucket, key), self.config)
        store.delete(parsed.key)  # exactly this key: s3dlio.delete would list to match prefixes

    def copy_object(self, src_bucket: str, src_key: str, dst_bucket: str, dst_key: str) -> None:
        """Copy one object. The bytes stream through this process in parts (s3dlio has no
        server-side copy), so memory stays bounded and any size works; NotFoundError if absent."""
        where = "S3Client.copy_object"
        src = _object_uri(where, src_bucket, src_key, "src_")
        dst = _object_uri(where, dst_bucket, dst_key, "dst_")
        with open_reader(src, config=self.config) as reader, open_writer(dst, config=self.config) as writer:
            shutil.copyfileobj(reader, writer, self.config.part_size)

    def list_objects(
        self, bucket: str, prefix: str = "", delimiter: str = "", max_keys: int = 1000
    ) -> ListObjectStream:
        """Pages (``.object_info``, ``.common_prefixes``) of the keys starting with ``prefix``.

        ``delimiter="/"`` folds keys below the next ``/`` into common prefixes; no other
        delimiter is supported (ConfigError). Each page holds at most ``max_keys`` entries;
        pages are listed as iteration reaches them, so memory stays flat.
        """
        where = "S3Client.list_objects"
        _bucket(where, "bucket", bucket)
        if not isinstance(prefix, str):
            raise ArgumentTypeError(f"{where}: prefix must be a str, got {type(prefix).__name__}")
        if delimiter not in ("", "/"):
            raise ConfigError(
                f"{where}: delimiter={delimiter!r}: s3dlio groups keys by '/' only; pass '' or '/'"
            )
        if isinstance(max_keys, bool) or not isinstance(max_keys, int) or max_keys < 1:
            raise InvalidArgumentError(f"{where}: max_keys must be an int >= 1, got {max_keys!r}")
        # With a pattern, the prefix goes to the server as it is: a last part that looks like a
        # regex (``a+b``) is not read as one. The pattern itself keeps everything listed.
        entries = list_entries(f"s3://{bucket}/{prefix}", recursive=not delimiter, pattern="(?s).*",
                               config=self.config)  # fmt: skip
        return ListObjectStream(bucket, prefix, delimiter, max_keys, entries)

    def __repr__(self) -> str:
        return f"S3Client(region={self.region!r}, endpoint={self.config.endpoint_url!r})"
