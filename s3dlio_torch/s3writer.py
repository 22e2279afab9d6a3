"""s3torchconnector's module path for ``S3Writer`` (s3dlio's streaming writer)."""

from ._s3client import S3Writer

__all__ = ["S3Writer"]
