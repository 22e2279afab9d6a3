"""Local writes stay inside the target: keys that would leave it, or share one local path, are
refused by name on every path that writes local files; the other keys still arrive.

Keys are written with boto3 to moto exactly as a hostile or careless producer would (S3 keeps
``..``, ``.`` and empty segments as they are), then fetched by every code path on both engines.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from servers import venv_tool

import s3dlio
from s3dlio import ops
from s3dlio.errors import InvalidUriError
from s3dlio.localpath import key_problem, plan
from s3dlio.store import open_store
from s3dlio.uri import parse

#: Keys below ``data/`` and whether they may be written locally.
GOOD = ["data/good.txt", "data/col/a", "data/sub/deep/x.bin", "data/clash/inner"]
BAD = [
    "data/../../../outside/VICTIM.txt",  # leaves the target
    "data/col//a",  # collapses onto col/a
    "data/col/./a",  # the same
    "data//abs",  # relative part "/abs" looks absolute
    "data/clash",  # a file where data/clash/inner needs a directory
]


@dataclass
class Tree:
    """A bucket holding GOOD and BAD keys, and a local place to fetch them into."""

    prefix: str  # s3://bucket/data/
    dest: Path  # tmp/w/x/dl: three levels down, so "../../../outside" is tmp/outside
    victim: Path  # tmp/outside/VICTIM.txt, which must keep its bytes
    root: Path
    engine: str

    def check(self, *, extra_good: bool = False) -> None:
        """Only the good keys arrived, each with its own bytes; nothing else anywhere."""
        assert self.victim.read_bytes() == b"original"
        written = sorted(
            str(Path(d, f).relative_to(self.root))
            for d, _, files in os.walk(self.root)
            for f in files
        )
        want = sorted([str(self.dest.relative_to(self.root) / k.removeprefix("data/")) for k in GOOD]
                      + ["outside/VICTIM.txt"])  # fmt: skip
        assert written == want
        for key in GOOD:
            assert (self.dest / key.removeprefix("data/")).read_bytes() == key.encode()


@pytest.fixture(params=["fast", "portable"])
def tree(request: pytest.FixtureRequest, moto_server: Any, s3_bucket: str, tmp_path: Path,
         monkeypatch: pytest.MonkeyPatch) -> Tree:  # fmt: skip
    engine = request.param
    s3dlio.configure(engine=engine)
    monkeypatch.setenv("S3DLIO_ENGINE", engine)  # for the CLI subprocesses
    bucket = parse(s3_bucket).bucket
    client = moto_server.client()
    for key in GOOD + BAD:
        client.put_object(Bucket=bucket, Key=key, Body=key.encode())
    listed = {o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]}
    assert listed == set(GOOD + BAD), "the server must keep the keys as written"
    root = tmp_path / "root"
    victim = root / "outside" / "VICTIM.txt"
    victim.parent.mkdir(parents=True)
    victim.write_bytes(b"original")
    dest = root / "w" / "x" / "dl"
    dest.mkdir(parents=True)
    return Tree(f"{s3_bucket}data/", dest, victim, root, engine)


def refused(errors: list[BaseException]) -> set[str]:
    """The keys named by refusal errors."""
    assert all(isinstance(e, InvalidUriError) for e in errors), errors
    return {key for key in BAD for e in errors if f"/{key}" in str(e)}


# -- Python ----------------------------------------------------------------------------------------
def test_download_refuses_and_transfers_the_rest(tree: Tree) -> None:
    with pytest.raises(InvalidUriError, match="refused|cannot address") as info:
        ops.download(tree.prefix, str(tree.dest), recursive=True)
    assert any("4 more failed" in note for note in info.value.__notes__)
    tree.check()


def test_download_return_exceptions(tree: Tree) -> None:
    results = ops.download(tree.prefix, str(tree.dest), recursive=True, return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert refused(errors) == set(BAD) and len(errors) == len(BAD)
    assert sorted(r for r in results if isinstance(r, str)) == sorted(
        str(tree.dest / k.removeprefix("data/")) for k in GOOD
    )
    tree.check()


def test_download_async(tree: Tree) -> None:
    results = asyncio.run(
        ops.download_async(tree.prefix, str(tree.dest), recursive=True, return_exceptions=True)
    )
    assert refused([r for r in results if isinstance(r, BaseException)]) == set(BAD)
    tree.check()
    with pytest.raises(InvalidUriError):
        asyncio.run(ops.download_async(tree.prefix, str(tree.dest), recursive=True))


def test_copy_to_file_uri(tree: Tree) -> None:
    results = ops.copy(tree.prefix, f"file://{tree.dest}/", recursive=True, return_exceptions=True)
    assert refused([r for r in results if isinstance(r, BaseException)]) == set(BAD)
    tree.check()
    with pytest.raises(InvalidUriError):
        ops.copy(tree.prefix, f"file://{tree.dest}/", recursive=True)
    tree.check()


def test_fsspec_get(tree: Tree) -> None:
    import s3dlio.fsspec as sfs

    fs = sfs.filesystem("s3")
    for key in GOOD:
        local = tree.dest / key.removeprefix("data/")
        local.parent.mkdir(parents=True, exist_ok=True)
        fs.get(tree.prefix.removeprefix("s3://") + key.removeprefix("data/"), str(local))
    tree.check()
    with pytest.raises(InvalidUriError, match=r"\.\."):
        fs.get_file(tree.prefix.removeprefix("s3://") + "../../../outside/VICTIM.txt",
                    str(tree.dest / "../../../outside/VICTIM.txt"))  # fmt: skip
    # A recursive get stops at the first odd key it meets (ours, or fsspec's own guard).
    with pytest.raises(ValueError, match=r"refused|outside|cannot address"):
        fs.get(tree.prefix.removeprefix("s3://"), str(tree.dest) + "/", recursive=True)
    assert tree.victim.read_bytes() == b"original"
    assert not list((tree.root / "w").glob("outside*")) and not (tree.root / "outside" / "data").exists()


# -- CLI -------------------------------------------------------------------------------------------
@dataclass
class Run:
    code: int
    out: str
    err: str

    def __str__(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"


@pytest.fixture
def sh(tmp_path: Path) -> Callable[..., Run]:
    """The installed ``s3dlio`` as a subprocess, with this test's environment."""
    exe = venv_tool("s3dlio")
    assert exe is not None, "no s3dlio console script in this venv: pip install -e ."

    def run(*args: str) -> Run:
        proc = subprocess.run([exe, *args], env=os.environ.copy(), cwd=tmp_path, capture_output=True,
                              text=True, timeout=120)  # fmt: skip
        return Run(proc.returncode, proc.stdout, proc.stderr)

    return run


