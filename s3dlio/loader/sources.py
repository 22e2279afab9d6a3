"""Where a dataset's keys come from: a prefix (listed once, cached), a URI list, or a key file.

Sources are small frozen settings objects that pickle; :meth:`keys` does the I/O. A process
that has not started the fast engine lists an object-store prefix with it in a short-lived
forked child (or, where that cannot be, with the portable engine), so a DataLoader parent
that only listed still hands the fast engine to its forked workers (shared/DESIGN.md §2).
The listing streams into a key file under the cache directory, which this run's epochs and
workers map (the page cache holds it once); each dataset built lists again, so a run sees what
the store holds, and the file goes with its list (or at exit). A key file the user names is kept and reused by
later runs (``refresh=True`` re-lists).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import os
import warnings
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from .._select import select
from ..config import Config, default_config
from ..errors import ConfigError, NotFoundError, S3dlioError
from ..oplog import current_writer
from ..ops import resolve
from ..store import ObjectMeta, Store
from ..store import engine as _engine
from ..uri import ObjectUri, parse
from .forked import stream_from_child
from .keylist import HEADER, KeyList, encode_line

__all__ = ["KeySource", "PrefixSource", "UriListSource", "KeyFileSource", "as_source", "cache_dir"]

log = logging.getLogger("s3dlio.loader")


@runtime_checkable
class KeySource(Protocol):
    """Anything that yields a dataset's URIs as a :class:`KeyList`."""

    def keys(self) -> KeyList: ...

    def describe(self) -> str:
        """A stable description, checked when a resume state is loaded."""
        ...


def cache_dir() -> str:
    """``$S3DLIO_CACHE_DIR``, else ``$XDG_CACHE_HOME/s3dlio``, else ``~/.cache/s3dlio``."""
    explicit = os.environ.get("S3DLIO_CACHE_DIR")
    if explicit:
        return explicit
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(xdg, "s3dlio")


def listing_store(parsed: ObjectUri, config: Config) -> Store:
    """The store to list with here, when not in a forked child: portable, so the fast engine is
    not started just to list.

    ``mem://`` data lives in one engine's memory, so it is listed with the configured one; a
    process that already started the fast engine keeps using it.
    """
    if parsed.scheme == "mem" or _engine.fast_started_here():
        return resolve(parsed, config)[1]
    try:
        return resolve(parsed, config.replace(engine="portable"))[1]
    except ConfigError as exc:  # e.g. az:// without the Azure SDK: list with the fast engine
        warnings.warn(
            f"s3dlio: listing {parsed} with the fast engine ({exc}); DataLoader workers forked from this "
            "process will not get it: use multiprocessing_context='forkserver'",
            RuntimeWarning,
            stacklevel=3,
        )
        return resolve(parsed, config)[1]


def _list_in_child(parsed: ObjectUri, config: Config) -> bool:
    """List with the fast engine in a forked child (loader/forked.py) rather than portable here?

    Only for object stores, when this process has not started the fast engine (else it lists
    itself), may use it (not forced portable, not a forked child of a fast-engine process), and
    has no op-log on (the listing belongs in this process's log).
    """
    return (
        parsed.scheme in ("s3", "az")
        and hasattr(os, "fork")
        and not _engine.fast_started_here()
        and _engine.select(config) == "fast"
        and current_writer() is None
    )


