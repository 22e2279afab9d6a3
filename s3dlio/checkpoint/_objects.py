"""The seam where checkpoints stream objects: one place to change writer or reader.

``open_write`` gives s3dlio's multipart writer: a file-like whose object appears on
``close``; an exception inside ``with`` (or ``abort()``) leaves nothing behind, and memory
stays at a few parts however large the object. ``open_read`` gives the seekable reader with
read-ahead and ``readinto``. Both resolve like :mod:`s3dlio.ops`, so they are op-logged.
"""

from __future__ import annotations

from ..large import ObjectReader, ObjectWriter, open_reader, open_writer

__all__ = ["open_read", "open_write"]


def open_write(uri: str) -> ObjectWriter:
    """A streaming writer for the object ``uri`` (use it in ``with``)."""
    return open_writer(uri)


def open_read(uri: str) -> ObjectReader:
    """A seekable binary file over the object ``uri``."""
    return open_reader(uri)
