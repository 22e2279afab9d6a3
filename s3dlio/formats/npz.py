"""NPZ: a zip of ``.npy`` arrays, as ``np.savez`` writes it (DLIO's ``x`` data and ``y`` labels)."""

from __future__ import annotations

import functools
import io
import zipfile
from typing import TYPE_CHECKING

import numpy as np

from ._base import FormatError, numeric_dtype, payload_array

if TYPE_CHECKING:
    from collections.abc import Buffer, Mapping

    from numpy.typing import DTypeLike

    from ..datagen import DataGenerator

__all__ = ["make_npz", "npz_bytes", "read_npz"]

_LABEL_BYTES = 8  # one int64 label


def npz_bytes(arrays: Mapping[str, np.ndarray], *, compressed: bool = False) -> bytes:
    """``arrays`` as the bytes of a ``.npz`` file (stored, or deflated if ``compressed``)."""
    out = io.BytesIO()
    save = np.savez_compressed if compressed else np.savez
    save(out, allow_pickle=False, **arrays)
    return out.getvalue()


@functools.lru_cache(maxsize=32)
def _overhead(ndim: int, dtype: np.dtype) -> int:
    """Bytes an ``x``/``y`` npz spends besides the ``x`` data: zip records and npy headers."""
    empty = np.empty((0,) * ndim, dtype=dtype)
    return len(npz_bytes({"x": empty, "y": np.zeros(1, dtype=np.int64)})) - _LABEL_BYTES


def make_npz(
    size: int,
    generator: DataGenerator,
    shape: tuple[int, ...] | None = None,
    dtype: DTypeLike = "uint8",
    *,
    label: int = 0,
) -> bytes:
    """An ``.npz`` with ``x`` (generated data: ``shape`` if given, else 1-D) and ``y`` (``[label]``).

    Without ``shape`` the file is about ``size`` bytes: the zip and npy overhead is measured
    and taken off the payload.
    """
    nbytes = size - _overhead(1, numeric_dtype(dtype)) - _LABEL_BYTES
    data = payload_array(generator, shape, dtype, nbytes)
    return npz_bytes({"x": data, "y": np.array([label], dtype=np.int64)})


def read_npz(buffer: Buffer) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file, by name."""
    try:
        with np.load(io.BytesIO(buffer), allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise FormatError(f"not a valid .npz file: {exc}") from exc
