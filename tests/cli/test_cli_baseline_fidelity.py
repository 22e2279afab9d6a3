"""What users of the original s3dlio (s3-cli 0.4) expect, checked against its documented lines.

The regexes below are written from the example lines of the original's description
(shared/reference/product-description.md) and checked against those very lines first; then
the installed ``s3dlio`` must print lines they match, on file:// and on moto, for one object
as for many. Also: ``help``, bare bucket names, globs in a URI's last part, and the Python
calls of the original's test scripts (with the replacements docs/api.md names).
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import s3dlio
from s3dlio.cli._output import mb, rate
from s3dlio.datagen import DataGenerator
from s3dlio.errors import InvalidArgumentError, InvalidUriError, NotFoundError

Run = Any  # tests/cli/conftest.py's Run: code, out, err, json()

# -- the original's lines ------------------------------------------------------------------------
UPLOADED = re.compile(
    r"Uploaded (\d+) objects \(total (\d+) bytes\) in (\d+\.\d+)s \((\d+\.\d{2}) objects/s, (\d+\.\d{2}) MB/s\)"
)
FETCHING = re.compile(r"Fetching (\d+) objects with (\d+) jobs…")
DOWNLOADED = re.compile(r"downloaded (\d+\.\d{2}) MB in (\d+\.\d+)s \((\d+\.\d{2}) MB/s\)")
DELETING = re.compile(r"Deleting (\d+) objects…\nDone\.")
TOTAL = re.compile(r"\nTotal objects: (\d+)")
MIB = 2**20


def test_the_regexes_match_the_original_example_lines() -> None:
    put = "Uploaded 1200 objects (total 25165824000 bytes) in 7.607254643s (157.74 objects/s, 3154.88 MB/s)"
    assert UPLOADED.fullmatch(put)
    assert FETCHING.fullmatch("Fetching 1200 objects with 32 jobs…")
    assert DOWNLOADED.fullmatch("downloaded 24000.00 MB in 4.345053775s (5523.52 MB/s)")
    assert DELETING.fullmatch("Deleting 1200 objects…\nDone.")
    assert TOTAL.fullmatch("\nTotal objects: 1200")
    # the original's MB is 2^20 bytes: its own numbers, recomputed as s3dlio prints them
    assert mb(25165824000) == "24000.00"
    assert mb(rate(25165824000, 7.607254643)) == "3154.88"
    assert mb(rate(24000 * MIB, 4.345053775)) == "5523.52"


def ok(run: Run) -> str:
    assert run.code == 0, str(run)
    return run.out


@pytest.fixture(params=["file", "s3"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh prefix ending in ``/``: a local directory, or a moto bucket."""
    if request.param == "s3":
        return str(request.getfixturevalue("s3_bucket"))
    (tmp_path / "store").mkdir()
    return f"file://{tmp_path}/store/"


def test_summary_lines_match_the_original(sh: Callable[..., Run], where: str) -> None:
    out = ok(sh("put", "-s", "4MiB", "-t", "one.dat", where + "a/"))
    got = UPLOADED.fullmatch(out.strip())
    assert got and got.group(1, 2) == ("1", str(4 * MIB)), out  # plural for one object, as the original
    out = ok(sh("put", "-n", "2", "-s", "4MiB", where + "b/"))
    assert (got := UPLOADED.fullmatch(out.strip())) and got.group(1, 2) == ("2", str(8 * MIB)), out

    fetch, done = ok(sh("get", "-j", "1", where + "a/one.dat")).strip().splitlines()
    assert (got := FETCHING.fullmatch(fetch)) and got.group(1, 2) == ("1", "1"), fetch
    assert (got := DOWNLOADED.fullmatch(done)) and got.group(1) == "4.00", done  # 4 MiB is 4.00 MB
    lines = ok(sh("get", where + "b/")).strip().splitlines()
    assert (got := DOWNLOADED.fullmatch(lines[-1])) and got.group(1) == "8.00", lines

    assert (got := TOTAL.search(ok(sh("ls", where + "b/")))) and got.group(1) == "2"
    assert DELETING.fullmatch(ok(sh("rm", where + "a/one.dat")).strip())


