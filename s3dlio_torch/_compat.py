"""s3torchconnector's settings objects, mapped onto s3dlio's :class:`~s3dlio.config.Config`.

``S3ClientConfig`` and ``S3ReaderConstructor`` carry s3torchconnector's names and arguments;
:func:`client_config` turns ``region``/``endpoint``/``s3client_config`` into a Config derived
from the process-wide one, for one object or dataset, without changing the global settings.

=================================  ==============================================================
s3torchconnector                   s3dlio
=================================  ==============================================================
``part_size``                      ``Config.part_size`` (multipart parts and read blocks), 1 MiB at least
``max_attempts``                   ``Config.max_attempts``
``throughput_target_gbps``         a hint only: concurrency is ``max_in_flight`` (kept as is)
``force_path_style``               s3dlio always uses path-style requests with an endpoint
``unsigned``                       ``Config.unsigned`` (requests sent without credentials)
``profile``                        ``Config.profile`` (a profile of ``~/.aws/config``)
=================================  ==============================================================

``S3ReaderConstructor.dcp_optimized(max_gap_size)`` sets the DCP reader's ``max_gap`` (DCP
loads always fetch merged ranges); datasets and checkpoint readers refuse it by name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

from s3dlio.client import Client, settings_of
from s3dlio.config import Config, default_config
from s3dlio.errors import ConfigError, InvalidUriError
from s3dlio.uri import parse

__all__ = ["ReaderConstructor", "S3ClientConfig", "S3ReaderConstructor", "client_config", "with_scheme"]

MiB = 1 << 20
#: The least part size ``S3ClientConfig`` maps to: reads fetch blocks and ranges of the part
#: size, so ``part_size=1`` would cost a GET per byte (S3 raises writers' parts to 5 MiB anyway).
MIN_PART_SIZE = 1 * MiB


@dataclass(frozen=True)
class S3ClientConfig:
    """s3torchconnector's client settings: ``S3ClientConfig(part_size=16 * 1024 * 1024)``.

    ``part_size`` (raised to :data:`MIN_PART_SIZE`, 1 MiB, if smaller), ``max_attempts``,
    ``unsigned`` and ``profile`` become s3dlio's;
    ``throughput_target_gbps`` is accepted as a hint (s3dlio bounds requests and bytes in
    flight instead); path style is what s3dlio uses whenever an endpoint is set.
    """

    throughput_target_gbps: float = 10.0
    part_size: int = 8 * MiB
    unsigned: bool = False
    force_path_style: bool = False
    max_attempts: int = 10
    profile: str | None = None

    def __post_init__(self) -> None:
        if self.part_size < 1 or self.max_attempts < 1:
            raise ConfigError(
                f"S3ClientConfig(part_size={self.part_size}, max_attempts={self.max_attempts}): "
                "each must be at least 1"
            )
        if self.throughput_target_gbps <= 0:
            raise ConfigError(
                f"S3ClientConfig(throughput_target_gbps={self.throughput_target_gbps}): must be positive"
            )
        if self.unsigned and self.profile:
            raise ConfigError(
                f"S3ClientConfig(unsigned=True, profile={self.profile!r}): unsigned requests use no "
                "credentials; drop one of the two"
            )


def client_config(
    region: str | None = None,
    endpoint: str | None = None,
    s3client_config: S3ClientConfig | None = None,
    config: Config | None = None,
    client: Client | None = None,
    where: str = "s3dlio_torch",
) -> Config:
    """``config`` (default: the process-wide settings) with s3torchconnector's overrides applied,
    or ``client``'s settings as they are (with any other argument: ``ConfigError``; see
    :func:`s3dlio.client.settings_of`, the one rule every framework object follows).

    The global configuration is not changed; pass the result to ``s3dlio.ops.resolve`` or any
    ``config=``. Empty strings count as unset, as in s3torchconnector.
    """
    if s3client_config is not None and not isinstance(s3client_config, S3ClientConfig):
        raise ConfigError(
            f"s3client_config={s3client_config!r}: pass an S3ClientConfig (from s3dlio_torch)"
        )
    if client is not None and s3client_config is not None:
        raise ConfigError(
            f"{where}: both client= and s3client_config= given: a client carries all its settings; "
            "build it with them (s3dlio.Client(part_size=..., max_attempts=...))"
        )
    mapped: dict[str, object] = {}
    if s3client_config is not None:
        mapped = {"part_size": max(MIN_PART_SIZE, s3client_config.part_size),
                  "max_attempts": s3client_config.max_attempts, "unsigned": s3client_config.unsigned or None,
                  "profile": s3client_config.profile or None}  # fmt: skip
    settings = settings_of(client, config, region=region, endpoint=endpoint, where=where, **mapped)
    return settings or default_config()


def with_scheme(uri: str, where: str) -> str:
    """``uri``, if it names its scheme. s3torchconnector's names take ``s3://`` URIs; a plain
    ``bucket/key`` would otherwise be a local file relative to the working directory."""
    if isinstance(uri, str) and "://" not in uri:
        parse(uri)  # a malformed scheme ('s3:/b/k') gets its own message
        raise InvalidUriError(
            f"{where} {uri!r}: no scheme, so it would be a local file under the working directory; "
            f"write s3://{uri.lstrip('/')} for an object, or file://{os.path.abspath(uri)} for a local file"
        )
    return uri


@dataclass(frozen=True)
class ReaderConstructor:
    """How dataset items and checkpoint readers read an object (built by S3ReaderConstructor).

    ``sequential``: the whole object is fetched (datasets prefetch it; checkpoint readers
    stream it with read-ahead). ``range_based``: nothing is fetched up front; each read gets
    the bytes it needs by ranged GET, ``buffer_size`` bytes at least (0: exactly what is read).
    ``dcp_optimized``: for ``dcp.S3StorageReader`` only; ``max_gap`` bytes of unneeded data
    are read to merge two ranges into one GET.
    """

    kind: Literal["sequential", "range_based", "dcp_optimized"] = "sequential"
    buffer_size: int = 8 * MiB
    max_gap: int | float = 32 * MiB

    def __post_init__(self) -> None:
        if self.kind not in ("sequential", "range_based", "dcp_optimized"):
            raise ConfigError(f"reader kind {self.kind!r}: use 'sequential', 'range_based' or 'dcp_optimized'")
        if self.buffer_size < 0:
            raise ConfigError(f"range_based(buffer_size={self.buffer_size}): must be >= 0")
        if not self.max_gap >= 0:  # also refuses NaN
            raise ConfigError(f"dcp_optimized(max_gap_size={self.max_gap}): must be >= 0")

    @property
    def ranged(self) -> bool:
        return self.kind == "range_based"


class S3ReaderConstructor:
    """s3torchconnector's reader factory: ``reader_constructor=S3ReaderConstructor.range_based()``."""

    @staticmethod
    def sequential() -> ReaderConstructor:
        """Read whole objects (the default): best when items are read from start to end."""
        return ReaderConstructor("sequential")

    @staticmethod
    def range_based(buffer_size: int | None = None) -> ReaderConstructor:
        """Ranged GETs as reads need them: best for reading parts of large objects."""
        return ReaderConstructor("range_based", 8 * MiB if buffer_size is None else buffer_size)

    @staticmethod
    def dcp_optimized(max_gap_size: int | float = 32 * MiB) -> ReaderConstructor:
        """For ``dcp.S3StorageReader``: ranges less than ``max_gap_size`` apart are read as one GET."""
        return ReaderConstructor("dcp_optimized", max_gap=max_gap_size)

    @staticmethod
    def default() -> ReaderConstructor:
        """The default constructor: :meth:`sequential`."""
        return ReaderConstructor("sequential")

    @staticmethod
    def get_reader_type_string(constructor: ReaderConstructor | None) -> str:
        """``"sequential"``, ``"range_based"`` or ``"dcp_optimized"`` (None: the default's),
        ``"unknown"`` for anything else; s3torchconnector logs and reports it by this name."""
        if constructor is None:
            return "sequential"
        return constructor.kind if isinstance(constructor, ReaderConstructor) else "unknown"


def reader_constructor(value: ReaderConstructor | None, where: str | None = None) -> ReaderConstructor:
    """``value`` checked, or the default (sequential). With ``where`` (an object reading whole
    objects or ranges, not a DCP load), ``dcp_optimized`` is refused naming it."""
    if value is None:
        return ReaderConstructor()
    if not isinstance(value, ReaderConstructor):
        raise ConfigError(
            f"reader_constructor={value!r}: use S3ReaderConstructor.sequential(), .range_based() or .default()"
        )
    if where is not None and value.kind == "dcp_optimized":
        raise ConfigError(
            f"{where}: S3ReaderConstructor.dcp_optimized() is for dcp.S3StorageReader; "
            "use S3ReaderConstructor.sequential() or .range_based()"
        )
    return value
