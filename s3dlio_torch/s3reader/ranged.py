"""s3torchconnector's module path for :class:`~s3dlio_torch.reader.RangedS3Reader`."""

from ..reader import RangedS3Reader

__all__ = ["RangedS3Reader"]
