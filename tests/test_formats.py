"""Object formats: each generated file opens in its reference reader, and ours decode them."""

from __future__ import annotations

import csv
import io
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

from s3dlio.datagen import DataGenerator
from s3dlio.errors import ConfigError
from s3dlio.formats import (
    EXTENSIONS,
    OBJECT_TYPES,
    FormatError,
    decode_example,
    decode_object,
    encode_example,
    format_index,
    iter_tfrecords,
    make_npy,
    make_npz,
    make_object,
    make_tfrecord,
    parse_index,
    read_npy,
    tfrecord_index,
    write_tfrecords,
)

SIZE = 256 * 1024
EXACT = {"RAW", "NPY", "NPZ", "TFRECORD", "HDF5", "CSV"}


@pytest.fixture
def gen() -> DataGenerator:
    return DataGenerator(seed=11)


@pytest.mark.parametrize("object_type", OBJECT_TYPES)
def test_size(object_type: str, gen: DataGenerator) -> None:
    if object_type in ("JPEG", "PNG"):
        pytest.importorskip("PIL")
    data = make_object(object_type, SIZE, gen)
    if object_type in EXACT:
        assert len(memoryview(data)) == SIZE
    else:
        assert len(memoryview(data)) == pytest.approx(SIZE, rel=0.10)
    assert EXTENSIONS[object_type].startswith(".")


def test_npz_opens_in_numpy(gen: DataGenerator) -> None:
    data = make_object("npz", SIZE, gen, index=42)
    with np.load(io.BytesIO(data)) as archive:
        assert archive["x"].dtype == np.uint8 and archive["x"].ndim == 1
        assert archive["y"].tolist() == [42]
        x = archive["x"]
    assert np.array_equal(decode_object("NPZ", data)["x"], x)


def test_npz_shape_and_dtype(gen: DataGenerator) -> None:
    data = make_npz(0, gen, shape=(8, 16, 3), dtype="float32")
    with np.load(io.BytesIO(data)) as archive:
        assert archive["x"].shape == (8, 16, 3) and archive["x"].dtype == np.float32


def test_npy_opens_in_numpy_and_reads_without_copy(gen: DataGenerator) -> None:
    data = make_object("NPY", SIZE, gen)
    reference = np.load(io.BytesIO(bytes(data)))
    ours = read_npy(data)
    assert np.array_equal(reference, ours)
    assert np.shares_memory(ours, np.frombuffer(data, dtype=np.uint8))
    shaped = make_npy(0, gen, shape=(4, 5), dtype="<i4")
    assert np.load(io.BytesIO(bytes(shaped))).shape == (4, 5)
    assert read_npy(shaped).shape == (4, 5)


def test_npy_rejects_garbage() -> None:
    with pytest.raises(FormatError, match=r"not a \.npy"):
        read_npy(b"hello world")


def test_hdf5_opens_in_h5py(gen: DataGenerator) -> None:
    h5py = pytest.importorskip("h5py")
    data = make_object("HDF5", SIZE, gen)
    with h5py.File(io.BytesIO(data), "r") as file:
        reference = file["data"][()]
    assert reference.dtype == np.uint8 and reference.size > SIZE * 0.9
    assert np.array_equal(decode_object("hdf5", data), reference)
    with pytest.raises(FormatError, match="HDF5"):
        decode_object("HDF5", b"not hdf5" * 100)


@pytest.mark.parametrize(("object_type", "pil_format"), [("JPEG", "JPEG"), ("PNG", "PNG")])
def test_images_open_in_pillow(object_type: str, pil_format: str, gen: DataGenerator) -> None:
    image_module = pytest.importorskip("PIL.Image")
    data = make_object(object_type, SIZE, gen)
    with image_module.open(io.BytesIO(data)) as image:
        assert image.format == pil_format and image.mode == "RGB"
        size = image.size
    pixels = decode_object(object_type, data)
    assert pixels.shape == (size[1], size[0], 3)


def test_csv_opens_in_csv_module(gen: DataGenerator) -> None:
    data = make_object("CSV", SIZE, gen)
    rows = list(csv.reader(io.StringIO(bytes(data).decode())))
    assert rows[0][0] == "c0"
    numbers = [[int(field) for field in row] for row in rows[1:]]
    assert all(0 <= n <= 255 for row in numbers for n in row)
    assert np.array_equal(decode_object("csv", data), np.array(numbers))


def test_raw_is_payload(gen: DataGenerator) -> None:
    data = make_object("raw", 12345, gen)
    assert bytes(decode_object("RAW", data)) == bytes(data)


def test_tfrecord_opens_in_tensorflow(gen: DataGenerator, tmp_path: Path) -> None:
    tf = pytest.importorskip("tensorflow")
    data = make_tfrecord(SIZE, gen, record_size=10_000)
    path = tmp_path / "a.tfrecord"
    path.write_bytes(data)
    reference = [record.numpy() for record in tf.data.TFRecordDataset(str(path))]
    assert [bytes(record) for record in iter_tfrecords(data)] == reference
    assert len(reference) == 27


