"""Destructive operations are literal: a URI deletes exactly the key it names, however many
regex characters the name holds, so running a delete twice never deletes anything else.
A trailing ``/`` (a prefix level) and an explicit regex (``pattern=`` / ``--regex``) still work.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from servers import Backend, venv_tool

import s3dlio

#: Names whose regex readings select each other: a+b.bin matches aab.bin and ab.bin;
#: x[1].bin matches x1.bin; d.t matches dxt.
NAMES = ["a+b.bin", "aab.bin", "ab.bin", "x[1].bin", "x1.bin", "d.t", "dxt", "q?.bin", "q.bin"]


def put_names(backend: Backend) -> None:
    for name in NAMES:
        s3dlio.put(backend.uri("rm", name), name.encode())


def remaining(backend: Backend) -> list[str]:
    return sorted(uri.rsplit("/", 1)[1] for uri in s3dlio.list(backend.uri("rm/"), recursive=True))


def test_delete_twice_deletes_nothing_else(backend: Backend) -> None:
    put_names(backend)
    for name in ("a+b.bin", "x[1].bin", "d.t", "q?.bin"):
        assert s3dlio.delete(backend.uri("rm", name)) == 1, name
        assert s3dlio.delete(backend.uri("rm", name)) == 0, name  # gone: its regex reading is not used
    assert remaining(backend) == ["aab.bin", "ab.bin", "dxt", "q.bin", "x1.bin"]
    for name in ("aab.bin", "ab.bin", "dxt", "q.bin", "x1.bin"):
        assert bytes(s3dlio.get(backend.uri("rm", name))) == name.encode()


def test_pattern_and_prefix_are_explicit(backend: Backend) -> None:
    put_names(backend)
    assert s3dlio.delete(backend.uri("rm/"), pattern=r"a+b\.bin") == 2  # aab.bin, ab.bin: asked for
    assert "a+b.bin" in remaining(backend)
    assert s3dlio.delete(backend.uri("rm/")) == len(NAMES) - 2  # a trailing '/': the whole level
    assert remaining(backend) == []


def test_delete_async_is_literal(backend: Backend) -> None:
    import asyncio

    put_names(backend)
    assert asyncio.run(s3dlio.delete_async(backend.uri("rm", "x[1].bin"))) == 1
    assert asyncio.run(s3dlio.delete_async(backend.uri("rm", "x[1].bin"))) == 0
    assert "x1.bin" in remaining(backend)


def test_an_empty_segment_selects_only_keys_that_have_it(backend: Backend) -> None:
    """``s3://b/$DIR/`` with ``DIR`` unset is ``s3://b//``: no key starts with ``/``, so nothing
    is listed or deleted (the fast engine's listing normalised it to the bucket's root). On a
    filesystem ``a//`` is ``a/``, on both engines."""
    for key in ("top.bin", "data/model.bin", "data/sub/deep.bin"):
        s3dlio.put(backend.uri(key), b"x")
    filesystem = backend.scheme in ("file", "direct")
    for uri, level in ((backend.uri("data//sub/"), "data/sub/"), (backend.uri("data//"), "data/"), (backend.base + "/", "")):
        expected = s3dlio.list(backend.uri(level), recursive=True) if filesystem else []
        assert s3dlio.list(uri, recursive=True) == expected, uri
        assert s3dlio.delete(uri, recursive=True) == len(expected), uri
    assert len(s3dlio.list(backend.base, recursive=True)) == (0 if filesystem else 3)


# -- CLI -------------------------------------------------------------------------------------------
def s3dlio_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = venv_tool("s3dlio")
    assert exe is not None, "no s3dlio console script in this venv: pip install -e ."
    return subprocess.run([exe, *args], env=os.environ.copy(), cwd=cwd, capture_output=True, text=True,
                          timeout=120)  # fmt: skip


@pytest.mark.parametrize("scheme", ["s3", "az", "file"])
def test_cli_rm_twice(scheme: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    if scheme == "file":
        (tmp_path / "store").mkdir()
        base = f"file://{tmp_path}/store/"
    else:
        base = str(request.getfixturevalue("s3_bucket" if scheme == "s3" else "az_container"))
    for name in NAMES:
        s3dlio.put(f"{base}rm/{name}", name.encode())

    def left() -> list[str]:
        return sorted(u.rsplit("/", 1)[1] for u in s3dlio.list(f"{base}rm/"))

    first = s3dlio_cli("rm", f"{base}rm/a+b.bin", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    second = s3dlio_cli("rm", f"{base}rm/a+b.bin", cwd=tmp_path)
    assert second.returncode != 0 and "a+b.bin" in second.stderr and "not found" in second.stderr.lower()
    assert left() == sorted(set(NAMES) - {"a+b.bin"})
    assert s3dlio_cli("delete", f"{base}rm/x[1].bin", cwd=tmp_path).returncode == 0
    assert s3dlio_cli("delete", f"{base}rm/x[1].bin", cwd=tmp_path).returncode != 0
    assert "x1.bin" in left()
    regex = s3dlio_cli("rm", "--regex", "--json", f"{base}rm/" + r"a+b\.bin", cwd=tmp_path)
    assert regex.returncode == 0, regex.stderr
    assert '"deleted": 2' in regex.stdout
    assert left() == ["d.t", "dxt", "q.bin", "q?.bin", "x1.bin"]
    nothing = s3dlio_cli("rm", "--regex", f"{base}rm/" + r"zz.*", cwd=tmp_path)
    assert nothing.returncode != 0 and "no object matches" in nothing.stderr
    assert s3dlio_cli("rm", f"{base}rm/", cwd=tmp_path).returncode == 0
    assert left() == []



def test_a_dotted_name_is_one_key_in_the_api_as_in_the_cli(backend: Backend, tmp_path: Path) -> None:
    """A last part whose only regex character is ``.`` names one key for download, copy and the
    CLI alike: ``model.v1`` missing is not found, never ``modelXv1`` (its regex reading)."""
    s3dlio.put(backend.uri("dot", "modelXv1"), b"another object")
    missing = backend.uri("dot", "model.v1")
    with pytest.raises(s3dlio.NotFoundError, match="model.v1"):
        s3dlio.download(missing, str(tmp_path / "dl"))
    with pytest.raises(s3dlio.NotFoundError, match="model.v1"):
        s3dlio.copy(missing, backend.uri("backup/"))
    assert not (tmp_path / "dl").exists() and s3dlio.list(backend.uri("backup/"), recursive=True) == []
    if backend.scheme != "mem":  # the CLI runs in a process of its own
        cli = s3dlio_cli("download", missing, str(tmp_path / "cli"), cwd=tmp_path)
        assert cli.returncode == 1 and "not found" in cli.stderr, cli.stderr
    s3dlio.put(missing, b"the model")  # present: that key, and that key alone
    assert s3dlio.download(missing, str(tmp_path / "dl")) == [str(tmp_path / "dl" / "model.v1")]
    assert s3dlio.copy(missing, backend.uri("backup/")) == 1
    assert s3dlio.list(backend.uri("backup/"), recursive=True) == [backend.uri("backup", "model.v1")]
    assert s3dlio.download(backend.uri("dot", r"model.v.*"), str(tmp_path / "re")) == [
        str(tmp_path / "re" / "model.v1"), str(tmp_path / "re" / "modelXv1")]  # fmt: skip
