"""s3torchconnector's module path for the readers and their constructor."""

from ..reader import RangedS3Reader, S3Reader, SequentialS3Reader
from .constructor import S3ReaderConstructor

__all__ = ["RangedS3Reader", "S3Reader", "S3ReaderConstructor", "SequentialS3Reader"]
