"""What every format module shares: its error type and how a payload becomes an array."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..errors import ConfigError, S3dlioError

if TYPE_CHECKING:
    from numpy.typing import DTypeLike

    from ..datagen import DataGenerator

__all__ = ["FormatError", "numeric_dtype", "payload_array"]


class FormatError(S3dlioError, ValueError):
    """An object's bytes are not a valid file of its format (bad CRC, truncated, wrong magic)."""


def numeric_dtype(dtype: DTypeLike) -> np.dtype:
    """``dtype`` as a numpy dtype, if its items have a fixed size and hold no Python objects."""
    kind = np.dtype(dtype)
    if kind.itemsize == 0 or kind.hasobject:
        raise ConfigError(f"dtype={dtype!r}: use a fixed-size numeric dtype such as 'uint8' or 'float32'")
    return kind


def payload_array(
    generator: DataGenerator, shape: tuple[int, ...] | None, dtype: DTypeLike, nbytes: int
) -> np.ndarray:
    """Generated data viewed as ``dtype``: ``shape`` if given, else 1-D filling ``nbytes``.

    Random bits make odd floats (NaN, inf): they are file payload for I/O tests, not numbers
    to compute with.
    """
    kind = numeric_dtype(dtype)
    if shape is None:
        shape = (max(0, nbytes) // kind.itemsize,)
    if any(dim < 0 for dim in shape):
        raise ConfigError(f"shape={shape!r}: dimensions must be >= 0")
    count = int(np.prod(shape, dtype=np.int64))
    data = np.frombuffer(generator.object(count * kind.itemsize), dtype=kind)
    return data.reshape(shape)
