"""A client: one set of settings (endpoints, credentials, engine, timeouts, retries, TLS bundle)
for every operation called through it.

Two clients in one process can talk to different servers with different credentials at the
same time; the module-level functions (``s3dlio.get`` ...) are the default client, whose
settings come from :func:`s3dlio.configure`, the environment and ``.env``. A client holds
settings, never connections: stores are opened on first use and shared by every client with
equal settings, so creating one is cheap, it is safe to share between threads, and it pickles
(a spawned or forkserver worker rebuilds it; a forked child switches engine as the default
client does).

Each method is the module function of the same name with ``config=`` bound to the client's
settings, so the two can never drift; the ``_async`` twins come along with them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, TypeVar

from . import large, ops
from .config import Config, default_config, interned
from .errors import ConfigError
from .store import registry

__all__ = ["Client", "settings_of"]

P = ParamSpec("P")
R = TypeVar("R")


def _bound(fn: Callable[P, R]) -> Callable[Concatenate[Client, P], R]:
    """``fn`` as a method that runs it with the client's settings."""

    @functools.wraps(fn)
    def method(self: Client, /, *args: P.args, **kwargs: P.kwargs) -> R:
        if "config" in kwargs:
            raise TypeError(f"Client.{fn.__name__}: the client's settings apply; build another Client instead")
        kwargs["config"] = self.config
        return fn(*args, **kwargs)

    method.__doc__ = f"{fn.__name__} with this client's settings.\n\n{fn.__doc__ or ''}"
    return method


class Client:
    """Settings for the operations called through it: ``Client(endpoint_url=..., region=...)``.

    Keyword arguments are :class:`~s3dlio.Config` fields; the unset ones come from the
    environment and ``.env``, as for :func:`s3dlio.configure`. Or pass a ready ``Config``.
    ``strategy=`` is short for ``endpoint_strategy=`` (with ``endpoints=[...]``).
    """

    def __init__(self, config: Config | None = None, /, **settings: Any) -> None:
        if "strategy" in settings:
            settings["endpoint_strategy"] = settings.pop("strategy")
        if config is not None and not isinstance(config, Config):
            raise TypeError(f"Client: config must be an s3dlio.Config, got {type(config).__name__}")
        try:
            settled = config.replace(**settings) if config is not None else Config.resolve(**settings)
        except TypeError as exc:  # dataclasses.replace with an unknown field
            raise ConfigError(f"Client: {exc}") from None
        self.config = interned(settled)

    # -- the operations ----------------------------------------------------------------------
    get = _bound(ops.get)
    get_range = _bound(ops.get_range)
    get_many = _bound(ops.get_many)
    get_many_stats = _bound(ops.get_many_stats)
    get_into = _bound(large.get_into)
    get_many_into = _bound(large.get_many_into)
    put = _bound(ops.put)
    put_many = _bound(ops.put_many)
    list = _bound(ops.list)
    list_entries = _bound(ops.list_entries)
    list_stream = _bound(ops.list_stream)
    stat = _bound(ops.stat)
    exists = _bound(ops.exists)
    delete = _bound(ops.delete)
    create_bucket = _bound(ops.create_bucket)
    delete_bucket = _bound(ops.delete_bucket)
    list_buckets = _bound(ops.list_buckets)
    upload = _bound(ops.upload)
    download = _bound(ops.download)
    copy = _bound(ops.copy)
    open_reader = _bound(large.open_reader)
    open_writer = _bound(large.open_writer)
    endpoint_stats = _bound(ops.endpoint_stats)

    get_async = _bound(ops.get_async)
    get_range_async = _bound(ops.get_range_async)
    get_many_async = _bound(ops.get_many_async)
    get_many_stats_async = _bound(ops.get_many_stats_async)
    get_into_async = _bound(large.get_into_async)
    get_many_into_async = _bound(large.get_many_into_async)
    put_async = _bound(ops.put_async)
    put_many_async = _bound(ops.put_many_async)
    list_async = _bound(ops.list_async)
    stat_async = _bound(ops.stat_async)
    exists_async = _bound(ops.exists_async)
    delete_async = _bound(ops.delete_async)
    create_bucket_async = _bound(ops.create_bucket_async)
    delete_bucket_async = _bound(ops.delete_bucket_async)
    list_buckets_async = _bound(ops.list_buckets_async)
    upload_async = _bound(ops.upload_async)
    download_async = _bound(ops.download_async)
    copy_async = _bound(ops.copy_async)
    open_writer_async = _bound(large.open_writer_async)

    # -- life --------------------------------------------------------------------------------
    def close(self) -> None:
        """Close the stores opened with these settings (they reopen if the client is used again)."""
        registry.forget(self.config)

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __reduce__(self) -> tuple[Callable[..., Client], tuple[Config]]:
        return (Client, (self.config,))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Client) and other.config == self.config

    def __hash__(self) -> int:
        return hash(self.config)

    def __repr__(self) -> str:
        return f"Client({self.config!r})"  # Config's repr shows no secret


def settings_of(
    client: Client | None = None,
    config: Config | None = None,
    *,
    region: str | None = None,
    endpoint: str | None = None,
    where: str = "s3dlio",
    **overrides: Any,
) -> Config | None:
    """The settings an object built with ``client=``, ``config=``, ``region=``/``endpoint=`` uses.

    One rule for every framework object: a ``client`` carries all the settings, so it is used
    as it is and never combined with ``config``, ``region``, ``endpoint`` or other overrides
    (``ConfigError`` naming both; build the Client with those settings instead). Without a
    client: ``config`` (default: the process-wide settings, read now) with ``region``,
    ``endpoint`` and the non-None ``overrides`` (Config fields) applied; empty strings count as
    unset. Nothing given: None, the default client, whose settings are read at each use.
    ``where`` names the caller in errors.
    """
    extra = {"region": region or None, "endpoint": endpoint or None, **overrides}
    given = sorted(name for name, value in extra.items() if value is not None)
    if client is not None:
        if not isinstance(client, Client):
            raise ConfigError(f"{where}: client={client!r}: pass an s3dlio.Client")
        clash = (["config"] if config is not None else []) + given
        if clash:
            named = " and ".join(f"{name}=" for name in clash)
            raise ConfigError(
                f"{where}: both client= and {named} given: a client carries all its settings; pass "
                "the client alone, or build one with those settings (s3dlio.Client(endpoint_url=..., ...))"
            )
        return client.config
    if config is not None and not isinstance(config, Config):
        raise ConfigError(f"{where}: config={config!r}: pass an s3dlio.Config")
    if not given:
        return config
    changes = {k: v for k, v in extra.items() if k != "endpoint"}
    return (config or default_config()).replace(endpoint_url=endpoint or None, **changes)
