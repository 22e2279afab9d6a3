"""``s3dlio_tf.TFRecordDataset`` in tf.data's graph-mode idioms, on the moto S3 server.

File names arrive as symbolic tensors (``interleave``, ``flat_map``, a ``tf.function``) or as a
dataset of names; every pipeline is compared record for record with the same pipeline built
on ``tf.data.TFRecordDataset`` over local copies, compressed ones included.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
tf = pytest.importorskip("tensorflow")

import s3dlio  # noqa: E402
import s3dlio_tf  # noqa: E402
from s3dlio.datagen import DataGenerator  # noqa: E402
from s3dlio.errors import ConfigError  # noqa: E402
from s3dlio.formats.tfrecord import make_tfrecord, write_tfrecords  # noqa: E402

COMPRESS = {"": lambda b: b, "GZIP": gzip.compress, "ZLIB": zlib.compress}
SUFFIX = {"": "", "GZIP": ".gz", "ZLIB": ".zz"}


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S3DLIO_CACHE_DIR", str(tmp_path / "cache"))


def shard_bytes(i: int, gen: DataGenerator) -> bytes:
    """Shard ``i``: tf.train.Examples, except shard 1 holds edge-case records (empty, NUL-ended)."""
    if i == 1:
        return write_tfrecords([b"", b"\x00", b"tail\x00\x00", b"x" * 70_000, b"last"])
    return make_tfrecord(12_000 + 4_000 * i, gen, record_size=200, example=True)


@pytest.fixture(params=["", "GZIP", "ZLIB"], ids=["plain", "gzip", "zlib"])
def shards(request: pytest.FixtureRequest, s3_bucket: str, tmp_path: Path) -> tuple[list[str], list[str], str]:
    """Four TFRecord shards on moto and as local files: (uris, paths, compression_type)."""
    kind: str = request.param
    gen = DataGenerator(seed=11)
    uris, paths = [], []
    for i in range(4):
        data = COMPRESS[kind](shard_bytes(i, gen))
        name = f"train-{i:02d}.tfrecord{SUFFIX[kind]}"
        (tmp_path / name).write_bytes(data)
        s3dlio.put(f"{s3_bucket}tfr/{name}", data)
        uris.append(f"{s3_bucket}tfr/{name}")
        paths.append(str(tmp_path / name))
    return uris, paths, kind


def records(ds: Any) -> list[bytes]:
    return list(ds.as_numpy_iterator())


@pytest.mark.parametrize("calls", [None, 2, tf.data.AUTOTUNE], ids=["serial", "calls2", "autotune"])
def test_interleave_of_symbolic_names(shards: tuple[list[str], list[str], str], calls: int | None) -> None:
    uris, paths, kind = shards

    def pipeline(names: list[str], reader: Any) -> Any:
        return tf.data.Dataset.from_tensor_slices(names).interleave(
            lambda f: reader(f, compression_type=kind), cycle_length=2, num_parallel_calls=calls
        )

    expected = records(pipeline(paths, tf.data.TFRecordDataset))
    assert len(expected) > 100 and b"tail\x00\x00" in expected and b"" in expected
    assert records(pipeline(uris, s3dlio_tf.TFRecordDataset)) == expected


def test_flat_map_and_nested_parallel_reads(shards: tuple[list[str], list[str], str]) -> None:
    uris, paths, kind = shards
    expected = records(
        tf.data.Dataset.from_tensor_slices(paths).flat_map(
            lambda f: tf.data.TFRecordDataset(f, compression_type=kind, buffer_size=1 << 16)
        )
    )
    ours = tf.data.Dataset.from_tensor_slices(uris).flat_map(
        lambda f: s3dlio_tf.TFRecordDataset(f, compression_type=kind, buffer_size=1 << 16)
    )
    assert records(ours) == expected
    # the whole batch of names as one symbolic 1-D tensor, read 3 at a time as tf.data does
    batches = tf.data.Dataset.from_tensors(uris), tf.data.Dataset.from_tensors(paths)
    nested = batches[0].flat_map(lambda fs: s3dlio_tf.TFRecordDataset(fs, kind, num_parallel_reads=3))
    reference = batches[1].flat_map(lambda fs: tf.data.TFRecordDataset(fs, kind, num_parallel_reads=3))
    assert records(nested) == records(reference)


def test_inside_a_tf_function(shards: tuple[list[str], list[str], str]) -> None:
    uris, paths, kind = shards

    def build(reader: Any) -> Any:
        @tf.function
        def summary(names: Any) -> tuple[Any, Any]:
            ds = reader(names, compression_type=kind, num_parallel_reads=2)
            count = ds.reduce(tf.constant(0, tf.int64), lambda n, _: n + 1)
            size = ds.reduce(tf.constant(0, tf.int64), lambda n, r: n + tf.cast(tf.strings.length(r), tf.int64))
            return count, size

        return summary

    ours = build(s3dlio_tf.TFRecordDataset)(tf.constant(uris))
    theirs = build(tf.data.TFRecordDataset)(tf.constant(paths))
    assert [int(x) for x in ours] == [int(x) for x in theirs] and int(theirs[0]) > 100


def test_dataset_of_names_list_files_style(shards: tuple[list[str], list[str], str]) -> None:
    uris, paths, kind = shards
    listed = sorted(s3dlio.list(uris[0].rsplit("/", 1)[0] + "/"))
    assert listed == uris
    names = tf.data.Dataset.from_tensor_slices(listed).shuffle(8, seed=4)
    local = tf.data.Dataset.from_tensor_slices(paths).shuffle(8, seed=4)
    for reads in (None, 3):
        ours = s3dlio_tf.TFRecordDataset(names, compression_type=kind, num_parallel_reads=reads)
        theirs = tf.data.TFRecordDataset(local, compression_type=kind, num_parallel_reads=reads)
        assert records(ours) == records(theirs)


def test_compression_type_as_a_tensor(shards: tuple[list[str], list[str], str]) -> None:
    uris, paths, kind = shards
    expected = records(tf.data.TFRecordDataset(paths, compression_type=kind))
    assert records(s3dlio_tf.TFRecordDataset(uris, compression_type=tf.constant(kind))) == expected
    pairs = tf.data.Dataset.from_tensor_slices((uris, [kind] * len(uris)))
    ours = pairs.flat_map(lambda f, c: s3dlio_tf.TFRecordDataset(f, compression_type=c))
    assert records(ours) == expected


def test_eager_tensors_keep_the_list_options(shards: tuple[list[str], list[str], str]) -> None:
    uris, paths, kind = shards
    expected = sorted(records(tf.data.TFRecordDataset(paths, compression_type=kind)))
    halves = [
        records(s3dlio_tf.TFRecordDataset(tf.constant(uris), kind, rank=r, world_size=2, shuffle=True, seed=2))
        for r in range(2)
    ]
    assert sorted(halves[0] + halves[1]) == expected and halves[0] and halves[1]
    one = records(s3dlio_tf.TFRecordDataset(tf.constant(uris[0]), kind))
    assert one == records(tf.data.TFRecordDataset(paths[0], kind))


# -- errors -----------------------------------------------------------------------------------------
def test_errors_in_graph_mode_name_the_object(s3_bucket: str, caplog: pytest.LogCaptureFixture) -> None:
    raw = bytearray(write_tfrecords([b"rec-%d" % i for i in range(5)]))
    raw[20] ^= 0xFF  # inside the first record's data: its CRC fails
    s3dlio.put(f"{s3_bucket}bad.tfrecord", bytes(raw))
    s3dlio.put(f"{s3_bucket}plain.tfrecord", write_tfrecords([b"a", b"b"]))
    names = tf.data.Dataset.from_tensor_slices([f"{s3_bucket}bad.tfrecord"])
    with pytest.raises(tf.errors.DataLossError):
        records(names.interleave(s3dlio_tf.TFRecordDataset, cycle_length=1))
    assert f"{s3_bucket}bad.tfrecord: TFRecord data CRC mismatch" in caplog.text
    gone = tf.data.Dataset.from_tensor_slices([f"{s3_bucket}missing.tfrecord"])
    with pytest.raises(tf.errors.NotFoundError, match=f"{s3_bucket}missing.tfrecord: not found"):
        records(gone.flat_map(s3dlio_tf.TFRecordDataset))
    plain = tf.data.Dataset.from_tensor_slices([f"{s3_bucket}plain.tfrecord"])
    with pytest.raises(tf.errors.DataLossError, match="incorrect header check"):
        records(plain.flat_map(lambda f: s3dlio_tf.TFRecordDataset(f, "GZIP")))
    assert f"{s3_bucket}plain.tfrecord: not GZIP-compressed" in caplog.text
    with pytest.raises(tf.errors.OpError, match="compression_type='SNAPPY'"):
        records(plain.flat_map(lambda f: s3dlio_tf.TFRecordDataset(f, tf.constant("SNAPPY"))))


def test_options_that_need_names_up_front_are_refused(s3_bucket: str) -> None:
    names = tf.data.Dataset.from_tensor_slices([f"{s3_bucket}a.tfrecord"])
    with pytest.raises(ConfigError, match=r"shuffle=True.*\.shard\(\), \.shuffle\(\)"):
        s3dlio_tf.TFRecordDataset(names, shuffle=True)
    with pytest.raises(Exception, match="ConfigError: TFRecordDataset.rank=0, world_size=2"):
        names.flat_map(lambda f: s3dlio_tf.TFRecordDataset(f, rank=0, world_size=2))  # AutoGraph wraps it
    with pytest.raises(ConfigError, match="int32 tensor"):
        s3dlio_tf.TFRecordDataset(tf.constant([1, 2]))
    with pytest.raises(ConfigError, match="scalar tf.string names"):
        s3dlio_tf.TFRecordDataset(tf.data.Dataset.range(3))
