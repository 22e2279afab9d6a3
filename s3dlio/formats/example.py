"""``tf.train.Example`` protos encoded and decoded by hand, so TFRecords need no TensorFlow.

Only what ``Example`` uses: ``Features`` maps a name to a ``Feature`` holding a ``BytesList``
(field 1), a ``FloatList`` (2, float32) or an ``Int64List`` (3, varints), packed or not.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ._base import FormatError

if TYPE_CHECKING:
    from collections.abc import Buffer

__all__ = ["decode_example", "encode_example"]

_VARINT, _FIXED64, _LEN, _FIXED32 = 0, 1, 2, 5  # protobuf wire types
_MASK64 = (1 << 64) - 1
Pieces = list[bytes | memoryview]
Values = list[memoryview] | list[int] | list[float]


def _varint(value: int) -> bytes:
    """Protobuf base-128 varint; a negative int64 takes ten bytes (two's complement)."""
    value &= _MASK64
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, pieces: Pieces) -> Pieces:
    """A length-delimited field as pieces, so a big payload is copied once, by the final join."""
    return [_varint(number << 3 | _LEN), _varint(sum(len(piece) for piece in pieces)), *pieces]


def _feature(name: str, value: object) -> Pieces:
    """One ``Feature`` message for ``value``."""
    if isinstance(value, bytes | bytearray | memoryview):
        return _field(1, _field(1, [memoryview(value).cast("B")]))  # bytes_list
    items = list(value) if isinstance(value, Sequence) else [value]
    if all(isinstance(item, int | np.integer) and not isinstance(item, bool) for item in items):
        return _field(
            3,
            _field(1, [b"".join(_varint(int(item)) for item in items if isinstance(item, int | np.integer))]),
        )  # int64_list
    if all(isinstance(item, int | float | np.number) for item in items):
        return _field(2, _field(1, [struct.pack(f"<{len(items)}f", *items)]))  # float_list
    raise TypeError(f"feature {name!r}: use bytes, int(s) or float(s), not {type(value).__name__}")


def encode_example(features: Mapping[str, object]) -> bytes:
    """A serialised ``tf.train.Example``: bytes-likes become bytes features, ints int64, floats float."""
    entries: Pieces = []
    for name, value in features.items():
        entries += _field(1, [*_field(1, [name.encode()]), *_field(2, _feature(name, value))])
    return b"".join(_field(1, entries))


def _read_varint(view: memoryview, pos: int) -> tuple[int, int]:
    """The varint at ``pos`` and the position after it."""
    result = shift = 0
    while pos < len(view):
        byte = view[pos]
        result |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            return result, pos
        shift += 7
    raise FormatError("Example proto truncated inside a varint")


def _fields(view: memoryview) -> list[tuple[int, int, int | memoryview]]:
    """A message's fields as (number, wire type, int or memoryview of ``view``)."""
    out: list[tuple[int, int, int | memoryview]] = []
    pos = 0
    while pos < len(view):
        key, pos = _read_varint(view, pos)
        wire = key & 7
        if wire == _VARINT:
            value, pos = _read_varint(view, pos)
            out.append((key >> 3, wire, value))
            continue
        if wire == _LEN:
            length, pos = _read_varint(view, pos)
        elif wire in (_FIXED32, _FIXED64):
            length = 4 if wire == _FIXED32 else 8
        else:
            raise FormatError(f"Example proto: field {key >> 3} has unsupported wire type {wire}")
        if pos + length > len(view):
            raise FormatError("Example proto truncated inside a field")
        out.append((key >> 3, wire, view[pos : pos + length]))
        pos += length
    return out


def _int64s(fields: list[tuple[int, int, int | memoryview]]) -> list[int]:
    """Values of an ``Int64List``, packed or not, as signed ints."""
    numbers: list[int] = []
    for _, _, value in fields:
        if isinstance(value, int):
            numbers.append(value)
            continue
        pos = 0
        while pos < len(value):
            number, pos = _read_varint(value, pos)
            numbers.append(number)
    return [number - (1 << 64) if number >> 63 else number for number in numbers]


def _decode_feature(view: memoryview) -> Values:
    """The values of one ``Feature``: memoryviews into the record for bytes (no copy), else numbers."""
    for kind, _, inner in _fields(view):
        if not isinstance(inner, memoryview):
            break
        values = [field for field in _fields(inner) if field[0] == 1]
        if kind == 1:
            return [value for _, _, value in values if isinstance(value, memoryview)]
        if kind == 2:
            packed = b"".join(value for _, _, value in values if isinstance(value, memoryview))
            return list(struct.unpack(f"<{len(packed) // 4}f", packed))
        if kind == 3:
            return _int64s(values)
    return []


def decode_example(buffer: Buffer) -> dict[str, Values]:
    """Features of a serialised ``tf.train.Example``, by name."""
    features: dict[str, Values] = {}
    for number, _, message in _fields(memoryview(buffer).cast("B")):
        if number != 1 or not isinstance(message, memoryview):
            continue
        for entry_number, _, entry in _fields(message):
            if entry_number != 1 or not isinstance(entry, memoryview):
                continue
            parts = {num: value for num, _, value in _fields(entry) if isinstance(value, memoryview)}
            name = bytes(parts.get(1, b"")).decode()
            features[name] = _decode_feature(parts.get(2, memoryview(b"")))
    return features
