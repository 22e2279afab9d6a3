"""Folder markers: zero-byte keys ending in ``/`` that the AWS console, s3fs and Hadoop write.

On s3:// and az:// they are written here with the services' own clients (boto3,
azure-storage-blob), then listed, stat'ed and deleted through s3dlio on both engines: each is
listed under its real key (obstore reports ``dir/`` as ``dir``; the fast engine gives the
``/`` back), ``stat`` works on it, a recursive delete (and ``s3dlio rm -r``) removes it and
counts it, and a recursive download (and ``s3dlio download -r``) or a copy to file:// makes it
a directory.

On file:// (and direct://) a folder is a real directory and there are no marker objects: a
directory is never listed as an object (one that holds files shows as ``dir/`` at its level),
``stat`` of ``dir/`` is NotFoundError, and a recursive delete deletes the files — the same on
both engines.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from servers import Backend, venv_tool

import s3dlio
from s3dlio.errors import NotFoundError

# The tree every remote test starts from, relative to backend.base: "mk/sub/" and "mk/empty/"
# are markers; "mk/sub" (an empty object) and "mk/sub-x" sort where a marker's stripped name
# would be taken for a real key.
MARKERS = ("mk/", "mk/sub/", "mk/empty/", "mk/deep/er/")
OBJECTS = {"mk/a.txt": b"a", "mk/sub/b.txt": b"bb", "mk/sub": b"", "mk/sub-x": b"x", "mk/deep/er/c": b"c"}
ALL_KEYS = sorted([*MARKERS, *OBJECTS])


def _bucket(backend: Backend) -> str:
    return backend.base.split("://", 1)[1].rstrip("/")


def write_natively(backend: Backend, request: pytest.FixtureRequest, keys: dict[str, bytes]) -> None:
    """Write ``keys`` with the service's own client, not s3dlio."""
    if backend.scheme == "s3":
        client = request.getfixturevalue("moto_server").client()
        for key, body in keys.items():
            client.put_object(Bucket=_bucket(backend), Key=key, Body=body)
    else:
        container = request.getfixturevalue("azurite").client().get_container_client(_bucket(backend))
        for key, body in keys.items():
            container.upload_blob(key, body)


def native_keys(backend: Backend, request: pytest.FixtureRequest) -> list[str]:
    """Every key in the bucket/container, as the service's own client lists it."""
    if backend.scheme == "s3":
        client = request.getfixturevalue("moto_server").client()
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=_bucket(backend))
        return sorted(obj["Key"] for page in pages for obj in page.get("Contents", ()))
    container = request.getfixturevalue("azurite").client().get_container_client(_bucket(backend))
    return sorted(blob.name for blob in container.list_blobs())


@pytest.fixture
def tree(remote_backend: Backend, request: pytest.FixtureRequest) -> Backend:
    write_natively(remote_backend, request, {**dict.fromkeys(MARKERS, b""), **OBJECTS})
    assert native_keys(remote_backend, request) == ALL_KEYS
    return remote_backend


def rel(backend: Backend, uris: list[str]) -> list[str]:
    assert all(u.startswith(backend.base) for u in uris), uris
    return [u[len(backend.base) :] for u in uris]


def test_markers_are_listed_under_their_real_keys(tree: Backend) -> None:
    assert rel(tree, s3dlio.list(tree.uri("mk/"), recursive=True)) == ALL_KEYS
    assert sorted(rel(tree, s3dlio.list(tree.uri("mk/")))) == sorted(
        ["mk/", "mk/a.txt", "mk/sub", "mk/sub-x", "mk/sub/", "mk/empty/", "mk/deep/"]
    )
    # A level whose directory has a marker lists the marker itself, as an object.
    listed = [(e.uri[len(tree.base) :], e.meta) for e in s3dlio.list_entries(tree.uri("mk/sub/"))]
    entries = dict(listed)
    assert sorted(entries) == [k for k, _ in listed] == ["mk/sub/", "mk/sub/b.txt"]
    assert entries["mk/sub/"] is not None and entries["mk/sub/"].size == 0
    # A partial prefix keeps the marker's slash too.
    assert rel(tree, s3dlio.list(tree.uri("mk/su"), recursive=True)) == [
        "mk/sub", "mk/sub-x", "mk/sub/", "mk/sub/b.txt"
    ]  # fmt: skip
    assert rel(tree, s3dlio.list(tree.uri("mk/deep/er/"), recursive=True)) == ["mk/deep/er/", "mk/deep/er/c"]


def test_listed_metadata_carries_the_marker_key(tree: Backend) -> None:
    metas = {e.meta.key: e.meta for e in s3dlio.list_entries(tree.uri("mk/"), recursive=True) if e.meta}
    assert sorted(metas) == ALL_KEYS
    assert all(metas[k].size == 0 for k in MARKERS)
    assert metas["mk/sub/b.txt"].size == 2


def test_stat_and_get_a_marker(tree: Backend) -> None:
    for key in MARKERS:
        meta = s3dlio.stat(tree.uri(key))
        assert (meta.key, meta.size) == (key, 0)
        assert s3dlio.exists(tree.uri(key))
        assert bytes(s3dlio.get(tree.uri(key))) == b""
    # The empty object "mk/sub" and the marker "mk/sub/" are two objects.
    assert s3dlio.stat(tree.uri("mk/sub")).key == "mk/sub"
    assert not s3dlio.exists(tree.uri("mk/nothing/"))


