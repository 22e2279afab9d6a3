"""Settings, resolved as: explicit arguments > environment > ``.env`` in the working directory.

A :class:`Config` is frozen and picklable; it holds settings, never connections, so it can
travel to worker processes. Secrets never appear in its ``repr``, and a secret it resolved
from the environment or ``.env`` never travels in its pickle (the copy resolves it again).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, fields
from functools import cache
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from ._redact import redact, redact_url, remember
from .errors import ConfigError

__all__ = ["Config", "EngineName", "configure", "default_config", "parse_bool"]

EngineName = Literal["auto", "fast", "portable"]

MiB = 1024 * 1024

# Environment variable -> Config field. Earlier names win when several are set.
_ENV: dict[str, tuple[str, ...]] = {
    "endpoint_url": ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_S3_ENDPOINT"),
    "endpoints": ("S3DLIO_ENDPOINTS",),
    "endpoint_strategy": ("S3DLIO_ENDPOINT_STRATEGY",),
    "endpoint_cooldown": ("S3DLIO_ENDPOINT_COOLDOWN",),
    "region": ("AWS_REGION", "AWS_DEFAULT_REGION"),
    "access_key_id": ("AWS_ACCESS_KEY_ID",),
    "secret_access_key": ("AWS_SECRET_ACCESS_KEY",),
    "session_token": ("AWS_SESSION_TOKEN",),
    "profile": ("AWS_PROFILE",),
    "ca_bundle": ("AWS_CA_BUNDLE_PATH", "AWS_CA_BUNDLE"),
    "azure_account_name": ("AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT"),
    "azure_account_key": ("AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_KEY"),
    "azure_connection_string": ("AZURE_STORAGE_CONNECTION_STRING",),
    "azure_sas_token": ("AZURE_STORAGE_SAS_TOKEN",),
    "azure_endpoint": ("AZURE_STORAGE_ENDPOINT", "AZURE_BLOB_ENDPOINT"),
    "azure_use_emulator": ("AZURE_STORAGE_USE_EMULATOR",),
    "engine": ("S3DLIO_ENGINE",),
    "max_in_flight": ("S3DLIO_MAX_IN_FLIGHT",),
    "max_bytes_in_flight": ("S3DLIO_MAX_BYTES_IN_FLIGHT",),
    "part_size": ("S3DLIO_PART_SIZE",),
    "connect_timeout": ("S3DLIO_CONNECT_TIMEOUT",),
    "request_timeout": ("S3DLIO_REQUEST_TIMEOUT",),
    "read_timeout": ("S3DLIO_READ_TIMEOUT",),
    "total_timeout": ("S3DLIO_TOTAL_TIMEOUT",),
    "max_attempts": ("S3DLIO_MAX_ATTEMPTS", "AWS_MAX_ATTEMPTS"),
    "range_threshold": ("S3DLIO_RANGE_THRESHOLD",),
    "range_in_flight": ("S3DLIO_RANGE_IN_FLIGHT",),
    "put_verify": ("S3DLIO_PUT_VERIFY",),
    "sign_payload": ("S3DLIO_SIGN_PAYLOAD",),
    "unsigned": ("S3DLIO_UNSIGNED",),
    "tune_workers": ("S3DLIO_TUNE_WORKERS",),
}

#: Fields that hold one setting between them. Their sources are ranked as one: an explicit
#: ``endpoint_url`` is never replaced by ``S3DLIO_ENDPOINTS``, nor ``AWS_ENDPOINT_URL`` from the
#: real environment by ``S3DLIO_ENDPOINTS`` from a ``.env`` someone left in the working directory.
_GROUPS: tuple[tuple[str, ...], ...] = (("endpoint_url", "endpoints"),)

#: The fields of an access key: ranked against ``profile`` as one (:meth:`Config.aws_credentials`).
_KEYS = ("access_key_id", "secret_access_key", "session_token")

_SECRETS = frozenset(
    {"secret_access_key", "session_token", "azure_account_key", "azure_connection_string", "azure_sas_token"}
)

# Azurite's published development account (documented by Microsoft; not a secret).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@dataclass(frozen=True)
class Config:
    """Everything a store needs besides the URI. Build with :meth:`resolve`, not directly."""

    endpoint_url: str | None = None
    #: Several S3 endpoints serving the same buckets (gateways of one cluster): requests are
    #: spread over them (``S3DLIO_ENDPOINTS=http://a:9000,http://b:9000``).
    endpoints: tuple[str, ...] = ()
    #: How requests are spread over ``endpoints``: ``round_robin`` or ``least_connections``.
    endpoint_strategy: str = "round_robin"
    #: Seconds an endpoint whose request failed stays out of rotation.
    endpoint_cooldown: float = 10.0
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    profile: str | None = None
    ca_bundle: str | None = None
    azure_account_name: str | None = None
    azure_account_key: str | None = field(default=None, repr=False)
    azure_connection_string: str | None = field(default=None, repr=False)
    #: A shared access signature (the query string, a leading ``?`` allowed) for
    #: ``azure_account_name``: adlfs's ``sas_token``.
    azure_sas_token: str | None = field(default=None, repr=False)
    azure_endpoint: str | None = None
    azure_use_emulator: bool = False
    engine: EngineName = "auto"
    #: Requests in flight per batch operation.
    max_in_flight: int = 64
    #: Bytes in flight per batch operation (backpressure: memory stays flat).
    max_bytes_in_flight: int = 512 * MiB
    part_size: int = 8 * MiB
    #: Seconds to open a connection (TCP + TLS).
    connect_timeout: float = 10.0
    #: Upper bound on ``read_timeout`` (it was the read timeout before ``read_timeout`` existed).
    #: A request that keeps receiving bytes is never cut: slow links may move large bodies.
    request_timeout: float = 120.0
    #: Seconds without a byte from the server (an idle, stalled response) before an attempt fails.
    read_timeout: float = 20.0
    #: Seconds one operation may spend across its attempts: no attempt starts after it, so a
    #: dead server ends an operation within about ``total_timeout + read_timeout``.
    total_timeout: float = 40.0
    #: Attempts per operation (the first one included), within ``total_timeout``: s3dlio's own
    #: retry layer makes them; each may hide up to ``engine_attempts`` of the engine's own.
    max_attempts: int = 10
    #: Objects at least this large are fetched as parallel ranges into one buffer.
    range_threshold: int = 32 * MiB
    #: Ranges of one object in flight (8 measured best on 2 cores; see docs/large-objects.md).
    range_in_flight: int = 8
    #: HEAD after each write and check size (and MD5 ETag on S3); a mismatch deletes and raises.
    put_verify: bool = False
    #: Hash each S3 request body into its SigV4 signature (SHA-256 of every byte written). Off,
    #: as in the AWS CRT (s3torchconnector, Mountpoint): 0.24 instead of 0.85 client CPU-s per
    #: GiB written. The portable engine (botocore) signs over plain http whatever this says.
    sign_payload: bool = False
    #: Send requests with no credentials at all (public buckets and containers; s3fs's and
    #: adlfs's ``anon=True``), even where credentials are configured.
    unsigned: bool = False
    #: In DataLoader worker processes: freeze the objects inherited from the parent out of
    #: garbage collection and keep freed buffers for reuse (s3dlio.loader.worker).
    tune_workers: bool = True

    def __post_init__(self) -> None:
        if "_explicit" not in self.__dict__:  # built directly, not by resolve(): what it was given
            given = frozenset(f.name for f in fields(self) if getattr(self, f.name) != f.default)
            object.__setattr__(self, "_explicit", given)
        remember(*(getattr(self, name) for name in _SECRETS))
        try:
            self._check()
        except ConfigError as exc:  # a setting's value is named in its error, never a password in it
            raise ConfigError(redact(str(exc))) from None

    def _check(self) -> None:
        if self.engine not in ("auto", "fast", "portable"):
            raise ConfigError(f"S3DLIO_ENGINE={self.engine!r}: use fast, portable or auto")
        for name in ("max_in_flight", "max_bytes_in_flight", "part_size", "max_attempts", "range_threshold",
                     "range_in_flight"):  # fmt: skip
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)!r}: must be at least 1")
        for name in ("connect_timeout", "request_timeout", "read_timeout", "total_timeout"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name}={getattr(self, name)!r}: must be a positive number of seconds")
        if self.ca_bundle is not None and not os.path.isfile(self.ca_bundle):
            raise ConfigError(
                f"CA bundle {self.ca_bundle!r} (AWS_CA_BUNDLE_PATH) does not exist; point it at a PEM file"
            )
        if isinstance(self.endpoints, (list, str)):
            parts = self.endpoints.split(",") if isinstance(self.endpoints, str) else self.endpoints
            object.__setattr__(self, "endpoints", tuple(p.strip() for p in parts if p.strip()))
        self._settle_endpoints()
        for endpoint in (self.endpoint_url, *self.endpoints):
            if endpoint is not None:
                _check_endpoint(endpoint)
        if self.endpoint_strategy not in ("round_robin", "least_connections"):
            raise ConfigError(
                f"S3DLIO_ENDPOINT_STRATEGY={self.endpoint_strategy!r}: use round_robin or least_connections"
            )
        if self.endpoint_cooldown <= 0:
            raise ConfigError(f"endpoint_cooldown={self.endpoint_cooldown!r}: must be a positive number of seconds")

    def _settle_endpoints(self) -> None:
        """``endpoint_url`` and ``endpoints`` name one thing, the S3 endpoint(s). Both from the
        same source: ``endpoints`` wins. Both given explicitly and disagreeing: an error, not a
        guess. An explicit ``endpoint_url`` drops an ``endpoints`` that was not given."""
        url, several = self.endpoint_url, self.endpoints
        if url is not None and several and url not in several:
            if self.is_explicit("endpoint_url") and self.is_explicit("endpoints"):
                raise ConfigError(
                    f"endpoint_url={redact_url(url)!r} and endpoints={[redact_url(e) for e in several]!r} "
                    "disagree: pass endpoints=[...] alone (requests are spread over them) or endpoint_url alone"
                )
            if self.is_explicit("endpoint_url"):
                object.__setattr__(self, "endpoints", ())
        if self.endpoints:
            object.__setattr__(self, "endpoint_url", self.endpoints[0])

    def is_explicit(self, name: str) -> bool:
        """True when setting ``name`` was given explicitly (an argument, ``configure()``, a CLI
        option), not resolved from the environment or ``.env``: stores rank explicit settings
        above credentials' own endpoints, and only explicit secrets travel in a pickle."""
        return name in self._explicit

    #: The settings given explicitly (set per instance when it is built).
    _explicit: ClassVar[frozenset[str]] = frozenset()
    #: The settings resolved from the real environment, not ``.env`` (set per instance).
    _environ: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def _make(cls, values: dict[str, Any], explicit: Collection[str], environ: Collection[str] = ()) -> Config:
        """``cls(**values)`` that knows which of them were given explicitly, which came from the
        real environment (the rest: ``.env`` or defaults)."""
        config = cls.__new__(cls)
        object.__setattr__(config, "_explicit", frozenset(explicit))
        object.__setattr__(config, "_environ", frozenset(environ) - frozenset(explicit))
        cls.__init__(config, **values)
        return config

    def _rank(self, name: str) -> int:
        """Where setting ``name`` came from: 2 explicit, 1 the real environment, 0 ``.env`` or default."""
        return 2 if name in self._explicit else 1 if name in self._environ else 0

    def aws_credentials(self) -> Literal["unsigned", "keys", "profile", "chain"]:
        """What signs S3 requests, ranked as botocore ranks them: ``unsigned``; else the profile
        where it outranks the keys (an explicit profile beats keys from the environment or ``.env``,
        ``AWS_PROFILE`` beats keys from ``.env``); else the keys (explicit keys beat an explicit
        profile, ``AWS_ACCESS_KEY_ID`` beats ``AWS_PROFILE`` as botocore's env provider comes first);
        else boto3's default chain. A named profile must exist whichever wins (the stores check)."""
        if self.unsigned:
            return "unsigned"
        keys = bool(self.access_key_id and self.secret_access_key)
        if self.profile and (not keys or self._rank("profile") > max(map(self._rank, _KEYS))):
            return "profile"
        return "keys" if keys else "chain"

    # Stores are cached per Config: every operation looks one up, so the hash is computed once
    # (not over 30 fields per call) and never travels in a pickle (str hashes differ per process).
    # Which settings were explicit counts: a config whose secret came from the environment must
    # not be interned as (and pickled like) an equal one that was given the secret.
    def __hash__(self) -> int:
        cached: int | None = self.__dict__.get("_hash")
        if cached is None:
            cached = hash((tuple(getattr(self, f.name) for f in fields(self)), self._explicit, self._environ))
            object.__setattr__(self, "_hash", cached)
        return cached

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Config):
            return NotImplemented
        return (self._explicit, self._environ) == (other._explicit, other._environ) and all(
            getattr(self, f.name) == getattr(other, f.name) for f in fields(self)
        )

    def __getstate__(self) -> dict[str, Any]:
        # A secret the user passed may travel (as in s3fs); one resolved from the environment
        # or .env stays behind: the copy resolves it again where it lands (DataLoader workers
        # inherit the environment and working directory, so they find the same one).
        state = {k: v for k, v in self.__dict__.items() if k != "_hash"}
        for name in _SECRETS - self._explicit:
            state[name] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        explicit = state.get("_explicit", frozenset())
        values = _from_environment(skip=explicit, only=_SECRETS - explicit)
        for name in _SECRETS - explicit:
            object.__setattr__(self, name, values.get(name))
        remember(*(getattr(self, name) for name in _SECRETS))

    def __repr__(self) -> str:
        # Secrets are left out; endpoints are shown without userinfo (user:password@).

        shown = []
        for f in fields(self):
            if not f.repr:
                continue
            value = getattr(self, f.name)
            if f.name in ("endpoint_url", "azure_endpoint") and isinstance(value, str):
                value = redact_url(value)
            elif f.name == "endpoints":
                value = tuple(redact_url(e) for e in value)
            shown.append(f"{f.name}={value!r}")
        return f"Config({', '.join(shown)})"

    @classmethod
    def resolve(cls, **overrides: Any) -> Config:
        """Build a config: ``overrides`` (None means unset) > environment > ``.env`` > defaults.

        Ranked per setting, not per variable: where any variable of a setting is set in the
        real environment, ``.env`` is not read for it, so a ``.env`` in the working directory
        can neither outrank nor add to what the environment says."""
        unknown = set(overrides) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigError(f"unknown setting(s) {sorted(unknown)}; known: {[f.name for f in fields(cls)]}")
        explicit = {k for k, v in overrides.items() if v is not None}
        environ: set[str] = set()
        found: dict[str, Any] = {**_from_environment(skip=explicit, environ=environ), **{k: overrides[k] for k in explicit}}
        values = {f.name: _convert(f.name, found[f.name], f.type) for f in fields(cls) if f.name in found}
        return cls._make(values, explicit, environ)

    @property
    def engine_attempts(self) -> int:
        """Attempts the engine (obstore, botocore, the Azure SDK) makes of one HTTP request: at
        most 4, so a permanent fault ends in ``max_attempts x 4`` requests at most."""
        return min(self.max_attempts, 4)

    @property
    def idle_timeout(self) -> float:
        """Seconds without a byte before an attempt fails: ``read_timeout``, capped by ``request_timeout``."""
        return min(self.read_timeout, self.request_timeout)

    def replace(self, **changes: Any) -> Config:
        """A copy with some settings changed (None leaves one as it is); the changed ones count
        as explicit. A new ``endpoint_url`` replaces ``endpoints``, new ``endpoints`` replace
        ``endpoint_url``."""
        changes = {k: v for k, v in changes.items() if v is not None}
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise TypeError(f"Config.replace() got unexpected setting(s) {sorted(unknown)}")
        given = self._explicit | set(changes)
        if "endpoint_url" in changes:
            changes.setdefault("endpoints", ())
        elif "endpoints" in changes:
            changes["endpoint_url"] = None
        values = {f.name: getattr(self, f.name) for f in fields(self)} | changes
        return self._make(values, given, self._environ)


