"""s3torchconnector's module path for :class:`~s3dlio_torch.lightning.S3LightningCheckpoint`."""

from . import S3LightningCheckpoint

__all__ = ["S3LightningCheckpoint"]
