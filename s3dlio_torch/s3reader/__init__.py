"""s3torchconnector's module path for the readers, their constructor and its types."""

from .constructor import S3ReaderConstructor
from .protocol import DCPS3ReaderConstructorProtocol, S3ReaderConstructorProtocol
from .ranged import RangedS3Reader
from .s3reader import S3Reader
from .sequential import SequentialS3Reader

__all__ = [
    "DCPS3ReaderConstructorProtocol",
    "RangedS3Reader",
    "S3Reader",
    "S3ReaderConstructor",
    "S3ReaderConstructorProtocol",
    "SequentialS3Reader",
]