def _check_endpoint(endpoint: str) -> None:
    """Refuse, here, an endpoint the engines cannot use: obstore panics on a port that is not a
    number, botocore retries it until the time budget ends. The error shows it without userinfo."""
    shown, fix = redact_url(endpoint), "write http(s)://host[:port], e.g. http://127.0.0.1:9000"
    if not endpoint.startswith(("http://", "https://")):
        raise ConfigError(f"endpoint {shown!r}: must start with http:// or https://; {fix}")
    try:
        parts = urlsplit(endpoint)
        port = parts.port  # raises for a port that is not a number from 0 to 65535
    except ValueError as exc:  # its message quotes the text it could not read: with userinfo, a password's start
        why = exc if shown == endpoint else "the host or port cannot be read"
        raise ConfigError(f"endpoint {shown!r}: not a valid URL ({why}); {fix}") from None
    if not parts.hostname:
        raise ConfigError(f"endpoint {shown!r}: no host; {fix}")
    if port == 0:
        raise ConfigError(f"endpoint {shown!r}: port 0; use the port the server listens on, 1 to 65535")


def _settings() -> list[tuple[str, ...]]:
    """Every setting as the fields that hold it: one field each, but for :data:`_GROUPS`."""
    grouped = {name for group in _GROUPS for name in group}
    return [*_GROUPS, *((name,) for name in _ENV if name not in grouped)]


