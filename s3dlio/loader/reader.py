"""The loader's file over a fetched sample: :class:`s3dlio.buffers.BufferReader` (one class for
every buffer s3dlio turns into a file)."""

from ..buffers import BufferReader

__all__ = ["BufferReader"]