def test_every_summary_stays_plural_for_one_object(invoke: Callable[..., Run], tmp_path: Path) -> None:
    mem = f"mem://one-{uuid.uuid4().hex[:8]}/"
    (tmp_path / "f.bin").write_bytes(b"abc")
    out = ok(invoke("upload", str(tmp_path / "f.bin"), mem + "up/"))
    assert out.startswith("Uploaded 1 objects (total 3 bytes)"), out
    out = ok(invoke("download", mem + "up/f.bin", str(tmp_path / "d")))
    assert out.startswith("Downloaded 1 objects (total 3 bytes) in "), out
    assert ok(invoke("cp", mem + "up/f.bin", mem + "cp/")).startswith("Copied 1 objects in ")


def test_json_mb_per_s_uses_the_same_mb(invoke: Callable[..., Run]) -> None:
    mem = f"mem://json-{uuid.uuid4().hex[:8]}/"
    ok(invoke("put", "-n", "4", "-s", "4MiB", mem))
    run = invoke("get", "--json", mem)
    stats = run.json()
    assert stats["bytes"] == 16 * MIB
    expected = stats["bytes"] / stats["seconds"] / MIB  # 2^20, as the text lines: never 10^6 (4.9% more)
    assert stats["mb_per_s"] == pytest.approx(expected, rel=0.02, abs=0.002), stats


# -- help ------------------------------------------------------------------------------------------
def test_help_command(sh: Callable[..., Run]) -> None:
    usage = ok(sh("--help"))
    assert re.search(r"^  help +Print this message or the help of the given subcommand\(s\)\.$", usage, re.M)
    assert ok(sh("help")) == usage
    assert ok(sh("help", "get")) == ok(sh("get", "--help"))
    assert ok(sh("help", "rm")).startswith("Usage: s3dlio rm ")
    assert ok(sh("help", "oplog", "summarize")).startswith("Usage: s3dlio oplog summarize ")
    for args, named in ((["nope"], "'nope'"), (["get", "x"], "'s3dlio get' has no subcommand 'x'")):
        run = sh("help", *args)
        assert run.code == 2 and run.out == "", str(run)
        lines = run.err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("s3dlio: error: ") and named in lines[0], run.err


# -- bare bucket names -----------------------------------------------------------------------------
def test_bucket_commands_take_a_bare_name(sh: Callable[..., Run], moto_server: object) -> None:
    name = f"bare-{uuid.uuid4().hex[:10]}"
    try:
        assert ok(sh("create-bucket", name)) == f"Created bucket s3://{name}\n"
        assert f"s3://{name}" in s3dlio.list_buckets()
        ok(sh("put", "-s", "1", "-t", "k", f"s3://{name}/"))
        assert ok(sh("delete-bucket", "--force", name + "/")).endswith(f"Deleted bucket s3://{name}\n")
        assert f"s3://{name}" not in s3dlio.list_buckets()

        s3dlio.create_bucket(name)  # the original's create_bucket("russ-test5")
        s3dlio.put(f"s3://{name}/k", b"x")
        s3dlio.delete(f"s3://{name}/k")
        s3dlio.delete_bucket(name)
        asyncio.run(s3dlio.create_bucket_async(name + "/"))
        s3dlio.delete_bucket(f"s3://{name}")
        assert f"s3://{name}" not in s3dlio.list_buckets()
    finally:
        for uri in (f"s3://{name}/k", f"s3://{name}/k/"):
            try:
                s3dlio.delete(uri)
                s3dlio.delete_bucket(name)
            except Exception:  # noqa: BLE001 - gone already
                pass
    with pytest.raises(InvalidUriError, match="buckets exist only for"):
        s3dlio.create_bucket("./not/a/bucket")  # a path is still no bucket


# -- globs and regexes in the last part ------------------------------------------------------------
def _npz_tree(where: str) -> str:
    base = where + "NPZ/"
    for name in ("a1.npz", "a2.npz", "b.txt", "sub/c.npz"):
        s3dlio.put(base + name, name.encode())
    return base


def test_a_glob_last_part_selects_like_a_shell(sh: Callable[..., Run], where: str, tmp_path: Path) -> None:
    base = _npz_tree(where)
    assert s3dlio.list(base + "*.npz") == [base + "a1.npz", base + "a2.npz"]
    deep = s3dlio.list(base + "*.npz", recursive=True)  # '*' crosses '/' here, as '.*' does
    assert deep == [base + "a1.npz", base + "a2.npz", base + "sub/c.npz"]
    assert s3dlio.list(base + "?1.npz") == [base + "a1.npz"]
    out = ok(sh("ls", base + "*.npz"))
    assert out.splitlines()[:2] == [base + "a1.npz", base + "a2.npz"] and TOTAL.search(out).group(1) == "2"  # type: ignore[union-attr]
    ok(sh("download", base + "*.npz", str(tmp_path / "d")))
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["a1.npz", "a2.npz"]
    s3dlio.download(base + "*.txt", str(tmp_path / "e"))
    assert [p.name for p in (tmp_path / "e").iterdir()] == ["b.txt"]
    assert FETCHING.match(ok(sh("get", base + "*.npz"))).group(1) == "2"  # type: ignore[union-attr]


