"""s3torchconnector's module path for :class:`~s3dlio_torch.reader.S3Reader`."""

from ..reader import S3Reader

__all__ = ["S3Reader"]
