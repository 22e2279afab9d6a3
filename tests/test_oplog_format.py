"""The op-log format layer: byte-exact header, quoting, warp compatibility, writer under load,
per-process files, damage detection and summary arithmetic. No store involved."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import zstandard

import s3dlio.oplog as oplog
from s3dlio.errors import ConfigError, S3dlioError
from s3dlio.oplog import OpLogFormatError, OpLogWriter, Record, read
from s3dlio.oplog import writer as writer_mod
from s3dlio.oplog.record import format_line, format_ts, parse_ts, quote_field

HEADER_BYTES = (
    b"idx\tthread\top\tclient_id\tn_objects\tbytes\tendpoint\tfile\terror\t"
    b"start\tfirst_byte\tlast_byte\tend\tduration_ns\tcat\n"
)
T0 = 1_795_867_200_000_000_000  # 2026-11-28T12:00:00Z in ns
REPO = Path(oplog.__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _clean_oplog(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No process-wide log or env settings leak between tests."""
    for name in ("S3DLIO_OPLOG_FILE", "S3DLIO_OPLOG_BUF", "S3DLIO_OPLOG_LOSSLESS", "S3DLIO_OPLOG_WBUFCAP"):
        monkeypatch.delenv(name, raising=False)
    oplog.finalize_op_log()
    monkeypatch.setattr(oplog, "_client_id", None)  # set_client_id's name outlives a log on purpose
    yield
    oplog.finalize_op_log()


def _decompress(path: Path) -> bytes:
    return zstandard.ZstdDecompressor().stream_reader(path.open("rb"), read_across_frames=True).read()


def _zst(data: bytes) -> bytes:
    return zstandard.ZstdCompressor(level=1).compress(data)


# -- text encoding ------------------------------------------------------------------------------


def test_header_is_byte_exact(tmp_path: Path) -> None:
    assert (oplog.HEADER + "\n").encode() == HEADER_BYTES
    for name in ("a.tsv.zst", "a.tsv"):
        path = tmp_path / name
        OpLogWriter(path).finalize()
        raw = _decompress(path) if name.endswith(".zst") else path.read_bytes()
        assert raw == HEADER_BYTES
        assert list(read(path)) == []


def test_timestamps_format_and_parse() -> None:
    ns = T0 + 123_456_789
    assert format_ts(ns) == "2026-11-28T12:00:00.123456789Z"
    assert format_ts(T0 + 5) == "2026-11-28T12:00:00.000000005Z"
    assert parse_ts("2026-11-28T12:00:00.123456789Z") == ns
    # Go's RFC3339Nano trims trailing zeros and may carry a zone offset.
    assert parse_ts("2026-11-28T12:00:00.1234Z") == T0 + 123_400_000
    assert parse_ts("2026-11-28T12:00:00Z") == T0
    assert parse_ts("2026-11-28T13:30:00.5+01:30") == T0 + 500_000_000
    assert parse_ts("2026-11-28T07:00:00-05:00") == T0
    with pytest.raises(ValueError):
        parse_ts("yesterday")
    rec = Record(0, 0, "GET", "c", 1, 0, "", "b/k", "", ns, None, None, ns + 1, 1)
    assert rec.start_dt.isoformat() == "2026-11-28T12:00:00.123456+00:00"
    assert rec.first_byte_dt is None


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        ("", ""),
        ("plain message", "plain message"),
        ("http://127.0.0.1:9000", "http://127.0.0.1:9000"),
        ('say "hi"', '"say ""hi"""'),
        ("a\tb", '"a\tb"'),
        ("line1\nline2", '"line1\nline2"'),
        ("cr\rhere", '"cr\rhere"'),
        (" leading space", '" leading space"'),
        ("\u00a0nbsp", '"\u00a0nbsp"'),
        ("\\.", '"\\."'),
    ],
)
def test_quote_field(value: str, encoded: str) -> None:
    assert quote_field(value) == encoded


