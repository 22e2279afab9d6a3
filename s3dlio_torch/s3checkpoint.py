"""s3torchconnector's module path for :class:`~s3dlio_torch.S3Checkpoint`."""

from .checkpoint import S3Checkpoint

__all__ = ["S3Checkpoint"]
