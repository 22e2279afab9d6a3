"""Why a checkpoint could not be saved or restored.

::

    S3dlioError
     └── CheckpointError
          ├── CheckpointNotFoundError  (also NotFoundError): no complete checkpoint, or no such step
          ├── CheckpointCorruptError   a shard is missing, short, or fails its checksum; bad manifest
          ├── CheckpointVersionError   the manifest was written by a newer format than this reader
          └── CheckpointCommitError    ranks did not all report, a rank failed, or an async save failed

Every message names the checkpoint (its step URI), what is wrong and what to do.
"""

from __future__ import annotations

from ..errors import NotFoundError, S3dlioError

__all__ = [
    "CheckpointCommitError",
    "CheckpointCorruptError",
    "CheckpointError",
    "CheckpointNotFoundError",
    "CheckpointVersionError",
]


class CheckpointError(S3dlioError):
    """Base of every checkpoint failure."""


class CheckpointNotFoundError(CheckpointError, NotFoundError):
    """No complete checkpoint where one was asked for."""


class CheckpointCorruptError(CheckpointError):
    """A checkpoint whose objects do not match its manifest: nothing of it is returned."""


class CheckpointVersionError(CheckpointError):
    """A manifest in a format this s3dlio does not read: upgrade s3dlio."""


class CheckpointCommitError(CheckpointError):
    """The save was not committed; ``latest`` still names the previous checkpoint."""