def test_recursive_delete_removes_markers(tree: Backend, request: pytest.FixtureRequest) -> None:
    write_natively(tree, request, {"keep/": b"", "keep/k": b"k"})
    assert s3dlio.delete(tree.uri("mk/"), recursive=True) == len(ALL_KEYS)
    assert native_keys(tree, request) == ["keep/", "keep/k"]
    assert s3dlio.delete(tree.uri("keep/")) == 2  # one level: the marker of the level and its object
    assert native_keys(tree, request) == []


def test_delete_one_marker(tree: Backend, request: pytest.FixtureRequest) -> None:
    assert s3dlio.delete(tree.uri("mk/empty/")) == 1
    assert "mk/empty/" not in native_keys(tree, request)
    assert s3dlio.delete(tree.uri("mk/sub")) == 1  # the empty object, not the marker beside it
    assert [k for k in native_keys(tree, request) if k.startswith("mk/sub")] == ["mk/sub-x", "mk/sub/", "mk/sub/b.txt"]


def test_a_folder_object_with_bytes_is_not_taken_for_its_sibling(
    remote_backend: Backend, request: pytest.FixtureRequest
) -> None:
    # obstore lists "f/" as "f": deleting the level "f/" must delete "f/", never the object "f"
    write_natively(remote_backend, request, {"f": b"keep me", "f/": b"a folder object with bytes", "f/x": b"x"})
    assert rel(remote_backend, s3dlio.list(remote_backend.uri("f/"))) == ["f/", "f/x"]
    assert rel(remote_backend, s3dlio.list(remote_backend.base, recursive=True)) == ["f", "f/", "f/x"]
    assert s3dlio.delete(remote_backend.uri("f/")) == 2
    assert native_keys(remote_backend, request) == ["f"]
    assert bytes(s3dlio.get(remote_backend.uri("f"))) == b"keep me"


def test_cli_rm_recursive_removes_markers(tree: Backend, request: pytest.FixtureRequest) -> None:
    exe = venv_tool("s3dlio")
    assert exe is not None, "the s3dlio console script is not installed in this venv"
    env = {**os.environ, "S3DLIO_ENGINE": tree.engine}
    proc = subprocess.run([exe, "rm", "-r", "--json", tree.uri("mk/")], env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f'"deleted": {len(ALL_KEYS)}' in proc.stdout, proc.stdout
    assert native_keys(tree, request) == []


DOWNLOAD_TREE = {"dl/": b"", "dl/empty/": b"", "dl/sub/": b"", "dl/sub/b.txt": b"bb", "dl/deep/er/": b""}


def _local_tree(root: Path) -> list[str]:
    """Every directory (ending in '/') and file below ``root``, relative to it."""
    return sorted(
        str(p.relative_to(root)) + ("/" if p.is_dir() else "") for p in root.rglob("*")
    )  # fmt: skip


def test_download_recursive_creates_markers_as_directories(
    remote_backend: Backend, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    write_natively(remote_backend, request, DOWNLOAD_TREE)
    local = tmp_path / "out"
    paths = s3dlio.download(remote_backend.uri("dl/"), str(local), recursive=True)
    assert len(paths) == len(DOWNLOAD_TREE)
    assert _local_tree(local) == ["deep/", "deep/er/", "empty/", "sub/", "sub/b.txt"]
    assert (local / "sub" / "b.txt").read_bytes() == b"bb"


def test_cli_download_recursive_creates_markers_as_directories(
    remote_backend: Backend, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    write_natively(remote_backend, request, DOWNLOAD_TREE)
    exe = venv_tool("s3dlio")
    assert exe is not None, "the s3dlio console script is not installed in this venv"
    env = {**os.environ, "S3DLIO_ENGINE": remote_backend.engine}
    proc = subprocess.run([exe, "download", "-r", remote_backend.uri("dl/"), str(tmp_path / "out")], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert _local_tree(tmp_path / "out") == ["deep/", "deep/er/", "empty/", "sub/", "sub/b.txt"]


def test_copy_markers_to_files_makes_directories(
    remote_backend: Backend, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    write_natively(remote_backend, request, DOWNLOAD_TREE)
    assert s3dlio.copy(remote_backend.uri("dl/"), f"file://{tmp_path}/copied/", recursive=True) == len(DOWNLOAD_TREE)
    assert _local_tree(tmp_path / "copied") == ["deep/", "deep/er/", "empty/", "sub/", "sub/b.txt"]


def test_async_listing_agrees(tree: Backend) -> None:
    import asyncio

    assert rel(tree, asyncio.run(s3dlio.list_async(tree.uri("mk/"), recursive=True))) == ALL_KEYS


# -- file:// and direct://: the directory is the folder -----------------------------------------
@pytest.mark.parametrize("backend", ["file-fast", "file-portable", "direct"], indirect=True)
def test_file_directories_are_the_folders(backend: Backend) -> None:
    files = backend
    root = Path(files.base.split("://", 1)[1])
    (root / "mk" / "empty").mkdir(parents=True)
    (root / "mk" / "sub").mkdir()
    (root / "mk" / "sub" / "b.txt").write_bytes(b"bb")
    (root / "mk" / "a.txt").write_bytes(b"a")
    assert rel(files, s3dlio.list(files.uri("mk/"), recursive=True)) == ["mk/a.txt", "mk/sub/b.txt"]
    assert rel(files, s3dlio.list(files.uri("mk/"))) == ["mk/a.txt", "mk/sub/"]
    for key in ("mk/empty/", "mk/sub/"):
        with pytest.raises(NotFoundError):
            s3dlio.stat(files.uri(key))
        assert not s3dlio.exists(files.uri(key))
    assert s3dlio.delete(files.uri("mk/"), recursive=True) == 2
    assert not (root / "mk" / "a.txt").exists() and not (root / "mk" / "sub" / "b.txt").exists()
