"""A writer killed mid-write leaves nothing ``ls``/``get`` show, and ``cleanup`` removes the rest.

Each test starts a real writer in a subprocess (the installed ``s3dlio`` command, or Python),
waits until the write is visibly in progress on the real store (a hidden temporary file, or
an incomplete multipart upload on the moto server), SIGKILLs it, and then checks what is
left with the store's own tools: ``s3dlio ls``, boto3's ``list_multipart_uploads``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from servers import MotoServer, kill_when, venv_tool

import s3dlio
from s3dlio import configure as reconfigure
from s3dlio.store.local import TMP_PREFIX

LARGE = "512MiB"  # a file:// put of this takes long enough to be caught mid-write
S3_LARGE = "48MiB"  # several 8 MiB parts on moto


def _engine(engine: str) -> dict[str, str]:
    """The environment with ``S3DLIO_ENGINE`` set."""
    return dict(os.environ, S3DLIO_ENGINE=engine)


def _exe() -> str:
    found = venv_tool("s3dlio")
    assert found is not None, "the s3dlio console script is not installed in this venv"
    return found


def _run(*args: str, engine: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if engine:
        env["S3DLIO_ENGINE"] = engine
    return subprocess.run([_exe(), *args], env=env, capture_output=True, text=True, timeout=300)


def _temp_files(root: Path) -> list[Path]:
    return [Path(d, n) for d, _, names in os.walk(root) for n in names if n.startswith(TMP_PREFIX)]


def _ls(uri: str, engine: str) -> list[dict[str, Any]]:
    run = _run("ls", "-r", "--json", uri, engine=engine)
    assert run.returncode == 0, run.stderr
    entries: list[dict[str, Any]] = json.loads(run.stdout)["entries"]
    return entries


def _uploads(moto: MotoServer, bucket: str) -> list[dict[str, Any]]:
    uploads: list[dict[str, Any]] = moto.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    return uploads


# -- file:// -----------------------------------------------------------------------------------
@pytest.mark.parametrize("engine", ["fast", "portable"])
def test_killed_put_to_file_leaves_nothing_visible(tmp_path: Path, engine: str) -> None:
    target = tmp_path / "data"
    kill_when([_exe(), "put", "-n", "1", "-s", LARGE, f"file://{target}/"], lambda: bool(_temp_files(tmp_path)),
              env=_engine(engine))  # fmt: skip
    assert _ls(f"file://{target}/", engine) == []  # the temporary is hidden; no key#N either
    assert [p.name for p in target.iterdir() if not p.name.startswith(TMP_PREFIX)] == []
    left = _temp_files(tmp_path)
    assert left, "the killed put left no temporary: the test did not catch it mid-write"

    dry = _run("cleanup", "--dry-run", "--json", f"file://{tmp_path}/", engine=engine)
    assert dry.returncode == 0, dry.stderr
    report = json.loads(dry.stdout)
    assert report["found"] == len(left) and report["removed"] == 0
    assert {e["uri"] for e in report["leftovers"]} == {f"file://{p}" for p in left}
    assert _temp_files(tmp_path) == left  # a dry run removes nothing

    young = _run("cleanup", "--older-than", "1h", "--json", f"file://{tmp_path}/", engine=engine)
    assert json.loads(young.stdout)["found"] == 0  # written seconds ago: spared

    done = _run("cleanup", "--json", f"file://{tmp_path}/", engine=engine)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["removed"] == len(left)
    assert _temp_files(tmp_path) == []


@pytest.mark.parametrize("engine", ["fast", "portable"])
def test_killed_upload_to_file_leaves_nothing_visible(tmp_path: Path, engine: str) -> None:
    source = tmp_path / "src" / "big.bin"
    source.parent.mkdir()
    with open(source, "wb") as f:
        f.truncate(512 * 1024 * 1024)
    dest = tmp_path / "dest"
    kill_when([_exe(), "upload", str(source), f"file://{dest}/"], lambda: bool(_temp_files(dest)), env=_engine(engine))
    assert _ls(f"file://{dest}/", engine) == []
    found = s3dlio.cleanup(f"file://{dest}/", dry_run=True)
    assert [item.kind for item in found] == ["temp-file"] and not found[0].removed
    removed = s3dlio.cleanup(f"file://{dest}/")
    assert [item.removed for item in removed] == [True]
    assert _temp_files(dest) == []


def test_direct_put_keeps_its_temporary_hidden(direct_dir: Path) -> None:
    """direct:// shares file://'s temporary + rename: a leftover is hidden and cleaned up."""
    leftover = direct_dir / "d" / f"{TMP_PREFIX}99999-abcdef"
    leftover.parent.mkdir()
    leftover.write_bytes(b"x" * 4096)
    s3dlio.put(f"direct://{direct_dir}/d/real", b"y" * 4096)
    assert s3dlio.list(f"direct://{direct_dir}/d/", recursive=True) == [f"direct://{direct_dir}/d/real"]
    assert [item.uri for item in s3dlio.cleanup(f"direct://{direct_dir}/d/")] == [f"direct://{leftover}"]
    assert not leftover.exists() and (direct_dir / "d" / "real").exists()


