"""s3torchconnector's module path for :class:`~s3dlio_torch.S3IterableDataset`."""

from .datasets import S3IterableDataset

__all__ = ["S3IterableDataset"]
