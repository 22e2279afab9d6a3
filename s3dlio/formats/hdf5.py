"""HDF5: one file per object with the payload in dataset ``data``, built in memory by h5py."""

from __future__ import annotations

import functools
import io
from typing import TYPE_CHECKING

import numpy as np

from ._base import FormatError, numeric_dtype, payload_array

if TYPE_CHECKING:
    from collections.abc import Buffer, Mapping

    from numpy.typing import DTypeLike

    from ..datagen import DataGenerator

__all__ = ["hdf5_bytes", "make_hdf5", "read_hdf5"]


def hdf5_bytes(datasets: Mapping[str, np.ndarray]) -> bytes:
    """An HDF5 file holding each array as a contiguous (unchunked, uncompressed) dataset."""
    import h5py  # type: ignore[import-untyped]  # about 0.1 s to import: only when an HDF5 object is made

    out = io.BytesIO()
    with h5py.File(out, "w") as file:
        for name, array in datasets.items():
            file.create_dataset(name, data=array)
    return out.getvalue()


@functools.lru_cache(maxsize=32)
def _overhead(ndim: int, dtype: np.dtype) -> int:
    """Bytes an HDF5 file with one dataset spends besides its data (superblock, headers, heap)."""
    return len(hdf5_bytes({"data": np.empty((0,) * ndim, dtype=dtype)}))


def make_hdf5(
    size: int, generator: DataGenerator, shape: tuple[int, ...] | None = None, dtype: DTypeLike = "uint8"
) -> bytes:
    """An HDF5 file of about ``size`` bytes whose dataset ``data`` is generated (``shape`` if given)."""
    data = payload_array(generator, shape, dtype, size - _overhead(1, numeric_dtype(dtype)))
    return hdf5_bytes({"data": data})


def read_hdf5(buffer: Buffer, dataset: str = "data") -> np.ndarray:
    """Dataset ``dataset`` of an HDF5 file held in memory."""
    import h5py

    try:
        with h5py.File(io.BytesIO(buffer), "r") as file:
            if dataset not in file:
                raise FormatError(f"HDF5 file has no dataset {dataset!r}; it has {sorted(file)}")
            return np.asarray(file[dataset][()])
    except OSError as exc:
        raise FormatError(f"not a valid HDF5 file: {exc}") from exc