@dataclass(frozen=True)
class PrefixSource:
    """Every object under ``uri`` (recursively by default; the last part may be a regex, unless
    ``plain``).

    ``cache``: True lists into a key file of this process under :func:`cache_dir` (removed
    with its list, or at exit); a path names a key file that later runs reuse instead of listing (``refresh``
    re-lists it); False lists into memory.
    """

    uri: str
    pattern: str | None = None
    recursive: bool = True
    cache: bool | str = True
    refresh: bool = False
    config: Config | None = field(default=None, compare=False)
    #: The last part is a plain name prefix, never a regex (s3torchconnector's ``from_prefix``).
    plain: bool = False

    def describe(self) -> str:
        return f"prefix {self.uri}" + (f" pattern {self.pattern}" if self.pattern else "")

    def keys(self) -> KeyList:
        if self.cache is False:
            return self._list(None)
        if isinstance(self.cache, str):
            path = os.path.abspath(os.path.expanduser(self.cache))
            if not self.refresh and os.path.exists(path):
                log.info("s3dlio: keys of %s from %s (refresh=True lists again)", self.uri, path)
                return KeyList.load(path)
            return self._list(path)
        # a file of this process, one per build (a dataset built earlier keeps its own), removed
        # once its list is dropped or the process exits
        config = self.config or default_config()
        ident = "\0".join(
            str(x) for x in (self.uri, self.pattern, self.recursive, config.endpoint_url, config.azure_endpoint)
        )
        digest = hashlib.sha256(ident.encode()).hexdigest()[:24]
        path = os.path.join(cache_dir(), "keys", f"{digest}.{os.getpid()}.{next(_builds)}.keys")
        keys = self._list(path)
        weakref.finalize(keys, _remove, path, os.getpid())
        return keys

    def _list(self, path: str | None) -> KeyList:
        """Stream the listing into the key file (or memory): keys never become a list of str."""
        if path is None:
            blob = bytearray()
            self._write(blob.extend)
            return KeyList.from_buffer(bytes(blob))
        tmp = f"{path}.{os.getpid()}.tmp"
        os.makedirs(os.path.dirname(path), exist_ok=True)
        try:
            with open(tmp, "wb") as f:
                self._write(f.write)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return KeyList.load(path)

    def _write(self, write: Callable[[bytes], object]) -> None:
        parsed = parse(self.uri)
        config = self.config or default_config()
        if _list_in_child(parsed, config):
            stream_from_child(lambda out: self._write_from(resolve(parsed, config)[1], parsed, out), write)
        else:
            self._write_from(listing_store(parsed, config), parsed, write)

    def _write_from(self, store: Store, parsed: ObjectUri, write: Callable[[bytes], object]) -> None:
        sel = select(parsed.key, recursive=self.recursive, pattern=self.pattern, plain_prefix=self.plain)
        base = _base_of(self.uri, parsed)
        write(HEADER + base.encode() + b"\n")
        count = 0
        try:
            for item in store.list(sel.prefix, delimiter=not self.recursive):
                if isinstance(item, ObjectMeta) and not item.key.endswith("/") and sel.matches(item.key):
                    write(encode_line(base + item.key, base))
                    count += 1
        except NotFoundError as exc:
            raise NotFoundError(f"list {self.uri}: {exc}") from exc
        if count == 0:
            raise NotFoundError(
                f"list {self.uri}: no objects under this prefix"
                + (f" match pattern {self.pattern!r}" if self.pattern else "")
                + "; check the bucket, the prefix and the endpoint (a dataset with no items would train on nothing)"
            )


_builds = itertools.count()


def _remove(path: str, owner: int) -> None:
    """Delete a key file this process listed into (never its parent's, from a forked child)."""
    if os.getpid() == owner:
        with contextlib.suppress(OSError):
            os.unlink(path)


@dataclass(frozen=True)
class UriListSource:
    """An explicit list of object URIs (any stores, in this order)."""

    uris: tuple[str, ...]

    def __init__(self, uris: str | Iterable[str]) -> None:
        items = (uris,) if isinstance(uris, str) else tuple(uris)
        for uri in items[:1] + items[-1:]:  # an empty list is an empty data set, as upstream
            parse(uri)  # a wrong scheme fails here, naming the URI
        object.__setattr__(self, "uris", items)

    def describe(self) -> str:
        return f"{len(self.uris)} URIs from {self.uris[0]}" if self.uris else "no URIs"

    def keys(self) -> KeyList:
        return KeyList.from_uris(self.uris)


@dataclass(frozen=True)
class KeyFileSource:
    """A key file: one URI per line, local (mapped) or itself an object (fetched once)."""

    path: str
    config: Config | None = field(default=None, compare=False)

    def describe(self) -> str:
        return f"key file {self.path}"

    def keys(self) -> KeyList:
        parsed = parse(self.path)
        if parsed.scheme == "file":
            keys = KeyList.load("/" + parsed.key)
        else:
            try:
                data = listing_store(parsed, self.config or default_config()).get(parsed.key)
            except S3dlioError as exc:
                raise type(exc)(f"key file {self.path}: {exc}") from exc
            keys = KeyList.from_buffer(bytes(memoryview(data)))
        if len(keys) == 0:
            raise ConfigError(f"key file {self.path} lists no URIs; a dataset needs at least one object")
        return keys


def as_source(
    source: KeySource | str | os.PathLike[str] | Sequence[str], config: Config | None = None
) -> KeySource:
    """A prefix string, a list of URIs, a key-file path (``os.PathLike``) or a source as is."""
    if isinstance(source, KeySource):
        return source
    if isinstance(source, os.PathLike):
        return KeyFileSource(os.fspath(source), config)
    if isinstance(source, str):
        return PrefixSource(source, config=config)
    return UriListSource(source)


def _base_of(uri: str, parsed: ObjectUri) -> str:
    """The URI up to its key, as the user wrote it (keeps ``https://account...`` forms)."""
    if parsed.key and uri.endswith(parsed.key) and parsed.scheme not in ("file", "direct"):
        return uri[: len(uri) - len(parsed.key)]
    return str(parsed.with_key(""))