def check_cli(tree: Tree, run: Run) -> None:
    assert run.code == 1, str(run)
    for key in BAD:
        assert key in run.err, f"{key} should be named on stderr\n{run}"
    tree.check()


def test_cli_download(tree: Tree, sh: Callable[..., Run]) -> None:
    check_cli(tree, sh("download", "-r", tree.prefix, str(tree.dest)))


def test_cli_get_output_dir(tree: Tree, sh: Callable[..., Run]) -> None:
    check_cli(tree, sh("get", "-r", tree.prefix, "-o", str(tree.dest) + "/"))


def test_cli_cp_recursive(tree: Tree, sh: Callable[..., Run]) -> None:
    check_cli(tree, sh("cp", "-r", tree.prefix, str(tree.dest) + "/"))


# -- the rules -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("rel", "problem"),
    [("a/b", None), ("a/", None), ("", None), ("a+b[1].bin", None), ("..", "'..'"), ("a/../b", "'..'"),
     ("./a", "'.'"), ("a//b", "empty"), ("/etc/passwd", "absolute"), ("a/\0", "NUL")],
)  # fmt: skip
def test_key_problem(rel: str, problem: str | None) -> None:
    found = key_problem(rel)
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_plan_collisions(tmp_path: Path) -> None:
    rels = ["x", "x/y", "d/", "d/z", "ok", "m", "m/", ""]
    out = plan("download", str(tmp_path), rels, [f"s3://b/{rel}" for rel in rels])
    assert isinstance(out[0], InvalidUriError) and "s3://b/x/y" in str(out[0])
    assert isinstance(out[5], InvalidUriError) and "s3://b/m/" in str(out[5])  # a marker says m is a directory
    assert out[1:5] + out[6:] == [str(tmp_path / "x" / "y"), str(tmp_path / "d") + os.sep,
                                  str(tmp_path / "d" / "z"), str(tmp_path / "ok"), str(tmp_path / "m") + os.sep,
                                  str(tmp_path) + os.sep]  # fmt: skip


@pytest.mark.parametrize("engine", ["fast", "portable"])
def test_file_store_refuses_dot_segments(engine: str, tmp_path: Path) -> None:
    """A file store never writes or deletes at a key whose path is not the one it names."""
    s3dlio.configure(engine=engine)
    store = open_store(parse("file:///"))
    (tmp_path / "in").mkdir()
    base = str(tmp_path / "in").lstrip("/")
    for key in (f"{base}/../escaped", f"{base}//x", f"{base}/./x"):
        with pytest.raises(InvalidUriError):
            store.put(key, b"data")
        with pytest.raises(InvalidUriError):
            store.delete(key)
    assert sorted(os.listdir(tmp_path)) == ["in"] and os.listdir(tmp_path / "in") == []


def test_copy_to_direct_uri(tree: Tree, direct_dir: Path) -> None:
    """direct:// (O_DIRECT) destinations follow the same rule as file://."""
    dest = direct_dir / "w" / "x" / "dl"
    results = ops.copy(tree.prefix, f"direct://{dest}/", recursive=True, return_exceptions=True)
    assert refused([r for r in results if isinstance(r, BaseException)]) == set(BAD)
    every = [Path(d, f) for d, _, files in os.walk(direct_dir) for f in files]
    written = sorted(str(p.relative_to(dest)) for p in every if not p.is_relative_to(tree.root))
    assert written == sorted(k.removeprefix("data/") for k in GOOD)  # relative_to fails for any outside dest
    assert tree.victim.read_bytes() == b"original"
    for key in GOOD:
        assert (dest / key.removeprefix("data/")).read_bytes() == key.encode()


