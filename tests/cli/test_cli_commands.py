"""Every object command as the installed ``s3dlio`` subprocess (``sh``) on moto, Azurite and
files; variants of each run in-process through click's CliRunner (``invoke``) to stay fast."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

Run = Any  # tests/cli/conftest.py's Run: code, out, err, json()


def ok(run: Run) -> Run:
    assert run.code == 0, str(run)
    return run


def test_every_command(
    sh: Callable[..., Run], invoke: Callable[..., Run], place: str, tmp_path: Path
) -> None:
    # put: three 1000-byte objects named by the template
    out = ok(sh("put", "-n", "3", "-s", "1k", "-t", "obj_{}_of_{}.dat", place + "data/")).out
    assert re.fullmatch(
        r"Uploaded 3 objects \(total 3000 bytes\) in \d+\.\d{3}s \(\d+\.\d{2} objects/s, \d+\.\d{2} MB/s\)\n",
        out,
    ), out

    # ls: one URI per line, a blank line, the total; a regex last part; --long; --count --json
    lines = ok(sh("ls", place + "data/")).out.splitlines()
    assert lines[-2:] == ["", "Total objects: 3"]
    assert sorted(lines[:-2]) == [f"{place}data/obj_{i}_of_3.dat" for i in range(3)]
    out = ok(invoke("list", place + r"data/obj_[12]_of_3\.dat")).out
    assert out.splitlines()[-1] == "Total objects: 2"
    long = ok(invoke("ls", "--long", place + "data/")).out.splitlines()[0].split()
    assert long[0] == "1000" and re.match(r"\d{4}-\d\d-\d\dT", long[1]) and long[2].startswith(place)
    assert ok(invoke("ls", "-r", "--count", "--json", place)).json()["count"] == 3
    assert ok(invoke("ls", place)).out == f"{place}data/\n\nTotal sub-levels: 1\nTotal objects: 0\n"

    # stat: the product's fields, one per line
    out = ok(sh("stat", place + "data/obj_0_of_3.dat")).out
    assert "  size: 1000\n" in out and "  last_modified: " in out and "  etag: " in out
    assert ok(invoke("stat", "--json", place + "data/obj_0_of_3.dat")).json()["size"] == 1000

    # get: a prefix, measured and discarded
    out = ok(sh("get", "-j", "2", place + "data/")).out
    assert out.startswith("Fetching 3 objects with 2 jobs…\n"), out
    assert re.search(r"downloaded 0\.00 MB in \d+\.\d+s \(\d+\.\d+ MB/s\)", out), out
    stats = ok(invoke("get", "--json", place + "data/obj_1_of_3.dat")).json()
    assert (stats["objects"], stats["bytes"], stats["failed"]) == (1, 1000, 0)

    # download: into a local directory
    out = ok(sh("download", place + "data/", str(tmp_path / "dl"))).out
    assert out.startswith("Downloaded 3 objects (total 3000 bytes) in "), out
    assert sorted(p.name for p in (tmp_path / "dl").iterdir()) == [f"obj_{i}_of_3.dat" for i in range(3)]

    # upload: local files (a directory) under a prefix
    src = tmp_path / "up"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_bytes(b"aaaa")
    (src / "sub" / "b.txt").write_bytes(b"bb")
    stats = ok(sh("upload", "--json", str(src), place + "up/")).json()
    assert (stats["objects"], stats["bytes"], stats["failed"]) == (2, 6, 0)
    assert ok(invoke("ls", "-r", "--count", "--json", place + "up/")).json()["count"] == 2

    # cp: object store -> local file, and local -> object store
    ok(sh("cp", place + "up/sub/b.txt", str(tmp_path / "b.copy")))
    assert (tmp_path / "b.copy").read_bytes() == b"bb"
    out = ok(invoke("cp", str(tmp_path / "b.copy"), place + "copied/")).out
    assert out.startswith("Copied 1 objects in ")
    assert ok(invoke("get", "--json", place + "copied/b.copy")).json()["bytes"] == 2

    # delete / rm: a key, then everything, recursively
    assert ok(sh("rm", place + "copied/b.copy")).out == "Deleting 1 objects…\nDone.\n"
    assert ok(invoke("delete", "-r", place)).out == "Deleting 5 objects…\nDone.\n"
    assert ok(invoke("ls", "-r", place)).out == "\nTotal objects: 0\n"


def test_missing_object_is_one_line_exit_1(
    sh: Callable[..., Run], invoke: Callable[..., Run], place: str
) -> None:
    runs = [sh("get", place + "nope.bin"), invoke("stat", place + "nope.bin"), invoke("rm", place + "nope")]
    for run in runs:
        assert run.code == 1, str(run)
        lines = run.err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("s3dlio: error: "), run.err
        assert "nope" in lines[0]