def test_tfrecord_examples_parse_in_tensorflow(gen: DataGenerator, tmp_path: Path) -> None:
    tf = pytest.importorskip("tensorflow")
    data = make_tfrecord(SIZE, gen, record_size=50_000, example=True)
    assert len(data) == SIZE
    path = tmp_path / "e.tfrecord"
    path.write_bytes(data)
    spec = {"image": tf.io.FixedLenFeature([], tf.string), "size": tf.io.FixedLenFeature([], tf.int64)}
    parsed = [tf.io.parse_single_example(record, spec) for record in tf.data.TFRecordDataset(str(path))]
    ours = [decode_example(record) for record in iter_tfrecords(data)]
    assert len(parsed) == len(ours) == 6
    for theirs, mine in zip(parsed, ours, strict=True):
        image = mine["image"][0]
        assert isinstance(image, memoryview)
        assert theirs["image"].numpy() == bytes(image)
        assert int(theirs["size"]) == mine["size"][0] == len(image)


def test_tensorflow_written_tfrecord_reads_here(tmp_path: Path) -> None:
    tf = pytest.importorskip("tensorflow")
    path = tmp_path / "tf.tfrecord"
    features = {
        "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"\x00\xff" * 300])),
        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[-3, 2**40])),
        "score": tf.train.Feature(float_list=tf.train.FloatList(value=[0.5, 1.25])),
    }
    example = tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()
    with tf.io.TFRecordWriter(str(path)) as writer:
        writer.write(b"plain")
        writer.write(example)
    records = list(iter_tfrecords(path.read_bytes()))
    assert bytes(records[0]) == b"plain"
    decoded = decode_example(records[1])
    assert [bytes(image) for image in decoded["image"] if isinstance(image, memoryview)] == [
        b"\x00\xff" * 300
    ]
    assert decoded["label"] == [-3, 2**40]
    assert decoded["score"] == [0.5, 1.25]
    ours = encode_example({"image": b"\x00\xff" * 300, "label": [-3, 2**40], "score": [0.5, 1.25]})
    assert tf.train.Example.FromString(ours) == tf.train.Example.FromString(example)


def test_tfrecord_round_trip_and_index() -> None:
    records = [b"", b"a", b"hello" * 100, bytes(range(256))]
    data = write_tfrecords(records)
    assert [bytes(record) for record in iter_tfrecords(data)] == records
    index = tfrecord_index(data)
    # DALI tfrecord2idx: offset of each record and its size with the 16 framing bytes
    offsets = np.cumsum([0] + [len(record) + 16 for record in records])
    assert index == [(int(offsets[i]), len(records[i]) + 16) for i in range(len(records))]
    text = format_index(index)
    assert text.splitlines()[1] == "16 17"
    assert parse_index(text) == index
    assert parse_index(text.encode() + b"\n") == index
    for offset, size in index:
        (length,) = struct.unpack_from("<Q", data, offset)
        assert length + 16 == size


def test_tfrecord_records_are_zero_copy() -> None:
    data = bytearray(write_tfrecords([b"abc", b"defg"]))
    first = next(iter_tfrecords(data))
    data[12] = ord("X")
    assert bytes(first) == b"Xbc"


def test_tfrecord_corruption_detected() -> None:
    data = bytearray(write_tfrecords([b"first record", b"second record"]))
    bad_data = bytearray(data)
    bad_data[28 + 12 + 3] ^= 0x01  # a byte inside the second record's data
    with pytest.raises(FormatError, match="data CRC mismatch .* offset 28"):
        list(iter_tfrecords(bad_data))
    assert len(list(iter_tfrecords(bad_data, verify=False))) == 2
    bad_length = bytearray(data)
    bad_length[8] ^= 0xFF  # the length's CRC
    with pytest.raises(FormatError, match="length CRC mismatch at offset 0"):
        list(iter_tfrecords(bad_length))
    with pytest.raises(FormatError, match="truncated"):
        list(iter_tfrecords(data[:-1]))
    with pytest.raises(FormatError, match="truncated"):
        tfrecord_index(data[:5])


def test_parse_index_rejects_bad_lines() -> None:
    with pytest.raises(FormatError, match="line 2"):
        parse_index("0 10\nzero ten\n")


def test_object_type_names() -> None:
    gen = DataGenerator()
    assert len(memoryview(make_object("rAw", 10, gen))) == 10
    assert len(memoryview(make_object(" h5 ", 4096, gen))) == 4096
    with pytest.raises(ConfigError, match="'parquet'.*NPZ, TFRECORD, HDF5, RAW, NPY, JPEG, PNG, CSV"):
        make_object("parquet", 10, gen)
    with pytest.raises(ConfigError, match="size=-5"):
        make_object("RAW", -5, gen)


def test_bad_dtype(gen: DataGenerator) -> None:
    with pytest.raises(ConfigError, match="dtype"):
        make_npz(100, gen, dtype=object)


def test_missing_pillow_says_how_to_install(gen: DataGenerator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match="pip install pillow"):
        make_object("JPEG", 1000, gen)