@pytest.mark.parametrize("name", ["q.tsv", "q.tsv.zst"])
def test_quoted_fields_round_trip(tmp_path: Path, name: str) -> None:
    nasty = [
        'HTTP 503: "SlowDown"\tretry\nafter 1s\r\nend',
        " starts with space",
        '"',
        "\n",
        "ok",
    ]
    path = tmp_path / name
    with OpLogWriter(path, client_id="c1") as w:
        for i, err in enumerate(nasty):
            w.log(
                "GET",
                file=f"bkt/k{i}",
                endpoint=err,
                error=err,
                start_ns=T0 + i,
                end_ns=T0 + i + 10,
                thread=3,
            )
    got = list(read(path))
    assert [r.error for r in got] == nasty
    assert [r.endpoint for r in got] == nasty
    assert [r.file for r in got] == [f"bkt/k{i}" for i in range(len(nasty))]
    assert [r.idx for r in got] == list(range(len(nasty)))
    assert all(r.thread == 3 and r.client_id == "c1" for r in got)
    # And the line text is exactly what Record.to_line reproduces.
    raw = (_decompress(path) if name.endswith(".zst") else path.read_bytes()).decode()
    assert raw == oplog.HEADER + "\n" + "".join(r.to_line() for r in got)


def test_line_layout() -> None:
    line = format_line(7, 2, "PUT", "h:1", 1, 4096, "http://e", "b/k", "", T0, None, T0 + 50, T0 + 100, 1)
    assert line == (
        "7\t2\tPUT\th:1\t1\t4096\thttp://e\tb/k\t\t2026-11-28T12:00:00.000000000Z\t\t"
        "2026-11-28T12:00:00.000000050Z\t2026-11-28T12:00:00.000000100Z\t100\t1\n"
    )


# -- reading other layouts ----------------------------------------------------------------------

WARP_13 = (
    "idx\tthread\top\tclient_id\tn_objects\tbytes\tendpoint\tfile\terror\tstart\tfirst_byte\tend\tduration_ns\n"
    "0\t0\tGET\tclientA\t1\t1048576\t127.0.0.1:9000\twarp-bucket/obj1\t\t2026-11-28T12:00:00.1Z\t"
    "2026-11-28T12:00:00.15Z\t2026-11-28T12:00:00.3Z\t200000000\n"
    '1\t1\tPUT\tclientA\t1\t2048\t127.0.0.1:9000\twarp-bucket/obj2\t"Access ""Denied"""\t'
    "2026-11-28T13:00:00.5+01:00\t\t2026-11-28T12:00:00.6Z\t100000000\n"
    "# warp get --duration=1s\n"
    "# second comment line\n"
)


def _check_warp13(records: list[Record]) -> None:
    assert len(records) == 2
    a, b = records
    assert (a.idx, a.thread, a.op, a.client_id, a.n_objects, a.bytes) == (0, 0, "GET", "clientA", 1, 1048576)
    assert (a.endpoint, a.file, a.error) == ("127.0.0.1:9000", "warp-bucket/obj1", "")
    assert (a.start, a.first_byte, a.last_byte, a.end) == (
        T0 + 100_000_000,
        T0 + 150_000_000,
        None,
        T0 + 300_000_000,
    )
    assert (a.duration_ns, a.cat) == (200_000_000, 0)
    assert b.error == 'Access "Denied"'
    assert b.start == T0 + 500_000_000 and b.first_byte is None


def test_reads_warp_13_column_plain_and_zstd(tmp_path: Path) -> None:
    plain = tmp_path / "warp.csv"
    plain.write_text(WARP_13)
    # Compressed, under a name that does not say so: detection is by magic bytes.
    packed = tmp_path / "warp-zstd.csv"
    packed.write_bytes(_zst(WARP_13.encode()))
    _check_warp13(list(read(plain)))
    _check_warp13(list(read(packed)))
    with packed.open("rb") as fh:  # a binary stream works too
        _check_warp13(list(read(fh)))


def test_reads_old_layouts_and_skips_comments(tmp_path: Path) -> None:
    # warp < 1.0 (11 columns: no client_id, no endpoint), comment and blank lines anywhere.
    text = (
        "# produced by hand\n"
        "idx\tthread\top\tn_objects\tbytes\tfile\terror\tstart\tfirst_byte\tend\tduration_ns\n"
        "# a comment between records\n"
        "\n"
        "0\t4\tSTAT\t1\t0\tb/k\t\t2026-11-28T12:00:00Z\t\t2026-11-28T12:00:01Z\t1000000000\n"
    )
    path = tmp_path / "old.tsv"
    path.write_text(text)
    (rec,) = read(path)
    assert (rec.thread, rec.op, rec.client_id, rec.endpoint, rec.cat, rec.last_byte) == (
        4,
        "STAT",
        "",
        "",
        0,
        None,
    )
    assert rec.end - rec.start == 1_000_000_000
    # Columns in another order, unknown extra ones ignored; idx/duration missing are derived.
    text = "extra\tend\tstart\top\n" + "x\t2026-11-28T12:00:00.000000002Z\t2026-11-28T12:00:00Z\tLIST\n" * 2
    path.write_text(text)
    recs = list(read(path))
    assert [r.idx for r in recs] == [0, 1]
    assert recs[0].duration_ns == 2 and recs[0].n_objects == 1


