"""TFRecord: framed records with masked CRC32C, plus the DALI-style text index.

Each record is ``uint64 length | uint32 masked_crc(length) | data | uint32 masked_crc(data)``,
little-endian, with ``masked = ((crc >> 15) | (crc << 17)) + 0xA282EAD8``. Reading yields
memoryviews of the object's buffer, so a fetched object is never copied to get at a record.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

import google_crc32c
import numpy as np

from ..errors import ConfigError
from ._base import FormatError
from .example import encode_example

if TYPE_CHECKING:
    from collections.abc import Buffer, Iterable, Iterator

    from ..datagen import DataGenerator

__all__ = [
    "TruncatedRecordError",
    "format_index",
    "iter_tfrecords",
    "make_tfrecord",
    "masked_crc32c",
    "parse_index",
    "tfrecord_index",
    "write_tfrecords",
]

FRAMING = 16  # bytes each record adds: length, its CRC, the data CRC
_MASK_DELTA = 0xA282EAD8


def masked_crc32c(data: Buffer) -> int:
    """TFRecord's masked CRC32C of ``data``."""
    # google_crc32c takes only buffers without a release hook: a numpy view qualifies, no copy
    crc = int(google_crc32c.value(np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)))
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def write_tfrecords(records: Iterable[Buffer]) -> bytes:
    """One TFRecord file holding ``records`` in order."""
    pieces: list[bytes | memoryview] = []
    for record in records:
        data = memoryview(record).cast("B")
        length = struct.pack("<Q", len(data))
        pieces += [
            length,
            struct.pack("<I", masked_crc32c(length)),
            data,
            struct.pack("<I", masked_crc32c(data)),
        ]
    return b"".join(pieces)


def _crc_at(view: memoryview, pos: int) -> int:
    """The stored (masked) CRC at ``pos``."""
    return int.from_bytes(view[pos : pos + 4], "little")


class TruncatedRecordError(FormatError):
    """The file ends inside a record: in its 12-byte header (``header``) or in its data."""

    def __init__(self, message: str, *, header: bool = False) -> None:
        super().__init__(message)
        self.header = header


def _scan(view: memoryview, verify: bool) -> Iterator[tuple[int, int]]:
    """(record offset, data length) of every record; checks framing, and both CRCs if ``verify``."""
    pos, total = 0, len(view)
    while pos < total:
        if total - pos < 12:
            raise TruncatedRecordError(
                f"TFRecord truncated at offset {pos}: {total - pos} bytes left, a header needs 12", header=True
            )
        length = int.from_bytes(view[pos : pos + 8], "little")
        if verify and masked_crc32c(view[pos : pos + 8]) != _crc_at(view, pos + 8):
            raise FormatError(f"TFRecord length CRC mismatch at offset {pos}: corrupt, or not a TFRecord")
        end = pos + 12 + length + 4
        if end > total:
            raise TruncatedRecordError(
                f"TFRecord truncated at offset {pos}: record of {length} bytes, file of {total}", header=False
            )
        if verify and masked_crc32c(view[pos + 12 : end - 4]) != _crc_at(view, end - 4):
            raise FormatError(
                f"TFRecord data CRC mismatch in the record at offset {pos}: the data is corrupt"
            )
        yield pos, length
        pos = end


def iter_tfrecords(buffer: Buffer, verify: bool = True) -> Iterator[memoryview]:
    """The records of a TFRecord file, as zero-copy memoryviews; ``verify`` checks both CRCs."""
    view = memoryview(buffer).cast("B")
    for offset, length in _scan(view, verify):
        yield view[offset + 12 : offset + 12 + length]


def tfrecord_index(buffer: Buffer, verify: bool = False) -> list[tuple[int, int]]:
    """(offset, size) of every record, size including the 16 framing bytes (as DALI's ``tfrecord2idx``)."""
    view = memoryview(buffer).cast("B")
    return [(offset, length + FRAMING) for offset, length in _scan(view, verify)]


def format_index(entries: Iterable[tuple[int, int]]) -> str:
    """The index as text: one ``offset size`` line per record (DALI ``tfrecord2idx`` format)."""
    return "".join(f"{offset} {size}\n" for offset, size in entries)


def parse_index(text: str | Buffer) -> list[tuple[int, int]]:
    """Entries of an index written by :func:`format_index` or ``tfrecord2idx``; blank lines are skipped."""
    if not isinstance(text, str):
        text = bytes(memoryview(text)).decode("ascii")
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or not all(field.isdigit() for field in fields):
            raise FormatError(f"TFRecord index line {number}: {line!r}; expected 'offset size', two integers")
        entries.append((int(fields[0]), int(fields[1])))
    return entries


def _record_sizes(size: int, record_size: int) -> list[int]:
    """Data lengths, none above ``record_size``, whose framed total is ``size`` (for ``size >= 16``)."""
    count = max(1, -(-size // (record_size + FRAMING)))
    data = max(0, size - FRAMING * count)
    return [data // count + (1 if i < data % count else 0) for i in range(count)]


def _varint_size(value: int) -> int:
    return max(1, -(-value.bit_length() // 7))


def _example_size(image: int) -> int:
    """Bytes of ``encode_example({"image": <image bytes>, "size": image})``, without building it."""
    bytes_list = 1 + _varint_size(image) + image
    feature = 1 + _varint_size(bytes_list) + bytes_list
    entry = 2 + len("image") + 1 + _varint_size(feature) + feature
    size_entry = 2 + len("size") + 2 + 4 + _varint_size(image)  # name, Feature{Int64List{packed}}
    features = 1 + _varint_size(entry) + entry + 2 + size_entry
    return 1 + _varint_size(features) + features


def _image_length(record: int) -> int:
    """The largest image whose Example fits in ``record`` bytes (0 if none does)."""
    image = max(0, 2 * record - _example_size(record))
    while image > 0 and _example_size(image) > record:
        image -= 1
    return image


def make_tfrecord(
    size: int, generator: DataGenerator, record_size: int = 65536, *, example: bool = False
) -> bytes:
    """A TFRecord file of about ``size`` bytes (exactly, for raw records) of generated records.

    Records are raw payload by default; ``example=True`` wraps each in a ``tf.train.Example``
    with features ``image`` (the payload) and ``size`` (its length), as DLIO writes them.
    """
    if record_size < 1:
        raise ConfigError(f"record_size={record_size!r}: must be >= 1 byte")
    lengths = _record_sizes(size, record_size)
    if example:
        lengths = [_image_length(n) for n in lengths]
    payload = generator.object(sum(lengths))
    records: list[memoryview | bytes] = []
    start = 0
    for n in lengths:
        chunk = payload[start : start + n]
        records.append(encode_example({"image": chunk, "size": n}) if example else chunk)
        start += n
    return write_tfrecords(records)
