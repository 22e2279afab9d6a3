"""s3dlio_torch datasets under the real torch DataLoader, on the moto S3 server.

Start methods, ranks x workers, epochs, resume (plain and StatefulDataLoader), errors, and
the fork-safety promise: a parent that only listed hands the fast engine to forked workers.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch.utils.data import DataLoader, DistributedSampler  # noqa: E402

import s3dlio  # noqa: E402
from s3dlio.errors import ConfigError, NotFoundError  # noqa: E402
from s3dlio_torch import S3IterableDataset, S3MapDataset, S3Reader  # noqa: E402
from s3dlio_torch.s3reader import SequentialS3Reader  # noqa: E402

COUNT = 60


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S3DLIO_CACHE_DIR", str(tmp_path / "cache"))
    for name in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def prefix(s3_bucket: str) -> str:
    """``COUNT`` small objects on moto: ``.../data/obj-NNN`` holding ``NNN``."""
    base = f"{s3_bucket}data/"
    s3dlio.put_many([(f"{base}obj-{i:03d}", b"%03d" % i) for i in range(COUNT)])
    return base


def number(reader: S3Reader) -> int:
    """Transform used across processes (module level, so spawn can pickle it)."""
    return int(reader.read())


def boom(reader: S3Reader) -> None:
    raise ValueError(f"cannot decode {reader.key}")


def run(ds: Any, **kwargs: Any) -> list[int]:
    return [int(x) for x in DataLoader(ds, batch_size=None, **kwargs)]


# -- items ------------------------------------------------------------------------------------------
def test_reader_items_are_seekable_zero_copy_files() -> None:
    data = bytearray(b"0123456789")
    reader = SequentialS3Reader("s3://bkt/dir/key.bin", data)
    assert (reader.bucket, reader.key, reader.uri) == ("bkt", "dir/key.bin", "s3://bkt/dir/key.bin")
    assert reader.read(3) == b"012" and reader.tell() == 3
    reader.seek(-2, 2)
    assert reader.read() == b"89" and reader.read() == b""
    reader.seek(1)
    into = bytearray(4)
    assert reader.readinto(into) == 4 and into == b"1234"
    assert np.shares_memory(np.frombuffer(reader.getbuffer(), np.uint8), np.frombuffer(data, np.uint8))
    clone = pickle.loads(pickle.dumps(reader))
    assert clone.key == "dir/key.bin" and clone.tell() == 5 and clone.read() == b"56789"
    assert torch.frombuffer(bytearray(reader.getbuffer()), dtype=torch.uint8).numel() == 10


def test_reading_a_whole_bytes_object_returns_it_without_a_copy() -> None:
    data = bytes(range(256)) * 64
    reader = SequentialS3Reader("s3://bkt/k", data)
    assert reader.read() is data  # bytes cannot change, so the read hands the object over
    reader.seek(0)
    part = reader.read(10)
    assert part == data[:10] and reader.read() == data[10:]  # ranges are still copies
    mutable = bytearray(data)
    whole = SequentialS3Reader("s3://bkt/k", mutable).read()
    mutable[0] = 255
    assert type(whole) is bytes and whole[0] == 0  # a mutable buffer is copied, as files promise


# -- sharding and start methods -------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:This DataLoader will create 3 worker processes")  # a 2-core machine
def test_two_ranks_times_three_fork_workers_read_each_object_once(prefix: str) -> None:
    seen: list[int] = []
    for rank in range(2):
        ds = S3IterableDataset.from_prefix(prefix, transform=number, rank=rank, world_size=2, shuffle=True)
        assert len(ds) == COUNT // 2
        got = run(ds, num_workers=3, multiprocessing_context="fork")
        assert len(got) == COUNT // 2
        seen += got
    assert sorted(seen) == list(range(COUNT))


def test_iterable_dataset_shards_by_torch_distributed_rank(
    prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Group:  # an initialised 2-process group as seen from rank 1 (a real one needs 2 processes)
        is_available = staticmethod(lambda: True)
        is_initialized = staticmethod(lambda: True)
        get_rank = staticmethod(lambda: 1)
        get_world_size = staticmethod(lambda: 2)

    monkeypatch.setitem(sys.modules, "torch.distributed", Group())
    ds = S3IterableDataset.from_prefix(prefix, transform=number)
    assert len(ds) == COUNT // 2 and run(ds) == list(range(1, COUNT, 2))
    unsharded = S3IterableDataset.from_prefix(prefix, transform=number, enable_sharding=False)
    with pytest.raises(TypeError, match="enable_sharding=False"):  # each worker reads all: no one length
        len(unsharded)
    assert sorted(run(unsharded)) == list(range(COUNT))


@pytest.mark.parametrize("context", ["spawn", "forkserver"])
def test_spawn_and_forkserver_workers_keep_the_rank_order(prefix: str, context: str) -> None:
    # one worker each: starting a worker that imports torch takes seconds on a small machine
    ds = S3IterableDataset.from_prefix(prefix, transform=number, shuffle=True, seed=3, rank=1, world_size=2)
    in_process = run(ds)
    assert run(ds, num_workers=1, multiprocessing_context=context) == in_process


def test_epochs_reshuffle_also_in_persistent_workers(prefix: str) -> None:
    ds = S3IterableDataset.from_objects(
        [f"{prefix}obj-{i:03d}" for i in range(20)], transform=number, shuffle=True, seed=8
    )
    loader = DataLoader(
        ds, batch_size=None, num_workers=2, persistent_workers=True, multiprocessing_context="fork"
    )
    orders = []
    for epoch in range(2):
        ds.set_epoch(epoch)
        orders.append([int(x) for x in loader])
    assert orders[0] != orders[1] and sorted(orders[0]) == sorted(orders[1]) == list(range(20))
    same = S3IterableDataset.from_objects(
        [f"{prefix}obj-{i:03d}" for i in range(20)], transform=number, shuffle=True, seed=8
    )
    same.set_epoch(1)
    assert run(same) == orders[1]


# -- resume ----------------------------------------------------------------------------------------------
def test_resume_mid_epoch_with_another_worker_count(prefix: str) -> None:
    def make() -> S3IterableDataset:
        return S3IterableDataset.from_prefix(prefix, transform=number, shuffle=True, seed=1, block=4)

    whole = [int(x) for batch in DataLoader(make(), batch_size=4) for x in batch]
    first = make()
    head = [
        int(x) for batch, _ in zip(DataLoader(first, batch_size=4), range(3), strict=False) for x in batch
    ]
    state = json.loads(json.dumps(first.state_at(consumed=12)))
    second = make()
    second.load_state_dict(state)
    loader = DataLoader(second, batch_size=4, num_workers=2, multiprocessing_context="fork")
    assert head + [int(x) for batch in loader for x in batch] == whole


@pytest.mark.filterwarnings("ignore:'set_vital' is deprecated")  # torchdata 0.11 on torch 2.13
@pytest.mark.parametrize("workers", [0, 2])
def test_stateful_dataloader_resumes_exactly(prefix: str, workers: int) -> None:
    stateful = pytest.importorskip("torchdata.stateful_dataloader")
    kwargs: dict[str, Any] = {"batch_size": 3, "num_workers": workers}
    if workers:
        kwargs["multiprocessing_context"] = "fork"

    def make() -> Any:
        ds = S3IterableDataset.from_prefix(prefix, transform=number, shuffle=True, seed=6)
        return stateful.StatefulDataLoader(ds, **kwargs)

    whole = [int(x) for batch in make() for x in batch]
    loader = make()
    it = iter(loader)
    head = [int(x) for _ in range(5) for x in next(it)]
    state = loader.state_dict()
    del it
    again = make()
    again.load_state_dict(state)
    rest = [int(x) for batch in again for x in batch]
    assert head + rest == whole


# -- errors ---------------------------------------------------------------------------------------------
def test_object_deleted_mid_epoch_raises_or_is_skipped(prefix: str) -> None:
    for on_error in ("raise", "skip"):
        ds = S3IterableDataset.from_prefix(
            prefix, transform=number, on_error=on_error, retries=0, max_in_flight=1
        )
        it = iter(DataLoader(ds, batch_size=None))
        next(it)
        s3dlio.delete(f"{prefix}obj-030")
        if on_error == "raise":
            with pytest.raises(NotFoundError, match="obj-030"):
                list(it)
            s3dlio.put(f"{prefix}obj-030", b"030")
        else:
            with pytest.warns(RuntimeWarning, match="obj-030"):
                rest = [int(x) for x in it]
            assert 30 not in rest and len(rest) == COUNT - 2 and ds.skipped == 1


def test_bad_input_gives_clear_errors(prefix: str, s3_bucket: str) -> None:
    with pytest.raises(NotFoundError, match=f"{s3_bucket}empty/"):
        S3IterableDataset.from_prefix(f"{s3_bucket}empty/")
    with pytest.raises(NotFoundError, match=f"{s3_bucket}empty/"):
        S3MapDataset.from_prefix(f"{s3_bucket}empty/")
    missing = f"s3://missing-{uuid.uuid4().hex[:8]}/data/"
    with pytest.raises(NotFoundError, match=missing.rstrip("/")):
        S3IterableDataset.from_prefix(missing)
    with pytest.raises(ConfigError, match="rank=2 with world_size=2"):
        S3IterableDataset.from_prefix(prefix, rank=2, world_size=2)
    ds = S3IterableDataset.from_prefix(prefix, transform=boom)
    with pytest.raises(ValueError, match=r"(?s)ValueError.*transform boom failed on s3://.*obj-000"):
        run(ds, num_workers=1, multiprocessing_context="fork")  # the worker's error, type and note kept


# -- map-style --------------------------------------------------------------------------------------------
def test_map_dataset_with_distributed_sampler(prefix: str) -> None:
    ds = S3MapDataset.from_prefix(prefix, transform=number)
    assert len(ds) == COUNT and ds[7] == 7 and ds[-1] == COUNT - 1
    assert S3MapDataset.from_prefix(prefix)[3].read() == b"003"  # identity: the reader item
    seen: list[int] = []
    for rank in range(2):
        sampler = DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=True, seed=0)
        seen += [int(x) for x in DataLoader(ds, batch_size=None, sampler=sampler)]
    assert sorted(seen) == list(range(COUNT))
    with pytest.raises(IndexError):
        ds[COUNT]


def test_both_datasets_build_from_a_key_file(prefix: str, tmp_path: Path) -> None:
    keys = tmp_path / "keys.txt"
    keys.write_text("".join(f"{prefix}obj-{i:03d}\n" for i in (5, 2, 9)))
    assert [S3MapDataset.from_key_file(keys, transform=number)[i] for i in range(3)] == [5, 2, 9]
    assert sorted(S3IterableDataset.from_key_file(keys, transform=number, shuffle=False)) == [2, 5, 9]


def test_datasets_pickle_as_settings(prefix: str) -> None:
    ds = S3IterableDataset.from_prefix(prefix, transform=number)
    blob = pickle.dumps(ds)
    assert len(blob) < 4096  # the key file's path travels, not the keys
    assert run(pickle.loads(blob)) == list(range(COUNT))
    objs = S3IterableDataset.from_objects(f"{prefix}obj-004", transform=number)
    assert run(objs) == [4]


# -- fork safety (a fresh interpreter: this test process may have started the fast engine) -----------
_FORK_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import s3dlio
    from s3dlio.store import engine
    from torch.utils.data import DataLoader
    from s3dlio_torch import S3IterableDataset

    def probe(reader):
        return [reader.key, engine.inherited_fast(), engine.fast_started_here()]

    prefix = sys.argv[1]
    ds = S3IterableDataset.from_prefix(prefix, transform=probe, key_cache=False)
    listed = list(DataLoader(ds, batch_size=None, num_workers=2, multiprocessing_context="fork"))
    parent_fast = engine.fast_started_here()
    s3dlio.get(prefix + "obj-000")  # now the parent runs the fast engine
    read = list(DataLoader(ds, batch_size=None, num_workers=2, multiprocessing_context="fork"))
    print(json.dumps({"parent_fast": parent_fast, "listed": listed, "read": read}))
    """
)