# -- damage gives located errors ----------------------------------------------------------------


def test_truncated_zstd_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "cut.tsv.zst"
    with OpLogWriter(path) as w:
        for i in range(20_000):
            w.log("GET", file=f"b/key-{i}", endpoint="http://e", start_ns=T0 + i * 997, end_ns=T0 + i * 1999)
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    seen = 0
    with pytest.raises(OpLogFormatError) as info:
        for _ in read(path):
            seen += 1
    err = info.value
    assert isinstance(err, S3dlioError)
    assert "truncated" in str(err) and str(path) in str(err)
    assert err.line is not None and err.line >= seen + 1  # the records before the cut were delivered
    # A zstd stream cut inside its first bytes too.
    path.write_bytes(whole[:6])
    with pytest.raises(OpLogFormatError, match="truncated"):
        list(read(path))


@pytest.mark.parametrize(
    ("line", "match"),
    [
        (
            "0\t0\tGET\tc\t1\tNaN\te\tb/k\t\t2026-11-28T12:00:00Z\t\t\t2026-11-28T12:00:01Z\t1\t0\n",
            "column bytes",
        ),
        ("0\t0\tGET\tc\t1\t5\te\tb/k\t\tnoon\t\t\t2026-11-28T12:00:01Z\t1\t0\n", "column start"),
        ("0\t0\tGET\tc\t1\t5\te\tb/k\n", "4 fields|8 fields"),
        ('0\t0\tGET\tc\t1\t5\te\tb/k\t"open quote\t2026\n', "never closed"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path: Path, line: str, match: str) -> None:
    path = tmp_path / "bad.tsv"
    good = format_line(0, 0, "GET", "c", 1, 5, "e", "b/k", "", T0, None, None, T0 + 1)
    path.write_text(oplog.HEADER + "\n# comment\n" + good + line)
    with pytest.raises(OpLogFormatError, match=match) as info:
        list(read(path))
    assert info.value.line == 4 and f"{path}, line 4" in str(info.value)


def test_not_an_oplog(tmp_path: Path) -> None:
    path = tmp_path / "x.tsv"
    path.write_text("")
    with pytest.raises(OpLogFormatError, match="empty"):
        list(read(path))
    path.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(OpLogFormatError, match="header lacks"):
        list(read(path))
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(OpLogFormatError, match="UTF-8"):
        list(read(path))


# -- writer -------------------------------------------------------------------------------------


def _hammer(w: OpLogWriter, threads: int, per_thread: int) -> None:
    def work(t: int) -> None:
        for i in range(per_thread):
            w.log("GET", file=f"b/{t}-{i}", endpoint="http://e", start_ns=T0 + i, end_ns=T0 + i + 5, bytes=i)

    pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()


def test_lossless_under_load_loses_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S3DLIO_OPLOG_BUF", "16")
    monkeypatch.setenv("S3DLIO_OPLOG_LOSSLESS", "yes")
    path = tmp_path / "lossless.tsv.zst"
    w = OpLogWriter(path)
    assert w.settings.queue_size == 16 and w.settings.lossless
    _hammer(w, 8, 5_000)
    assert w.finalize() == 0 and w.dropped == 0
    recs = list(read(path))
    assert [r.idx for r in recs] == list(range(40_000))
    assert {r.file for r in recs} == {f"b/{t}-{i}" for t in range(8) for i in range(5_000)}
    # Default thread ids: one small integer per Python thread, 5,000 lines each.
    per_tid: dict[int, int] = {}
    for r in recs:
        per_tid[r.thread] = per_tid.get(r.thread, 0) + 1
    assert per_tid == dict.fromkeys(range(8), 5_000)


@pytest.fixture
def held_writer(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Writer threads wait in their first line's formatting until the returned event is set,
    so the queue must overflow."""
    release = threading.Event()
    real = format_line

    def slow_format(*args: object) -> str:
        release.wait(10)
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(writer_mod, "format_line", slow_format)
    return release


def test_lossy_mode_counts_drops_and_still_writes_a_valid_file(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    held_writer: threading.Event,
) -> None:
    monkeypatch.setenv("S3DLIO_OPLOG_BUF", "16")
    release = held_writer
    path = tmp_path / "lossy.tsv.zst"
    w = OpLogWriter(path)
    assert not w.settings.lossless
    _hammer(w, 8, 5_000)
    release.set()
    with caplog.at_level(logging.WARNING, logger="s3dlio.oplog"):
        dropped = w.finalize()
    assert w.finalize() == dropped  # second call is harmless
    recs = list(read(path))
    assert dropped > 0 and len(recs) + dropped == 40_000
    assert [r.idx for r in recs] == list(range(len(recs)))
    assert any("dropped" in m and "S3DLIO_OPLOG_LOSSLESS" in m for m in caplog.messages)


def test_lossy_mode_drops_a_whole_run_and_counts_its_operations(
    tmp_path: Path, held_writer: threading.Event
) -> None:
    release = held_writer
    path = tmp_path / "runs.tsv"
    w = OpLogWriter(path, queue_size=1)
    w.log("STAT", file="b/first", endpoint="mem://", start_ns=1, end_ns=2)
    while w._qsize():  # the writer has taken it and waits in format_line once the producer pauses
        threading.Event().wait(0.001)
    threading.Event().wait(0.05)
    keys = [f"k{i}" for i in range(5)]
    stamps = list(range(100, 106))
    w.log_run("GET", "mem://", "b/", keys, stamps, [None] * 5, [b"x" * i for i in range(5)])  # queued
    w.log_run("GET", "mem://", "b/", keys, stamps, [None] * 5, [b"y"] * 3)  # queue full: 3 dropped
    release.set()
    assert w.finalize() == 3
    recs = list(read(path))
    assert [(r.op, r.file, r.bytes, r.start, r.end) for r in recs[1:]] == [
        ("GET", f"b/k{i}", i, 100 + i, 101 + i) for i in range(5)
    ]


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    s = writer_mod.OpLogSettings.resolve()
    assert (s.queue_size, s.wbufcap, s.level, s.lossless) == (2048, 262144, 1, False)
    for text, value in [("true", True), ("0", False), ("No", False), ("1", True), ("FALSE", False)]:
        monkeypatch.setenv("S3DLIO_OPLOG_LOSSLESS", text)
        assert writer_mod.OpLogSettings.resolve().lossless is value
    monkeypatch.setenv("S3DLIO_OPLOG_LOSSLESS", "maybe")
    with pytest.raises(ConfigError, match="S3DLIO_OPLOG_LOSSLESS='maybe'"):
        OpLogWriter(tmp_path / "x.tsv")
    monkeypatch.delenv("S3DLIO_OPLOG_LOSSLESS")
    monkeypatch.setenv("S3DLIO_OPLOG_WBUFCAP", "1MiB")
    monkeypatch.setenv("S3DLIO_OPLOG_LEVEL", "3")
    s = writer_mod.OpLogSettings.resolve()
    assert (s.wbufcap, s.level) == (1 << 20, 3)
    monkeypatch.setenv("S3DLIO_OPLOG_BUF", "many")
    with pytest.raises(ConfigError, match="S3DLIO_OPLOG_BUF"):
        writer_mod.OpLogSettings.resolve()
    with pytest.raises(ConfigError, match="client id"):
        OpLogWriter(tmp_path / "y.tsv", client_id="a\tb", queue_size=1)


def test_log_after_finalize_is_ignored(tmp_path: Path) -> None:
    w = OpLogWriter(tmp_path / "z.tsv")
    w.log("GET", file="b/k", endpoint="e", start_ns=T0, end_ns=T0 + 1)
    w.finalize()
    w.log("GET", file="b/k", endpoint="e", start_ns=T0, end_ns=T0 + 1)
    assert w.finalize() == 0 and len(list(read(tmp_path / "z.tsv"))) == 1


def test_bad_entry_is_counted_not_fatal(tmp_path: Path) -> None:
    w = OpLogWriter(tmp_path / "bad.tsv", lossless=True)
    w.log("GET", file="b/k", endpoint="e", start_ns="noon", end_ns=T0)  # type: ignore[arg-type]
    w.log("GET", file="b/k", endpoint="e", start_ns=T0, end_ns=T0 + 1)
    assert w.finalize() == 1
    assert [r.idx for r in read(tmp_path / "bad.tsv")] == [0]


# -- process-wide log, per-process files --------------------------------------------------------


def test_per_process_path() -> None:
    pp = oplog.per_process_path
    assert pp("run.tsv.zst", 42) == "run.42.tsv.zst"
    assert pp("/d/run.tsv", 42) == "/d/run.42.tsv"
    assert pp("/d/run.csv.zst", 7) == "/d/run.7.csv.zst"
    assert pp("run.zst", 7) == "run.7.zst"
    assert pp("run", 7) == "run.7"


def test_module_api(tmp_path: Path) -> None:
    assert oplog.current_writer() is None and not oplog.is_op_log_active()
    path = tmp_path / "api.tsv.zst"
    w = oplog.init_op_log(path, client_id="trainer-0")
    assert oplog.current_writer() is w and oplog.is_op_log_active()
    assert os.environ["S3DLIO_OPLOG_FILE"] == str(path)
    w.log("PUT", file="b/k", endpoint="file://", start_ns=T0, end_ns=T0 + 9, bytes=3)
    oplog.set_client_id("trainer-1")
    assert oplog.finalize_op_log() == 0
    assert oplog.finalize_op_log() == 0
    assert "S3DLIO_OPLOG_FILE" not in os.environ
    assert oplog.current_writer() is None and not oplog.is_op_log_active()
    (rec,) = read(path)
    assert rec.client_id in ("trainer-0", "trainer-1") and rec.bytes == 3


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_writes_its_own_file(tmp_path: Path) -> None:
    path = tmp_path / "run.tsv.zst"
    parent = oplog.init_op_log(path)
    parent.log("GET", file="b/parent-before", endpoint="e", start_ns=T0, end_ns=T0 + 1)
    pid = os.fork()
    if pid == 0:  # child: log through the lazily opened writer, finalize, leave without pytest
        code = 1
        try:
            w = oplog.current_writer()
            assert w is not None and w is not parent and w.path.endswith(f"run.{os.getpid()}.tsv.zst")
            for i in range(3):
                w.log("GET", file=f"b/child-{i}", endpoint="e", start_ns=T0, end_ns=T0 + 1)
            parent.log("GET", file="b/stale", endpoint="e", start_ns=T0, end_ns=T0 + 1)  # ignored
            oplog.finalize_op_log()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    parent.log("GET", file="b/parent-after", endpoint="e", start_ns=T0, end_ns=T0 + 1)
    oplog.finalize_op_log()
    assert [r.file for r in read(path)] == ["b/parent-before", "b/parent-after"]
    child = list(read(tmp_path / f"run.{pid}.tsv.zst"))
    assert [r.file for r in child] == [f"b/child-{i}" for i in range(3)]
    assert [r.idx for r in child] == [0, 1, 2] and child[0].client_id.endswith(f":{pid}")


def _worker_logs(n: int) -> None:
    w = oplog.current_writer()
    assert w is not None
    for i in range(n):
        w.log("GET", file=f"b/w{i}", endpoint="e", start_ns=T0, end_ns=T0 + 1)
    # No finalize: multiprocessing workers leave through os._exit, after its finalizers.


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_multiprocessing_fork_worker_file_is_finalized(tmp_path: Path) -> None:
    import multiprocessing

    oplog.init_op_log(tmp_path / "mp.tsv.zst")
    proc = multiprocessing.get_context("fork").Process(target=_worker_logs, args=(5,))
    proc.start()
    proc.join(30)
    assert proc.exitcode == 0
    oplog.finalize_op_log()
    recs = list(read(tmp_path / f"mp.{proc.pid}.tsv.zst"))  # complete zstd frame, else this raises
    assert len(recs) == 5


def test_spawned_child_logs_from_environment(tmp_path: Path) -> None:
    path = tmp_path / "spawn.tsv"
    oplog.init_op_log(path)
    code = (
        "import os, s3dlio.oplog as o\n"
        "w = o.current_writer()\n"
        "w.log('DELETE', file='b/k', endpoint='e', start_ns=1, end_ns=2)\n"
        "print(os.getpid())\n"
    )  # no finalize: the atexit hook must close the file
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    oplog.finalize_op_log()
    (rec,) = read(tmp_path / f"spawn.{out.stdout.strip()}.tsv")
    assert rec.op == "DELETE"


# -- summary ------------------------------------------------------------------------------------

MS = 1_000_000


def _summary_file(path: Path) -> None:
    with OpLogWriter(path, client_id="c") as w:
        # 4 GETs of 1 MiB, latencies 10/20/30/40 ms, TTFB 1/2/3/4 ms; window 0 .. 1000 ms.
        for i, lat in enumerate((10, 20, 30, 40)):
            start = T0 + (0 if i == 0 else 960 * MS if i == 3 else i * 100 * MS)
            w.log("GET", file="b/g", endpoint="e", start_ns=start, end_ns=start + lat * MS,
                  first_byte_ns=start + (i + 1) * MS, bytes=1 << 20)  # fmt: skip
        # 2 PUTs of 512 KiB (50 ms each) + 1 failed PUT; window 0 .. 500 ms.
        w.log("PUT", file="b/p", endpoint="e", start_ns=T0, end_ns=T0 + 50 * MS, bytes=1 << 19)
        w.log("PUT", file="b/p", endpoint="e", start_ns=T0 + 450 * MS, end_ns=T0 + 500 * MS, bytes=1 << 19)
        w.log(
            "PUT",
            file="b/p",
            endpoint="e",
            start_ns=T0 + 100 * MS,
            end_ns=T0 + 400 * MS,
            bytes=99,
            error="503",
        )


def test_summary_numbers_are_exact(tmp_path: Path) -> None:
    path = tmp_path / "s.tsv.zst"
    _summary_file(path)
    s = oplog.summarize_files([path])
    get, put, total = s.ops["GET"], s.ops["PUT"], s.total
    assert list(s.ops) == ["GET", "PUT"]
    assert (get.count, get.errors, get.bytes, get.objects) == (4, 0, 4 << 20, 4)
    assert get.window_s == pytest.approx(1.0) and get.mib_per_s == pytest.approx(4.0)
    assert get.ops_per_s == pytest.approx(4.0)
    lat = get.latency_ms
    assert lat is not None
    assert lat.n == 4 and lat.mean == pytest.approx(25.0) and lat.p50 == pytest.approx(25.0)
    assert lat.max == pytest.approx(40.0)
    assert lat.p90 == pytest.approx(37.0) and lat.p99 == pytest.approx(39.7)
    assert (
        get.ttfb_ms is not None
        and get.ttfb_ms.p50 == pytest.approx(2.5)
        and get.ttfb_ms.max == pytest.approx(4)
    )
    assert (put.count, put.errors, put.bytes) == (3, 1, 1 << 20)
    assert put.window_s == pytest.approx(0.5) and put.mib_per_s == pytest.approx(2.0) and put.ops_per_s == 4.0
    assert put.latency_ms is not None and put.latency_ms.max == pytest.approx(50.0)
    assert put.ttfb_ms is None
    assert total is not None
    assert (total.count, total.errors, total.bytes) == (7, 1, 5 << 20)
    assert total.window_s == pytest.approx(1.0) and total.ops_per_s == pytest.approx(6.0)
    d = json.loads(json.dumps(s.to_dict()))
    assert d["ops"]["GET"]["latency_ms"]["p90"] == pytest.approx(37.0)
    assert d["total"]["start"] == "2026-11-28T12:00:00.000000000Z"
    table = s.format_table()
    assert "GET" in table and "PUT" in table and "ALL" in table
    # Two files (e.g. two processes) merge into one summary.
    other = tmp_path / "s2.tsv"
    _summary_file(other)
    both = oplog.summarize_files([path, other])
    assert (
        both.total is not None and both.total.count == 14 and both.ops["GET"].mib_per_s == pytest.approx(8.0)
    )
    assert sum(1 for _ in oplog.merge(path, other)) == 14
    assert oplog.summarize([]).format_table() == "no operations"
