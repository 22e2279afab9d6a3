"""An fsspec filesystem on s3dlio: pandas, pyarrow, zarr, etils.epath and Orbax read through it.

>>> import fsspec, s3dlio.fsspec                                    # doctest: +SKIP
>>> s3dlio.fsspec.register()                 # s3://, az://, mem://, direct:// -> s3dlio
>>> with fsspec.open("s3://bucket/table.csv", "rb") as f:            # doctest: +SKIP
...     head = f.read(100)

Paths follow fsspec's convention: without the scheme (``bucket/key``; ``/abs/path`` for files).
Object stores have no directories: a "directory" is a prefix with objects under it, and
``mkdir`` writes a folder marker (``dir/``) so that one made empty exists, as Orbax and
Lightning expect; ``file://`` and ``direct://`` make real ones. Files open ``rb`` (a seekable reader fetching blocks by range,
with read-ahead; a read after a seek, such as pyarrow's of a Parquet footer or column chunk,
fetches exactly its bytes), ``wb`` (a streaming writer: the object appears on ``close``, an
exception inside ``with`` leaves nothing, in text and compressed modes and through
``fsspec.open`` too), ``xb`` (the same, made only where no object is: one conditional request)
or ``ab`` (as s3fs: the object is streamed into a new upload, then appended to; it replaces
the object only if no other writer did meanwhile, see :class:`_AppendUpload`).
``cat_ranges`` and ``cat`` of many paths fetch concurrently within the client's limits.
Nothing is cached between calls, so a listing always shows what the store holds; instances
are, as s3fs's (one per options and thread: ``fs.transaction`` then covers pandas' writes).
The framework packages register these classes when imported (:mod:`s3dlio.fsspec_registry`);
fsspec's own abstract suite runs against them in the tests.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import importlib.util
import io
import itertools
import os
import shutil
import sys
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextvars import ContextVar
from glob import has_magic
from typing import TYPE_CHECKING, Any, ClassVar

try:
    import fsspec
    from fsspec.callbacks import DEFAULT_CALLBACK
    from fsspec.core import OpenFile
    from fsspec.spec import AbstractFileSystem, _Cached
    from fsspec.transaction import Transaction
    from fsspec.utils import stringify_path
except ImportError as exc:  # pragma: no cover - exercised only without the dependency
    raise ImportError("s3dlio.fsspec needs fsspec: pip install fsspec (or 's3dlio[jax]')") from exc

from . import _parallel, localpath, localread, ranged
from .config import Config, default_config
from .errors import AlreadyExistsError, ConfigError, NotFoundError
from .localread import LocalFile
from .ops import (
    add_parents,
    create_bucket,
    delete_bucket,
    folder_markers,
    is_folder_object,
    list_buckets,
    resolve,
    write_file_atomic,
)
from .reader import ObjectReader
from .retry import ChangedError
from .store import ObjectMeta, Store
from .store.base import Upload, bare_etag
from .uri import ObjectUri
from .verify import verify_enabled
from .writer import ObjectWriter, open_upload_for

if TYPE_CHECKING:
    from collections.abc import Buffer
    from types import FrameType

    from .client import Client

__all__ = [
    "DEFAULT_SCHEMES",
    "FILESYSTEMS",
    "AzureFileSystem",
    "DirectFileSystem",
    "LocalFileSystem",
    "MemoryFileSystem",
    "S3FileSystem",
    "S3dlioFileSystem",
    "filesystem",
    "register",
]

#: The destination directory of the ``get`` running in this context (None: paths given one by one).
_get_into: ContextVar[str | None] = ContextVar("s3dlio_fsspec_get_into", default=None)
#: True inside a recursive ``get`` (no maxdepth): a key that is also a prefix is a directory.
_get_tree: ContextVar[bool] = ContextVar("s3dlio_fsspec_get_tree", default=False)
#: The source directory of the ``put`` running in this context (None: links are followed).
_put_from: ContextVar[str | None] = ContextVar("s3dlio_fsspec_put_from", default=None)
#: True inside a recursive ``put``: a FIFO, socket or device in the tree is skipped, not an error.
_put_tree: ContextVar[bool] = ContextVar("s3dlio_fsspec_put_tree", default=False)
#: Storage options fsspec itself takes (instance cache, listings cache); passed through.
_FSSPEC_OPTIONS = frozenset(
    {"skip_instance_cache", "use_listings_cache", "listings_expiry_time", "max_paths", "asynchronous", "loop"}
)
#: s3fs/adlfs/botocore option names -> s3dlio Config fields, so ``storage_options`` written
#: for them work.
_ALIASES = {
    "key": "access_key_id",
    "username": "access_key_id",
    "secret": "secret_access_key",
    "password": "secret_access_key",
    "token": "session_token",
    "aws_access_key_id": "access_key_id",
    "aws_secret_access_key": "secret_access_key",
    "aws_session_token": "session_token",
    "region_name": "region",
    "max_concurrency": "max_in_flight",
    "account_name": "azure_account_name",
    "account_key": "azure_account_key",
    "sas_token": "azure_sas_token",
    "connection_string": "azure_connection_string",
    "connection_timeout": "connect_timeout",
    "socket_timeout": "read_timeout",
}
#: s3fs/adlfs options that tune only fsspec's own file caches, or ask for what s3dlio does
#: anyway (its reader reads ahead in blocks; it never creates containers by itself): accepted,
#: with no effect.
_NO_EFFECT = frozenset({"default_cache_type", "default_fill_cache", "cache_regions", "assume_container_exists"})
#: Further s3fs/adlfs names :func:`_translate` and the filesystem take.
_OTHER_NAMES = ("client_kwargs", "config_kwargs", "use_ssl", "anon", "account_host", "default_block_size", "blocksize")
#: Per-request parameters s3fs passes to botocore: s3dlio sends none.
_NO_PARAMS = ("s3dlio sends no per-request parameters (server-side encryption, ACLs and content "
              "types follow the bucket's settings)")  # fmt: skip
#: s3fs/adlfs options s3dlio has no equivalent for: their default value is accepted, any other
#: refused with what to use instead.
_REJECTED: dict[str, tuple[Any, str]] = {
    "session": (None, "pass key=, secret=, token= or profile= (an aiobotocore session is not used)"),
    "requester_pays": (False, "s3dlio does not send x-amz-request-payer; use a bucket you own"),
    "version_aware": (False, "s3dlio reads the current version of each object only"),
    "s3_additional_kwargs": ({}, _NO_PARAMS),
    "fixed_upload_size": (False, "s3dlio's parts are part_size= bytes each (a Config field)"),
    "location_mode": ("primary", "s3dlio reads and writes the primary location only"),
    **dict.fromkeys(
        ("credential", "tenant_id", "client_id", "client_secret"),
        (None, "without account_key= or connection_string=, s3dlio signs in with azure-identity's "
               "DefaultAzureCredential, which reads AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET"),
    ),
}
#: botocore ``Config`` (s3fs ``config_kwargs``) names -> s3dlio Config fields.
_BOTOCORE = {
    "max_pool_connections": "max_in_flight",
    "connect_timeout": "connect_timeout",
    "read_timeout": "read_timeout",
    "region_name": "region",
}
_BATCH = 1000  # keys per delete request
#: Per-call arguments callers of s3fs pass that change nothing here: nothing is cached between
#: calls (``refresh``), the reader always reads ahead in blocks (``cache_type``...), a file's
#: size is read at open (``size``).
_NO_EFFECT_ARGS = frozenset({"refresh", "cache_type", "cache_options", "fill_cache", "size"})


def _no_other_args(op: str, path: str, kwargs: dict[str, Any]) -> None:
    """Refuse per-call arguments s3dlio would otherwise drop: an ``open(..., ContentType=...)``
    or ``cat_file(..., version_id=...)`` must not quietly do something else than asked."""
    other = sorted(set(kwargs) - _NO_EFFECT_ARGS)
    if not other:
        return
    if "version_id" in other:
        fix = "s3dlio reads the current version of each object only"
    elif any(name[:1].isupper() for name in other):  # botocore request parameters (ACL, ContentType...)
        fix = _NO_PARAMS
    else:
        fix = f"s3dlio's {op} takes no such argument (the fsspec section of docs/api.md lists what it takes)"
    raise TypeError(f"{op}({path!r}): unexpected argument(s) {', '.join(other)}: {fix}")


def _tuning(op: str, kwargs: dict[str, Any]) -> tuple[int | None, int | None]:
    """Pop s3fs's per-call tuning arguments: ``(max_concurrency, chunksize)``, None when not given.
    Callers map them to s3dlio's in-flight limit and part size, or ignore them where a call
    makes one request."""
    concurrency, chunksize = kwargs.pop("max_concurrency", None), kwargs.pop("chunksize", None)
    for name, value in (("max_concurrency", concurrency), ("chunksize", chunksize)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{op}: {name} must be None or an int >= 1, got {value!r}")
    return concurrency, chunksize


def _boto_config(config_kwargs: dict[str, Any]) -> dict[str, Any]:
    """s3fs ``config_kwargs`` (botocore ``Config`` arguments) as s3dlio Config fields."""
    from botocore import UNSIGNED

    changes: dict[str, Any] = {}
    for name, value in config_kwargs.items():
        if name in _BOTOCORE:
            changes[_BOTOCORE[name]] = value
        elif name == "retries":
            attempts = value.get("total_max_attempts", value.get("max_attempts"))
            if attempts is not None:  # botocore's max_attempts counts retries, total_ counts all
                changes["max_attempts"] = attempts if "total_max_attempts" in value else attempts + 1
        elif name == "s3" and value.get("addressing_style", "path") in ("path", "auto"):
            pass  # s3dlio always uses path-style requests, which every S3 service accepts
        elif name == "signature_version" and str(value).lower() in ("s3v4", "v4"):
            pass
        elif name == "signature_version" and (value is UNSIGNED or str(value).lower() == "unsigned"):
            changes["unsigned"] = True
        elif name == "signature_version":
            raise ConfigError(f"storage option config_kwargs={{'signature_version': {value!r}}}: s3dlio signs "
                              "with SigV4, or not at all with anon=True (Config unsigned=True)")  # fmt: skip
        else:
            raise ConfigError(
                f"storage option config_kwargs={{{name!r}: {value!r}}}: s3dlio maps only "
                f"{sorted([*_BOTOCORE, 'retries', 's3', 'signature_version'])}; use an s3dlio Config field "
                f"({sorted(Config.__dataclass_fields__)}) instead"
            )
    return changes


def _translate(options: dict[str, Any]) -> dict[str, Any]:
    """s3fs/adlfs storage options as s3dlio Config fields; unsupported ones are named with their fix.

    None means "not given", as in s3fs (``endpoint_url=None`` leaves ``client_kwargs``'s).
    """
    options = {k: v for k, v in options.items() if v is not None}
    client = {k: v for k, v in (options.pop("client_kwargs", None) or {}).items() if v is not None}
    boto = dict(options.pop("config_kwargs", None) or {})
    botocore_config = client.pop("config", None)  # a botocore Config: the options it was given
    if botocore_config is not None:
        boto = {**getattr(botocore_config, "_user_provided_options", {}), **boto}
    anon = options.pop("anon", False)
    use_ssl = client.pop("use_ssl", options.pop("use_ssl", True))
    verify = client.pop("verify", None)
    host = options.pop("account_host", None)  # adlfs: https://{account_host}
    if host is not None:
        options["azure_endpoint"] = host if "://" in host else f"https://{host}"
    for name in _NO_EFFECT:
        options.pop(name, None)
    for name, (default, fix) in _REJECTED.items():
        if name in options and options.pop(name) != default:
            raise ConfigError(f"storage option {name}=...: {fix}")
    changes = {**_boto_config(boto), **{_ALIASES.get(k, k): v for k, v in {**client, **options}.items()}}
    if anon:
        changes["unsigned"] = True
    if verify is False:
        raise ConfigError(
            "storage option client_kwargs={'verify': False}: s3dlio never turns TLS checks off; "
            "trust a private CA with verify='/path/ca.pem' (or AWS_CA_BUNDLE_PATH)"
        )
    if isinstance(verify, str):
        changes["ca_bundle"] = verify
    # as in botocore, an explicit endpoint is used as given; AWS itself is reached over TLS only
    if not use_ssl and not (changes.get("endpoint_url") or default_config().endpoint_url):
        raise ConfigError(
            "storage option use_ssl=False without an endpoint: name the plain-HTTP endpoint instead, "
            "endpoint_url='http://host:port' (or client_kwargs={'endpoint_url': ...})"
        )
    return changes


def _config_changes(config: Config | None, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` (Config fields, s3fs/adlfs names, ``client_kwargs``...) as Config changes,
    checked now (applied to ``config``, or the process-wide settings) so a bad one fails here."""
    changes = _translate(options)
    known = set(Config.__dataclass_fields__)
    unknown = sorted(set(changes) - known)
    if unknown:
        raise TypeError(
            f"s3dlio filesystem: unknown storage option(s) {unknown}; use Config fields ({sorted(known)}) "
            f"or the s3fs/adlfs names {sorted([*_ALIASES, *_NO_EFFECT, *_REJECTED, *_OTHER_NAMES])}"
        )
    if changes:
        (config or default_config()).replace(**changes)
    return changes


class _SharedByOptions(_Cached):  # type: ignore[misc]
    """fsspec's instance cache (one instance per class, options and thread, as s3fs's), except
    for a filesystem given a ``config=`` or ``client=`` object: fsspec's cache token is the
    ``str`` of the arguments, which a Config's would not tell apart (its secrets are not in
    its repr), so those instances are never shared. Sharing is what makes ``fs.transaction``
    cover pandas' and ``fsspec.open``'s writes: they ask ``fsspec.filesystem`` for the
    filesystem with the same options and get the instance in the transaction."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if args and args[0] is None:  # filesystem(scheme) passes config=None: as fsspec.filesystem(scheme)
            args = args[1:]
        if kwargs.get("config", False) is None:
            del kwargs["config"]
        if args or kwargs.get("config") is not None or kwargs.get("client") is not None:
            kwargs["skip_instance_cache"] = True
        return super().__call__(*args, **kwargs)


class _Transaction(Transaction):  # type: ignore[misc]
    """fsspec's transaction, except that one entered inside another joins it: fsspec's own
    forgets the outer one's files (never published) and ends both at the inner exit. An
    exception leaving any level discards the whole transaction."""

    def __init__(self, fs: AbstractFileSystem, **kwargs: Any) -> None:
        super().__init__(fs, **kwargs)
        self._depth = 0
        self._failed = False

    def __enter__(self) -> _Transaction:
        self._depth += 1
        if self._depth == 1:
            self.start()
        return self

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        self._depth -= 1
        self._failed = self._failed or kind is not None
        if self._depth == 0:
            super().__exit__(Exception if self._failed else None, None, None)


class S3dlioFileSystem(AbstractFileSystem, metaclass=_SharedByOptions):
    """An fsspec filesystem over one s3dlio scheme; use a subclass (:data:`FILESYSTEMS`).

    ``config``: an :class:`s3dlio.Config`, or ``client``: an :class:`s3dlio.Client` (default:
    the process-wide settings, read at each call).
    Other keywords are Config fields (``endpoint_url=``, ``region=``) or the s3fs/adlfs names
    ``key``, ``secret``, ``token``, ``client_kwargs={"endpoint_url": ..., "region_name": ...}``,
    ``config_kwargs`` (botocore's: ``max_pool_connections``, timeouts, ``retries``), ``use_ssl``,
    ``default_block_size`` (the read-ahead block of files opened ``rb``), ``account_name``,
    ``account_key``, ``connection_string``, ``anon=True`` (unsigned requests). Options s3dlio has
    no equivalent for raise :class:`~s3dlio.errors.ConfigError` naming what to use instead.
    """

    #: The s3dlio scheme this class serves.
    scheme: ClassVar[str] = "s3"
    protocol: ClassVar[str | tuple[str, ...]] = ("s3",)
    root_marker = ""
    #: fsspec's instance cache applies, except to instances given a Config or Client object
    #: (see :class:`_SharedByOptions`).
    cachable = True
    _local: ClassVar[bool] = False
    transaction_type = _Transaction

    def __new__(cls, *args: Any, asynchronous: bool = False, loop: Any = None, **options: Any) -> Any:
        """``asynchronous=True`` (zarr 3 passes it for every store) is honoured, as fsspec honours
        it for its sync filesystems: this filesystem comes inside fsspec's
        ``AsyncFileSystemWrapper``, whose ``_cat_file``... coroutines run its methods on threads.
        ``loop=`` belongs to an async filesystem only."""
        if asynchronous:
            from fsspec.implementations.asyn_wrapper import AsyncFileSystemWrapper

            return AsyncFileSystemWrapper(cls(*args, **options), asynchronous=True, loop=loop)
        if loop is not None:
            raise ConfigError("storage option loop=...: s3dlio's filesystems are synchronous; pass asynchronous=True "
                              "too for the async API (the filesystem then runs its methods on threads)")  # fmt: skip
        return super().__new__(cls)

    def __init__(self, config: Config | None = None, *, client: Client | None = None, **options: Any) -> None:
        if client is not None:
            if config is not None:
                raise ConfigError("fsspec: pass config= or client=, not both")
            config = client.config
        passthrough = {k: options.pop(k) for k in list(options) if k in _FSSPEC_OPTIONS}
        super().__init__(**passthrough)
        block = options.pop("default_block_size", None)
        block = options.pop("blocksize", None) or block  # adlfs's name
        #: Bytes per ranged GET of files opened ``rb`` (s3fs's name; default: the part size).
        self.default_block_size: int | None = int(block) if block else None
        self._base, self._changes = config, _config_changes(config, options)
        self._applied: tuple[Config | None, Config | None] = (None, None)

    @property
    def config(self) -> Config | None:
        """The settings this filesystem uses: None for the process-wide ones, read at each
        call; with storage options, those applied to the process-wide settings of the moment
        (an instance is shared and kept by fsspec's cache: ``s3dlio.configure`` still reaches it)."""
        if not self._changes:
            return self._base
        base, applied = self._base or default_config(), self._applied
        if applied[0] is not base:
            applied = self._applied = (base, base.replace(**self._changes))
        return applied[1]

    # -- paths -------------------------------------------------------------------------------
    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        path = stringify_path(path)
        protocols = (cls.protocol,) if isinstance(cls.protocol, str) else cls.protocol
        for name in protocols:
            if path.startswith(name + "://"):
                path = path[len(name) + 3 :]
                break
        if cls._local:
            return (os.path.abspath(path).rstrip("/") or "/") if path else "/"
        return path.rstrip("/")

    def uri(self, path: str) -> str:
        """The s3dlio URI of an fsspec path (``bucket/key`` -> ``s3://bucket/key``)."""
        return f"{self.scheme}://{self._strip_protocol(path)}"

    def unstrip_protocol(self, name: str) -> str:
        return self.uri(name)

    def _resolve(self, path: str) -> tuple[str, ObjectUri, Store]:
        uri = self.uri(path)
        parsed, store = resolve(uri, self.config)  # op-logged, whatever the settings
        return uri, parsed, store

    def _name(self, parsed: ObjectUri, key: str) -> str:
        """The fsspec path of ``key`` (or of the common prefix ``key``) in the store of ``parsed``.

        One ``/`` is taken off the end, as s3fs does: keys with empty segments keep them, so the
        common prefix ``/`` of a key ``/x`` is ``bucket/``, never the bucket's own name (a
        listing of the bucket would hold itself), and ``a//`` is ``bucket/a/``."""
        if self._local:
            return "/" + key.removesuffix("/")
        return f"{parsed.bucket}/{key}".removesuffix("/") if key else parsed.bucket

    def _file(self, parsed: ObjectUri, meta: ObjectMeta) -> dict[str, Any]:
        info = {
            "name": self._name(parsed, meta.key),
            "size": meta.size,
            "type": "file",
            "mtime": meta.last_modified,
            "etag": meta.etag,
        }
        # the names s3fs's and adlfs's callers read too (None where the engine did not say:
        # `e["StorageClass"] != "GLACIER"` works over any listing)
        info.update(
            {"ETag": meta.etag, "LastModified": meta.last_modified, "Key": info["name"], "Size": meta.size,
             "StorageClass": meta.storage_class, "ContentType": meta.content_type, "VersionId": meta.version_id}
            if parsed.scheme == "s3"
            else {"last_modified": meta.last_modified}
            if parsed.scheme == "az"
            else {}
        )  # fmt: skip
        return info

    def _dir(self, name: str, **extra: Any) -> dict[str, Any]:
        info = {"name": name, "size": 0, "type": "directory", **extra}
        if self.scheme == "s3":  # as s3fs's entries: sum(e["Size"] ...) works over a listing
            info.update({"Key": name, "Size": 0, "StorageClass": "DIRECTORY"})
        return info

    # -- metadata ----------------------------------------------------------------------------
    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        """Size, type (``file``/``directory``), ``mtime`` and ``etag`` of ``path``."""
        _no_other_args("info", path, kwargs)
        name = self._strip_protocol(path)
        if not self._local and not name:
            return self._dir("")  # the root: all buckets
        uri, parsed, store = self._resolve(name)
        if parsed.key and not parsed.is_prefix:
            try:
                meta = store.head(parsed.key)
            except (NotFoundError, IsADirectoryError):
                pass
            else:
                # on S3 a zero-byte object with keys below it stays an object, as s3fs says;
                # on Azure it is how ADLS Gen2 (hierarchical namespace) lists a directory (asked
                # only of zero-byte blobs: a listing per info would double its requests)
                if self._local or meta.size or not (
                    is_folder_object(meta) or (self.scheme == "az" and self._is_dir(parsed, store))
                ):
                    return self._file(parsed, meta)
                # a folder marker without "/" (ADLS Gen2 lists each directory so): a directory
                # whose own object has a time and an ETag (rm deletes that object too)
                return self._dir(name, mtime=meta.last_modified, etag=meta.etag)
        if self._is_dir(parsed, store):
            return self._dir(name)
        raise FileNotFoundError(errno.ENOENT, "no such object or prefix", uri)

    def _is_dir(self, parsed: ObjectUri, store: Store) -> bool:
        if self._local:
            return os.path.isdir("/" + parsed.key)
        prefix = parsed.key.rstrip("/") + "/" if parsed.key else ""
        try:
            first = next(iter(store.list(prefix, delimiter=True)), None)
        except NotFoundError:  # no such bucket
            return False
        return first is not None or not prefix  # an empty bucket is an (empty) directory

    def exists(self, path: str, **kwargs: Any) -> bool:
        """True for an object or a non-empty prefix (errors other than "not found" propagate)."""
        try:
            self.info(path, **kwargs)
        except FileNotFoundError:
            return False
        return True

    def checksum(self, path: str, refresh: bool = False) -> int:
        """A number that changes when the object does (from its ETag, size and time); s3fs's
        ``refresh`` changes nothing here: nothing is cached."""
        return int(super().checksum(path))

    def touch(self, path: str, truncate: bool = True, **kwargs: Any) -> None:
        """Write an empty object; ``truncate=False`` on one that exists raises ValueError on
        object stores, as in s3fs (an object's time cannot change without a rewrite), and
        updates a file's times on ``file://``."""
        _no_other_args("touch", path, kwargs)
        if truncate or not self.exists(path):
            self.pipe_file(path, b"")
        elif self._local:
            os.utime(self._strip_protocol(path))
        else:
            raise ValueError(f"touch({path!r}, truncate=False): the object exists and objects cannot be touched "
                             "without rewriting them; use truncate=True (an empty object)")  # fmt: skip

    def created(self, path: str) -> Any:
        """Not kept: the listings and HEADs s3dlio reads carry no creation time (S3 keeps none;
        Azure's is in Get Blob Properties, which s3dlio does not pass on yet)."""
        raise NotImplementedError(
            f"created({path!r}): {self.scheme}:// objects have no creation time s3dlio reads; "
            "use modified() (the last-modified time)"
        )

    def modified(self, path: str) -> Any:
        """Last-modified time (``datetime``) of an object."""
        mtime = self.info(path).get("mtime")
        if mtime is None:
            raise OSError(errno.EISDIR, "a directory has no modification time", self.uri(path))
        return mtime

    def sign(self, path: str, expiration: float = 100, **kwargs: Any) -> str:
        """A URL that reads ``path`` for ``expiration`` seconds without credentials (s3fs's
        default of 100 s): a presigned URL on S3, a SAS on Azure. ``method="PUT"`` (or HEAD,
        DELETE) signs another request; file:// and mem:// raise NotImplementedError, as
        fsspec's filesystems without URLs do."""
        method = kwargs.pop("method", "GET")
        if kwargs:
            raise TypeError(f"sign: unexpected argument(s) {', '.join(sorted(kwargs))}; s3dlio signs method= only")
        _, parsed, store = self._resolve(path)
        return store.sign(parsed.key, method, expiration)

    def url(self, path: str, expires: float = 3600, client_method: str = "get_object", **kwargs: Any) -> str:
        """s3fs's name for :meth:`sign` (``client_method``: ``get_object``, ``put_object``,
        ``head_object`` or ``delete_object``)."""
        _no_other_args("url", path, kwargs)
        method = {"get_object": "GET", "put_object": "PUT", "head_object": "HEAD", "delete_object": "DELETE"}
        if client_method not in method:
            raise ValueError(f"url({path!r}, client_method={client_method!r}): use one of {sorted(method)}")
        return self.sign(path, expires, method=method[client_method])

    def split_path(self, path: str) -> tuple[str, str, None]:
        """``(bucket, key, version_id)`` as s3fs gives them (s3dlio reads current versions: None)."""
        bucket, _, key = self._strip_protocol(path).partition("/")
        return bucket, key, None

    def ls(self, path: str, detail: bool = False, **kwargs: Any) -> list[Any]:
        """One level under ``path``: objects and common prefixes (as directories); names, or
        info dicts with ``detail=True`` (s3fs's and adlfs's default is names)."""
        _no_other_args("ls", path, kwargs)
        if not self._local and not self._strip_protocol(path):
            return self._ls_buckets(detail)
        uri, parsed, store = self._resolve(path)
        prefix = parsed.key.rstrip("/") + "/" if parsed.key else ""
        entries: list[dict[str, Any]] = []
        try:
            for item in store.list(prefix, delimiter=True):
                if isinstance(item, str):
                    if item != prefix and not self._local:
                        entries.append(self._dir(self._name(parsed, item)))
                elif is_folder_object(item):  # where the listing carries metadata
                    entries.append(self._dir(self._name(parsed, item.key)))
                elif not item.key.endswith("/"):  # skip S3 folder markers ("dir/")
                    entries.append(self._file(parsed, item))
        except NotFoundError:
            entries = []
        entries = self._without_markers(entries)
        if self._local:
            entries = sorted(entries + self._subdirs("/" + prefix), key=lambda e: e["name"])
        if not entries:
            info = self.info(path)  # FileNotFoundError when nothing is there
            entries = [info] if info["type"] == "file" else []
        return entries if detail else [e["name"] for e in entries]

    def _without_markers(self, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``entries`` of one listing level, each folder marker without a ``/`` (a zero-byte
        ``data`` beside the prefix ``data/``, see :func:`s3dlio.ops.folder_markers`) listed once,
        as the directory it names."""
        if self._local:
            return entries
        dirs = {e["name"] for e in entries if e["type"] == "directory"}
        out, listed = [], set()
        for e in entries:
            if e["type"] == "directory":
                if e["name"] in listed:
                    continue
                listed.add(e["name"])
            elif not e["size"] and e["name"] in dirs:
                continue
            out.append(e)
        return out

    def _subdirs(self, directory: str) -> list[dict[str, Any]]:
        """The directories in a local ``directory``, empty ones and symbolic links to one
        included, as fsspec's LocalFileSystem lists them (the store lists only those holding
        files, as an object store would)."""
        try:
            with os.scandir(directory) as it:
                return [self._dir(e.path, islink=e.is_symlink()) for e in it if e.is_dir()]
        except (FileNotFoundError, NotADirectoryError):
            return []

    def _one_bucket(self, op: str, path: Any) -> None:
        """Refuse a listing or glob that names no bucket, or buckets by a pattern, as s3fs does
        ("Cannot traverse all of S3"): it would read every bucket, and ``rm`` would empty them."""
        bucket = self._strip_protocol(path).partition("/")[0]
        if not self._local and (not bucket or has_magic(bucket)):
            raise ValueError(f"{op}({path!r}): cannot traverse all of {self.scheme}:// (s3fs: Cannot traverse all "
                             "of S3); name one bucket, without glob characters: bucket/*")  # fmt: skip

    def glob(self, path: str, maxdepth: int | None = None, **kwargs: Any) -> Any:
        if has_magic(self._strip_protocol(path)):
            self._one_bucket("glob", path)
        return super().glob(path, maxdepth=maxdepth, **kwargs)

    def walk(self, path: str, maxdepth: int | None = None, topdown: bool = True, on_error: str = "omit",
             **kwargs: Any) -> Any:  # fmt: skip
        self._one_bucket("walk", path)
        return super().walk(path, maxdepth=maxdepth, topdown=topdown, on_error=on_error, **kwargs)

    def _ls_buckets(self, detail: bool) -> list[Any]:
        names = [u.split("://", 1)[1] for u in list_buckets(f"{self.scheme}://", config=self.config)]
        return [self._dir(n) for n in names] if detail else names

    def find(
        self,
        path: str,
        maxdepth: int | None = None,
        withdirs: bool = False,
        detail: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Everything below ``path``: one recursive listing on object stores.

        ``prefix="tmp_"``: only the names below ``path`` that start with it (s3fs's argument; not
        with ``withdirs`` or ``maxdepth``).
        """
        starting = kwargs.pop("prefix", "") or ""
        _no_other_args("find", path, kwargs)
        if starting and (withdirs or maxdepth is not None):
            raise ValueError(f"find({path!r}, prefix={starting!r}): prefix cannot be combined with withdirs or maxdepth")
        name = self._strip_protocol(path)
        self._one_bucket("find", name)
        if self._local or maxdepth is not None:
            out = super().find(path, maxdepth=maxdepth, withdirs=withdirs, detail=True)
            start = (name.rstrip("/") + "/" if name else "") + starting
            names = sorted(n for n in out if n.startswith(start)) if starting else sorted(out)
            return {n: out[n] for n in names} if detail else names
        uri, parsed, store = self._resolve(path)
        prefix = (parsed.key.rstrip("/") + "/" if parsed.key else "") + starting
        found: dict[str, dict[str, Any]] = {}
        dirs: set[str] = set()  # the keys that are directories of the keys listed
        empty: list[tuple[str, int]] = []  # zero-byte objects: folder markers when named like one
        try:
            for item in store.list(prefix):
                if isinstance(item, str):
                    continue
                entry = self._file(parsed, item)
                marker = item.key.endswith("/")  # an S3 folder marker: a directory, not a file
                if not marker:
                    found[entry["name"]] = entry
                    add_parents(dirs, item.key)
                    if not item.size:
                        empty.append((item.key, 0))
                        if is_folder_object(item):
                            dirs.add(item.key)
                if withdirs:
                    self._add_parents(found, name, entry["name"] + ("/" if marker else ""))
        except NotFoundError:
            pass
        for key in folder_markers(empty, dirs):  # a directory, not a file (see ``ls``)
            folder = self._name(parsed, key)
            del found[folder]
            if withdirs:
                found[folder] = self._dir(folder)
        if withdirs and found and parsed.key:  # the path itself, unless a bucket
            found[name] = self._dir(name)
        if not found and not starting:
            try:
                info = self.info(path)
            except FileNotFoundError:
                info = None
            if info is not None and info["type"] == "file":
                found[name] = info
        names = sorted(found)
        return {n: found[n] for n in names} if detail else names

    def du(self, path: str, total: bool = True, maxdepth: int | None = None, withdirs: bool = False,
           **kwargs: Any) -> Any:  # fmt: skip
        """Bytes below ``path``: their sum (``total``), or ``{name: size}``; fsspec's arguments.

        The sizes come from the listing ``find`` makes (one request per 1000 objects), not from
        a HEAD of each object as fsspec's ``du`` would send (and a key some engine cannot HEAD
        would fail the whole sum)."""
        found = self.find(path, maxdepth=maxdepth, withdirs=withdirs, detail=True, **kwargs)
        name = self._strip_protocol(path)
        top = {name: 0} if withdirs and name not in found and self.isdir(name) else {}  # a bucket (s3fs: 0)
        sizes = {**top, **{n: entry["size"] for n, entry in found.items()}}
        return sum(sizes.values()) if total else sizes

    def _add_parents(self, found: dict[str, dict[str, Any]], root: str, name: str) -> None:
        """Add the directories between ``root`` and ``name`` (exclusive) to ``found``."""
        parent = name.rsplit("/", 1)[0]
        while len(parent) > len(root) and parent not in found:
            found[parent] = self._dir(parent)
            parent = parent.rsplit("/", 1)[0]

    # -- directories -------------------------------------------------------------------------
    #: What ``mkdir`` of an existing bucket does without ``exist_ok``: s3fs raises, adlfs passes.
    _mkdir_exist_ok: ClassVar[bool] = False

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        """Make a directory. On object stores an empty directory is a folder marker (a zero-byte
        ``dir/`` object, as the S3 console and TensorFlow's gfile write it), so it exists once
        made, as Orbax and Lightning expect of a directory they made (not on ``mem://``); a missing bucket
        (container) is created, as s3fs and adlfs do: ``mkdir("bucket")``, or a path in it with
        ``create_parents``. An existing bucket is FileExistsError unless ``exist_ok`` (default
        False on ``s3://``, as in s3fs; True on ``az://``, as in adlfs)."""
        exist_ok = bool(kwargs.pop("exist_ok", self._mkdir_exist_ok))
        _no_other_args("mkdir", path, kwargs)
        name = self._strip_protocol(path)
        if self._local:
            if create_parents:
                os.makedirs(name, exist_ok=True)
            else:
                os.mkdir(name)
            return
        bucket, _, key = name.partition("/")
        if not bucket:
            raise ValueError(f"mkdir({path!r}): name a bucket (container)")
        if not key:
            try:
                create_bucket(f"{self.scheme}://{bucket}", config=self.config)
            except FileExistsError:
                if not exist_ok:
                    raise
            return
        if self.scheme != "mem" and not self.isdir(name):  # mem:// keys cannot end in "/"; its buckets come by themselves
            self._put_marker(name, create_parents)

    def _put_marker(self, name: str, create_parents: bool) -> None:
        """Write the folder marker of ``bucket/key`` ``name``; the bucket is made only when the PUT
        finds none (and ``create_parents``)."""
        uri, parsed, store = self._resolve(name)
        try:
            store.put(parsed.key.rstrip("/") + "/", b"")
        except NotFoundError:  # no such bucket
            bucket = f"{self.scheme}://{parsed.bucket}"
            if not create_parents:
                raise FileNotFoundError(errno.ENOENT, "no such bucket; use create_parents=True", bucket) from None
            with contextlib.suppress(FileExistsError):  # made meanwhile
                create_bucket(bucket, config=self.config)
            store.put(parsed.key.rstrip("/") + "/", b"")

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        """Make a directory and its parents. On object stores only an existing bucket is an
        error (without ``exist_ok``), as in s3fs: a prefix has nothing of its own to clash with."""
        name = self._strip_protocol(path)
        if self.isdir(name):
            if not exist_ok and (self._local or "/" not in name):
                raise FileExistsError(errno.EEXIST, "directory exists", self.uri(name))
            return
        if self._local or "/" not in name or self.scheme == "mem":
            self.mkdir(name, create_parents=True)
        else:  # isdir just said no: the marker, without listing again
            self._put_marker(name, create_parents=True)

    def rmdir(self, path: str) -> None:
        """Remove an empty directory: a folder on files; an empty bucket (container), or a
        prefix holding only its folder marker, on object stores (FileNotFoundError: neither,
        except on ``mem://``, whose directories exist only by their objects)."""
        name = self._strip_protocol(path)
        if self._local:
            os.rmdir(name)
            return
        if "/" not in name:
            if self.ls(name):  # FileNotFoundError without the bucket
                raise OSError(errno.ENOTEMPTY, "directory not empty", self.uri(name))
            delete_bucket(self.uri(name), config=self.config)
            return
        uri, parsed, store = self._resolve(name)
        marker = parsed.key.rstrip("/") + "/"
        held = [item.key for item in itertools.islice(store.list(marker), 2) if isinstance(item, ObjectMeta)]
        if any(key != marker for key in held):
            raise OSError(errno.ENOTEMPTY, "directory not empty", uri)
        if held:
            store.delete(marker)
        elif (folder := self._dir_info(name)) and folder.get("etag") is not None:  # ADLS Gen2's empty directory
            store.delete(parsed.key)
        elif self.scheme != "mem":  # mem:// has no markers: its mkdir makes nothing to find here
            raise FileNotFoundError(errno.ENOENT, "no such directory", uri)

    def _prefix_only(self, name: str) -> bool:
        """True when ``name`` is a directory and no object: named alone, a zero-byte object
        that is also a prefix is fetched as the object (s3fs), unless its metadata calls it a
        directory (see ``get_file``)."""
        return (info := self._dir_info(name)) is not None and info.get("etag") is None

    def _dir_info(self, name: str) -> dict[str, Any] | None:
        """``info(name)`` when ``name`` is a directory, else None. Its ``etag`` tells a folder
        marker without a ``/`` (an object of its own, ADLS Gen2's) from a prefix only."""
        try:
            info = self.info(name)
        except FileNotFoundError:
            return None
        return info if info["type"] == "directory" else None

    # -- deleting ----------------------------------------------------------------------------
    def rm_file(self, path: str) -> None:
        if not self._local and "/" not in self._strip_protocol(path):
            self.rmdir(path)  # a bucket
            return
        uri, parsed, store = self._resolve(path)
        local = "/" + parsed.key
        if self._local and os.path.islink(local):
            os.unlink(local)  # the link, never what it points to
        elif self._local and os.path.isdir(local):
            os.rmdir(local)
        else:
            store.delete(parsed.key)

    def _rm(self, path: str) -> None:
        self.rm_file(path)

    def rm(self, path: Any, recursive: bool = False, maxdepth: int | None = None) -> None:
        """Delete objects; a directory needs ``recursive=True`` (deleted in batches of 1000).

        Every path is checked before anything is deleted. ``recursive``: an object's name is a
        directory's too when keys continue it with ``/`` (s3fs deletes both); a bucket
        (container) named plainly is deleted once empty, as in s3fs, never one a glob reached.
        A missing object is no error on object stores (as in s3fs), a missing bucket is, and a
        missing path to ``recursive``. In a list, directories are skipped unless ``recursive``
        (s3fs; on ``file://`` they raise)."""
        paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
        listed = not isinstance(path, (str, os.PathLike))
        plan = [step for one in paths for step in self._rm_plan(one, recursive, maxdepth, listed)]
        for step in plan:
            step()

    def _rm_plan(self, path: Any, recursive: bool, maxdepth: int | None, listed: bool) -> list[functools.partial[None]]:
        """The deletions ``rm`` makes for one of its paths, checked but not yet done."""
        name = self._strip_protocol(path)
        if maxdepth is not None or has_magic(name):
            matched = self.expand_path(path, recursive=recursive, maxdepth=maxdepth)  # checks the bucket
            if self._local:  # what a symbolic link takes out of the tree stays: the link itself goes
                root = _fixed_part(name)
                matched = [m for m in matched if not localpath.leaves(root, os.path.dirname(m))]
            return [functools.partial(self._rm_matched, matched, buckets=not has_magic(name))]
        try:
            info = self.info(name)
        except FileNotFoundError:
            if recursive or self._local:
                raise
            self.info(name.partition("/")[0])  # no such bucket: FileNotFoundError, as in s3fs
            return []  # an object that is not there is deleted already (s3fs, adlfs: no error)
        directory = info["type"] == "directory"
        if directory and not recursive:
            if listed and not self._local:
                return []  # s3fs skips them: rm(fs.glob("bucket/*")) deletes the files there
            raise IsADirectoryError(errno.EISDIR, "is a directory; use recursive=True", self.uri(name))
        plan = [] if directory else [functools.partial(self.rm_file, name)]
        if recursive and (directory or not self._local):
            plan.append(functools.partial(self._rm_tree, name))
        if directory and info.get("etag") is not None:  # a folder marker without "/": after what it holds
            plan.append(functools.partial(self.rm_file, name))
        if recursive and not self._local and "/" not in name:
            plan.append(functools.partial(self.rmdir, name))
        return plan

    def _rm_matched(self, matched: list[str], buckets: bool) -> None:
        """Delete what a glob (or ``maxdepth``) matched, deepest first, then the folder markers
        of its directories, then (``buckets``: the path named one plainly) the emptied buckets."""
        names = [m for m in matched if self._local or "/" in m]
        for name in reversed(names):
            self.rm_file(name)
        self._rm_markers(names)
        for bucket in sorted(set(matched) - set(names)) if buckets else ():
            self.rmdir(bucket)

    def _rm_markers(self, names: list[str]) -> None:
        """Delete the folder markers (``name/``) of the directories among ``names``, which
        ``rm_file`` leaves: one batch request per bucket; names without one are no error."""
        if self._local or self.scheme == "mem":
            return
        keys: dict[str, list[str]] = {}
        for name in names:
            bucket, _, key = name.partition("/")
            if key:
                keys.setdefault(bucket, []).append(key.rstrip("/") + "/")
        for bucket, markers in keys.items():
            store = self._resolve(bucket)[2]
            for i in range(0, len(markers), _BATCH):
                for failure in store.delete_many(markers[i : i + _BATCH]):
                    if not isinstance(failure.error, NotFoundError):
                        raise failure.error

    def _rm_tree(self, name: str) -> None:
        if self._local:
            if os.path.islink(name):
                os.unlink(name)  # the link, never the tree it points to
            else:
                shutil.rmtree(name)
            return
        uri, parsed, store = self._resolve(name)
        prefix = parsed.key.rstrip("/") + "/" if parsed.key else ""
        keys = [item.key for item in store.list(prefix) if isinstance(item, ObjectMeta)]
        for i in range(0, len(keys), _BATCH):
            failures = store.delete_many(keys[i : i + _BATCH])
            if failures:
                raise failures[0].error

    # -- bytes -------------------------------------------------------------------------------
    def cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any) -> bytes:
        """The object's bytes, or ``[start, end)`` of them (negative values count from the end).

        A whole large object arrives as parallel ranges (above ``range_threshold``), as with
        :func:`s3dlio.get`, at most ``max_concurrency`` at once (default: the client's
        ``max_in_flight``); ``chunksize`` is taken and changes nothing.
        """
        concurrency, _ = _tuning("cat_file", kwargs)
        _no_other_args("cat_file", path, kwargs)
        uri, parsed, store = self._resolve(path)
        if start is None and end is None:
            if store.in_process:
                return bytes(memoryview(store.get(parsed.key)))
            config = store.config if concurrency is None else store.config.replace(max_in_flight=concurrency)
            return bytes(memoryview(ranged.get(store, parsed.key, config=config, uri=uri)))
        begin, stop = start or 0, end
        if begin < 0 or stop is None or stop < 0:
            size = store.head(parsed.key).size
            begin = max(0, size + begin) if begin < 0 else begin
            stop = size if stop is None else max(0, size + stop) if stop < 0 else stop
        if stop <= begin:
            return b""
        return bytes(memoryview(store.get_range(parsed.key, begin, stop)))

    def cat_ranges(
        self,
        paths: list[str],
        starts: int | Sequence[int | None] | None,
        ends: int | Sequence[int | None] | None,
        max_gap: int | None = None,
        on_error: str = "return",
        **kwargs: Any,
    ) -> list[Any]:
        """``[cat_file(p, s, e) ...]``, fetched concurrently within the client's limits.

        At most ``max_in_flight`` ranges are requested at once and ``max_bytes_in_flight``
        bytes held by them (in-process stores: one after another, threads would only contend).
        ``on_error="return"`` puts each error in its slot; anything else raises the first.
        """
        _no_other_args("cat_ranges", paths[0] if paths else "", kwargs)
        n = len(paths)
        first = [starts] * n if starts is None or isinstance(starts, int) else list(starts)
        last = [ends] * n if ends is None or isinstance(ends, int) else list(ends)
        if len(first) != n or len(last) != n:
            raise ValueError(f"cat_ranges: {n} paths but {len(first)} starts and {len(last)} ends")
        sizes = [e - s if s is not None and e is not None and 0 <= s <= e else 0
                 for s, e in zip(first, last, strict=True)]  # fmt: skip
        results = self._map(lambda i: self.cat_file(paths[i], first[i], last[i]), paths, sizes)
        if on_error != "return":
            for result in results:
                if isinstance(result, BaseException):
                    raise result
        return results

    def cat(self, path: Any, recursive: bool = False, on_error: str = "raise", **kwargs: Any) -> Any:
        """Bytes of one object, or ``{path: bytes}`` of many fetched concurrently (as ``cat_ranges``).

        ``on_error``: ``"raise"`` the first error, ``"omit"`` failed paths, ``"return"`` errors
        as values.
        """
        paths = self.expand_path(path, recursive=recursive)
        if len(paths) == 1 and not isinstance(path, list) and paths[0] == self._strip_protocol(path):
            return self.cat_file(paths[0], **kwargs)
        results = self._map(lambda i: self.cat_file(paths[i], **kwargs), paths, [0] * len(paths))
        out: dict[str, Any] = {}
        for name, result in zip(paths, results, strict=True):
            if isinstance(result, BaseException):
                if on_error == "raise":
                    raise result
                if on_error == "omit":
                    continue
            out[name] = result
        return out

    def _map(self, fn: Callable[[int], bytes], paths: list[str], sizes: list[int]) -> list[Any]:
        """``[fn(i) for i in range(len(paths))]`` with errors as values, concurrent within the
        client's limits (``max_in_flight`` calls, ``max_bytes_in_flight`` of known ``sizes``)."""
        if not paths:
            return []
        config = self.config or default_config()
        try:
            in_process = self._resolve(paths[0])[2].in_process
        except Exception:  # noqa: BLE001 - a bad path fails in its own slot below
            in_process = False
        if in_process:
            return _parallel.map_bounded(fn, range(len(paths)), 1, return_exceptions=True)
        budget = _parallel.ByteBudget(config.max_bytes_in_flight)

        def bounded(i: int) -> bytes:
            with budget.holding(sizes[i]):
                return fn(i)

        workers = min(config.max_in_flight, len(paths))
        return _parallel.map_bounded(bounded, range(len(paths)), workers, return_exceptions=True)

    def pipe_file(self, path: str, value: Buffer, mode: str = "overwrite", **kwargs: Any) -> None:
        """Write ``value`` as the object ``path`` (``mode="create"``: fail if it exists; inside
        ``fs.transaction`` it appears when the transaction ends). s3fs's ``chunksize`` and
        ``max_concurrency`` are taken and change nothing: the value goes up in one request."""
        _tuning("pipe_file", kwargs)
        _no_other_args("pipe_file", path, kwargs)
        if self._intrans:
            with self.open(path, "xb" if mode == "create" else "wb") as f:
                f.write(value)
            return
        uri, parsed, store = self._resolve(path)
        if mode == "create":  # one conditional request: of two writers racing, one wins
            store.put_new(parsed.key, value)  # AlreadyExistsError is a FileExistsError
        else:
            store.put(parsed.key, value)

    def put_file(self, lpath: str, rpath: str, callback: Any = DEFAULT_CALLBACK, mode: str = "overwrite",
                 **kwargs: Any) -> None:  # fmt: skip
        """Upload a local file, streamed in parts (``chunksize``: bytes per part;
        ``max_concurrency``: parts in flight); ``mode="create"``: only where no object is, as
        ``open(..., "xb")``: of creators racing, one succeeds, the others get FileExistsError."""
        concurrency, chunksize = _tuning("put_file", kwargs)
        _no_other_args("put_file", rpath, kwargs)
        if (root := _put_from.get()) is not None and localpath.leaves(root, lpath):
            warnings.warn(f"put {lpath}: skipped, a symbolic link takes it outside {root} (as s3dlio.upload "
                          "skips it); put(..., follow_links=True) uploads it", UserWarning, stacklevel=2)  # fmt: skip
            return
        if os.path.isdir(lpath):
            self.makedirs(rpath, exist_ok=True)
            return
        if _put_tree.get() and localread.not_a_file(lpath):
            warnings.warn(f"put {lpath}: skipped, not a regular file (a FIFO, socket or device; as "
                          "s3dlio.upload skips it)", UserWarning, stacklevel=2)  # fmt: skip
            return
        # never blocks on a FIFO nor reads a device; a change while read publishes nothing
        with LocalFile("put", os.fspath(lpath), self.uri(rpath)) as src:
            callback.set_size(src.size)
            chunk, got = chunksize or self._chunk(), 0
            how = "xb" if mode == "create" else "wb"  # "xb": one conditional create (see _CreateUpload)
            with self.open(rpath, how, block_size=chunksize, max_concurrency=concurrency, size=src.size) as dst:
                while got <= src.size and (data := src.read(min(chunk, src.size + 1 - got))):  # a byte past: grown
                    dst.write(data)
                    got += len(data)
                    callback.relative_update(len(data))
                src.check(got)  # raised inside: the upload is discarded

    def get_file(self, rpath: str, lpath: Any, callback: Any = DEFAULT_CALLBACK, outfile: Any = None,
                 **kwargs: Any) -> None:  # fmt: skip
        """Download an object to a local file (or ``outfile``), streamed in blocks
        (``max_concurrency``: blocks fetched ahead at once)."""
        concurrency, _ = _tuning("get_file", kwargs)
        _no_other_args("get_file", rpath, kwargs)
        if outfile is None:  # a key with '..', '.' or empty parts would not land where fsspec means
            uri, parsed, store = self._resolve(rpath)
            localpath.check_key("get", uri, parsed.key)
            if (root := _get_into.get()) is not None:
                localpath.check_inside("get", uri, root, os.fspath(lpath))
            if self._is_dir(parsed, store) if _get_tree.get() else self._prefix_only(rpath):
                os.makedirs(lpath, exist_ok=True)
                return
        with self._reader(rpath, read_ahead=concurrency) as src:
            if outfile is None and src._opened is not None and is_folder_object(src._opened):
                os.makedirs(lpath, exist_ok=True)  # an empty ADLS Gen2 directory, as its HEAD says
                return
            callback.set_size(src.size)
            if outfile is not None:
                for block in _blocks(src, self._chunk(), callback):
                    outfile.write(block)
                return
            # whole or not at all, and a link at lpath is replaced, not written through
            write_file_atomic(os.path.abspath(os.fspath(lpath)), b"", _blocks(src, self._chunk(), callback))

    def put(self, lpath: Any, rpath: Any, recursive: bool = False, callback: Any = DEFAULT_CALLBACK,
            maxdepth: int | None = None, follow_links: bool = False, **kwargs: Any) -> None:  # fmt: skip
        """fsspec's ``put``; below a source directory, what a symbolic link takes outside it is
        skipped with a warning, as :func:`s3dlio.upload` skips it, unless ``follow_links``."""
        source = None if follow_links or isinstance(lpath, list | tuple) else os.path.abspath(stringify_path(lpath))
        token, tree = _put_from.set(source), _put_tree.set(recursive)
        try:
            super().put(lpath, rpath, recursive=recursive, callback=callback, maxdepth=maxdepth, **kwargs)
        finally:
            _put_from.reset(token)
            _put_tree.reset(tree)

    def get(self, rpath: Any, lpath: Any, recursive: bool = False, callback: Any = DEFAULT_CALLBACK,
            maxdepth: int | None = None, **kwargs: Any) -> None:  # fmt: skip
        """fsspec's ``get``; below a destination directory, a path through a symbolic link that
        leaves it is refused, as :func:`s3dlio.download` refuses it. A key that is also a
        prefix (``d/k`` beside ``d/k/x``) is a directory to a recursive get: its children are
        fetched, the object is skipped (s3fs does the same; a file cannot hold them)."""
        into = None if isinstance(lpath, list | tuple) else os.path.abspath(stringify_path(lpath))
        token, tree = _get_into.set(into), _get_tree.set(recursive and maxdepth is None)
        try:
            super().get(rpath, lpath, recursive=recursive, callback=callback, maxdepth=maxdepth, **kwargs)
        finally:
            _get_into.reset(token)
            _get_tree.reset(tree)

    def mv(self, path1: Any, path2: Any, recursive: bool = False, maxdepth: int | None = None,
           **kwargs: Any) -> None:  # fmt: skip
        """Move: a rename on ``file://``/``direct://`` (as ``shutil.move``), else copy then delete.

        Paths are compared as names (``s3://b/k`` is ``b/k``): a path moved onto itself stays
        as it is (fsspec's rule), a directory moved into itself raises OSError before anything
        is copied; the copies are published before the sources are deleted (see ``cp_file``)."""
        if isinstance(path1, str) and isinstance(path2, str):
            path1, path2 = self._strip_protocol(path1), self._strip_protocol(path2)
            if recursive and path2.startswith(path1.rstrip("/") + "/") and path1 != path2:
                raise OSError(errno.EINVAL, f"cannot move {self.uri(path1)} into itself", self.uri(path2))
        one = isinstance(path1, str) and isinstance(path2, str) and not has_magic(path1)
        if self._local and one and maxdepth is None:
            shutil.move(path1, path2)
            return
        super().mv(path1, path2, recursive=recursive, maxdepth=maxdepth, **kwargs)

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        """Copy one object, streamed (never whole in memory). The copy is published when it
        ends, inside ``fs.transaction`` too, as s3fs's server-side copy is: ``mv`` deletes a
        source only once its copy exists. A copy onto itself raises OSError, as in s3fs."""
        _no_other_args("cp_file", path1, kwargs)
        src, dst = self._strip_protocol(path1), self._strip_protocol(path2)
        if src == dst:
            raise OSError(errno.EINVAL, "copy onto itself; nothing was copied or deleted", self.uri(src))
        if self._pending(src) or self._pending(dst):
            raise ValueError(f"cp_file {self.uri(src)} -> {self.uri(dst)}: written earlier in this transaction, "
                             "which has not published it yet; copy it after the transaction")  # fmt: skip
        if self.isdir(src):
            self.makedirs(dst, exist_ok=True)
            return
        with self._reader(src) as reader, self._writer(dst, size=reader.size) as writer:
            _copy(reader, writer, self._chunk(), DEFAULT_CALLBACK)

    # -- files -------------------------------------------------------------------------------
    def open(self, path: Any, mode: str = "rb", block_size: int | None = None, cache_options: Any = None,
             compression: str | None = None, **kwargs: Any) -> Any:  # fmt: skip
        """fsspec's ``open``; a compressed file being written also finishes the object under it
        when it closes (see :class:`_CompressedWriter`), and a text file being written aborts
        it when an exception leaves its ``with`` block (see :class:`_TextWriter`)."""
        if "b" not in mode and "r" not in mode:
            text = {k: kwargs.pop(k) for k in ("encoding", "errors", "newline") if k in kwargs}
            raw = self.open(path, mode.replace("t", "") + "b", block_size=block_size, cache_options=cache_options,
                            compression=compression, **kwargs)  # fmt: skip
            return _TextWriter(raw, **text)
        if compression is None or "b" not in mode or "r" in mode:
            return super().open(path, mode, block_size=block_size, cache_options=cache_options,
                                compression=compression, **kwargs)  # fmt: skip
        from fsspec.compression import compr
        from fsspec.core import get_compression

        raw = super().open(path, mode, block_size=block_size, cache_options=cache_options, **kwargs)
        compressor = compr[get_compression(self._strip_protocol(path), compression)](raw, mode=mode[0])
        return _CompressedWriter(compressor, raw)

    def _open(self, path: str, mode: str = "rb", block_size: int | None = None, autocommit: bool = True,
              cache_options: Any = None, **kwargs: Any) -> Any:  # fmt: skip
        """``autocommit=False`` (what ``fs.transaction`` asks for): the object appears at the
        file's ``commit()``, not at ``close``. ``max_concurrency``: blocks read ahead, or parts
        in flight; ``chunksize``: s3fs's name for ``block_size``."""
        concurrency, chunksize = _tuning("open", kwargs)
        size = kwargs.pop("size", None)  # written: the part size fits it; read: changes nothing
        _no_other_args("open", path, kwargs)
        block_size = block_size or chunksize
        file: Any
        if mode == "rb":
            file = self._reader(path, block_size, concurrency)
        elif mode in ("wb", "xb", "ab"):
            if mode != "wb" and not autocommit and self._pending(path):
                raise ValueError(
                    f"open {self.uri(path)} mode={mode!r}: written earlier in this transaction, which has not "
                    "published it yet; write it whole once ('wb'), or append after the transaction"
                )
            if mode == "xb" and self.exists(path):  # early; the create itself is conditional (see _writer)
                raise FileExistsError(errno.EEXIST, "object exists", self.uri(path))
            if mode == "ab":
                file = self._appender(path, block_size, concurrency)
            else:
                file = self._writer(path, block_size, concurrency, create=mode == "xb", size=size)
            if not autocommit:
                file = _DeferredFile(file)
        else:
            file = None
        if file is not None:
            file.fs, file.path, file.mode = self, self._strip_protocol(path), mode
            return file
        raise ValueError(
            f"open {self.uri(path)} mode={mode!r}: use 'rb', 'wb', 'xb' or 'ab' (objects are written "
            "whole, never updated in place)"
        )

    def _pending(self, path: str) -> bool:
        """True when the current transaction holds a file for ``path`` not yet published."""
        name = self._strip_protocol(path)
        files = self._transaction.files if self._transaction is not None else ()
        return any(getattr(f, "path", None) == name for f in files)

    def _appender(self, path: str, part_size: int | None, max_in_flight: int | None) -> _FileWriter:
        """A writer that starts with the object's current bytes, as s3fs's ``"ab"``: the old
        object is streamed into a new upload, which replaces it on ``close`` only if it is still
        the version read (see :class:`_AppendUpload`); a new object is made only where none is
        (as ``"xb"``). Of two files appending at once, the second to close gets an error
        instead of silently dropping the first one's bytes."""
        try:
            src = self._reader(path)
        except FileNotFoundError:
            return self._writer(path, part_size, max_in_flight, create=True)
        with src:
            opened = src._opened
            writer = self._writer(path, part_size, max_in_flight, expect=opened.etag if opened else None)
            try:
                _copy(src, writer, self._chunk(), DEFAULT_CALLBACK)
            except BaseException:
                writer.abort()
                raise
        return writer

    def _reader(self, path: str, block_size: int | None = None, read_ahead: int | None = None,
                size: int | None = None) -> _SeekingReader:  # fmt: skip
        """A reader of ``path`` (``size`` given: no HEAD, its ETag is the first block's)."""
        uri, parsed, store = self._resolve(path)
        if parsed.is_prefix:
            raise IsADirectoryError(errno.EISDIR, "is a directory", uri)
        block = block_size or self.default_block_size
        ahead = {} if read_ahead is None else {"read_ahead": read_ahead}
        return _SeekingReader(uri, store, parsed.key, config=store.config, block_size=block, size=size, **ahead)

    def _writer(self, path: str, part_size: int | None = None, max_in_flight: int | None = None,
                create: bool = False, size: int | None = None, expect: str | None = None) -> _FileWriter:  # fmt: skip
        """What :func:`s3dlio.open_writer` returns, on this filesystem's store (``create``: the
        object is made only where none is, see :class:`_CreateUpload`; ``expect``: only over
        the version of that ETag, see :class:`_AppendUpload`; ``size``, when known: the part
        size is raised where the store allows too few parts for it)."""
        uri, parsed, store = self._resolve(path)
        if parsed.is_prefix:
            raise IsADirectoryError(errno.EISDIR, "is a directory", uri)
        config = store.config
        upload = open_upload_for(store, parsed.key, part_size=part_size, size=size)
        if create:
            upload = _CreateUpload(uri, store, parsed.key, upload)
        elif expect is not None:
            upload = _AppendUpload(uri, store, parsed.key, upload, expect)
        return _FileWriter(uri, store, parsed.key, upload, max_in_flight=max_in_flight or min(8, config.max_in_flight),
                           attempts=config.max_attempts, verify=verify_enabled(None))  # fmt: skip

    def _chunk(self) -> int:
        """Bytes per read/write when streaming: the configured part size."""
        return (self.config or default_config()).part_size

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.scheme}://>"


#: Reads after a seek at least this large fetch exactly their bytes (smaller ones use blocks).
_EXACT_MIN = 16 * 1024


class _FileAttributes:
    """The attributes of fsspec's own files that callers read (``f.fs``, ``f.path``, ``f.mode``,
    ``f.blocksize``, ``f.loc``, ``f.info()``); set by :meth:`S3dlioFileSystem._open`."""

    fs: S3dlioFileSystem
    path: str
    mode: str
    #: False for a file of ``fs.transaction``: it is published at ``commit()``.
    autocommit = True

    def flush(self, force: bool = False) -> None:
        """No-op (``force``, fsspec's "last flush", too): parts go up as they fill, and the
        object is published at ``close`` (or ``commit``)."""

    @property
    def loc(self) -> int:
        return self.tell()  # type: ignore[attr-defined,no-any-return]

    @property
    def blocksize(self) -> int:
        return self._block if isinstance(self, ObjectReader) else self._part_size  # type: ignore[attr-defined,no-any-return]

    @property
    def details(self) -> dict[str, Any]:
        return self.fs.info(self.path)

    def info(self) -> dict[str, Any]:
        return self.details


def _exception_leaving_openfile() -> BaseException | None:
    """The exception leaving the ``with`` block of an fsspec ``OpenFile`` (``fsspec.open``,
    pandas' and pyarrow's writes) when that is what closes the caller's file; else None.

    ``OpenFile.__exit__(*args)`` closes its files (text wrapper, compressor, ours) without
    passing the exception on, and a plain ``close`` publishes: half a file, where ``with
    fs.open(...)`` leaves the old object. Its frame still holds the exception, two or three
    frames up (C frames, a ``TextIOWrapper.close``, have none), so our ``close`` can abort
    instead. A ``close`` called anywhere else, an ``except`` block included, is a close."""
    frame: FrameType | None = sys._getframe(1)
    for _ in range(5):  # from our caller up: a native thread (pyarrow's writer) may have no more
        if frame is None:
            return None
        if frame.f_code is OpenFile.__exit__.__code__:
            args = frame.f_locals.get("args", ())
            return args[1] if len(args) == 3 and isinstance(args[1], BaseException) else None
        frame = frame.f_back
    return None


class _FileWriter(_FileAttributes, ObjectWriter):
    """:class:`ObjectWriter` with fsspec's file attributes."""

    def close(self) -> None:
        """Publish the object, unless this ends an ``fsspec.open`` block left by an exception:
        then abort, as ``with fs.open(...)`` would."""
        if not self.closed and _exception_leaving_openfile() is not None:
            self._abort_quietly()
            return
        super().close()


class _TextWriter(io.TextIOWrapper):
    """A text file being written over an object file. ``io.TextIOWrapper``'s ``with`` closes
    its buffer whatever happened, which would publish half the text over the old object; an
    exception leaving this one's ``with`` block aborts the object under it instead, as in
    binary mode. A text file dropped without ``close`` is closed (published) by ``io``, as before."""

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None:
            self.close()
        else:
            raw: Any = self.buffer
            raw.__exit__(kind, exc, tb)  # text not yet flushed goes nowhere


#: ``xb`` writes up to this size are held in memory and go up as one conditional request.
_CREATE_WHOLE = 64 * 1024 * 1024


class _CreateUpload:
    """An :class:`~s3dlio.store.base.Upload` that makes its object only where none is (``xb``,
    ``put_file(mode="create")``): of writers racing, exactly one succeeds and the others get
    :class:`~s3dlio.errors.AlreadyExistsError` (a FileExistsError).

    An existence check before writing leaves the whole write as a window for another writer:
    measured, 6 to 7 of 8 racing processes "won". Objects up to :data:`_CREATE_WHOLE` are held
    in memory and sent with the store's ``put_new``, one conditional request (S3
    ``If-None-Match: *``, Azure's, a hard link on files). The stores' multipart uploads offer
    no conditional completion, so a larger object streams as usual and is checked just before
    it completes: a writer racing within that last moment can still replace it."""

    def __init__(self, uri: str, store: Store, key: str, upload: Upload) -> None:
        self.part_size, self.max_parts, self.retry_parts = upload.part_size, upload.max_parts, upload.retry_parts
        self._uri, self._store, self._key, self._upload = uri, store, key, upload
        self._held: dict[int, bytes] = {}  # parts kept in memory, until the object outgrows them
        self._streaming = False
        self._sent = False  # a create was sent: its reply may have been lost
        self._lock = threading.Lock()

    def upload_part(self, index: int, offset: int, data: memoryview) -> None:
        with self._lock:
            held: dict[int, bytes] = {}
            if not self._streaming:
                if offset + len(data) <= _CREATE_WHOLE:
                    self._held[index] = data.tobytes()  # the writer reuses its buffer
                    return
                self._streaming, held, self._held = True, self._held, {}
        for i in sorted(held):  # the parts held so far go first (a streaming upload takes them in order)
            self._upload.upload_part(i, i * self.part_size, memoryview(held.pop(i)))
        self._upload.upload_part(index, offset, data)

    def complete(self, size: int) -> None:
        if self._streaming:
            try:
                self._store.head(self._key)
            except NotFoundError:
                self._upload.complete(size)
                return
            raise AlreadyExistsError(f"put {self._uri}: already exists")
        body = b"".join(self._held[i] for i in sorted(self._held))
        if len(body) != size:
            raise ValueError(f"put {self._uri}: parts hold {len(body)} bytes, expected {size}")
        self.put_whole(memoryview(body))

    def put_whole(self, data: memoryview) -> None:
        """One conditional request. The writer retries one that failed in transit; an object
        found then holding exactly these bytes is that earlier attempt's."""
        again, self._sent = self._sent, True
        try:
            self._store.put_new(self._key, data)
        except AlreadyExistsError:
            with contextlib.suppress(NotFoundError):
                if again and memoryview(self._store.get(self._key)).cast("B") == data.cast("B"):
                    return
            raise

    def abort(self) -> None:
        with self._lock:
            self._held.clear()
        self._upload.abort()


class _AppendUpload:
    """An :class:`~s3dlio.store.base.Upload` that replaces its object only while the object is
    still the version of ETag ``expect``, the one an ``"ab"`` file read: a writer that appended
    and closed meanwhile would otherwise lose its bytes without a word (two workers appending
    to one log). The stores offer no conditional replace (If-Match), so a HEAD just before the
    object is published checks it: a writer closing within that last moment can still be lost.
    A changed object raises :class:`~s3dlio.retry.ChangedError` and nothing is written."""

    def __init__(self, uri: str, store: Store, key: str, upload: Upload, expect: str) -> None:
        self.part_size, self.max_parts, self.retry_parts = upload.part_size, upload.max_parts, upload.retry_parts
        self._uri, self._store, self._key, self._upload, self._expect = uri, store, key, upload, expect
        self._sent = False  # a put was sent: its reply may have been lost

    def upload_part(self, index: int, offset: int, data: memoryview) -> None:
        self._upload.upload_part(index, offset, data)

    def complete(self, size: int) -> None:
        self._check()
        self._upload.complete(size)

    def put_whole(self, data: memoryview) -> None:
        """The writer retries one that failed in transit: an object found then holding exactly
        these bytes is that earlier attempt's."""
        again, self._sent = self._sent, True
        try:
            self._check()
        except ChangedError:
            with contextlib.suppress(NotFoundError):
                if again and memoryview(self._store.get(self._key)).cast("B") == data.cast("B"):
                    return
            raise
        self._upload.put_whole(data)

    def abort(self) -> None:
        self._upload.abort()

    def _check(self) -> None:
        try:
            now: str | None = self._store.head(self._key).etag
        except NotFoundError:
            now = None
        if bare_etag(now) != bare_etag(self._expect):
            error = ChangedError(
                f"append {self._uri}: the object changed since this file read it (ETag {self._expect} -> {now}): "
                "another writer replaced or appended to it; nothing was written, since replacing it would lose "
                "that writer's bytes. Open it again with 'ab' and write again"
            )
            error.retried = True  # the same write can never succeed
            raise error


def _reopen(fs: S3dlioFileSystem, path: str, block: int, size: int, etag: str | None, pos: int) -> _SeekingReader:
    """An unpickled ``rb`` file: ``path`` again at ``pos``, expecting the version pickled (no
    request here; a read of a replaced object raises, as within one reader)."""
    file = fs._reader(path, block, size=size)
    file._version = ranged.Version(file.name, etag)
    file.fs, file.path, file.mode = fs, path, "rb"
    file.seek(pos)
    return file


class _DeferredFile(_FileAttributes, io.BufferedIOBase):
    """A file opened inside ``fs.transaction`` (``autocommit=False``): its parts go up as it is
    written and ``close`` sends the rest, but the object appears only at :meth:`commit`, which
    fsspec calls when the transaction ends; :meth:`discard` (an error in the transaction, or
    in this file's ``with`` block) aborts it, leaving any old object as it was."""

    autocommit = False

    def __init__(self, writer: _FileWriter) -> None:
        super().__init__()
        self._writer = writer
        self._closed = False
        self._discarded = False

    @property
    def blocksize(self) -> int:
        return self._writer.blocksize

    def writable(self) -> bool:
        return True

    @property
    def closed(self) -> bool:
        return self._closed

    def write(self, data: Buffer) -> int:
        if self._closed:
            raise ValueError(f"{self._writer.name}: write to a closed file")
        return self._writer.write(data)

    def tell(self) -> int:
        return self._writer.tell()

    def close(self) -> None:
        if not self._closed and _exception_leaving_openfile() is not None:
            self.discard()  # the end of an fsspec.open block an exception left (see _FileWriter.close)
        self._closed = True

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None:
            self.close()
        else:
            self.discard()

    def commit(self) -> None:
        """Complete the object (fsspec calls this as the transaction ends)."""
        if self._discarded:
            raise ValueError(f"commit {self._writer.name}: the file was discarded; nothing can be published")
        self._closed = True
        self._writer.close()

    def discard(self) -> None:
        """Abort the upload: the object is not created, an old one keeps its bytes; the
        transaction then leaves this file out."""
        self._discarded = self._closed = True
        self._writer.abort()
        transaction = getattr(getattr(self, "fs", None), "_transaction", None)
        if transaction is not None and self in transaction.files:
            transaction.files.remove(self)


class _CompressedWriter(io.BufferedIOBase):
    """A compressor writing into an object file. gzip's, bz2's and lzma's files leave the file
    under them open when they close, and an s3dlio file dropped open is aborted, never
    published (it may hold half of what was meant): closing this one ends the compressed
    stream, then the object; an exception leaving its ``with`` block aborts the object."""

    def __init__(self, compressor: Any, raw: Any) -> None:
        super().__init__()
        self._compressor, self._raw = compressor, raw

    def writable(self) -> bool:
        return True

    @property
    def closed(self) -> bool:
        return bool(self._compressor.closed)

    def write(self, data: Buffer) -> int:
        return int(self._compressor.write(data))

    def flush(self) -> None:
        self._compressor.flush()

    def close(self) -> None:
        if self.closed:
            return
        try:
            self._compressor.close()
        except BaseException as exc:
            self._raw.__exit__(type(exc), exc, exc.__traceback__)  # the object is not published
            raise
        self._raw.close()

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None:
            self.close()
            return
        self._raw.__exit__(kind, exc, tb)
        with contextlib.suppress(Exception):  # its end of stream has nowhere to go now
            self._compressor.close()

    def __del__(self) -> None:
        pass  # not IOBase's close(): the file under it, dropped open, aborts itself

    def __getattr__(self, name: str) -> Any:
        return getattr(self._compressor, name)  # its name, mode, fileobj...


class _SeekingReader(_FileAttributes, ObjectReader):
    """A reader whose reads after a seek fetch exactly the bytes asked for.

    pyarrow (Parquet, ORC, Feather) reads a footer, then each column chunk it needs, every
    read after a seek. In whole blocks (8 MiB) these fetch up to a block around each chunk:
    nearly all of a file for two of its columns, and each read copied out of its blocks twice.
    Reads that continue the previous one (CSV, pickle, ``get_file``), reads inside blocks
    already fetched and small reads (h5py's metadata) keep the blocks and their read-ahead.
    """

    _fsspec_cache: Any = None

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickles as s3fs's files do (dask and xarray ship open files to workers): the copy
        opens the path again at the same position, and reads the same version or raises."""
        return _reopen, (self.fs, self.path, self._block, self._size, self._version.etag, self._pos)

    @property
    def closed(self) -> bool:
        return bool(super().closed)

    @closed.setter
    def closed(self, value: bool) -> None:
        if value:  # fsspec's caches mark their file closed, as fsspec's own files allow
            self.close()

    @property
    def cache(self) -> Any:
        """fsspec's local block cache, which ``blockcache::`` puts here (None: none)."""
        return self._fsspec_cache

    @cache.setter
    def cache(self, cache: Any) -> None:
        # every block then comes from it, on this thread (it is not thread-safe: no read-ahead)
        self._fsspec_cache, self._ahead, self._fill_directly = cache, 0, False
        for future in self._blocks.values():
            future.cancel()
        self._blocks.clear()

    def _fetch(self, index: int) -> Buffer:
        if self._fsspec_cache is None:
            return super()._fetch(index)
        start = index * self._block
        return self._fsspec_cache._fetch(start, min(start + self._block, self._size))  # type: ignore[no-any-return]

    def _fetch_range(self, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` of the object: how fsspec's caches ask their file for blocks."""
        end = min(end, self._size)
        if end <= start:
            return b""
        data = ranged.fetch_block(self._store, self._key, start, end, attempts=self._config.max_attempts,
                                  version=self._version)  # fmt: skip
        return bytes(memoryview(data))

    def read(self, size: int | None = -1) -> bytes:
        data = self._exact(size)
        return super().read(size) if data is None else bytes(memoryview(data))

    def read_buffer(self, nbytes: int | None = None) -> Buffer:
        """``read`` without its copy into ``bytes``: pyarrow calls this when a file has it and
        keeps the buffer it gets (a whole Parquet file read after its footer: 9 MB each)."""
        data = self._exact(nbytes)
        return super().read(nbytes) if data is None else data

    def _exact(self, size: int | None) -> Buffer | None:
        """The bytes of a read after a seek, fetched exactly; None for a read the blocks serve."""
        self._check_open()
        start = self._pos
        n = self._size - start if size is None or size < 0 else min(size, max(0, self._size - start))
        if n < _EXACT_MIN or start == self._last_end or self._held(start, start + n) or not self._fill_directly:
            return None
        data: Buffer
        if n >= 2 * self._block:
            data = bytearray(n)
            ranged.fill(self._store, self._key, start, memoryview(data), config=self._config, uri=self.name,
                        before=self._opened)  # fmt: skip
        else:
            data = ranged.fetch_block(self._store, self._key, start, start + n, attempts=self._config.max_attempts,
                                      version=self._version)  # fmt: skip
        self._pos = self._last_end = start + memoryview(data).nbytes  # a read continuing from here is sequential
        return data

    def _held(self, start: int, end: int) -> bool:
        """True when blocks fetched (or being fetched) hold all of ``[start, end)``."""
        first, last = start // self._block, (end - 1) // self._block
        return all(i in self._blocks for i in range(first, last + 1))


def _fixed_part(path: str) -> str:
    """The directory before the first glob character of ``path`` (``/a/b`` of ``/a/b/*/c``)."""
    magic = next((i for i, c in enumerate(path) if c in "*?["), None)
    return path if magic is None else path[:magic].rpartition("/")[0]


def _blocks(src: Any, chunk: int, callback: Any) -> Iterator[bytes]:
    """``src`` read to its end in blocks of ``chunk`` bytes, each counted on ``callback``."""
    while data := src.read(chunk):
        yield data
        callback.relative_update(len(data))


def _copy(src: Any, dst: Any, chunk: int, callback: Any) -> None:
    for data in _blocks(src, chunk, callback):
        dst.write(data)


class S3FileSystem(S3dlioFileSystem):
    """``s3://bucket/key`` through s3dlio (``AWS_ENDPOINT_URL``, ``AWS_CA_BUNDLE_PATH``... apply)."""

    scheme = "s3"
    protocol = ("s3", "s3a")


class AzureFileSystem(S3dlioFileSystem):
    """``az://container/key`` through s3dlio; adlfs's ``abfs://`` and ``abfss://`` too, and its
    ``container@account.dfs.core.windows.net/key`` form (the account becomes ``account_name``)."""

    scheme = "az"
    protocol = ("az", "abfs", "abfss")
    _mkdir_exist_ok = True  # adlfs: mkdir of an existing container passes

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        path = super()._strip_protocol(path)
        if isinstance(path, str):
            container, sep, rest = path.partition("/")
            path = container.split("@", 1)[0] + sep + rest
        return path

    @staticmethod
    def _get_kwargs_from_urls(path: str) -> dict[str, Any]:
        """``abfs://container@account.dfs.core.windows.net/key``: account_name="account"."""
        container = stringify_path(path).split("://", 1)[-1].split("/", 1)[0]
        _, at, host = container.partition("@")
        return {"account_name": host.split(".", 1)[0]} if at and host else {}


class MemoryFileSystem(S3dlioFileSystem):
    """``mem://name/key``: s3dlio's in-process store."""

    scheme = "mem"
    protocol = ("mem",)


class LocalFileSystem(S3dlioFileSystem):
    """``file:///abs/path`` through s3dlio (atomic writes: a reader never sees half a file)."""

    scheme = "file"
    protocol = ("file",)
    root_marker = "/"
    _local = True


class DirectFileSystem(S3dlioFileSystem):
    """``direct:///abs/path``: files with O_DIRECT."""

    scheme = "direct"
    protocol = ("direct",)
    root_marker = "/"
    _local = True


#: The filesystem class of each s3dlio scheme.
FILESYSTEMS: dict[str, type[S3dlioFileSystem]] = {
    cls.scheme: cls
    for cls in (S3FileSystem, AzureFileSystem, MemoryFileSystem, LocalFileSystem, DirectFileSystem)
}
DEFAULT_SCHEMES = ("s3", "az", "mem", "direct")


def filesystem(scheme: str, config: Config | None = None, **options: Any) -> S3dlioFileSystem:
    """An s3dlio filesystem for ``scheme`` (``"s3"``, ``"az"``, ``"file"``, ``"mem"``, ``"direct"``)."""
    try:
        cls = FILESYSTEMS[scheme]
    except KeyError:
        raise ValueError(f"scheme {scheme!r}: s3dlio serves {sorted(FILESYSTEMS)}") from None
    return cls(config, **options)


def register(schemes: str | Iterable[str] = DEFAULT_SCHEMES, *, clobber: bool = True) -> None:
    """Make ``fsspec.filesystem(scheme)`` (and ``fsspec.open("s3://...")``) use s3dlio.

    By default ``s3``, ``az`` (replacing s3fs/adlfs when ``clobber``), ``mem`` and ``direct``;
    ``file`` only when asked (``register(["file"])``), since other libraries expect fsspec's
    own local filesystem class. etils.epath (Orbax's paths) is pointed at fsspec for these
    schemes too: its cached filesystems are dropped and, when ``s3``/``az`` are registered and
    TensorFlow is installed, ``EPATH_USE_TF=false`` is set in ``os.environ`` (else epath would
    send ``s3://`` and ``az://`` to TensorFlow's gfile; it then sends ``gs://`` to fsspec too).
    """
    names = [schemes] if isinstance(schemes, str) else list(schemes)
    for name in names:
        if name not in FILESYSTEMS:
            raise ValueError(f"register({name!r}): s3dlio serves {sorted(FILESYSTEMS)}")
    for name in names:  # with s3fs's s3a:// and adlfs's abfs:// and abfss://
        for protocol in FILESYSTEMS[name].protocol:
            fsspec.register_implementation(protocol, FILESYSTEMS[name], clobber=clobber)
    _point_epath_at_fsspec(epath_schemes=bool({"s3", "az"} & set(names)))


def _point_epath_at_fsspec(epath_schemes: bool) -> None:
    backend = sys.modules.get("etils.epath.backend")
    if backend is not None:
        backend._FileSystemSpecBackend._get_filesystem.cache_clear()
    if epath_schemes and importlib.util.find_spec("tensorflow") is not None:
        os.environ["EPATH_USE_TF"] = "false"
