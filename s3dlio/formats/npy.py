"""NPY: one numpy array per object, written with ``np.save`` and read back without a copy."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ConfigError
from ._base import FormatError, numeric_dtype

if TYPE_CHECKING:
    from collections.abc import Buffer

    from numpy.typing import DTypeLike

    from ..datagen import DataGenerator

__all__ = ["make_npy", "npy_bytes", "read_npy"]


def npy_bytes(array: np.ndarray) -> bytes:
    """``array`` as the bytes of a ``.npy`` file."""
    out = io.BytesIO()
    np.save(out, array, allow_pickle=False)
    return out.getvalue()


def _header(shape: tuple[int, ...], dtype: np.dtype) -> bytes:
    """The ``.npy`` header (magic, version 1.0, padded dict) for a C-order array."""
    out = io.BytesIO()
    fields = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(out, fields)
    return out.getvalue()


def make_npy(
    size: int, generator: DataGenerator, shape: tuple[int, ...] | None = None, dtype: DTypeLike = "uint8"
) -> memoryview:
    """A ``.npy`` file of about ``size`` bytes (exactly, when ``dtype`` has one-byte items), or of ``shape``.

    The payload is generated straight into the file's buffer after the header: no copy.
    """
    kind = numeric_dtype(dtype)
    if shape is None:
        shape = (max(0, size - len(_header((0,), kind))) // kind.itemsize,)
    if any(dim < 0 for dim in shape):
        raise ConfigError(f"shape={shape!r}: dimensions must be >= 0")
    header = _header(tuple(int(dim) for dim in shape), kind)
    out = np.empty(len(header) + int(np.prod(shape, dtype=np.int64)) * kind.itemsize, dtype=np.uint8)
    out[: len(header)] = np.frombuffer(header, dtype=np.uint8)
    generator.fill(out[len(header) :])
    return memoryview(out)


_HEADER_READERS = {
    (1, 0): (2, np.lib.format.read_array_header_1_0),
    (2, 0): (4, np.lib.format.read_array_header_2_0),
}


def read_npy(buffer: Buffer) -> np.ndarray:
    """The array of a ``.npy`` file, as a zero-copy view of ``buffer`` (``np.load`` would copy)."""
    view = memoryview(buffer).cast("B")
    version = (view[6], view[7]) if len(view) >= 8 else None
    if bytes(view[:6]) != b"\x93NUMPY" or version not in _HEADER_READERS:
        raise FormatError(f"not a .npy file (version 1.0 or 2.0): starts with {bytes(view[:8])!r}")
    length_size, read_header = _HEADER_READERS[version]
    header_end = 8 + length_size + int.from_bytes(view[8 : 8 + length_size], "little")
    head = io.BytesIO(view[:header_end])
    try:
        np.lib.format.read_magic(head)
        shape, fortran, dtype = read_header(head, max_header_size=header_end)
    except ValueError as exc:
        raise FormatError(f"bad .npy header: {exc}") from exc
    if dtype.hasobject:
        raise FormatError(".npy holds Python objects (pickles); s3dlio reads only numeric arrays")
    count = int(np.prod(shape, dtype=np.int64))
    if len(view) - header_end < count * dtype.itemsize:
        raise FormatError(f".npy truncated: header says {shape} {dtype}, file has {len(view)} bytes")
    data = np.frombuffer(view, dtype=dtype, count=count, offset=header_end)
    return data.reshape(shape, order="F" if fortran else "C")