def test_a_last_part_neither_regex_nor_glob_is_that_literal_name(sh: Callable[..., Run], where: str) -> None:
    """``report(final.txt`` is no regex and no glob: it names that key, as before globs."""
    base = _npz_tree(where)
    s3dlio.put(base + "a(b", b"odd")
    assert s3dlio.list(base + "a(b") == [base + "a(b"]
    assert ok(sh("get", base + "a(b")).startswith("Fetching 1 objects")
    assert sh("get", base + "a(c").code == 1  # no such key: not found, not a usage error


def test_a_literal_delete_that_looks_like_a_regex_names_the_fix(sh: Callable[..., Run], where: str) -> None:
    base = _npz_tree(where)
    run = sh("rm", base + ".*")
    assert run.code == 1 and "not found; to delete by pattern use --regex" in run.err, str(run)
    with pytest.warns(UserWarning, match=r"nothing was deleted.*pattern='\.\*'"):
        assert s3dlio.delete(base + ".*") == 0
    assert len(s3dlio.list(base, recursive=True)) == 4  # nothing deleted
    assert s3dlio.delete(base, pattern=r".*\.npz") == 2  # what the warning says works


# -- the original's Python calls -------------------------------------------------------------------
def test_upload_takes_a_list_of_paths(s3_bucket: str, tmp_path: Path) -> None:
    files = []
    for i in (1, 2):
        files.append(tmp_path / f"dummy{i}.txt")
        files[-1].write_text(f"test{i}")
    assert s3dlio.upload([str(files[0])], s3_bucket) == [s3_bucket + "dummy1.txt"]  # the original's call
    assert asyncio.run(s3dlio.upload_async((files[1], str(tmp_path / "*.txt")), s3_bucket + "x/")) == [
        s3_bucket + "x/dummy2.txt", s3_bucket + "x/dummy1.txt", s3_bucket + "x/dummy2.txt",
    ]  # fmt: skip
    with pytest.raises(NotFoundError, match="missing"):
        s3dlio.upload([str(files[0]), str(tmp_path / "missing*")], s3_bucket + "y/")
    assert s3dlio.list(s3_bucket + "y/") == []  # every source is checked before anything is written
    with pytest.raises(InvalidArgumentError):
        s3dlio.upload([], s3_bucket)


def test_the_upgrade_table_replacements_run(s3_bucket: str, tmp_path: Path) -> None:
    """Each replacement docs/api.md gives for a changed call of the original's test scripts."""
    prefix = s3_bucket + "test_rust_api/"
    gen = DataGenerator()  # the generating put(prefix, 5, "object_{}_of_{}.dat", 32)
    s3dlio.put_many([(f"{prefix}object_{i}_of_5.dat", gen.object(1000)) for i in range(5)], 32)
    uris = s3dlio.list(prefix)  # full URIs
    assert [u.removeprefix(prefix) for u in uris] == [f"object_{i}_of_5.dat" for i in range(5)]
    meta = dataclasses.asdict(s3dlio.stat(uris[0]))
    assert meta["size"] == 1000 and "etag" in meta and s3dlio.stat(uris[0]).to_dict()["size"] == 1000
    stats = s3dlio.get_many_stats(uris, 32)
    assert (stats.objects, stats.bytes) == (5, 5000) and stats.seconds >= 0
    sizes = {u: len(b) for u, b in zip(uris, s3dlio.get_many(uris, 32), strict=True)}
    assert sizes == dict.fromkeys(uris, 1000)
    s3dlio.put(prefix + "data/logs/x.txt", b"x")
    s3dlio.download(prefix, str(tmp_path), recursive=True)
    assert (tmp_path / "data" / "logs" / "x.txt").read_bytes() == b"x"  # the tree is kept
    assert s3dlio.delete(prefix, pattern=r"object_[0-1]_.*") == 2
    assert s3dlio.delete(prefix, recursive=True) == 4
