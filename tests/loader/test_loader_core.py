"""The framework-free loader: key lists, sources, epoch plans, prefetch, samples, errors, resume.

In-process cases run on ``mem://`` and files under ``tmp_path``; listing and caching also on
the moto S3 server.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import sys
import tarfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import s3dlio
from s3dlio.errors import ConfigError, NotFoundError, TransferError
from s3dlio.formats.tfrecord import write_tfrecords
from s3dlio.loader import (
    EpochPlan,
    Fetcher,
    KeyList,
    Loader,
    PrefixSource,
    Sample,
    SampleError,
    batched,
    prefetch,
    worker_positions,
)
from s3dlio.loader import sharding as sharding_mod


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S3DLIO_CACHE_DIR", str(tmp_path / "cache"))
    for name in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)


def mem_objects(count: int, size: int = 8) -> str:
    """A fresh mem:// prefix holding ``count`` objects ``obj-000``... whose bytes name them."""
    prefix = f"mem://t-{uuid.uuid4().hex[:10]}/data/"
    s3dlio.put_many([(f"{prefix}obj-{i:03d}", f"{i:0{size}d}".encode()) for i in range(count)])
    return prefix


def ids(samples: list[Any]) -> list[int]:
    return [int(bytes(s.data)) for s in samples]


# -- key lists and sources -------------------------------------------------------------------
def test_keylist_roundtrip_file_and_pickle(tmp_path: Path) -> None:
    uris = [f"s3://b/train/x{i}.bin" for i in range(5)]
    keys = KeyList.from_uris(uris)
    assert keys.base == "s3://b/train/" and list(keys) == uris and keys[-1] == uris[-1]
    path = str(tmp_path / "k.keys")
    keys.write(path)
    mapped = KeyList.load(path)
    assert list(mapped) == uris and mapped.fingerprint() == keys.fingerprint()
    clone = pickle.loads(pickle.dumps(mapped))
    assert clone.path == path and list(clone) == uris
    assert list(pickle.loads(pickle.dumps(keys))) == uris


def test_keylist_holds_a_million_keys_compactly() -> None:
    blob = b"".join(b"train/shard-%07d.tar\n" % i for i in range(1_000_000))
    keys = KeyList.from_buffer(blob)
    assert len(keys) == 1_000_000 and keys[123_456] == "train/shard-0123456.tar"
    held = keys._starts.nbytes + keys._ends.nbytes + len(blob)
    assert held < 45 * 2**20  # ~40 bytes a key; a list of str would be ~100


def test_plain_key_file_and_bad_lines(tmp_path: Path) -> None:
    good = tmp_path / "plain.txt"
    good.write_text("file:///a/1\nfile:///a/2\n")
    assert list(KeyList.load(good)) == ["file:///a/1", "file:///a/2"]
    bad = tmp_path / "blank.txt"
    bad.write_text("file:///a/1\n\nfile:///a/2\n")
    with pytest.raises(ConfigError, match="blank lines"):
        KeyList.load(bad)
    crlf = tmp_path / "crlf.txt"
    crlf.write_bytes(b"file:///a/1\r\nfile:///a/2\r\n")
    with pytest.raises(ConfigError, match="CR line endings"):
        KeyList.load(crlf)
    with pytest.raises(NotFoundError, match="missing.txt"):
        KeyList.load(tmp_path / "missing.txt")
    with pytest.raises(s3dlio.InvalidUriError, match="line break"):
        KeyList.from_uris(["s3://b/a\nb"])


def test_each_build_lists_again_and_a_named_key_file_is_reused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for i in range(4):
        (data / f"f{i}").write_bytes(b"x")
    first = PrefixSource(f"file://{data}/").keys()
    assert len(first) == 4 and first.path is not None and Path(first.path).is_file()  # mapped, not in memory
    (data / "f0").unlink()
    (data / "f9").write_bytes(b"x")
    again = PrefixSource(f"file://{data}/").keys()  # a new dataset sees what the store holds
    assert [k.rsplit("/", 1)[1] for k in again] == ["f1", "f2", "f3", "f9"] and again.path != first.path
    assert len(first) == 4 and first[0].endswith("/f0")  # the earlier dataset keeps its own list

    named = str(tmp_path / "keys.txt")
    assert len(PrefixSource(f"file://{data}/", cache=named).keys()) == 4
    (data / "f1").unlink()
    assert len(PrefixSource(f"file://{data}/", cache=named).keys()) == 4  # a named file is reused: no LIST
    assert len(PrefixSource(f"file://{data}/", cache=named, refresh=True).keys()) == 3
    assert len(PrefixSource(f"file://{data}/", cache=False).keys()) == 3


