"""s3torchconnector's settings objects, mapped onto s3dlio's :class:`~s3dlio.config.Config`.

``S3ClientConfig`` and ``S3ReaderConstructor`` carry s3torchconnector's names and arguments;
:func:`client_config` turns ``region``/``endpoint``/``s3client_config`` into a Config derived
from the process-wide one, for one object or dataset, without changing the global settings.

=================================  ==============================================================
s3torchconnector                   s3dlio
=================================  ==============================================================
``part_size``                      ``Config.part_size`` (multipart parts and read blocks)
``max_attempts``                   ``Config.max_attempts``
``throughput_target_gbps``         a hint only: concurrency is ``max_in_flight`` (kept as is)
``force_path_style``               s3dlio always uses path-style requests with an endpoint
``unsigned``                       ``True`` is refused: unset the credentials instead
=================================  ==============================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from s3dlio.client import Client, settings_of
from s3dlio.config import Config, default_config
from s3dlio.errors import ConfigError

__all__ = ["ReaderConstructor", "S3ClientConfig", "S3ReaderConstructor", "client_config"]

MiB = 1 << 20


@dataclass(frozen=True)
class S3ClientConfig:
    """s3torchconnector's client settings: ``S3ClientConfig(part_size=16 * 1024 * 1024)``.

    ``part_size`` and ``max_attempts`` become s3dlio's; ``throughput_target_gbps`` is
    accepted as a hint (s3dlio bounds requests and bytes in flight instead); path style is
    what s3dlio uses whenever an endpoint is set. ``unsigned=True`` raises: s3dlio sends
    unsigned requests when no credentials are found.
    """

    throughput_target_gbps: float = 10.0
    part_size: int = 8 * MiB
    unsigned: bool = False
    force_path_style: bool = False
    max_attempts: int = 10

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
        if self.unsigned:
            raise ConfigError(
                "S3ClientConfig(unsigned=True): s3dlio has no unsigned switch; unset AWS_ACCESS_KEY_ID/"
                "AWS_SECRET_ACCESS_KEY and AWS_PROFILE and it sends unsigned requests"
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
    parts = (None, None) if s3client_config is None else (s3client_config.part_size, s3client_config.max_attempts)
    settings = settings_of(client, config, region=region, endpoint=endpoint, where=where,
                           part_size=parts[0], max_attempts=parts[1])  # fmt: skip
    return settings or default_config()


@dataclass(frozen=True)
class ReaderConstructor:
    """How dataset items and checkpoint readers read an object (built by S3ReaderConstructor).

    ``sequential``: the whole object is fetched (datasets prefetch it; checkpoint readers
    stream it with read-ahead). ``range_based``: nothing is fetched up front; each read gets
    the bytes it needs by ranged GET, ``buffer_size`` bytes at least (0: exactly what is read).
    """

    kind: Literal["sequential", "range_based"] = "sequential"
    buffer_size: int = 8 * MiB

    def __post_init__(self) -> None:
        if self.kind not in ("sequential", "range_based"):
            raise ConfigError(f"reader kind {self.kind!r}: use 'sequential' or 'range_based'")
        if self.buffer_size < 0:
            raise ConfigError(f"range_based(buffer_size={self.buffer_size}): must be >= 0")

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
    def default() -> ReaderConstructor:
        """The default constructor: :meth:`sequential`."""
        return ReaderConstructor("sequential")


def reader_constructor(value: ReaderConstructor | None) -> ReaderConstructor:
    """``value`` checked, or the default (sequential)."""
    if value is None:
        return ReaderConstructor()
    if not isinstance(value, ReaderConstructor):
        raise ConfigError(
            f"reader_constructor={value!r}: use S3ReaderConstructor.sequential(), .range_based() or .default()"
        )
    return value