# -- s3:// on the moto server ---------------------------------------------------------------------
@pytest.mark.parametrize("engine", ["fast", "portable"])
def test_killed_put_to_s3_leaves_an_upload_cleanup_aborts(
    moto_server: MotoServer, s3_bucket: str, engine: str
) -> None:
    bucket = s3_bucket[5:-1]
    kill_when([_exe(), "put", "-n", "1", "-s", S3_LARGE, f"{s3_bucket}big/"],
              lambda: bool(_uploads(moto_server, bucket)), env=_engine(engine))  # fmt: skip
    assert _ls(s3_bucket, engine) == []  # the object never appeared
    uploads = _uploads(moto_server, bucket)
    assert [u["Key"] for u in uploads] == ["big/object_0_of_1.dat"]

    elsewhere = _run("cleanup", "--json", f"{s3_bucket}other/", engine=engine)
    assert json.loads(elsewhere.stdout)["found"] == 0  # another prefix: untouched
    dry = _run("cleanup", "--dry-run", f"{s3_bucket}big/", engine=engine)
    assert dry.returncode == 0 and "multipart-upload" in dry.stdout, dry.stdout + dry.stderr
    assert len(_uploads(moto_server, bucket)) == 1

    done = _run("cleanup", "--json", s3_bucket, engine=engine)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["removed"] == 1 and report["leftovers"][0]["upload_id"] == uploads[0]["UploadId"]
    assert _uploads(moto_server, bucket) == []


def test_cleanup_removes_temp_named_objects_on_s3(moto_server: MotoServer, s3_bucket: str) -> None:
    s3dlio.put(f"{s3_bucket}ckpt/{TMP_PREFIX}1-ab", b"half")
    s3dlio.put(f"{s3_bucket}ckpt/shard", b"whole")
    found = s3dlio.cleanup(f"{s3_bucket}ckpt/")
    assert [(item.kind, item.uri, item.removed) for item in found] == [
        ("temp-file", f"{s3_bucket}ckpt/{TMP_PREFIX}1-ab", True)
    ]
    assert s3dlio.list(f"{s3_bucket}ckpt/") == [f"{s3_bucket}ckpt/shard"]


def test_cleanup_async_spares_younger_leftovers(tmp_path: Path) -> None:
    import asyncio

    leftover = tmp_path / "a" / f"{TMP_PREFIX}1-ab"
    leftover.parent.mkdir()
    leftover.write_bytes(b"half")
    assert asyncio.run(s3dlio.cleanup_async(f"file://{tmp_path}", older_than="1h")) == []
    time.sleep(1.1)
    found = asyncio.run(s3dlio.cleanup_async(f"file://{tmp_path}", older_than=1.0))
    assert [(item.uri, item.size, item.removed) for item in found] == [(f"file://{leftover}", 4, True)]
    assert not leftover.exists()
    with pytest.raises(ValueError, match="1h or 30m"):
        s3dlio.cleanup(f"file://{tmp_path}", older_than="soon")


def test_cleanup_discards_uncommitted_azure_blocks(azurite: Any, az_container: str) -> None:
    container = azurite.client().get_container_client(az_container[5:-1])
    container.upload_blob("keep", b"committed")
    container.get_blob_client("keep").stage_block("YmxrMQ==", b"extra")  # beside a real blob
    container.get_blob_client("half/x").stage_block("YmxrMQ==", b"x" * 100)
    found = s3dlio.cleanup(az_container)
    assert [(item.kind, item.uri, item.removed) for item in found] == [
        ("uncommitted-blocks", f"{az_container}half/x", True)
    ]
    names = [b.name for b in container.list_blobs(include=["uncommittedblobs"])]
    assert names == ["keep"]
    assert bytes(s3dlio.get(f"{az_container}keep")) == b"committed"


# -- writers left open -----------------------------------------------------------------------------
@pytest.mark.parametrize("engine", ["fast", "portable"])
def test_writer_garbage_collected_aborts_its_upload(
    moto_server: MotoServer, s3_bucket: str, engine: str
) -> None:
    reconfigure(engine=engine)
    bucket = s3_bucket[5:-1]
    writer = s3dlio.open_writer(f"{s3_bucket}gc.bin", part_size=5 * 1024 * 1024)
    writer.write(bytes(12 * 1024 * 1024))
    assert len(_uploads(moto_server, bucket)) == 1
    with pytest.warns(ResourceWarning, match="without close"):
        del writer  # the last reference: CPython frees it here (gc.collect() walks the session's heap: 10 s)
    assert _uploads(moto_server, bucket) == []
    assert s3dlio.list(s3_bucket) == []


def test_file_writer_garbage_collected_removes_its_temporary(tmp_path: Path) -> None:
    writer = s3dlio.open_writer(f"file://{tmp_path}/w.bin", part_size=1024 * 1024)
    writer.write(bytes(3 * 1024 * 1024))
    assert _temp_files(tmp_path)
    with pytest.warns(ResourceWarning):
        del writer  # the last reference: CPython frees it here (gc.collect() walks the session's heap: 10 s)
    assert _temp_files(tmp_path) == [] and not (tmp_path / "w.bin").exists()


_LEFT_OPEN = """
import s3dlio, sys
w = s3dlio.open_writer(sys.argv[1], part_size=5 * 1024 * 1024)
w.write(bytes(12 * 1024 * 1024))
print("parts sent", flush=True)
"""


@pytest.mark.parametrize("engine", ["fast", "portable"])
def test_writer_open_at_exit_aborts_its_upload(moto_server: MotoServer, s3_bucket: str, engine: str) -> None:
    env = dict(os.environ, S3DLIO_ENGINE=engine)
    proc = subprocess.run([sys.executable, "-c", _LEFT_OPEN, f"{s3_bucket}exit.bin"], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0 and "parts sent" in proc.stdout, proc.stderr
    assert _uploads(moto_server, s3_bucket[5:-1]) == []
    assert s3dlio.list(s3_bucket) == []  # aborted, never completed


def test_file_writer_open_at_exit_leaves_no_temporary(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", _LEFT_OPEN, f"file://{tmp_path}/exit.bin"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0 and "parts sent" in proc.stdout, proc.stderr
    assert list(tmp_path.iterdir()) == []
