"""The framework-free checkpoint store: layout, commit, latest, retention, async, bad input.

Round trips run on mem://, file:// and moto's S3 (and Azurite where installed); the failure
cases on mem:// and S3, where object semantics matter.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import s3dlio
from s3dlio.checkpoint import (
    CheckpointCommitError,
    CheckpointCorruptError,
    CheckpointNotFoundError,
    CheckpointStore,
    CheckpointVersionError,
    Manifest,
    layout,
)
from s3dlio.checkpoint.retention import steps_to_delete


@pytest.fixture(autouse=True)
def _no_dist_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "TORCHELASTIC_RUN_ID", "S3DLIO_CHECKPOINT_RUN_ID"):
        monkeypatch.delenv(name, raising=False)


def _root(request: pytest.FixtureRequest, kind: str, tmp_path: Path) -> str:
    if kind == "s3":
        return request.getfixturevalue("s3_bucket") + "run/"
    if kind == "az":
        return request.getfixturevalue("az_container") + "run/"
    if kind == "file":
        return f"file://{tmp_path}/run/"
    return f"mem://ckpt-{id(request)}/run/"


@pytest.fixture(params=["mem", "file", "s3", "az"])
def root(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    uri = _root(request, request.param, tmp_path)
    yield uri
    if request.param == "mem":
        s3dlio.delete(uri, recursive=True)


@pytest.fixture(params=["mem", "s3"])
def remote(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return _root(request, request.param, tmp_path)


def shards(seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    return {
        "weights": rng.standard_normal(1000).astype(np.float32),
        "blob": bytes(range(256)) * 9,
        "streamed": lambda f: [f.write(b"chunk%d;" % i) for i in range(500)],
        "empty": b"",
    }


def test_round_trip(root: str) -> None:
    store = CheckpointStore(root, spread=True)
    manifest = store.save(100, shards(1), metadata={"epoch": 3, "lr": 0.1})
    assert isinstance(manifest, Manifest) and manifest.world_size == 1
    store.save(200, shards(2))
    assert store.steps() == [100, 200] and store.latest_step() == 200
    got = store.load(100)
    want = shards(1)
    assert np.array_equal(np.frombuffer(got["weights"], np.float32), want["weights"])
    assert bytes(got["blob"]) == want["blob"] and bytes(got["empty"]) == b""
    assert bytes(got["streamed"]) == b"".join(b"chunk%d;" % i for i in range(500))
    assert store.manifest(100).metadata == {"epoch": 3, "lr": 0.1}
    assert store.manifest().step == 200
    for record in store.manifest(200).shards:  # spread: step-00000200/<2 hex>/rank0-<name>.<tag>.bin
        assert re.fullmatch(r"step-00000200/[0-9a-f]{2}/rank0-\w+\.[0-9a-f]{8}\.bin", record.key)


def test_layout_without_spread() -> None:
    assert layout.shard_key(100, 3, "model", "0badcafe") == "step-00000100/rank3-model.0badcafe.bin"
    spread = layout.shard_key(100, 3, "model", "0badcafe", spread=True)
    assert spread == layout.shard_key(100, 3, "model", "0badcafe", spread=True)
    assert layout.is_shard_key(spread) and not layout.is_shard_key(layout.manifest_key(100))
    assert not layout.is_shard_key(layout.rank_file_key(100, 3))
    assert layout.parse_step("run/step-00000100/") == 100 and layout.parse_step("step-12") is None
    with pytest.raises(ValueError, match="shard name"):
        layout.shard_key(1, 0, "../evil", "0badcafe")


def test_no_checkpoint_is_a_clear_error(remote: str) -> None:
    store = CheckpointStore(remote)
    assert store.latest_step() is None and store.steps() == []
    with pytest.raises(CheckpointNotFoundError, match=re.escape(store.uri) + ".*no complete checkpoint"):
        store.load()
    with pytest.raises(CheckpointNotFoundError, match="step-00000007/: no manifest"):
        store.load(7)


def test_save_killed_part_way_keeps_previous_latest(remote: str) -> None:
    store = CheckpointStore(remote)
    store.save(1, shards(1))

    def dies(f: Any) -> None:
        f.write(b"partial")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        store.save(2, {**shards(2), "zz-dies": dies})
    assert store.latest_step() == 1
    assert bytes(store.load()["blob"]) == shards(1)["blob"]


def test_crash_before_manifest_and_short_shard(remote: str, monkeypatch: pytest.MonkeyPatch) -> None:
    store = CheckpointStore(remote)
    store.save(1, shards(1))
    with monkeypatch.context() as m:
        m.setattr(CheckpointStore, "_commit", lambda *a: (_ for _ in ()).throw(RuntimeError("crash")))
        with pytest.raises(RuntimeError):
            store.save(2, shards(2))
    crashed = s3dlio.list(store.step_uri(2) + r"rank0-blob\..*", recursive=True)
    assert len(crashed) == 1  # shards are there, no manifest
    assert store.latest_step() == 1
    store.save(3, shards(3))
    record = store.manifest(3).rank_shards(0)["weights"]
    s3dlio.put(store.uri + record.key, b"short")  # a shard shorter than its manifest says
    assert store.latest_step() == 1
    with pytest.raises(
        CheckpointCorruptError, match=r"step-00000003/: shard .*rank0-weights\.\w+\.bin has 5 bytes"
    ):
        store.load(3)


def test_corrupt_shard_fails_its_checksum(remote: str) -> None:
    store = CheckpointStore(remote)
    store.save(5, shards(5))
    record = store.manifest(5).rank_shards(0)["blob"]
    data = bytearray(s3dlio.get(store.uri + record.key))
    data[100] ^= 0xFF  # same size, one byte flipped
    s3dlio.put(store.uri + record.key, bytes(data))
    with pytest.raises(
        CheckpointCorruptError, match=r"step-00000005/: shard .*rank0-blob\.\w+\.bin fails its crc32c"
    ):
        store.load(5)


def test_newer_manifest_version_is_refused(remote: str) -> None:
    store = CheckpointStore(remote)
    store.save(9, shards(9))
    key = store.uri + layout.manifest_key(9)
    doc = json.loads(bytes(s3dlio.get(key)))
    doc["version"] = 99
    s3dlio.put(key, json.dumps(doc).encode())
    with pytest.raises(CheckpointVersionError, match=r"step-00000009/: manifest format version 99 is newer"):
        store.load()
    s3dlio.put(key, b"{not json")  # garbage manifest: incomplete, never latest
    assert store.latest_step() is None
    with pytest.raises(CheckpointCorruptError, match="not valid JSON"):
        store.load(9)


@pytest.mark.parametrize("name", ["../pwned", "/etc/x", "a/b", "..", ""])
def test_a_manifest_naming_a_shard_no_save_would_is_corrupt(remote: str, name: str) -> None:
    """Loaders may write each shard to a local file of its name (s3dlio_tf.restore does): a
    manifest planted with a path for a name must fail, never write outside the folder."""
    store = CheckpointStore(remote)
    store.save(6, {"weights": b"w"})
    key = store.uri + layout.manifest_key(6)
    doc = json.loads(bytes(s3dlio.get(key)))
    doc["shards"][0]["name"] = name
    s3dlio.put(key, json.dumps(doc).encode())
    with pytest.raises(CheckpointCorruptError, match="malformed shard list .*checkpoint shard name"):
        store.load(6)


def test_already_committed_step_is_refused(remote: str) -> None:
    store = CheckpointStore(remote)
    store.save(1, {"a": b"1"})
    with pytest.raises(CheckpointCommitError, match="already committed"):
        store.save(1, {"a": b"2"})
    store.delete(1)
    store.save(1, {"a": b"2"})
    assert bytes(store.load()["a"]) == b"2"


def test_of_two_saves_racing_for_one_step_one_commits(root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The other save passed the "already committed?" check before the first committed: its
    commit is refused by name, the step keeps the manifest that committed first, and the
    shards that manifest names are the first save's bytes (the second wrote keys of its own)."""
    first, second = CheckpointStore(root, save_id="first"), CheckpointStore(root, save_id="second")
    first.save(1, {"a": b"first", "b": b"1"})
    committed = s3dlio.list(first.step_uri(1), recursive=True)
    monkeypatch.setattr(second, "_exists", lambda key: False)  # it looked just before
    with pytest.raises(CheckpointCommitError, match="another save committed this step meanwhile"):
        second.save(1, {"a": b"other", "b": b"2"})
    assert first.steps() == [1]
    assert {k: bytes(v) for k, v in first.load(1).items()} == {"a": b"first", "b": b"1"}
    assert s3dlio.list(first.step_uri(1), recursive=True) == committed  # the loser's shards are gone


