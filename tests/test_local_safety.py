"""Local writes stay inside the target: keys that would leave it, or share one local path, are
refused by name on every path that writes local files; the other keys still arrive.

Keys are written with boto3 to moto exactly as a hostile or careless producer would (S3 keeps
``..``, ``.`` and empty segments as they are), then fetched by every code path on both engines.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
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


# -- one walk for upload and copy: symbolic links in a local source tree -------------------------------
@pytest.fixture
def src_tree(tmp_path: Path) -> Path:
    """``real/f``, ``alias -> real`` (inside), ``ext -> ../outside`` (leaves), a loop, a broken
    link and a FIFO: what ``upload`` takes is ``real/f`` and ``alias/f``."""
    tree = tmp_path / "tree"
    (tree / "real").mkdir(parents=True)
    (tree / "real" / "f").write_bytes(b"r")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "g").write_bytes(b"o")
    (tree / "alias").symlink_to("real")
    (tree / "ext").symlink_to("../outside")
    (tree / "loop").symlink_to(".")
    (tree / "broken").symlink_to("/nonexistent-s3dlio")
    os.mkfifo(tree / "fifo")
    return tree


def files_below(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("engine", ["fast", "portable"])
@pytest.mark.parametrize("how", ["path", "file-uri"])
def test_cli_cp_takes_links_inside_the_tree_as_upload_does(
    src_tree: Path, tmp_path: Path, sh: Callable[..., Run], monkeypatch: pytest.MonkeyPatch, engine: str, how: str,
) -> None:  # fmt: skip
    monkeypatch.setenv("S3DLIO_ENGINE", engine)
    up = sh("upload", str(src_tree), f"file://{tmp_path}/up/")
    assert up.code == 0 and files_below(tmp_path / "up") == ["alias/f", "real/f"], str(up)
    src = str(src_tree) if how == "path" else f"file://{src_tree}/"
    run = sh("cp", "-r", src, f"file://{tmp_path}/cp/")
    assert run.code == 0 and "Copied 2 objects" in run.out, str(run)
    assert files_below(tmp_path / "cp") == ["alias/f", "real/f"]
    listed = sh("ls", "-r", f"file://{src_tree}/")
    assert [line.rsplit("/tree/", 1)[-1] for line in listed.out.splitlines() if "/tree/" in line] == ["alias/f", "real/f"]


def test_listing_never_enters_a_link_leaving_the_tree(src_tree: Path, tmp_path: Path) -> None:
    """rm -r of a local tree deletes what is in it, never what a directory link leads to."""
    ops.delete(f"file://{src_tree}/", recursive=True)
    assert (tmp_path / "outside" / "g").read_bytes() == b"o"
    assert not (src_tree / "real" / "f").exists()


def test_copy_walk_reports_and_follows_as_upload(src_tree: Path) -> None:
    """The walk ``copy`` from a local directory is to use: upload's rules, skips reported alike."""
    from s3dlio.localpath import Skipped, local_files
    from s3dlio.store.local import local_keys

    base = str(src_tree).lstrip("/") + "/"
    skipped: list[Skipped] = []
    keys = local_keys("copy", base, True, on_skip=skipped.append)
    assert [k.removeprefix(base) for k in keys] == ["alias/f", "real/f"]
    walked = local_files(f"{src_tree}/**")
    assert sorted(map(str, skipped)) == sorted(map(str, walked.skipped)) and len(skipped) == 4  # ext, loop, broken, fifo
    followed: list[Skipped] = []
    keys = local_keys("copy", base, True, follow_links=True, on_skip=followed.append)
    assert [k.removeprefix(base) for k in keys] == ["alias/f", "ext/g", "real/f"]
    assert sorted(s.path.rsplit("/", 1)[1] for s in followed) == ["broken", "fifo", "loop"]
    with pytest.warns(UserWarning, match="ext: symbolic link to"):
        local_keys("copy x", base, True)


def test_cli_cp_reports_and_follows_links_as_upload(src_tree: Path, tmp_path: Path, sh: Callable[..., Run]) -> None:
    run = sh("cp", "-r", str(src_tree), f"file://{tmp_path}/cp/")
    assert run.code == 0, str(run)
    for name in ("ext", "loop", "broken", "fifo"):
        assert f"s3dlio: skipped {src_tree}/{name}:" in run.err, str(run)
    run = sh("cp", "-r", "-L", str(src_tree), f"file://{tmp_path}/all/")
    assert run.code == 0 and files_below(tmp_path / "all") == ["alias/f", "ext/g", "real/f"], str(run)


# -- keys that meet through a symbolic link inside the target ---------------------------------------
@pytest.mark.parametrize("engine", ["fast", "portable"])
def test_keys_meeting_through_a_link_inside_the_target_are_refused(
    moto_server: Any, s3_bucket: str, tmp_path: Path, sh: Callable[..., Run], monkeypatch: pytest.MonkeyPatch,
    engine: str,
) -> None:  # fmt: skip
    s3dlio.configure(engine=engine)
    monkeypatch.setenv("S3DLIO_ENGINE", engine)
    for key, body in (("d/a/x", b"AAAA"), ("d/b/x", b"BBBB"), ("d/ok", b"ok")):
        s3dlio.put(f"{s3_bucket}{key}", body)
    runs: dict[str, Callable[[Path], list[Any]]] = {
        "download": lambda d: ops.download(f"{s3_bucket}d/", str(d), recursive=True, return_exceptions=True),
        "copy": lambda d: ops.copy(f"{s3_bucket}d/", f"file://{d}/", recursive=True, return_exceptions=True),
        "cli": lambda d: [sh("download", "-r", f"{s3_bucket}d/", str(d))],
    }
    for how, run in runs.items():
        dest = tmp_path / how
        (dest / "a").mkdir(parents=True)
        (dest / "b").symlink_to("a")
        results = run(dest)
        if how == "cli":
            assert results[0].code == 1, str(results[0])
            named = results[0].err
        else:
            errors = [r for r in results if isinstance(r, BaseException)]
            assert len(errors) == 2 and all(isinstance(e, InvalidUriError) for e in errors), results
            named = " ".join(map(str, errors))
        assert f"{s3_bucket}d/a/x" in named and f"{s3_bucket}d/b/x" in named, named
        assert not (dest / "a" / "x").exists(), how  # refused before anything was written
        assert (dest / "ok").read_bytes() == b"ok"


