"""CSV: a header row and rows of integers 0-255 taken from the generated payload.

Fields are three digits wide (``007``, still a valid integer to any CSV reader), so the text is
built with numpy in one pass instead of formatting numbers one by one.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ConfigError
from ._base import FormatError

if TYPE_CHECKING:
    from collections.abc import Buffer

    from ..datagen import DataGenerator

__all__ = ["make_csv", "read_csv"]

_FIELD = 4  # three digits and a separator


def make_csv(size: int, generator: DataGenerator, columns: int = 16) -> bytes:
    """A CSV file of ``columns`` integer columns, exactly ``size`` bytes when that fits a header and a row."""
    if columns < 1:
        raise ConfigError(f"columns={columns!r}: must be >= 1")
    header = (",".join(f"c{i}" for i in range(columns)) + "\n").encode()
    row_bytes = _FIELD * columns
    rows = max(0, size - len(header)) // row_bytes
    values = np.frombuffer(generator.object(rows * columns), dtype=np.uint8).reshape(rows, columns)
    text = np.empty((rows, columns, _FIELD), dtype=np.uint8)
    text[:, :, 0] = values // 100 + ord("0")
    text[:, :, 1] = values // 10 % 10 + ord("0")
    text[:, :, 2] = values % 10 + ord("0")
    text[:, :, 3] = ord(",")
    text[:, -1, 3] = ord("\n")
    if not rows:
        return header
    # leading zeros on the last row's first field take up the bytes a whole row would overflow
    spare = max(0, size - len(header)) - rows * row_bytes
    body = text.reshape(rows, row_bytes)
    return b"".join([header, body[:-1].tobytes(), b"0" * spare, body[-1].tobytes()])


def read_csv(buffer: Buffer) -> np.ndarray:
    """The numbers of a CSV file with one header row, as a (rows, columns) int64 array."""
    try:
        text = bytes(memoryview(buffer)).decode("ascii")
    except UnicodeDecodeError as exc:
        raise FormatError(f"not a CSV of integers: {exc}") from exc
    header, _, body = text.partition("\n")
    columns = len(header.split(","))
    if not body.strip():
        return np.empty((0, columns), dtype=np.int64)
    try:
        return np.loadtxt(io.StringIO(body), delimiter=",", dtype=np.int64, ndmin=2)
    except ValueError as exc:
        raise FormatError(f"not a CSV of integers with one header row: {exc}") from exc
