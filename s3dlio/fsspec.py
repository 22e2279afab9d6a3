"""An fsspec filesystem on s3dlio: pandas, pyarrow, zarr, etils.epath and Orbax read through it.

>>> import fsspec, s3dlio.fsspec                                    # doctest: +SKIP
>>> s3dlio.fsspec.register()                 # s3://, az://, mem://, direct:// -> s3dlio
>>> with fsspec.open("s3://bucket/table.csv", "rb") as f:            # doctest: +SKIP
...     head = f.read(100)

Paths follow fsspec's convention: without the scheme (``bucket/key``; ``/abs/path`` for files).
Object stores have no directories: a "directory" is a prefix with objects under it, so
``mkdir`` writes nothing and an empty directory does not exist (as in s3fs); ``file://`` and
``direct://`` make real ones. Files open ``rb`` (a seekable reader fetching blocks by range,
with read-ahead; a read after a seek, such as pyarrow's of a Parquet footer or column chunk,
fetches exactly its bytes), ``wb``/``xb`` (a streaming writer: the object appears on ``close``, an
exception inside ``with`` leaves nothing) or ``ab`` (as s3fs: the object is streamed into a
new upload, then appended to). ``cat_ranges`` and ``cat`` of many paths fetch concurrently
within the client's limits. Nothing is cached between calls, so a listing always shows what
the store holds. The framework packages register these classes when imported
(:mod:`s3dlio.fsspec_registry`); fsspec's own abstract suite runs against them in the tests.
"""

from __future__ import annotations

import errno
import importlib.util
import os
import shutil
import sys
from collections.abc import Callable, Iterable, Sequence
from glob import has_magic
from typing import TYPE_CHECKING, Any, ClassVar

try:
    import fsspec
    from fsspec.callbacks import DEFAULT_CALLBACK
    from fsspec.spec import AbstractFileSystem
    from fsspec.utils import stringify_path
except ImportError as exc:  # pragma: no cover - exercised only without the dependency
    raise ImportError("s3dlio.fsspec needs fsspec: pip install fsspec (or 's3dlio[jax]')") from exc

from . import _parallel, localpath, ranged
from .config import Config, default_config
from .errors import ConfigError, NotFoundError
from .ops import list_buckets, resolve
from .reader import ObjectReader
from .store import ObjectMeta, Store
from .uri import ObjectUri, parse
from .verify import verify_enabled
from .writer import ObjectWriter

if TYPE_CHECKING:
    from collections.abc import Buffer

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