def test_plan_compares_resolved_paths(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").symlink_to("a")
    (tmp_path / "c").symlink_to("a/y")  # a file link: replaced by the write, never written through
    rels = ["a/x", "b/x", "b/new/z", "a/new/z", "c", "a/y", "b/"]
    out = plan("download", str(tmp_path), rels, [f"s3://b/{rel}" for rel in rels])
    assert isinstance(out[0], InvalidUriError) and "s3://b/b/x" in str(out[0])
    assert isinstance(out[1], InvalidUriError) and "s3://b/a/x" in str(out[1]) and "resolved" in str(out[1])
    assert isinstance(out[2], InvalidUriError) and isinstance(out[3], InvalidUriError)
    assert out[4:] == [str(tmp_path / "c"), str(tmp_path / "a" / "y"), str(tmp_path / "b") + os.sep]


# -- what cannot be read is a failure, not a skip ----------------------------------------------------
def _locked_tree(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    (tree / "ok").mkdir(parents=True)
    (tree / "ok" / "a").write_bytes(b"a")
    (tree / "locked").mkdir()
    (tree / "locked" / "s").write_bytes(b"s")
    (tree / "locked").chmod(0)
    tmp_path.chmod(0o755)
    return tree


def _unprivileged(args: list[str]) -> subprocess.CompletedProcess[str]:
    """``args`` run without the capabilities that let root read anything (as a user would)."""
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: a mode 000 directory stays readable")
        args = ["setpriv", "--inh-caps=-all", "--bounding-set=-all", *args]
    return subprocess.run(args, env=os.environ.copy(), capture_output=True, text=True, timeout=120)


def test_cli_upload_of_an_unlistable_directory_fails(tmp_path: Path) -> None:
    tree = _locked_tree(tmp_path)
    exe = venv_tool("s3dlio")
    assert exe is not None
    run = _unprivileged([exe, "upload", str(tree), f"file://{tmp_path}/up/"])
    assert run.returncode == 1, run.stderr
    assert f"{tree}/locked" in run.stderr and "permission denied" in run.stderr and "skipped" not in run.stderr
    assert "1 of 2 objects failed" in run.stderr and "Uploaded 1 object" in run.stdout
    assert files_below(tmp_path / "up") == ["ok/a"]
    as_json = _unprivileged([exe, "upload", "--json", str(tree), f"file://{tmp_path}/up2/"])
    assert as_json.returncode == 1 and '"failed": 1' in as_json.stdout, as_json.stdout + as_json.stderr


def test_upload_of_an_unlistable_directory_raises(tmp_path: Path) -> None:
    tree = _locked_tree(tmp_path)
    script = (
        "import sys, s3dlio\n"
        f"r = s3dlio.upload({str(tree) + '/**'!r}, {f'file://{tmp_path}/up/'!r}, return_exceptions=True)\n"
        "print(sorted(type(x).__name__ for x in r))\n"
        f"s3dlio.upload({str(tree) + '/**'!r}, {f'file://{tmp_path}/up2/'!r})\n"
    )
    run = _unprivileged([sys.executable, "-c", script])
    assert run.returncode == 1 and "PermissionDeniedError" in run.stderr and f"{tree}/locked" in run.stderr, run.stderr
    assert run.stdout.split() == ["['PermissionDeniedError',", "'str']"], run.stdout


def test_a_directory_whose_listing_fails_is_a_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever the cause (here an I/O error, as a failing disk gives), and as root too."""
    import errno

    from s3dlio.localpath import local_files

    tree = tmp_path / "tree"
    (tree / "bad").mkdir(parents=True)
    (tree / "good").write_bytes(b"g")
    scandir = os.scandir

    def failing(path: Any = ".") -> Any:
        if os.fspath(path) == str(tree / "bad"):
            raise OSError(errno.EIO, "Input/output error", os.fspath(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", failing)
    found = local_files(f"{tree}/**")
    assert found.files == [str(tree / "bad"), str(tree / "good")] and found.skipped == []
    assert found.unreadable[str(tree / "bad")].errno == errno.EIO
    results = s3dlio.upload(f"{tree}/**", f"file://{tmp_path}/up/", return_exceptions=True)
    assert isinstance(results[0], OSError) and results[1] == f"file://{tmp_path}/up/good"
    with pytest.raises(OSError):
        s3dlio.upload(f"{tree}/**", f"file://{tmp_path}/up/")
    with pytest.raises(s3dlio.S3dlioError, match="upload"):
        s3dlio.upload(f"{str(tree / 'bad')}/**", f"file://{tmp_path}/up/")  # the tree itself: raised