def _from_environment(
    skip: Collection[str] = (), only: Collection[str] | None = None, environ: set[str] | None = None
) -> dict[str, str]:
    """The raw values of the settings none of whose fields is in ``skip`` (given explicitly), of
    those in ``only`` when it is given. Each setting comes whole from one source: the real
    environment where any of its variables is set (non-empty) there, else ``.env``. The fields
    found in the real environment are added to ``environ``."""
    dotenv = _dotenv(os.getcwd())
    found: dict[str, str] = {}
    for group in _settings():
        if any(name in skip for name in group) or (only is not None and not any(n in only for n in group)):
            continue
        variables = [var for name in group for var in _ENV[name]]
        source: Mapping[str, str] = os.environ if any(os.environ.get(v) for v in variables) else dotenv
        for name in group:
            value = next((source[var] for var in _ENV[name] if source.get(var)), None)
            if value is not None:
                found[name] = value
                if environ is not None and source is os.environ:
                    environ.add(name)
    return found


@cache
def _dotenv(cwd: str) -> dict[str, str]:
    path = os.path.join(cwd, ".env")
    if not os.path.isfile(path):
        return {}
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def parse_bool(name: str, raw: str) -> bool:
    """A boolean setting's text (``name`` is for the error): 1/true/yes/on or 0/false/no/off,
    in any case; empty means false."""
    low = raw.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{name}={raw!r}: not a boolean; use true/false (or 1/0, yes/no, on/off)")


