"""upload of a local tree: dot-files go up (a DCP checkpoint's ``.metadata``), ``**`` is the
whole tree, a symbolic-link loop is never expanded, a link leaving the tree is followed only
when asked, and whatever was skipped is reported."""

from __future__ import annotations

import glob
import os
import subprocess
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import venv_tool

import s3dlio
from s3dlio.localpath import Skipped, local_files

INSIDE = ["model.bin", ".metadata", "sub/a.npz", "sub/.hidden/b.npz", "sub/deep/c.txt"]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A checkpoint-like tree with dot-files and three kinds of symbolic links."""
    root = tmp_path / "ckpt"
    for rel in INSIDE:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(rel.encode())
    outside = tmp_path / "outside"
    (outside / "secret").mkdir(parents=True)
    (outside / "secret" / "s.key").write_bytes(b"secret")
    (outside / "o.txt").write_bytes(b"o")
    os.symlink(root, root / "sub" / "loop")  # a directory above it: a loop
    os.symlink(outside / "secret", root / "away")  # a directory outside the tree
    os.symlink(outside / "o.txt", root / "sub" / "o.txt")  # a file outside the tree
    os.symlink(root / "sub" / "deep", root / "deep-again")  # inside the tree: taken
    os.symlink(tmp_path / "missing", root / "broken")
    return root


@pytest.fixture
def dest() -> Iterator[str]:
    base = f"mem://up-{uuid.uuid4().hex[:8]}/"
    yield base
    s3dlio.delete(base, recursive=True)


def uploaded(dest: str) -> list[str]:
    return sorted(uri.removeprefix(dest) for uri in s3dlio.list(dest, recursive=True))


def test_dot_files_and_links(tree: Path, dest: str) -> None:
    with pytest.warns(UserWarning) as caught:
        uris = s3dlio.upload(f"{tree}/**", dest)
    assert sorted(u.removeprefix(dest) for u in uris) == uploaded(dest) == sorted([*INSIDE, "deep-again/c.txt"])
    assert bytes(s3dlio.get(dest + ".metadata")) == b".metadata"
    message = str(caught[0].message)
    for name in ("sub/loop", "away", "sub/o.txt", "broken"):
        assert f"{tree}/{name}" in message, message
    assert "skipped 4" in message and "follow_links=True" in message


def test_exclude_hidden(tree: Path, dest: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s3dlio.upload(f"{tree}/**", dest, include_hidden=False)
    assert uploaded(dest) == ["deep-again/c.txt", "model.bin", "sub/a.npz", "sub/deep/c.txt"]
    skipped: list[Skipped] = []
    s3dlio.upload(f"{tree}/.metadata", dest + "named/", include_hidden=False, on_skip=skipped.append)
    assert uploaded(dest + "named/") == [".metadata"]  # named: taken


def test_follow_links_never_loops(tree: Path, dest: str) -> None:
    skipped: list[Skipped] = []
    s3dlio.upload(f"{tree}/**", dest, follow_links=True, on_skip=skipped.append)
    assert uploaded(dest) == sorted([*INSIDE, "deep-again/c.txt", "away/s.key", "sub/o.txt"])
    assert sorted((Path(s.path).relative_to(tree).as_posix(), s.reason.split(" (")[0]) for s in skipped) == [
        ("broken", "broken symbolic link"), ("sub/loop", "symbolic link loop"),
    ]  # fmt: skip


def test_glob_parts_and_walk(tree: Path) -> None:
    npz = local_files(f"{tree}/**/*.npz")
    assert [Path(p).relative_to(tree).as_posix() for p in npz.files] == ["sub/.hidden/b.npz", "sub/a.npz"]
    # Directory links might hold matches, so they are reported; the file link o.txt cannot match.
    assert sorted(Path(s.path).relative_to(tree).as_posix() for s in npz.skipped) == ["away", "broken", "sub/loop"]
    top = local_files(f"{tree}/*", include_hidden=False)
    assert [Path(p).name for p in top.files] == ["model.bin"]
    dotted = local_files(f"{tree}/.*", include_hidden=False)
    assert [Path(p).name for p in dotted.files] == [".metadata"]


def test_cli_upload_reports_skips(tree: Path, dest: str, tmp_path: Path) -> None:
    exe = venv_tool("s3dlio")
    assert exe is not None
    file_dest = tmp_path / "up"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([exe, "upload", *args], capture_output=True, text=True, timeout=120,
                              env=os.environ.copy())  # fmt: skip

    done = run(str(tree), f"file://{file_dest}/")
    assert done.returncode == 0, done.stderr
    got = sorted(p.relative_to(file_dest).as_posix() for p in file_dest.rglob("*") if p.is_file())
    assert got == sorted([*INSIDE, "deep-again/c.txt"])
    lines = [line for line in done.stderr.splitlines() if "skipped" in line]
    assert len(lines) == 5 and lines[-1].startswith("s3dlio: skipped 4 items"), done.stderr
    assert any(f"{tree}/away" in line and "--copy-links" in line for line in lines)
    hidden = run("--exclude-hidden", "-L", str(tree), f"file://{tmp_path}/up2/")
    assert hidden.returncode == 0, hidden.stderr
    got = sorted(p.relative_to(tmp_path / "up2").as_posix() for p in (tmp_path / "up2").rglob("*") if p.is_file())
    assert got == ["away/s.key", "deep-again/c.txt", "model.bin", "sub/a.npz", "sub/deep/c.txt", "sub/o.txt"]


def test_escaped_directory_name(tmp_path: Path) -> None:
    """A directory whose name holds glob characters, escaped as the CLI escapes it, is the root."""
    odd = tmp_path / "run[1]*"
    (odd / "x").mkdir(parents=True)
    (odd / "x" / "f.bin").write_bytes(b"f")
    found = local_files(os.path.join(glob.escape(str(odd)), "**"))
    assert found.root == str(odd) and found.files == [str(odd / "x" / "f.bin")]
    one = tmp_path / "x[2].bin"
    one.write_bytes(b"1")
    assert local_files(glob.escape(str(one))).files == [str(one)]
    assert local_files(str(one)).files == []  # unescaped, [2] is a character class: x2.bin


def test_copy_from_a_local_tree_skips_links_leaving_it(tree: Path, dest: str) -> None:
    """copy (and cp -r) of a local directory is an upload: the same links stay behind."""
    skipped: list[Skipped] = []
    s3dlio.copy(f"file://{tree}/", dest, recursive=True, on_skip=skipped.append)
    names = uploaded(dest)
    assert "sub/o.txt" not in names and not any(n.startswith("away/") for n in names)
    assert ".metadata" in names and "sub/deep/c.txt" in names
    # the same skips as upload reports: links leaving the tree, a broken one, a loop
    assert sorted(Path(item.path).relative_to(tree).as_posix() for item in skipped) == [
        "away", "broken", "sub/loop", "sub/o.txt"
    ]
    s3dlio.delete(dest, recursive=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s3dlio.copy(f"file://{tree}/sub/", dest, recursive=True, follow_links=True, on_skip=skipped.append)
    assert bytes(s3dlio.get(dest + "o.txt")) == b"o"


def test_cli_cp_reports_links_it_skips(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "copy"
    run = subprocess.run([venv_tool("s3dlio"), "cp", "-r", str(tree), f"{out}/"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "skipped" in run.stderr and "o.txt" in run.stderr
    assert (out / "ckpt" / ".metadata").exists() or (out / ".metadata").exists()
    assert not list(out.rglob("s.key")) and not list(out.rglob("o.txt"))
    linked = subprocess.run([venv_tool("s3dlio"), "cp", "-r", "-L", str(tree), f"{out}-all/"],
                            capture_output=True, text=True)  # fmt: skip
    assert linked.returncode == 0, linked.stderr
    assert list(Path(f"{out}-all").rglob("o.txt"))


# -- files that change or go while the upload runs -----------------------------------------------
@pytest.fixture(params=["s3-fast", "s3-portable", "file"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Where the upload goes, with 5 MiB parts, so 12 MiB is a multipart upload."""
    place, _, engine = request.param.partition("-")
    base = request.getfixturevalue("s3_bucket") if place == "s3" else f"file://{tmp_path}/dest/"
    s3dlio.configure(engine=engine or None, part_size=5 * 2**20)
    yield base
    s3dlio.configure()


