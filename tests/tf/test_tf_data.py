"""s3dlio_tf data sources under real TensorFlow, on the moto S3 server and local files.

Objects: exact-once sharding, seeded reshuffling per iteration, decoded elements.
TFRecord: the same records in the same order as ``tf.data.TFRecordDataset`` on local copies.
Then tf.distribute (MirroredStrategy on CPU) and a Keras ``model.fit``.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
tf = pytest.importorskip("tensorflow")

import s3dlio  # noqa: E402
import s3dlio_tf  # noqa: E402
from s3dlio.datagen import DataGenerator  # noqa: E402
from s3dlio.errors import ConfigError, NotFoundError  # noqa: E402
from s3dlio.formats.tfrecord import make_tfrecord, write_tfrecords  # noqa: E402

COUNT = 20


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S3DLIO_CACHE_DIR", str(tmp_path / "cache"))
    for name in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def objects(s3_bucket: str) -> str:
    """``COUNT`` objects on moto: ``.../objs/o-NNN`` holding ``NNN``."""
    base = f"{s3_bucket}objs/"
    s3dlio.put_many([(f"{base}o-{i:03d}", b"%03d" % i) for i in range(COUNT)])
    return base


def numbers(ds: tf.data.Dataset) -> list[int]:
    return [int(x) for x in ds.as_numpy_iterator()]


# -- objects -------------------------------------------------------------------------------------------
def test_dataset_yields_object_bytes_in_listing_order(objects: str) -> None:
    ds = s3dlio_tf.dataset(objects)
    assert ds.element_spec == tf.TensorSpec((), tf.string)
    assert numbers(ds) == list(range(COUNT)) and ds.cardinality() == COUNT


def test_two_shards_read_each_object_exactly_once(objects: str) -> None:
    shards = [
        numbers(s3dlio_tf.dataset(objects, shuffle=True, seed=3, rank=r, world_size=2)) for r in range(2)
    ]
    assert len(shards[0]) == len(shards[1]) == COUNT // 2
    assert sorted(shards[0] + shards[1]) == list(range(COUNT))
    # an InputContext (distribute_datasets_from_function) shards the same way
    contexts = [tf.distribute.InputContext(2, i, 2) for i in range(2)]
    assert [
        numbers(s3dlio_tf.dataset(objects, shuffle=True, seed=3, input_context=c)) for c in contexts
    ] == shards
    with pytest.raises(ConfigError, match="disagree with input_context"):
        s3dlio_tf.dataset(objects, rank=0, world_size=2, input_context=contexts[1])


def test_each_iteration_reshuffles_with_the_seed(objects: str) -> None:
    ds = s3dlio_tf.dataset(objects, shuffle=True, seed=7)
    first, second = numbers(ds), numbers(ds)
    assert sorted(first) == sorted(second) == list(range(COUNT))
    assert first != second
    again = s3dlio_tf.dataset(objects, shuffle=True, seed=7)
    assert numbers(again) == first and numbers(again) == second  # a pure function of (seed, epoch)
    assert numbers(s3dlio_tf.dataset(objects, shuffle=True, seed=7, epoch=1)) == second
    fixed = s3dlio_tf.dataset(objects, shuffle=True, seed=7, reshuffle_each_iteration=False)
    assert numbers(fixed) == numbers(fixed) == first
    two_epochs = numbers(s3dlio_tf.dataset(objects, shuffle=True, seed=7).repeat(2))
    assert two_epochs == first + second


def test_decoded_elements_with_transform_and_signature(objects: str) -> None:
    def decode(sample: s3dlio.loader.Sample) -> tuple[np.ndarray, int]:
        value = int(bytes(sample.data))
        return np.array([value, value * 2], np.int32), value % 2

    signature = (tf.TensorSpec((2,), tf.int32), tf.TensorSpec((), tf.int64))
    ds = s3dlio_tf.dataset(objects, transform=decode, output_signature=signature, chunk=8)
    pairs = [(x.tolist(), int(y)) for x, y in ds.as_numpy_iterator()]
    assert pairs == [([i, 2 * i], i % 2) for i in range(COUNT)]
    ragged = tf.TensorSpec((None,), tf.uint8)  # unknown shape: elements cross one at a time
    views = s3dlio_tf.dataset(
        objects, transform=lambda s: np.frombuffer(s.data, np.uint8), output_signature=ragged
    )
    assert [bytes(v) for v in views.as_numpy_iterator()][:2] == [b"000", b"001"]
    with pytest.raises(ConfigError, match="output_signature"):
        s3dlio_tf.dataset(objects, transform=decode)


def test_missing_prefix_names_the_uri(s3_bucket: str) -> None:
    with pytest.raises(NotFoundError, match=f"{s3_bucket}nothing/"):
        s3dlio_tf.dataset(f"{s3_bucket}nothing/")


# -- TFRecord ------------------------------------------------------------------------------------------
@pytest.fixture
def shards(s3_bucket: str, tmp_path: Path) -> tuple[list[str], list[str]]:
    """Five TFRecord shards of tf.train.Examples, on moto and as local files: (uris, paths)."""
    gen = DataGenerator(seed=5)
    uris, paths = [], []
    for i in range(5):
        data = make_tfrecord(3000 + 1000 * i, gen, record_size=700, example=True)
        path = tmp_path / f"train-{i:02d}.tfrecord"
        path.write_bytes(data)
        uri = f"{s3_bucket}tfr/train-{i:02d}.tfrecord"
        s3dlio.put(uri, data)
        uris.append(uri)
        paths.append(str(path))
    return uris, paths


def records(ds: tf.data.Dataset) -> list[bytes]:
    return list(ds.as_numpy_iterator())


@pytest.mark.parametrize("reads", [None, 3], ids=["sequential", "interleave3"])
def test_tfrecord_dataset_equals_tensorflows(shards: tuple[list[str], list[str]], reads: int | None) -> None:
    uris, paths = shards
    expected = records(tf.data.TFRecordDataset(paths, num_parallel_reads=reads))
    ours = s3dlio_tf.TFRecordDataset(uris, num_parallel_reads=reads)
    assert ours.element_spec == tf.TensorSpec((), tf.string)
    assert len(expected) > 20 and records(ours) == expected
    prefix = uris[0].rsplit("/", 1)[0] + "/"
    listed = s3dlio_tf.TFRecordDataset(prefix, num_parallel_reads=reads)  # S3 lists in key order
    assert records(listed) == expected
    features = {"image": tf.io.FixedLenFeature([], tf.string), "size": tf.io.FixedLenFeature([], tf.int64)}
    for record in ours.take(3):
        example = tf.io.parse_single_example(record, features)
        assert int(example["size"]) == len(example["image"].numpy()) > 0


def test_tfrecord_autotune_pipeline_and_shards(shards: tuple[list[str], list[str]]) -> None:
    uris, paths = shards
    expected = sorted(records(tf.data.TFRecordDataset(paths)))
    autotuned = s3dlio_tf.TFRecordDataset(uris, num_parallel_reads=tf.data.AUTOTUNE, deterministic=False)
    assert sorted(records(autotuned.map(tf.identity, num_parallel_calls=tf.data.AUTOTUNE))) == expected
    by_rank = [
        records(s3dlio_tf.TFRecordDataset(uris, shuffle=True, seed=1, rank=r, world_size=2)) for r in range(2)
    ]
    assert sorted(by_rank[0] + by_rank[1]) == expected  # files split as tf.data's FILE sharding: 3 + 2
    dropped = [
        records(s3dlio_tf.TFRecordDataset(uris, shuffle=True, seed=1, rank=r, world_size=2, uneven="drop"))
        for r in range(2)
    ]
    assert not set(dropped[0]) & set(dropped[1]) and len(set(dropped[0] + dropped[1])) < len(expected)
    files = s3dlio_tf.TFRecordDataset(uris, shuffle=True, seed=1)
    assert sorted(records(files)) == expected and records(files) != records(files)  # new file order per pass


def test_tfrecord_gzip_and_corruption(s3_bucket: str, caplog: pytest.LogCaptureFixture) -> None:
    raw = write_tfrecords([b"rec-%d" % i for i in range(10)])
    s3dlio.put(f"{s3_bucket}z/a.tfrecord.gz", gzip.compress(raw))
    ds = s3dlio_tf.TFRecordDataset([f"{s3_bucket}z/a.tfrecord.gz"], compression_type="GZIP")
    assert records(ds) == [b"rec-%d" % i for i in range(10)]
    bad = bytearray(raw)
    bad[20] ^= 0xFF  # inside the first record's data: its CRC fails
    s3dlio.put(f"{s3_bucket}z/bad.tfrecord", bytes(bad))
    for reads in (None, 2):
        caplog.clear()
        with pytest.raises(tf.errors.DataLossError, match="see_the_s3dlio_tf_log"):  # as tf.data's reader
            records(s3dlio_tf.TFRecordDataset([f"{s3_bucket}z/bad.tfrecord"], num_parallel_reads=reads))
        assert f"{s3_bucket}z/bad.tfrecord: TFRecord data CRC mismatch" in caplog.text  # the URI and reason
    with pytest.raises(ConfigError, match="compression_type"):
        s3dlio_tf.TFRecordDataset([f"{s3_bucket}z/a.tfrecord.gz"], compression_type="SNAPPY")


# -- tf.distribute and Keras -----------------------------------------------------------------------------
def test_mirrored_strategy_iterates_distributed_datasets(objects: str) -> None:
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    dist = strategy.experimental_distribute_dataset(s3dlio_tf.dataset(objects).batch(4))
    seen = [int(x) for batch in dist for x in strategy.experimental_local_results(batch)[0].numpy()]
    assert seen == list(range(COUNT))

    def per_pipeline(ctx: tf.distribute.InputContext) -> tf.data.Dataset:
        ds = s3dlio_tf.dataset(objects, shuffle=True, seed=2, input_context=ctx)
        return ds.batch(ctx.get_per_replica_batch_size(4))

    from_fn = strategy.distribute_datasets_from_function(per_pipeline)
    got = [int(x) for batch in from_fn for x in strategy.experimental_local_results(batch)[0].numpy()]
    assert sorted(got) == list(range(COUNT))


def test_keras_fit_one_epoch(s3_bucket: str) -> None:
    keras = pytest.importorskip("keras")
    rng = np.random.default_rng(0)
    rows = rng.standard_normal((32, 5)).astype(np.float32)  # 4 features and a label
    s3dlio.put_many([(f"{s3_bucket}rows/r-{i:02d}", rows[i].tobytes()) for i in range(len(rows))])

    def parse(raw: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        values = tf.io.decode_raw(raw, tf.float32)
        return values[:4], values[4:]

    ds = s3dlio_tf.dataset(f"{s3_bucket}rows/", shuffle=True, seed=0)
    ds = ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE).batch(8).prefetch(tf.data.AUTOTUNE)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    assert ds.cardinality() == 4  # known: Keras sizes the epoch without running out of data
    history = model.fit(ds, epochs=1, shuffle=False, verbose=0)
    assert len(history.history["loss"]) == 1 and np.isfinite(history.history["loss"][0])