# -- symbolic links already in the target ------------------------------------------------------------
@pytest.fixture(params=["fast", "portable"])
def linked(request: pytest.FixtureRequest, moto_server: Any, s3_bucket: str, tmp_path: Path,
           monkeypatch: pytest.MonkeyPatch) -> Tree:  # fmt: skip
    """A target holding ``cfg`` -> the outside directory and ``notes.txt`` -> the victim, and keys
    that land through them: a downloader that follows them writes outside its target."""
    engine = request.param
    s3dlio.configure(engine=engine)
    monkeypatch.setenv("S3DLIO_ENGINE", engine)
    root = tmp_path / "root"
    victim = root / "outside" / "VICTIM.txt"
    victim.parent.mkdir(parents=True)
    victim.write_bytes(b"original")
    dest = root / "dl"
    dest.mkdir()
    (dest / "cfg").symlink_to(victim.parent)
    (dest / "notes.txt").symlink_to(victim)
    for key in ("data/good.txt", "data/cfg/evil.sh", "data/cfg/sub/deeper.sh", "data/notes.txt"):
        s3dlio.put(f"{s3_bucket}{key}", key.encode())
    return Tree(f"{s3_bucket}data/", dest, victim, root, engine)


def check_linked(tree: Tree, errors: list[BaseException | str]) -> None:
    """The keys below ``cfg`` were refused by name; nothing left the target; ``notes.txt`` replaced
    its link (the victim keeps its bytes) and ``good.txt`` arrived."""
    named = " ".join(str(e) for e in errors)
    assert "cfg/evil.sh" in named and "symbolic link" in named, named
    assert sorted(p.name for p in tree.victim.parent.iterdir()) == ["VICTIM.txt"]
    assert tree.victim.read_bytes() == b"original"
    assert (tree.dest / "good.txt").read_bytes() == b"data/good.txt"
    notes = tree.dest / "notes.txt"
    assert not notes.is_symlink() and notes.read_bytes() == b"data/notes.txt"


def test_download_never_follows_a_link_out_of_the_target(linked: Tree) -> None:
    results = ops.download(linked.prefix, str(linked.dest), recursive=True, return_exceptions=True)
    check_linked(linked, [r for r in results if isinstance(r, BaseException)])


def test_copy_to_files_never_follows_a_link_out_of_the_target(linked: Tree) -> None:
    results = ops.copy(linked.prefix, f"file://{linked.dest}/", recursive=True, return_exceptions=True)
    check_linked(linked, [r for r in results if isinstance(r, BaseException)])


def test_cli_download_never_follows_a_link_out_of_the_target(linked: Tree, sh: Callable[..., Run]) -> None:
    run = sh("download", "-r", linked.prefix, str(linked.dest))
    assert run.code == 1, str(run)
    check_linked(linked, [run.err])


def test_fsspec_get_never_follows_a_link_out_of_the_target(linked: Tree) -> None:
    import s3dlio.fsspec as sfs

    fs = sfs.filesystem("s3")
    src = linked.prefix.removeprefix("s3://")
    fs.get(src + "notes.txt", str(linked.dest / "notes.txt"))  # replaces the link, atomically
    fs.get(src + "good.txt", str(linked.dest) + "/")
    with pytest.raises(InvalidUriError, match="symbolic link") as info:
        fs.get(src, str(linked.dest) + "/", recursive=True)
    check_linked(linked, [info.value])


def test_fsspec_put_skips_what_a_link_takes_out_of_the_source(s3_bucket: str, tmp_path: Path) -> None:
    """As ``s3dlio.upload``: a recursive put does not upload a file outside the tree it was given."""
    import s3dlio.fsspec as sfs

    (tmp_path / "secret").write_bytes(b"PRIVATE KEY")
    tree = tmp_path / "tree"
    (tree / "a").mkdir(parents=True)
    (tree / "a" / "f.txt").write_bytes(b"data")
    (tree / "key").symlink_to(tmp_path / "secret")
    (tree / "inside").symlink_to(tree / "a" / "f.txt")
    fs = sfs.filesystem("s3")
    dest = s3_bucket.removeprefix("s3://")
    with pytest.warns(UserWarning, match="key: skipped, a symbolic link"):
        fs.put(str(tree) + "/", dest + "put/", recursive=True)
    assert sorted(fs.find(dest + "put")) == [dest + "put/a/f.txt", dest + "put/inside"]
    fs.put(str(tree) + "/", dest + "all/", recursive=True, follow_links=True)
    assert fs.cat_file(dest + "all/key") == b"PRIVATE KEY"
