"""PyTorch datasets on s3dlio: drop-in names of s3torchconnector, exact-once sharding, resume.

>>> from s3dlio_torch import S3IterableDataset                       # doctest: +SKIP
>>> ds = S3IterableDataset.from_prefix("s3://bucket/train/", region="us-east-1",
...                                    shuffle=True, seed=0, transform=decode)
>>> loader = torch.utils.data.DataLoader(ds, batch_size=32, num_workers=8)
"""

from __future__ import annotations

try:
    import torch  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("s3dlio_torch needs PyTorch: pip install 's3dlio[torch]'") from exc

from s3dlio import __version__
from s3dlio.fsspec_registry import register_lazily

from ._compat import S3ClientConfig, S3ReaderConstructor, client_config
from ._s3client import S3Client, S3Exception, S3Writer  # binds ``s3dlio_torch._s3client`` too
from .checkpoint import CheckpointManager, S3Checkpoint, load, save
from .datasets import S3IterableDataset, S3MapDataset
from .reader import RangedS3Reader, S3Reader, identity

# fsspec's s3:// and az:// (Lightning's ModelCheckpoint, pandas) reach s3dlio from import on,
# whatever order objects are built in; the filesystem classes load on first use.
register_lazily()

__all__ = [
    "CheckpointManager",
    "RangedS3Reader",
    "S3Checkpoint",
    "S3Client",
    "S3ClientConfig",
    "S3Exception",
    "S3IterableDataset",
    "S3MapDataset",
    "S3Reader",
    "S3ReaderConstructor",
    "S3Writer",
    "client_config",
    "dcp",
    "identity",
    "lightning",
    "load",
    "save",
    "__version__",
]

# Modules loaded on first use: torch.distributed.checkpoint (dcp) costs about a second of
# imports, so DataLoader workers started by forkserver or spawn stay quick to start (Lightning
# too); the others are s3torchconnector's module paths (``s3torchconnector.s3reader``, ...).
_SUBMODULES = frozenset(
    {"dcp", "lightning", "s3checkpoint", "s3iterable_dataset", "s3map_dataset", "s3reader", "s3writer"}
)


def __getattr__(name: str) -> object:
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 's3dlio_torch' has no attribute {name!r}")
