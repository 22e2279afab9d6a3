"""Framework-free checkpoints on object storage: sharded, checksummed, committed atomically.

>>> from s3dlio.checkpoint import CheckpointStore
>>> ckpt = CheckpointStore("mem://demo/run1/", keep_last=2)
>>> _ = ckpt.save(100, {"model": b"weights", "optim": b"moments"}, metadata={"epoch": 3})
>>> ckpt.latest_step()
100
>>> bytes(ckpt.load()["model"])
b'weights'

Layout, commit protocol and retention: :mod:`.layout`, :mod:`.commit`, :mod:`.retention`;
the user guide is ``docs/checkpoints.md``.
"""

from __future__ import annotations

from ._checksum import ALGORITHM, ChecksumWriter
from .async_save import AsyncSave
from .commit import Coordinator, PollCoordinator, TorchCoordinator
from .errors import (
    CheckpointCommitError,
    CheckpointCorruptError,
    CheckpointError,
    CheckpointNotFoundError,
    CheckpointVersionError,
)
from .manifest import VERSION, Manifest, RankReport, ShardRecord
from .reading import CheckpointReader
from .store import CheckpointStore, ShardSource

__all__ = [
    "ALGORITHM",
    "VERSION",
    "AsyncSave",
    "CheckpointCommitError",
    "CheckpointCorruptError",
    "CheckpointError",
    "CheckpointNotFoundError",
    "CheckpointReader",
    "CheckpointStore",
    "CheckpointVersionError",
    "ChecksumWriter",
    "Coordinator",
    "Manifest",
    "PollCoordinator",
    "RankReport",
    "ShardRecord",
    "ShardSource",
    "TorchCoordinator",
]