@pytest.mark.parametrize("size", [100_000, 12 * 2**20])
@pytest.mark.parametrize("change", ["cut short", "rewritten", "grown"])
def test_a_file_changed_while_it_is_read_is_not_published(
    target: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int, change: str
) -> None:
    """Another writer changes the file after the upload began reading it: the upload fails by
    name and no object mixing old and new bytes appears (a map of a file cut short killed the
    process with SIGBUS)."""
    from s3dlio import ops

    path = tmp_path / "src" / "data.bin"
    path.parent.mkdir()
    path.write_bytes(b"A" * size)
    read_into = ops._read_into

    def another_writer(f: object, view: memoryview) -> int:
        got = read_into(f, view)
        if change == "cut short":
            os.truncate(path, 1000)
        else:
            with open(path, "r+b" if change == "rewritten" else "ab") as other:
                other.write(b"B" * 10)
                os.utime(other.fileno(), ns=(0, os.stat(other.fileno()).st_mtime_ns + 1))  # past clock ticks
        monkeypatch.setattr(ops, "_read_into", read_into)  # once
        return got

    monkeypatch.setattr(ops, "_read_into", another_writer)
    with pytest.raises(s3dlio.TransferError, match="data.bin: the file changed while it was read"):
        s3dlio.upload(str(path), target)
    assert not s3dlio.exists(target + "data.bin")
    assert s3dlio.upload(str(path), target) == [target + "data.bin"]  # once it stands still


def test_every_file_is_tried_and_the_errors_come_back(tmp_path: Path, dest: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file gone between the walk and its read fails alone; the rest of the tree still goes."""
    from s3dlio import localpath

    src = tmp_path / "src"
    src.mkdir()
    for i in range(20):
        (src / f"f{i:02d}").write_bytes(b"x" * i)
    walk = localpath.local_files
    victim = ["f07"]

    def then_one_goes(*args: object, **kwargs: object) -> localpath.LocalFiles:
        found = walk(*args, **kwargs)  # type: ignore[arg-type]
        (src / victim[0]).unlink()
        return found

    monkeypatch.setattr(localpath, "local_files", then_one_goes)
    results = s3dlio.upload(f"{src}/*", dest, return_exceptions=True)
    assert [isinstance(r, s3dlio.NotFoundError) for r in results] == [i == 7 for i in range(20)]
    assert len(uploaded(dest)) == 19
    (src / "f07").write_bytes(b"back")
    victim[0] = "f03"
    with pytest.raises(s3dlio.NotFoundError, match="f03: not found"):
        s3dlio.upload(f"{src}/*", dest + "again/")
    assert len(uploaded(dest + "again/")) == 19  # raised after trying every file


def test_fifos_and_devices_are_not_objects(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "zero").symlink_to("/dev/zero")
    for engine in ("fast", "portable"):
        s3dlio.configure(engine=engine)
        for name in ("pipe", "zero"):
            for call in (s3dlio.get, s3dlio.stat):
                with pytest.raises(s3dlio.NotFoundError, match="not a regular file"):
                    call(f"file://{tmp_path}/{name}")  # never blocks on the FIFO, never reads "" or forever
    s3dlio.configure()