def test_key_files_of_a_run_go_when_it_exits(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a").write_bytes(b"x")
    code = (
        "import sys; from s3dlio.loader import PrefixSource; "
        f"k = PrefixSource('file://{data}/').keys(); print(k.path); sys.exit(0)"
    )
    env = {**os.environ, "S3DLIO_CACHE_DIR": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    path = out.stdout.strip()
    assert path.startswith(str(tmp_path / "cache")) and not os.path.exists(path)


def test_s3_prefix_listing_past_one_page(s3_bucket: str) -> None:
    s3dlio.put_many([(f"{s3_bucket}p/{i:04d}", b"z") for i in range(1100)])
    s3dlio.put(f"{s3_bucket}other/x", b"z")
    keys = PrefixSource(f"{s3_bucket}p/").keys()
    assert len(keys) == 1100 and keys[0] == f"{s3_bucket}p/0000" and keys.path is not None
    matched = PrefixSource(f"{s3_bucket}p/00.5", cache=False).keys()  # the last part may be a regex
    assert [k.rsplit("/", 1)[1] for k in matched] == [f"00{d}5" for d in range(10)]


def test_empty_and_missing_prefixes_name_the_uri(s3_bucket: str) -> None:
    with pytest.raises(NotFoundError, match=r"no objects under this prefix"):
        Loader(f"{s3_bucket}nothing-here/")
    missing = f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/data/"
    with pytest.raises(NotFoundError, match=missing.rstrip("/")):
        Loader(missing)
    empty = Loader([])  # an explicit empty list is an empty data set (s3torchconnector's from_objects([]))
    assert len(empty) == 0 and list(empty) == []


# -- the epoch plan ----------------------------------------------------------------------------
@pytest.mark.parametrize("uneven", ["pad", "drop"])
def test_plan_gives_every_rank_the_same_count(uneven: str) -> None:
    plans = [EpochPlan(103, r, 4, shuffle=True, seed=1, uneven=uneven) for r in range(4)]  # type: ignore[arg-type]
    orders = [p.rank_order(0) for p in plans]
    assert len({len(o) for o in orders}) == 1
    seen = Counter(int(i) for o in orders for i in o)
    assert set(seen) <= set(range(103))
    if uneven == "pad":
        assert set(seen) == set(range(103)) and sum(seen.values()) == 104
    else:
        assert sum(seen.values()) == 100 and max(seen.values()) == 1


def test_plan_is_a_pure_function_of_seed_and_epoch() -> None:
    plan = EpochPlan(50, shuffle=True, seed=9)
    assert np.array_equal(plan.epoch_order(3), EpochPlan(50, shuffle=True, seed=9).epoch_order(3))
    assert not np.array_equal(plan.epoch_order(3), plan.epoch_order(4))
    assert not np.array_equal(plan.epoch_order(3), EpochPlan(50, shuffle=True, seed=10).epoch_order(3))


def test_worker_blocks_interleave_back_to_the_rank_order() -> None:
    parts = [list(worker_positions(20, 3, 3, w, block=2)) for w in range(3)]
    blocks = [[p[i : i + 2] for i in range(0, len(p), 2)] for p in parts]
    merged = [x for rnd in range(4) for w in range(3) if rnd < len(blocks[w]) for x in blocks[w][rnd]]
    assert merged == list(range(3, 20))


def test_bad_sharding_settings() -> None:
    with pytest.raises(ConfigError, match=r"rank=2 with world_size=2"):
        EpochPlan(10, 2, 2)
    with pytest.raises(ConfigError, match="give both or neither"):
        sharding_mod.resolve_rank_world(1, None)
    with pytest.raises(ConfigError, match="uneven='pad'"):
        EpochPlan(3, 0, 4, uneven="drop")


def test_rank_detected_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert sharding_mod.resolve_rank_world(None, None) == (1, 3)


def test_rank_detected_from_jax_only_when_its_distributed_runtime_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in module for JAX: the real one cannot start a multi-process runtime here. Asking a
    program that merely imported JAX would start its backend (threads, GPU memory)."""
    started = {"distributed": False, "asked": False}

    class FakeDistributed:
        is_initialized = staticmethod(lambda: started["distributed"])

    class FakeJax:
        distributed = FakeDistributed

        @staticmethod
        def process_index() -> int:
            started["asked"] = True
            return 2

        process_count = staticmethod(lambda: 4)

    monkeypatch.delitem(sys.modules, "jax", raising=False)
    assert sharding_mod.detect_rank_world() == (0, 1)
    monkeypatch.setitem(sys.modules, "jax", FakeJax())
    assert sharding_mod.detect_rank_world() == (0, 1) and not started["asked"]
    started["distributed"] = True
    assert sharding_mod.detect_rank_world() == (2, 4)


# -- iteration -----------------------------------------------------------------------------------
def test_ranks_and_workers_read_each_object_exactly_once() -> None:
    prefix = mem_objects(60)
    seen: list[int] = []
    for rank in range(2):
        loader = Loader(prefix, rank=rank, world_size=2, shuffle=True, seed=4)
        for worker in range(3):
            seen += ids(list(loader.iterate(worker, 3, epoch=0)))
    assert sorted(seen) == list(range(60))


def test_shuffle_differs_per_epoch_and_repeats_per_seed() -> None:
    prefix = mem_objects(30)
    loader = Loader(prefix, shuffle=True, seed=5)
    first, second = ids(list(loader)), ids(list(loader))  # the epoch advances by itself
    assert sorted(first) == sorted(second) == list(range(30)) and first != second
    again = Loader(prefix, shuffle=True, seed=5)
    assert ids(list(again)) == first
    again.set_epoch(1)
    assert ids(list(again)) == second
    assert ids(list(Loader(prefix))) == list(range(30))


def test_resume_mid_epoch_equals_an_uninterrupted_run() -> None:
    prefix = mem_objects(40)
    whole = ids(list(Loader(prefix, shuffle=True, seed=2, rank=1, world_size=2)))
    loader = Loader(prefix, shuffle=True, seed=2, rank=1, world_size=2, max_in_flight=4)
    it = iter(loader)
    head = ids([next(it) for _ in range(7)])
    state = json.loads(json.dumps(loader.state_dict()))
    assert state["consumed"] == 7
    resumed = Loader(prefix, shuffle=True, seed=2, rank=1, world_size=2)
    resumed.load_state_dict(state)
    assert head + ids(list(resumed)) == whole
    # the same rank-level state resumed by 3 workers: each reads its blocks of the rest
    parts = []
    for worker in range(3):
        again = Loader(prefix, shuffle=True, seed=2, rank=1, world_size=2, block=2)
        again.load_state_dict(state)
        parts.append(ids(list(again.iterate(worker, 3))))
    blocks = [[p[i : i + 2] for i in range(0, len(p), 2)] for p in parts]
    merged = [x for rnd in range(10) for w in range(3) if rnd < len(blocks[w]) for x in blocks[w][rnd]]
    assert head + merged == whole


def test_resume_out_of_order_skips_exactly_what_was_yielded() -> None:
    prefix = mem_objects(30)
    loader = Loader(prefix, in_order=False, max_in_flight=8)
    it = iter(loader)
    head = ids([next(it) for _ in range(11)])
    again = Loader(prefix, in_order=False)
    again.load_state_dict(loader.state_dict())
    rest = ids(list(again))
    assert sorted(head + rest) == list(range(30))


def test_state_is_checked_against_the_loader() -> None:
    prefix = mem_objects(10)
    state = Loader(prefix, shuffle=True, seed=1).state_dict()
    with pytest.raises(ConfigError, match=r"seed=1 but this loader has seed=2"):
        Loader(prefix, shuffle=True, seed=2).load_state_dict(state)
    with pytest.raises(ConfigError, match="keys"):
        Loader(mem_objects(10), shuffle=True, seed=1).load_state_dict(state)
    worker_state = Loader(prefix)
    it = worker_state.iterate(1, 2, epoch=0)
    next(it)
    other = Loader(prefix)
    other.load_state_dict(worker_state.state_dict())
    with pytest.raises(ConfigError, match="same num_workers"):
        list(other.iterate(0, 3))


# -- samples inside objects ----------------------------------------------------------------------
def test_tfrecord_records_shuffled_and_resumed_mid_object() -> None:
    prefix = f"mem://t-{uuid.uuid4().hex[:10]}/tf/"
    for f in range(3):
        s3dlio.put(f"{prefix}{f}.tfrecord", write_tfrecords([b"%d-%d" % (f, r) for r in range(5)]))
    plain = [bytes(s.data) for s in Loader(prefix, samples="tfrecord")]
    assert plain == [b"%d-%d" % (f, r) for f in range(3) for r in range(5)]
    whole = [bytes(s.data) for s in Loader(prefix, samples="tfrecord", shuffle=True, seed=3, shuffle_group=2)]
    assert sorted(whole) == sorted(plain) and whole != plain
    loader = Loader(prefix, samples="tfrecord", shuffle=True, seed=3, shuffle_group=2)
    it = iter(loader)
    head = [bytes(next(it).data) for _ in range(4)]
    assert loader.state_dict()["partial"] is not None
    again = Loader(prefix, samples="tfrecord", shuffle=True, seed=3, shuffle_group=2)
    again.load_state_dict(loader.state_dict())
    assert head + [bytes(s.data) for s in again] == whole


def _tar(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_tar_shards_group_members_webdataset_style() -> None:
    prefix = f"mem://t-{uuid.uuid4().hex[:10]}/wds/"
    s3dlio.put(f"{prefix}shard-0.tar", _tar({"a/0001.jpg": b"J1", "a/0001.cls": b"1", "a/0002.jpg": b"J2"}))
    samples = list(Loader(prefix, samples="tar"))
    assert [s.record for s in samples] == ["a/0001", "a/0002"]
    assert {k: bytes(v) for k, v in samples[0].data.items()} == {"jpg": b"J1", "cls": b"1"}


def test_npz_and_custom_splitters() -> None:
    prefix = f"mem://t-{uuid.uuid4().hex[:10]}/npz/"
    buf = io.BytesIO()
    np.savez(buf, x=np.arange(6).reshape(2, 3), y=np.array([1]))
    s3dlio.put(f"{prefix}a.npz", buf.getvalue())
    (sample,) = list(Loader(prefix, samples="npz"))
    assert sample.data["x"].shape == (2, 3) and int(sample.data["y"][0]) == 1
    lines = list(Loader(prefix, samples=lambda uri, view: [view[:2], view[2:4]]))
    assert [s.record for s in lines] == [0, 1]
    with pytest.raises(ConfigError, match="samples='csv'"):
        Loader(prefix, samples="csv")  # type: ignore[arg-type]


def test_corrupt_record_file_names_the_object() -> None:
    prefix = mem_objects(1)
    with pytest.raises(SampleError, match=r"obj-000: cannot read it as tfrecord"):
        list(Loader(prefix, samples="tfrecord"))


# -- errors ---------------------------------------------------------------------------------------
def test_object_deleted_mid_epoch_raises_or_is_skipped() -> None:
    prefix = mem_objects(12)
    for on_error in ("raise", "skip"):
        loader = Loader(prefix, on_error=on_error, retries=0, max_in_flight=1)  # type: ignore[arg-type]
        it = iter(loader)
        next(it)
        s3dlio.delete(f"{prefix}obj-005")
        if on_error == "raise":
            with pytest.raises(NotFoundError, match="obj-005"):
                list(it)
            s3dlio.put(f"{prefix}obj-005", b"00000005")
        else:
            with pytest.warns(RuntimeWarning, match="skipped .*obj-005"):
                rest = ids(list(it))
            assert 5 not in rest and len(rest) == 10 and loader.skipped == 1


def test_transform_errors_name_the_uri_and_all_skipped_is_an_error() -> None:
    prefix = mem_objects(4)

    def boom(sample: Sample) -> None:
        raise ValueError("cannot decode")

    with pytest.raises(ValueError, match="cannot decode") as caught:  # its own type, not wrapped
        list(Loader(prefix, transform=boom))
    assert not isinstance(caught.value, SampleError)
    [note] = caught.value.__notes__
    assert note.startswith("transform ") and "boom failed on mem://" in note and note.endswith("/obj-000")
    with pytest.warns(RuntimeWarning), pytest.raises(SampleError, match="nothing to train on"):
        list(Loader(prefix, transform=boom, on_error="skip"))


def test_failed_requests_are_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    prefix = mem_objects(3)
    calls: Counter[str] = Counter()
    real_get = Fetcher.get

    def flaky(self: Fetcher, uri: str) -> Any:
        calls[uri] += 1
        if calls[uri] == 1:
            raise TransferError(f"get {uri}: connection reset")
        return real_get(self, uri)

    monkeypatch.setattr(Fetcher, "get", flaky)
    assert ids(list(Loader(prefix, retries=1))) == [0, 1, 2]
    assert set(calls.values()) == {2}


def test_slow_requests_are_hedged(monkeypatch: pytest.MonkeyPatch) -> None:
    prefix = mem_objects(1)
    real_get = Fetcher.get
    first, slow_done = threading.Event(), threading.Event()

    def slow_once(self: Fetcher, uri: str) -> Any:
        if first.is_set():
            return real_get(self, uri)
        first.set()
        try:
            time.sleep(2)
            return real_get(self, uri)
        finally:
            slow_done.set()

    monkeypatch.setattr(Fetcher, "get", slow_once)
    assert ids(list(Loader(prefix, hedge_after=0.05))) == [0]
    # the slow request ends here, not in a later test (whose op-log it would join)
    assert slow_done.wait(10)


# -- prefetch bounds ------------------------------------------------------------------------------
def test_prefetch_bounds_requests_and_bytes() -> None:
    running = peak = 0
    lock = threading.Lock()

    def fetch(i: int) -> bytes:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.005)
        with lock:
            running -= 1
        return bytes(1000)

    out = [i for i, _ in prefetch(fetch, range(40), max_in_flight=4, max_bytes=10**9)]
    assert out == list(range(40)) and peak <= 4
    started: list[int] = []

    def big(i: int) -> bytes:
        started.append(i)
        return bytes(1000)

    gen = prefetch(big, range(40), max_in_flight=16, max_bytes=2500)
    for consumed in range(1, 30):
        next(gen)
        time.sleep(0.002)
        assert len(started) - consumed <= 4  # ~2.5 objects of budget ahead, not 16 requests
    rest = sorted(i for i, _ in prefetch(fetch, range(20), max_in_flight=4, max_bytes=10**9, in_order=False))
    assert rest == list(range(20))


def test_prefetch_byte_bound_as_completed_and_with_failures() -> None:
    started: list[int] = []

    def fetch(i: int) -> bytes:
        started.append(i)
        if i % 7 == 3:
            raise OSError(f"object {i} failed")
        return bytes(1000)

    gen = prefetch(fetch, range(60), max_in_flight=16, max_bytes=2500, in_order=False)
    seen: list[int] = []
    failed = 0
    for item, result in gen:
        seen.append(item)
        failed += isinstance(result, OSError)
        time.sleep(0.002)
        assert len(started) - len(seen) <= 4  # ~2.5 objects of budget ahead, failures included
    assert sorted(seen) == list(range(60)) and failed == len([i for i in range(60) if i % 7 == 3])


def test_batched() -> None:
    assert list(batched(range(5), 2)) == [[0, 1], [2, 3], [4]]
    assert list(batched(range(5), 2, drop_last=True, collate=sum)) == [1, 5]


def test_public_api_is_pinned() -> None:
    import s3dlio.loader

    assert sorted(s3dlio.loader.__all__) == sorted(
        ["STATE_VERSION", "BufferReader", "EpochPlan", "Fetcher", "KeyFileSource", "KeyList", "KeySource",
         "Loader", "MapSource", "PrefixSource", "Sample", "SampleError", "UriListSource", "as_source", "batched",
         "cache_dir", "check_state", "detect_rank_world", "detect_worker", "make_state", "prefetch",
         "record_order", "resolve_rank_world", "split_records", "tune_worker_process", "worker_positions"]
    )  # fmt: skip
    assert all(hasattr(s3dlio.loader, name) for name in s3dlio.loader.__all__)


def test_azure_prefix(az_container: str) -> None:
    s3dlio.put_many([(f"{az_container}d/{i}", b"%d" % i) for i in range(5)])
    loader = Loader(f"{az_container}d/", shuffle=True, seed=1)
    assert sorted(int(bytes(s.data)) for s in loader) == list(range(5))
    assert loader.keys[0].startswith(az_container)