def _convert(name: str, value: Any, kind: Any) -> Any:
    if not isinstance(value, str):
        return value
    kind = str(kind)
    try:
        if kind.startswith("bool"):
            return parse_bool("/".join(_ENV.get(name, (name,))), value)
        if kind.startswith("int"):
            from .sizes import parse_size

            return parse_size(value)
        if kind.startswith("float"):
            return float(value)
    except ValueError:
        env = "/".join(_ENV.get(name, (name,)))
        raise ConfigError(f"{env}={value!r}: not a valid {kind.split()[0]} for {name}") from None
    return value


_default: Config | None = None


def default_config() -> Config:
    """The process-wide config: what :func:`configure` set, else resolved from the environment."""
    global _default
    if _default is None:
        _default = interned(Config.resolve())
    return _default


def configure(**settings: Any) -> Config:
    """Set process-wide settings (e.g. ``endpoint_url=...``); unset ones come from the environment."""
    global _default
    _default = interned(Config.resolve(**settings))  # stores are cached per config: new ones open
    return _default


_interned: OrderedDict[Config, Config] = OrderedDict()
_interned_lock = threading.Lock()


def interned(config: Config) -> Config:
    """The one Config object equal to ``config``: a store lookup then matches by identity
    instead of comparing every field (a Client built with the default settings costs nothing).
    Only the 64 used last are kept: a job rotating its credentials makes a Config per token."""
    with _interned_lock:
        config = _interned.setdefault(config, config)
        _interned.move_to_end(config)
        if len(_interned) > 64:
            _interned.popitem(last=False)
        return config
