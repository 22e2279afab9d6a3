"""AI/ML object formats: generated payloads wrapped in valid files, and readers that decode them.

``make_object("NPZ", 8 << 20, generator)`` gives a complete ``.npz`` of about 8 MiB whose data
comes from a :class:`~s3dlio.datagen.DataGenerator` (so it keeps the run's dedupe and
compression ratios); ``decode_object("NPZ", buffer)`` reads one back. One module per format:
``npz``, ``npy``, ``tfrecord`` (+ ``example`` for ``tf.train.Example``), ``hdf5``, ``raw``,
``image`` (JPEG, PNG) and ``csvfile``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ._base import FormatError
from .csvfile import make_csv, read_csv
from .example import decode_example, encode_example
from .hdf5 import hdf5_bytes, make_hdf5, read_hdf5
from .image import make_jpeg, make_png, read_image
from .npy import make_npy, npy_bytes, read_npy
from .npz import make_npz, npz_bytes, read_npz
from .raw import make_raw, read_raw
from .tfrecord import (
    format_index,
    iter_tfrecords,
    make_tfrecord,
    masked_crc32c,
    parse_index,
    tfrecord_index,
    write_tfrecords,
)

if TYPE_CHECKING:
    from collections.abc import Buffer

    from ..datagen import DataGenerator

__all__ = [
    "EXTENSIONS",
    "OBJECT_TYPES",
    "FormatError",
    "decode_example",
    "decode_object",
    "encode_example",
    "format_index",
    "hdf5_bytes",
    "iter_tfrecords",
    "make_csv",
    "make_hdf5",
    "make_jpeg",
    "make_npy",
    "make_npz",
    "make_object",
    "make_png",
    "make_raw",
    "make_tfrecord",
    "masked_crc32c",
    "normalize_object_type",
    "npy_bytes",
    "npz_bytes",
    "parse_index",
    "read_csv",
    "read_hdf5",
    "read_image",
    "read_npy",
    "read_npz",
    "read_raw",
    "tfrecord_index",
    "write_tfrecords",
]

OBJECT_TYPES = ("NPZ", "TFRECORD", "HDF5", "RAW", "NPY", "JPEG", "PNG", "CSV")
EXTENSIONS = {
    "NPZ": ".npz",
    "TFRECORD": ".tfrecord",
    "HDF5": ".h5",
    "RAW": ".bin",
    "NPY": ".npy",
    "JPEG": ".jpg",
    "PNG": ".png",
    "CSV": ".csv",
}
_ALIASES = {"H5": "HDF5", "JPG": "JPEG", "TFRECORDS": "TFRECORD", "BIN": "RAW"}

_MAKERS: dict[str, Callable[[int, DataGenerator, int], Buffer]] = {
    "NPZ": lambda size, gen, index: make_npz(size, gen, label=index),
    "TFRECORD": lambda size, gen, index: make_tfrecord(size, gen),
    "HDF5": lambda size, gen, index: make_hdf5(size, gen),
    "RAW": lambda size, gen, index: make_raw(size, gen),
    "NPY": lambda size, gen, index: make_npy(size, gen),
    "JPEG": lambda size, gen, index: make_jpeg(size, gen),
    "PNG": lambda size, gen, index: make_png(size, gen),
    "CSV": lambda size, gen, index: make_csv(size, gen),
}
_READERS: dict[str, Callable[[Buffer], Any]] = {
    "NPZ": read_npz,
    "TFRECORD": lambda buffer: list(iter_tfrecords(buffer)),
    "HDF5": read_hdf5,
    "RAW": read_raw,
    "NPY": read_npy,
    "JPEG": read_image,
    "PNG": read_image,
    "CSV": read_csv,
}


def normalize_object_type(name: str) -> str:
    """The canonical name in :data:`OBJECT_TYPES` for ``name`` (any case; ``h5``, ``jpg`` accepted)."""
    key = name.strip().upper() if isinstance(name, str) else ""
    key = _ALIASES.get(key, key)
    if key not in OBJECT_TYPES:
        raise ConfigError(f"object type {name!r}: use one of {', '.join(OBJECT_TYPES)} (any case)")
    return key


def make_object(object_type: str, size: int, generator: DataGenerator, *, index: int = 0) -> Buffer:
    """A complete file of ``object_type``, about ``size`` bytes (exactly for RAW), payload from ``generator``.

    ``index`` is the object's number in the run; formats with a place for it (the NPZ label)
    record it.
    """
    kind = normalize_object_type(object_type)
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ConfigError(f"size={size!r}: must be an integer number of bytes >= 0")
    return _MAKERS[kind](size, generator, index)


def decode_object(object_type: str, buffer: Buffer) -> Any:
    """Decode an object: NPZ -> dict of arrays, NPY/HDF5/JPEG/PNG/CSV -> array, TFRECORD -> list of
    record memoryviews, RAW -> memoryview. Raises :class:`FormatError` on malformed bytes."""
    return _READERS[normalize_object_type(object_type)](buffer)
