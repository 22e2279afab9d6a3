"""s3torchconnector's module path for :class:`~s3dlio_torch.S3ReaderConstructor`."""

from .._compat import S3ReaderConstructor

__all__ = ["S3ReaderConstructor"]