def test_fork_workers_get_the_fast_engine_unless_the_parent_started_it(prefix: str, tmp_path: Path) -> None:
    script = tmp_path / "fork_probe.py"
    script.write_text(_FORK_SCRIPT)
    proc = subprocess.run(
        [sys.executable, str(script), prefix], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    expected = [f"data/obj-{i:03d}" for i in range(COUNT)]
    # the parent only listed (in a forked child): its forked workers run the fast engine
    assert result["parent_fast"] is False
    assert sorted(key for key, _, _ in result["listed"]) == expected
    assert {(inherited, fast) for _, inherited, fast in result["listed"]} == {(False, True)}
    # the parent read through the fast engine: workers fall back to portable, still correct
    assert sorted(key for key, _, _ in result["read"]) == expected
    assert {(inherited, fast) for _, inherited, fast in result["read"]} == {(True, False)}
    assert "forkserver" in proc.stderr  # the one warning names the faster fix


def test_public_api_is_pinned() -> None:
    import s3dlio_torch

    assert sorted(s3dlio_torch.__all__) == [
        "CheckpointManager", "RangedS3Reader", "S3Checkpoint", "S3Client", "S3ClientConfig", "S3Exception",
        "S3IterableDataset", "S3MapDataset", "S3Reader", "S3ReaderConstructor", "S3Writer", "__version__",
        "client_config",
        "dcp", "identity", "lightning", "load", "save",
    ]  # fmt: skip
