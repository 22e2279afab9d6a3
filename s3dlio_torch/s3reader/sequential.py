"""s3torchconnector's module path for :class:`~s3dlio_torch.reader.SequentialS3Reader`."""

from ..reader import SequentialS3Reader

__all__ = ["SequentialS3Reader"]