#: Storage options fsspec itself takes (instance cache, listings cache); passed through.
_FSSPEC_OPTIONS = frozenset(
    {"skip_instance_cache", "use_listings_cache", "listings_expiry_time", "max_paths", "asynchronous", "loop"}
)
#: s3fs/adlfs/botocore option names -> s3dlio Config fields, so ``storage_options`` written for
#: them work.
_ALIASES = {
    "key": "access_key_id",
    "secret": "secret_access_key",
    "token": "session_token",
    "aws_access_key_id": "access_key_id",
    "aws_secret_access_key": "secret_access_key",
    "aws_session_token": "session_token",
    "region_name": "region",
    "account_name": "azure_account_name",
    "account_key": "azure_account_key",
    "connection_string": "azure_connection_string",
}
#: s3fs/adlfs options that only tune fsspec's own file caches: s3dlio's reader always reads
#: ahead in blocks, so they are accepted and have no effect.
_CACHE_HINTS = frozenset({"default_cache_type", "default_fill_cache", "cache_regions"})
#: s3fs/adlfs options s3dlio has no equivalent for, with what to use instead.
_REJECTED = {
    "session": "pass key=, secret=, token= or profile= (an aiobotocore session is not used)",
    "requester_pays": "s3dlio does not send x-amz-request-payer; use a bucket you own",
    "version_aware": "s3dlio reads the current version of each object only",
    "s3_additional_kwargs": "s3dlio sends no extra request parameters (SSE and ACLs follow the bucket policy)",
    "sas_token": "pass connection_string='BlobEndpoint=...;SharedAccessSignature=<token>'",
    **dict.fromkeys(
        ("credential", "tenant_id", "client_id", "client_secret"),
        "without account_key= or connection_string=, s3dlio signs in with azure-identity's "
        "DefaultAzureCredential, which reads AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET",
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
    """s3fs/adlfs storage options as s3dlio Config fields; unsupported ones are named with their fix."""
    client = dict(options.pop("client_kwargs", None) or {})
    boto = options.pop("config_kwargs", None) or {}
    anon = options.pop("anon", False)
    use_ssl = options.pop("use_ssl", True)
    verify = client.pop("verify", None)
    for name in _CACHE_HINTS:
        options.pop(name, None)
    for name in options:
        if name in _REJECTED:
            raise ConfigError(f"storage option {name}=...: {_REJECTED[name]}")
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


def _config_from(config: Config | None, options: dict[str, Any]) -> Config | None:
    """``config`` with ``options`` (Config fields, s3fs/adlfs names, ``client_kwargs``...) applied."""
    changes = _translate(options)
    known = set(Config.__dataclass_fields__)
    unknown = sorted(set(changes) - known)
    if unknown:
        raise TypeError(
            f"s3dlio filesystem: unknown storage option(s) {unknown}; use Config fields ({sorted(known)}) "
            f"or the s3fs/adlfs names {sorted([*_ALIASES, 'client_kwargs', 'config_kwargs', 'use_ssl'])}"
        )
    if not changes:
        return config
    return (config or default_config()).replace(**changes)


class S3dlioFileSystem(AbstractFileSystem):
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
    #: Instances are cheap (stores are cached by s3dlio); fsspec's cache token would not see
    #: a Config's secrets, so instances are never shared.
    cachable = False
    _local: ClassVar[bool] = False

    def __init__(self, config: Config | None = None, *, client: Client | None = None, **options: Any) -> None:
        if client is not None:
            if config is not None:
                raise ConfigError("fsspec: pass config= or client=, not both")
            config = client.config
        passthrough = {k: options.pop(k) for k in list(options) if k in _FSSPEC_OPTIONS}
        super().__init__(**passthrough)
        block = options.pop("default_block_size", None)
        #: Bytes per ranged GET of files opened ``rb`` (s3fs's name; default: the part size).
        self.default_block_size: int | None = int(block) if block else None
        self.config = _config_from(config, options)

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
        """The fsspec path of ``key`` in the store of ``parsed``."""
        key = key.rstrip("/")
        return "/" + key if self._local else f"{parsed.bucket}/{key}".rstrip("/")

    def _file(self, parsed: ObjectUri, meta: ObjectMeta) -> dict[str, Any]:
        return {
            "name": self._name(parsed, meta.key),
            "size": meta.size,
            "type": "file",
            "mtime": meta.last_modified,
            "etag": meta.etag,
        }

    def _dir(self, name: str) -> dict[str, Any]:
        return {"name": name, "size": 0, "type": "directory"}

    # -- metadata ----------------------------------------------------------------------------
    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        """Size, type (``file``/``directory``), ``mtime`` and ``etag`` of ``path``."""
        name = self._strip_protocol(path)
        if not self._local and not name:
            return self._dir("")  # the root: all buckets
        uri, parsed, store = self._resolve(name)
        if parsed.key and not parsed.is_prefix:
            try:
                return self._file(parsed, store.head(parsed.key))
            except (NotFoundError, IsADirectoryError):
                pass
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
            self.info(path)
        except FileNotFoundError:
            return False
        return True

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

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        """One level under ``path``: objects and common prefixes (as directories)."""
        if not self._local and not self._strip_protocol(path):
            return self._ls_buckets(detail)
        uri, parsed, store = self._resolve(path)
        prefix = parsed.key.rstrip("/") + "/" if parsed.key else ""
        entries: list[dict[str, Any]] = []
        try:
            for item in store.list(prefix, delimiter=True):
                if isinstance(item, str):
                    if item != prefix:
                        entries.append(self._dir(self._name(parsed, item)))
                elif not item.key.endswith("/"):  # skip S3 folder markers ("dir/")
                    entries.append(self._file(parsed, item))
        except NotFoundError:
            entries = []
        if not entries:
            info = self.info(path)  # FileNotFoundError when nothing is there
            entries = [info] if info["type"] == "file" else []
        return entries if detail else [e["name"] for e in entries]

    def _ls_buckets(self, detail: bool) -> list[Any]:
        names = [u.split("://", 1)[1] for u in list_buckets(f"{self.scheme}://")]
        return [self._dir(n) for n in names] if detail else names

    def find(
        self,
        path: str,
        maxdepth: int | None = None,
        withdirs: bool = False,
        detail: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Everything below ``path``: one recursive listing on object stores."""
        name = self._strip_protocol(path)
        if self._local or maxdepth is not None or not name:
            return super().find(path, maxdepth=maxdepth, withdirs=withdirs, detail=detail, **kwargs)
        uri, parsed, store = self._resolve(path)
        prefix = parsed.key.rstrip("/") + "/" if parsed.key else ""
        found: dict[str, dict[str, Any]] = {}
        try:
            for item in store.list(prefix):
                if isinstance(item, str):
                    continue
                entry = self._file(parsed, item)
                marker = item.key.endswith("/")  # an S3 folder marker: a directory, not a file
                if not marker:
                    found[entry["name"]] = entry
                if withdirs:
                    self._add_parents(found, name, entry["name"] + ("/" if marker else ""))
        except NotFoundError:
            pass
        if withdirs and found:
            found[name] = self._dir(name)
        if not found:
            try:
                info = self.info(path)
            except FileNotFoundError:
                info = None
            if info is not None and info["type"] == "file":
                found[name] = info
        names = sorted(found)
        return {n: found[n] for n in names} if detail else names

    def _add_parents(self, found: dict[str, dict[str, Any]], root: str, name: str) -> None:
        """Add the directories between ``root`` and ``name`` (exclusive) to ``found``."""
        parent = name.rsplit("/", 1)[0]
        while len(parent) > len(root) and parent not in found:
            found[parent] = self._dir(parent)
            parent = parent.rsplit("/", 1)[0]

    # -- directories -------------------------------------------------------------------------
    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        """Make a directory on ``file://``/``direct://``; nothing to do on object stores."""
        if self._local:
            target = self._strip_protocol(path)
            if create_parents:
                os.makedirs(target, exist_ok=True)
            else:
                os.mkdir(target)

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        if not exist_ok and self.isdir(path):
            raise FileExistsError(errno.EEXIST, "directory exists", self.uri(path))
        self.mkdir(path, create_parents=True)

    def rmdir(self, path: str) -> None:
        """Remove an empty directory (object stores: nothing to do; a non-empty one is an error)."""
        if self._local:
            os.rmdir(self._strip_protocol(path))
        elif self.isdir(path):
            raise OSError(errno.ENOTEMPTY, "directory not empty", self.uri(path))

    # -- deleting ----------------------------------------------------------------------------
    def rm_file(self, path: str) -> None:
        uri, parsed, store = self._resolve(path)
        if self._local and os.path.isdir("/" + parsed.key):
            os.rmdir("/" + parsed.key)
            return
        store.delete(parsed.key)

    def _rm(self, path: str) -> None:
        self.rm_file(path)

    def rm(self, path: Any, recursive: bool = False, maxdepth: int | None = None) -> None:
        """Delete objects; a directory needs ``recursive=True`` (deleted in batches of 1000)."""
        paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
        for one in paths:
            name = self._strip_protocol(one)
            if maxdepth is not None or has_magic(name):
                super().rm(one, recursive=recursive, maxdepth=maxdepth)
                continue
            info = self.info(name)
            if info["type"] == "file":
                self.rm_file(name)
            elif not recursive:
                raise IsADirectoryError(errno.EISDIR, "is a directory; use recursive=True", self.uri(name))
            else:
                self._rm_tree(name)

    def _rm_tree(self, name: str) -> None:
        if self._local:
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
        :func:`s3dlio.get`.
        """
        uri, parsed, store = self._resolve(path)
        if start is None and end is None:
            if store.in_process:
                return bytes(memoryview(store.get(parsed.key)))
            return bytes(memoryview(ranged.get(store, parsed.key, config=store.config, uri=uri)))
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
        """Write ``value`` as the object ``path`` (``mode="create"``: fail if it exists)."""
        if mode == "create" and self.exists(path):
            raise FileExistsError(errno.EEXIST, "object exists", self.uri(path))
        uri, parsed, store = self._resolve(path)
        store.put(parsed.key, value)

    def put_file(self, lpath: str, rpath: str, callback: Any = DEFAULT_CALLBACK, mode: str = "overwrite",
                 **kwargs: Any) -> None:  # fmt: skip
        """Upload a local file, streamed in parts."""
        if os.path.isdir(lpath):
            self.makedirs(rpath, exist_ok=True)
            return
        if mode == "create" and self.exists(rpath):
            raise FileExistsError(errno.EEXIST, "object exists", self.uri(rpath))
        callback.set_size(os.path.getsize(lpath))
        with open(lpath, "rb") as src, self._writer(rpath) as dst:
            _copy(src, dst, self._chunk(), callback)

    def get_file(self, rpath: str, lpath: Any, callback: Any = DEFAULT_CALLBACK, outfile: Any = None,
                 **kwargs: Any) -> None:  # fmt: skip
        """Download an object to a local file (or ``outfile``), streamed in blocks."""
        if outfile is None and self.isdir(rpath):
            os.makedirs(lpath, exist_ok=True)
            return
        if outfile is None:  # a key with '..', '.' or empty parts would not land where fsspec means
            uri = self.uri(rpath)
            localpath.check_key("get", uri, parse(uri).key)
        with self._reader(rpath) as src:
            callback.set_size(src.size)
            if outfile is not None:
                _copy(src, outfile, self._chunk(), callback)
                return
            lpath = os.fspath(lpath)
            os.makedirs(os.path.dirname(os.path.abspath(lpath)), exist_ok=True)
            with open(lpath, "wb") as dst:
                _copy(src, dst, self._chunk(), callback)

    def mv(self, path1: Any, path2: Any, recursive: bool = False, maxdepth: int | None = None,
           **kwargs: Any) -> None:  # fmt: skip
        """Move: a rename on ``file://``/``direct://`` (as ``shutil.move``), else copy then delete."""
        one = isinstance(path1, str) and isinstance(path2, str) and not has_magic(path1)
        if self._local and one and maxdepth is None:
            shutil.move(self._strip_protocol(path1), self._strip_protocol(path2))
            return
        super().mv(path1, path2, recursive=recursive, maxdepth=maxdepth, **kwargs)

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        """Copy one object, streamed (never whole in memory)."""
        if self.isdir(path1):
            self.makedirs(path2, exist_ok=True)
            return
        with self._reader(path1) as src, self._writer(path2) as dst:
            _copy(src, dst, self._chunk(), DEFAULT_CALLBACK)

    # -- files -------------------------------------------------------------------------------
    def _open(self, path: str, mode: str = "rb", block_size: int | None = None, autocommit: bool = True,
              cache_options: Any = None, **kwargs: Any) -> Any:  # fmt: skip
        if mode == "rb":
            return self._reader(path, block_size)
        if mode in ("wb", "xb"):
            if mode == "xb" and self.exists(path):
                raise FileExistsError(errno.EEXIST, "object exists", self.uri(path))
            return self._writer(path, block_size)
        if mode == "ab":
            return self._appender(path, block_size)
        raise ValueError(
            f"open {self.uri(path)} mode={mode!r}: use 'rb', 'wb', 'xb' or 'ab' (objects are written "
            "whole, never updated in place)"
        )

    def _appender(self, path: str, part_size: int | None) -> ObjectWriter:
        """A writer that starts with the object's current bytes, as s3fs's ``"ab"``: the old
        object is streamed into a new upload, which replaces it on ``close``."""
        writer = self._writer(path, part_size)
        try:
            with self._reader(path) as src:
                _copy(src, writer, self._chunk(), DEFAULT_CALLBACK)
        except FileNotFoundError:
            pass  # a new object
        except BaseException:
            writer.abort()
            raise
        return writer

    def _reader(self, path: str, block_size: int | None = None) -> ObjectReader:
        uri, parsed, store = self._resolve(path)
        if parsed.is_prefix:
            raise IsADirectoryError(errno.EISDIR, "is a directory", uri)
        block = block_size or self.default_block_size
        return _SeekingReader(uri, store, parsed.key, config=store.config, block_size=block)

    def _writer(self, path: str, part_size: int | None = None) -> ObjectWriter:
        """What :func:`s3dlio.open_writer` returns, on this filesystem's store."""
        uri, parsed, store = self._resolve(path)
        if parsed.is_prefix:
            raise IsADirectoryError(errno.EISDIR, "is a directory", uri)
        config = store.config
        upload = store.open_upload(parsed.key, part_size=part_size or config.part_size)
        return ObjectWriter(uri, store, parsed.key, upload, max_in_flight=min(8, config.max_in_flight),
                            attempts=config.max_attempts, verify=verify_enabled(None))  # fmt: skip

    def _chunk(self) -> int:
        """Bytes per read/write when streaming: the configured part size."""
        return (self.config or default_config()).part_size

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.scheme}://>"


#: Reads after a seek at least this large fetch exactly their bytes (smaller ones use blocks).
_EXACT_MIN = 16 * 1024


class _SeekingReader(ObjectReader):
    """A reader whose reads after a seek fetch exactly the bytes asked for.

    pyarrow (Parquet, ORC, Feather) reads a footer, then each column chunk it needs, every
    read after a seek. In whole blocks (8 MiB) these fetch up to a block around each chunk:
    nearly all of a file for two of its columns, and each read copied out of its blocks twice.
    Reads that continue the previous one (CSV, pickle, ``get_file``), reads inside blocks
    already fetched and small reads (h5py's metadata) keep the blocks and their read-ahead.
    """

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
        if n < _EXACT_MIN or start == self._last_end or self._held(start, start + n):
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


def _copy(src: Any, dst: Any, chunk: int, callback: Any) -> None:
    while True:
        data = src.read(chunk)
        if not data:
            return
        dst.write(data)
        callback.relative_update(len(data))


class S3FileSystem(S3dlioFileSystem):
    """``s3://bucket/key`` through s3dlio (``AWS_ENDPOINT_URL``, ``AWS_CA_BUNDLE_PATH``... apply)."""

    scheme = "s3"
    protocol = ("s3", "s3a")


class AzureFileSystem(S3dlioFileSystem):
    """``az://container/key`` through s3dlio."""

    scheme = "az"
    protocol = ("az",)


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
    for name in names:
        fsspec.register_implementation(name, FILESYSTEMS[name], clobber=clobber)
        if name == "s3":
            fsspec.register_implementation("s3a", FILESYSTEMS[name], clobber=clobber)
    _point_epath_at_fsspec(epath_schemes=bool({"s3", "az"} & set(names)))


def _point_epath_at_fsspec(epath_schemes: bool) -> None:
    backend = sys.modules.get("etils.epath.backend")
    if backend is not None:
        backend._FileSystemSpecBackend._get_filesystem.cache_clear()
    if epath_schemes and importlib.util.find_spec("tensorflow") is not None:
        os.environ["EPATH_USE_TF"] = "false"
