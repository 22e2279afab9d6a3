"""s3dlio_jax data: a Grain data source under grain.DataLoader with worker processes, and the
per-process numpy iterable, on the moto S3 server."""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

# "jax.numpy", not "jax": this directory (tests/jax) would pass for an empty "jax" package without JAX.
pytest.importorskip("jax.numpy")
import jax  # noqa: E402

grain = pytest.importorskip("grain")
from absl import flags  # noqa: E402 - Grain reads absl flags; outside absl.app.run mark them parsed

flags.FLAGS.mark_as_parsed()

import s3dlio  # noqa: E402
from s3dlio.errors import ConfigError, NotFoundError  # noqa: E402
from s3dlio.formats.npy import npy_bytes  # noqa: E402
from s3dlio_jax import S3DataSource, S3Iterable, load_npy  # noqa: E402

COUNT = 24


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S3DLIO_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def prefix(s3_bucket: str) -> str:
    """``COUNT`` ``.npy`` objects on moto: ``.../data/obj-NN.npy`` holding ``[NN, NN, NN]``."""
    base = f"{s3_bucket}data/"
    s3dlio.put_many([(f"{base}obj-{i:02d}.npy", npy_bytes(np.full(3, i, np.int32))) for i in range(COUNT)])
    return base


class FirstValue(grain.transforms.Map):  # type: ignore[name-defined,misc]
    """Runs in Grain's (spawned) workers: module level, so it pickles."""

    def map(self, element: np.ndarray) -> int:
        return int(element[0])


def grain_loader(source: S3DataSource, shard: Any, workers: int, epochs: int = 1) -> Any:
    sampler = grain.samplers.IndexSampler(
        len(source), shard_options=shard, shuffle=True, seed=7, num_epochs=epochs
    )
    return grain.DataLoader(
        data_source=source, sampler=sampler, worker_count=workers, operations=[FirstValue()]
    )


# -- Grain ---------------------------------------------------------------------------------------
def test_grain_two_workers_read_every_item_exactly_once_per_epoch(prefix: str) -> None:
    source = S3DataSource.from_prefix(prefix, transform=load_npy)
    seen = list(grain_loader(source, grain.sharding.ShardByJaxProcess(), workers=2, epochs=2))
    first, second = seen[:COUNT], seen[COUNT:]
    assert sorted(first) == sorted(second) == list(range(COUNT))
    assert first != list(range(COUNT)) and first != second  # shuffled, differently each epoch


def test_grain_shards_split_the_items(prefix: str) -> None:
    source = S3DataSource.from_prefix(prefix, transform=load_npy)
    shards = [
        list(grain_loader(source, grain.sharding.ShardOptions(i, 2, drop_remainder=True), workers=0))
        for i in range(2)
    ]
    assert not set(shards[0]) & set(shards[1])
    assert sorted(shards[0] + shards[1]) == list(range(COUNT))
    assert sorted(list(grain_loader(source, grain.sharding.NoSharding(), workers=0))) == list(range(COUNT))


def test_source_random_access_batched_reads_pickle_and_stable_repr(prefix: str) -> None:
    source = S3DataSource.from_prefix(prefix)
    assert len(source) == COUNT and source.uri(3).endswith("obj-03.npy")
    assert isinstance(source[np.int64(5)], bytes)  # Grain's record convention by default
    assert np.load(io.BytesIO(source[5]))[0] == 5
    arrays = S3DataSource.from_prefix(prefix, transform=load_npy)._getitems([4, 1, 9])
    assert [int(a[0]) for a in arrays] == [4, 1, 9]
    clone = pickle.loads(pickle.dumps(source))
    assert repr(clone) == repr(source) and clone[2] == source[2]
    assert "prefix" in repr(source) and "to_bytes" in repr(source)
    assert isinstance(grain.MapDataset.source(source)[0], bytes)
    with pytest.raises(IndexError, match="out of range"):
        source[COUNT]


def test_grain_dataset_api_batches(prefix: str) -> None:
    source = S3DataSource.from_prefix(prefix, transform=load_npy)
    ds = grain.MapDataset.source(source).shuffle(seed=1).batch(6)
    batches = list(ds)
    assert [b.shape for b in batches] == [(6, 3)] * 4
    assert sorted(int(x) for b in batches for x in b[:, 0]) == list(range(COUNT))


# -- the per-process iterable --------------------------------------------------------------------------
def test_iterable_shards_by_process_index(prefix: str) -> None:
    shares = [
        [int(a[0]) for a in S3Iterable.from_prefix(prefix, transform=load_npy, shuffle=True, seed=3,
                                                   process_index=i, process_count=3)]
        for i in range(3)
    ]  # fmt: skip
    assert all(len(s) == COUNT // 3 for s in shares)
    assert sorted(sum(shares, [])) == list(range(COUNT))
    mine = S3Iterable.from_prefix(prefix, transform=load_npy)  # JAX: process 0 of 1
    assert (mine.process_index, mine.process_count) == (jax.process_index(), jax.process_count())
    assert sorted(int(a[0]) for a in mine) == list(range(COUNT))


def test_iterable_batches_to_global_arrays_and_resumes(prefix: str) -> None:
    sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    it = S3Iterable.from_prefix(
        prefix, transform=load_npy, batch_size=5, shuffle=True, seed=0, sharding=sharding
    )
    assert len(it) == 5
    first = iter(it)
    head = [next(first) for _ in range(2)]
    assert all(isinstance(b, jax.Array) and b.shape == (5, 3) for b in head)
    state = it.state_dict()
    rest = [np.asarray(b) for b in first]
    assert rest[-1].shape == (4, 3)  # the last batch is short unless drop_last
    again = S3Iterable.from_prefix(prefix, transform=load_npy, batch_size=5, shuffle=True, seed=0)
    again.load_state_dict(state)
    resumed = list(again)
    assert [r.tolist() for r in resumed] == [r.tolist() for r in rest]
    seen = [int(x) for b in head for x in np.asarray(b)[:, 0]] + [int(x) for b in rest for x in b[:, 0]]
    assert sorted(seen) == list(range(COUNT))


def test_iterable_default_items_are_uint8_views(prefix: str) -> None:
    item = next(iter(S3Iterable.from_objects([f"{prefix}obj-00.npy"])))
    assert item.dtype == np.uint8 and bytes(item) == npy_bytes(np.full(3, 0, np.int32))


# -- bad input -----------------------------------------------------------------------------------------
def test_empty_prefix_is_a_clear_error(s3_bucket: str) -> None:
    with pytest.raises(NotFoundError, match="no objects under this prefix"):
        S3DataSource.from_prefix(f"{s3_bucket}nothing/")
    with pytest.raises(NotFoundError, match="no objects under this prefix"):
        S3Iterable.from_prefix(f"{s3_bucket}nothing/")
    assert len(S3DataSource.from_objects([])) == 0  # an explicit empty list is an empty data set


def test_bad_settings_are_clear_errors(prefix: str) -> None:
    with pytest.raises(ConfigError, match="give both or neither"):
        S3Iterable.from_prefix(prefix, process_index=1)
    with pytest.raises(ConfigError, match="rank must be in"):
        S3Iterable.from_prefix(prefix, process_index=3, process_count=3)
    with pytest.raises(ConfigError, match="needs batch_size"):
        S3Iterable.from_prefix(prefix, sharding=jax.sharding.SingleDeviceSharding(jax.devices()[0]))
    with pytest.raises(ConfigError, match="max_in_flight"):
        S3DataSource.from_prefix(prefix, max_in_flight=0)