def test_a_commit_removes_the_shards_of_crashed_attempts_at_its_step(
    root: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = CheckpointStore(root)
    with monkeypatch.context() as m:  # the process dies between its shards and its manifest
        m.setattr(CheckpointStore, "_commit", lambda *a: (_ for _ in ()).throw(SystemExit(1)))
        with pytest.raises(SystemExit):
            store.save(4, {"a": b"crashed", "b": b"crashed"})
    s3dlio.put(store.step_uri(4) + "notes.txt", b"not a shard: kept")
    manifest = store.save(4, {"a": b"retried", "b": b"retried"})
    assert manifest is not None
    left = {uri.removeprefix(store.uri) for uri in s3dlio.list(store.step_uri(4), recursive=True)}
    assert left == {s.key for s in manifest.shards} | {
        layout.manifest_key(4), layout.rank_file_key(4, 0), layout.step_prefix(4) + "notes.txt"
    }
    assert {k: bytes(v) for k, v in store.load(4).items()} == {"a": b"retried", "b": b"retried"}


def test_steps_to_delete() -> None:
    assert steps_to_delete(range(1, 11), [], keep_last=2, keep_every=4) == [1, 2, 3, 5, 6, 7]
    assert steps_to_delete([1, 2, 3], [], keep_last=None, keep_every=None) == []
    assert steps_to_delete([1, 2, 3], [0, 5], keep_last=1, keep_every=None) == [0, 1, 2]  # 5 may be in flight
    assert steps_to_delete([7], [], keep_last=1, keep_every=5) == []  # latest always stays
    with pytest.raises(ValueError, match="keep_last"):
        steps_to_delete([], [], keep_last=0, keep_every=None)


def test_retention_keeps_the_right_steps(remote: str, monkeypatch: pytest.MonkeyPatch) -> None:
    store = CheckpointStore(remote, keep_last=2, keep_every=4)
    for step in range(1, 9):
        store.save(step, {"a": b"%d" % step})
    with monkeypatch.context() as m:  # step 9 fails before its manifest: 8 stays latest
        m.setattr(CheckpointStore, "_commit", lambda *a: (_ for _ in ()).throw(RuntimeError("crash")))
        with pytest.raises(RuntimeError):
            store.save(9, {"a": b"9"})
    assert store.steps() == [4, 7, 8] and store.latest_step() == 8
    store.save(10, {"a": b"10"})
    assert store.steps() == [4, 8, 10]
    assert not s3dlio.list(store.step_uri(7), recursive=True)  # nothing of 7 is left
    assert not s3dlio.list(store.step_uri(9), recursive=True)  # leftover of the failed save is gone


def test_retention_never_deletes_the_step_a_save_just_returned(remote: str) -> None:
    """A run rewound to an earlier step saves a number below the kept ones: ``save`` returned
    it as saved, so retention must not delete it at once."""
    store = CheckpointStore(remote, keep_last=1)
    for step in (100, 200, 300):
        store.save(step, {"a": b"%d" % step})
    store.save(210, {"a": b"210"})
    assert 210 in store.steps()
    assert bytes(store.load(210)["a"]) == b"210"


def _gate(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Hold every shard upload until the returned event is set."""
    release = threading.Event()
    original = CheckpointStore._write_shard

    def held(self: CheckpointStore, *args: Any) -> Any:
        assert release.wait(30)
        return original(self, *args)

    monkeypatch.setattr(CheckpointStore, "_write_shard", held)
    return release


def test_async_save_overlaps_training(remote: str, monkeypatch: pytest.MonkeyPatch) -> None:
    store = CheckpointStore(remote)
    weights = np.zeros(1000, np.float32)
    release = _gate(monkeypatch)
    handle = store.save_async(1, {"w": weights})  # returns although no upload can proceed
    assert not handle.done() and store.latest_step() is None
    weights += 1.0  # the "training step" changes the live state; the staged copy is unaffected
    release.set()
    manifest = handle.result()
    assert manifest is not None and store.wait() == manifest
    assert np.array_equal(np.frombuffer(store.load()["w"], np.float32), np.zeros(1000, np.float32))


def test_async_save_error_surfaces_on_next_save(remote: str) -> None:
    store = CheckpointStore(remote)
    store.save(1, {"a": b"1"})
    store.save_async(2, {"a": lambda f: 1 / 0})
    with pytest.raises(CheckpointCommitError, match=r"step-00000002/: async save failed: division by zero"):
        store.save(3, {"a": b"3"})
    assert store.latest_step() == 1
    store.save(3, {"a": b"3"})  # reported once; the store goes on
    store.save_async(4, {"a": lambda f: 1 / 0})
    with pytest.raises(CheckpointCommitError, match="step-00000004"):
        store.wait()
    assert store.latest_step() == 3


def _two_ranks(root: str, fail_rank: int | None = None, **kwargs: Any) -> tuple[Any, BaseException | None]:
    """Rank 1 on a thread, rank 0 here, polling; returns rank 0's result and rank 1's error."""
    errors: list[BaseException] = []

    def rank1() -> None:
        store = CheckpointStore(root, rank=1, world_size=2, coordinator="poll", **kwargs)
        src: Any = (lambda f: 1 / 0) if fail_rank == 1 else b"one"
        try:
            store.save(10, {"part": src})
        except BaseException as exc:  # noqa: BLE001 - checked by the test
            errors.append(exc)

    thread = threading.Thread(target=rank1)
    thread.start()
    store0 = CheckpointStore(root, rank=0, world_size=2, coordinator="poll", **kwargs)
    try:
        result: Any = store0.save(10, {"part": b"zero"})
    except BaseException as exc:  # noqa: BLE001 - checked by the test
        result = exc
    thread.join()
    return result, errors[0] if errors else None


def test_two_ranks_commit_by_polling(remote: str) -> None:
    manifest, err = _two_ranks(remote, commit_timeout=30)
    assert err is None and isinstance(manifest, Manifest) and manifest.world_size == 2
    reader = CheckpointStore(remote)
    assert bytes(reader.load(rank=1)["part"]) == b"one" and bytes(reader.load(rank=0)["part"]) == b"zero"


def test_failed_rank_is_named_and_nothing_commits(remote: str) -> None:
    result, err = _two_ranks(remote, fail_rank=1, commit_timeout=30)
    assert isinstance(err, ZeroDivisionError)
    assert isinstance(result, CheckpointCommitError) and "rank 1 failed: ZeroDivisionError" in str(result)
    assert CheckpointStore(remote).latest_step() is None


def test_missing_rank_times_out(remote: str) -> None:
    store = CheckpointStore(remote, rank=0, world_size=3, coordinator="poll", commit_timeout=0.3)
    with pytest.raises(
        CheckpointCommitError, match=r"step-00000001/: not committed: ranks \[1, 2\] did not report"
    ):
        store.save(1, {"a": b"x"})
    assert store.latest_step() is None


def test_stale_rank_file_of_another_run_is_ignored(remote: str) -> None:
    old = CheckpointStore(remote, rank=1, world_size=2, coordinator="poll", save_id="run-a")
    old.save(1, {"part": b"old"})  # left behind by a crashed run
    store = CheckpointStore(
        remote, rank=0, world_size=2, coordinator="poll", save_id="run-b", commit_timeout=0.3
    )
    with pytest.raises(CheckpointCommitError, match=r"ranks \[1\]"):
        store.save(1, {"part": b"new"})


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="rank=2 world_size=2"):
        CheckpointStore("mem://x/run", rank=2, world_size=2)
    with pytest.raises(ValueError, match="keep_every"):
        CheckpointStore("mem://x/run", keep_every=0)
    store = CheckpointStore("mem://x/run")
    with pytest.raises(ValueError, match="JSON"):
        store.save(1, {"a": b""}, metadata={"f": object()})
    with pytest.raises(ValueError, match="step"):
        store.save(-1, {"a": b""})
