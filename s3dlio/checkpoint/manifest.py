"""The manifest (one per checkpoint) and rank files (one per rank): small, versioned JSON.

A reader accepts any version up to :data:`VERSION` and refuses newer ones with a
:class:`CheckpointVersionError` rather than guessing at fields it does not know.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from . import layout
from .errors import CheckpointCorruptError, CheckpointVersionError

__all__ = ["FORMAT", "VERSION", "Manifest", "RankReport", "ShardRecord"]

FORMAT = "s3dlio-checkpoint"
#: The newest manifest version this code writes and reads.
VERSION = 1


@dataclass(frozen=True, slots=True)
class ShardRecord:
    """One shard object: who wrote it, its key (relative to the root), size and checksum."""

    rank: int
    name: str
    key: str
    size: int
    checksum: int


def _header(kind: str, where: str, data: bytes | memoryview) -> dict[str, Any]:
    """Parse JSON and check its format and version; errors name ``where``."""
    try:
        doc = json.loads(bytes(data))
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckpointCorruptError(
            f"{where}: {kind} is not valid JSON ({exc}); the save did not finish"
        ) from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CheckpointCorruptError(f"{where}: not an s3dlio checkpoint {kind} (format != {FORMAT!r})")
    version = doc.get("version")
    if not isinstance(version, int) or version < 1:
        raise CheckpointCorruptError(f"{where}: {kind} has no valid format version ({version!r})")
    if version > VERSION:
        raise CheckpointVersionError(
            f"{where}: {kind} format version {version} is newer than this s3dlio reads ({VERSION}); "
            "upgrade s3dlio to restore it"
        )
    return doc


def _records(doc: dict[str, Any], where: str) -> tuple[ShardRecord, ...]:
    """The shard list; names as a save writes them (a loader may use one as a local file name)."""
    try:
        records = tuple(ShardRecord(**s) for s in doc["shards"])
        for record in records:
            layout.validate_name(record.name)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointCorruptError(f"{where}: malformed shard list ({exc})") from None
    return records


@dataclass(frozen=True, slots=True)
class RankReport:
    """What one rank wrote for one save, or why it failed (``error``)."""

    step: int
    rank: int
    world_size: int
    save_id: str
    shards: tuple[ShardRecord, ...] = ()
    error: str | None = None

    def to_json(self) -> bytes:
        doc = {"format": FORMAT, "version": VERSION, **asdict(self)}
        return json.dumps(doc, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes | memoryview, where: str) -> RankReport:
        doc = _header("rank file", where, data)
        try:
            return cls(doc["step"], doc["rank"], doc["world_size"], doc["save_id"], _records(doc, where),
                       doc.get("error"))  # fmt: skip
        except KeyError as exc:
            raise CheckpointCorruptError(f"{where}: rank file lacks {exc}") from None


@dataclass(frozen=True, slots=True)
class Manifest:
    """A committed checkpoint: every shard of every rank, and what it was saved with."""

    step: int
    world_size: int
    shards: tuple[ShardRecord, ...]
    framework: str = "bytes"
    algorithm: str = "crc32c"
    metadata: dict[str, Any] = field(default_factory=dict)
    created: float = field(default_factory=time.time)
    version: int = VERSION

    def rank_shards(self, rank: int) -> dict[str, ShardRecord]:
        """The shards rank ``rank`` wrote, by name."""
        return {s.name: s for s in self.shards if s.rank == rank}

    @property
    def total_bytes(self) -> int:
        return sum(s.size for s in self.shards)

    def to_json(self) -> bytes:
        doc = asdict(self)
        doc = {"format": FORMAT, "version": doc.pop("version"), **doc}
        return json.dumps(doc, indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes | memoryview, where: str) -> Manifest:
        doc = _header("manifest", where, data)
        try:
            return cls(
                step=doc["step"], world_size=doc["world_size"], shards=_records(doc, where),
                framework=doc.get("framework", "bytes"), algorithm=doc["algorithm"],
                metadata=doc.get("metadata") or {}, created=doc.get("created", 0.0), version=doc["version"],
            )  # fmt: skip
        except KeyError as exc:
            raise CheckpointCorruptError(f"{where}: manifest lacks {exc}") from None
