"""Op-log round trip through every backend: a mixed workload with the log on, read back exactly.

Every operation must appear once, with the right op, bytes, n_objects, file and consistent
timestamps; a failing GET carries its error.
"""

from __future__ import annotations

import itertools
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import s3dlio
import s3dlio.oplog as oplog
from s3dlio._select import select
from s3dlio.errors import NotFoundError
from s3dlio.oplog import Record, read
from s3dlio.ops import resolve
from s3dlio.uri import parse


@pytest.fixture(autouse=True)
def _no_oplog(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No process-wide log or env setting leaks into or out of a test."""
    for name in ("S3DLIO_OPLOG_FILE", "S3DLIO_OPLOG_BUF", "S3DLIO_OPLOG_LOSSLESS", "S3DLIO_OPLOG_WBUFCAP"):
        monkeypatch.delenv(name, raising=False)
    oplog.finalize_op_log()
    yield
    oplog.finalize_op_log()


def _file(uri: str) -> str:
    """What the op-log's ``file`` column holds for ``uri``: ``bucket/key`` or ``/abs/path``."""
    p = parse(uri)
    return f"{p.bucket}/{p.key}" if p.bucket else f"/{p.key}"


def _data(n: int, seed: int) -> bytes:
    return bytes((seed + i) % 251 for i in range(n))


def _check_times(r: Record) -> None:
    assert r.start <= r.end, r
    assert r.duration_ns == r.end - r.start, r
    if r.first_byte is not None:
        assert r.start <= r.first_byte <= r.end, r
    if r.last_byte is not None:
        assert r.start <= r.last_byte <= r.end, r


def _workload(base: str) -> list[tuple[str, str, int, int, bool]]:
    """Run the workload under ``base``; the records it must produce: (op, file, bytes, n_objects, failed)."""
    names = {"alpha": 1000, "beta": 2000, "gamma": 3000}
    many = [f"many_{i}" for i in range(4)]
    expect: list[tuple[str, str, int, int, bool]] = []
    for i, (name, size) in enumerate(names.items()):
        s3dlio.put(base + "rt/" + name, _data(size, i))
        expect.append(("PUT", _file(base + "rt/" + name), size, 1, False))
    for i, name in enumerate(many):
        s3dlio.put(base + "rt/" + name, _data(100 + i, i))
        expect.append(("PUT", _file(base + "rt/" + name), 100 + i, 1, False))

    assert bytes(s3dlio.get(base + "rt/alpha")) == _data(1000, 0)
    expect.append(("GET", _file(base + "rt/alpha"), 1000, 1, False))
    assert bytes(s3dlio.get_range(base + "rt/beta", 100, 500)) == _data(2000, 1)[100:600]
    expect.append(("GET", _file(base + "rt/beta"), 500, 1, False))
    assert s3dlio.stat(base + "rt/gamma").size == 3000
    expect.append(("STAT", _file(base + "rt/gamma"), 0, 1, False))

    listed = s3dlio.list(base + "rt/")
    assert len(listed) == 7, listed
    expect.append(("LIST", _file(base + "rt/"), 0, 7, False))

    got = s3dlio.get_many([base + "rt/" + n for n in many[:3]])
    assert [memoryview(g).nbytes for g in got] == [100, 101, 102]  # type: ignore[arg-type]
    expect += [("GET", _file(base + "rt/" + n), 100 + i, 1, False) for i, n in enumerate(many[:3])]

    with pytest.raises(NotFoundError):
        s3dlio.get(base + "rt/missing")
    expect.append(("GET", _file(base + "rt/missing"), 0, 1, True))

    # delete selects by listing first (the exact key as a prefix), then deletes in one batch
    assert s3dlio.delete(base + "rt/gamma") == 1
    prefix = select(parse(base + "rt/gamma").key, exact=True).prefix
    expect.append(("LIST", _file(parse(base).with_key(prefix).__str__()), 0, 1, False))
    expect.append(("DELETE", _file(base + "rt/gamma"), 0, 1, False))
    return expect


def _key(r: Record | tuple[Any, ...]) -> tuple[str, str, int, int, bool]:
    if isinstance(r, Record):
        return (r.op, r.file, r.bytes, r.n_objects, bool(r.error))
    return r  # type: ignore[return-value]


def test_every_operation_logged_once(backend: Any, tmp_path: Path) -> None:
    log_path = tmp_path / "roundtrip.tsv.zst"
    oplog.init_op_log(log_path, lossless=True)
    try:
        expect = _workload(backend.base)
    finally:
        dropped = oplog.finalize_op_log()
    assert dropped == 0

    records = list(read(log_path))
    assert Counter(_key(r) for r in records) == Counter(expect), backend.id
    assert len(records) == len(expect)
    assert [r.idx for r in records] == list(range(len(records)))
    for r in records:
        _check_times(r)
        assert r.client_id, r
        assert r.endpoint, r
        if r.op == "GET" and r.error:
            assert "missing" in r.error or "not found" in r.error.lower(), r.error
        else:
            assert r.error == "", r
    failing = [r for r in records if r.error]
    assert len(failing) == 1 and failing[0].op == "GET"
    if backend.scheme in ("file", "direct"):
        assert all(r.file.startswith("/") for r in records)
        assert all(r.endpoint == f"{backend.scheme}://" for r in records)


def test_summary_matches_records(tmp_path: Path) -> None:
    """The summary of a round-tripped log counts what the workload did (mem:// only: quick)."""
    log_path = tmp_path / "s.tsv"
    oplog.init_op_log(log_path, lossless=True)
    try:
        expect = _workload(f"mem://rt-{os.getpid()}-{id(tmp_path)}/")
    finally:
        oplog.finalize_op_log()
    summary = oplog.summarize_files([log_path])
    ops = Counter(e[0] for e in expect)
    assert {name: s.count for name, s in summary.ops.items()} == dict(ops)
    assert summary.ops["GET"].errors == 1
    assert summary.ops["GET"].bytes == sum(e[2] for e in expect if e[0] == "GET" and not e[4])
    assert summary.ops["PUT"].bytes == sum(e[2] for e in expect if e[0] == "PUT")
    assert summary.total is not None and summary.total.count == len(expect)


def test_logged_store_keeps_what_batches_need(tmp_path: Path) -> None:
    """The op-log decorator reports the store it wraps as in-process, so get_many of mem://
    still runs inline when logging is on (a lost flag put it back on 64 threads)."""
    oplog.init_op_log(tmp_path / "flags.tsv", lossless=True)
    try:
        _, mem = resolve("mem://flags/k")
        _, disk = resolve(str(tmp_path / "k"))
    finally:
        oplog.finalize_op_log()
    assert type(mem).__name__ == "LoggedStore" and mem.in_process
    assert not disk.in_process


def test_inline_batch_logs_each_operation_in_turn(tmp_path: Path) -> None:
    """get_many on mem:// runs inline and is logged as a run: one line per object, in order,
    each starting where the one before ended, failures with their error; after a raised
    failure, the objects not fetched are not logged."""
    base = f"mem://run-{os.getpid()}-{id(tmp_path)}/"
    for i in range(3):
        s3dlio.put(f"{base}k{i}", _data(10 + i, i))
    log_path = tmp_path / "run.tsv.zst"
    oplog.init_op_log(log_path, lossless=True)
    try:
        got = s3dlio.get_many([base + "k0", base + "k1", base + "gone", base + "k2"], return_exceptions=True)
        with pytest.raises(NotFoundError):
            s3dlio.get_many([base + "k0", base + "gone", base + "k2"])
    finally:
        assert oplog.finalize_op_log() == 0
    assert isinstance(got[2], NotFoundError) and bytes(got[3]) == _data(12, 2)  # type: ignore[arg-type]
    records = list(read(log_path))
    assert [_key(r) for r in records] == [
        ("GET", _file(base + "k0"), 10, 1, False),
        ("GET", _file(base + "k1"), 11, 1, False),
        ("GET", _file(base + "gone"), 0, 1, True),
        ("GET", _file(base + "k2"), 12, 1, False),
        ("GET", _file(base + "k0"), 10, 1, False),
        ("GET", _file(base + "gone"), 0, 1, True),
    ]
    for r in records:
        _check_times(r)
    for run in (records[:4], records[4:]):
        assert all(a.end == b.start for a, b in itertools.pairwise(run))
        assert len({r.thread for r in run}) == 1
    assert "gone" in records[2].error and records[2].first_byte is None
