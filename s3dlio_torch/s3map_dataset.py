"""s3torchconnector's module path for :class:`~s3dlio_torch.S3MapDataset`."""

from .datasets import S3MapDataset

__all__ = ["S3MapDataset"]
