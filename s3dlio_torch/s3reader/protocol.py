"""s3torchconnector's module path for the reader constructor types.

s3torchconnector's constructors are callables that build a reader from a CRT stream; s3dlio's
are settings (:class:`~s3dlio_torch._compat.ReaderConstructor`) that the dataset, client or
checkpoint reads. Both names are that class, so annotations and ``isinstance`` checks
written against s3torchconnector hold for what :class:`S3ReaderConstructor` returns.
"""

from typing import TypeAlias

from .._compat import ReaderConstructor

__all__ = ["DCPS3ReaderConstructorProtocol", "S3ReaderConstructorProtocol"]

S3ReaderConstructorProtocol: TypeAlias = ReaderConstructor
DCPS3ReaderConstructorProtocol: TypeAlias = ReaderConstructor
