"""A checkpoint save killed mid-way: the next save removes what it left (real servers, SIGKILL)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from servers import MotoServer, kill_when

from s3dlio.checkpoint import CheckpointStore
from s3dlio.store.local import TMP_PREFIX

_SAVE_BIG = """
import sys
from s3dlio.checkpoint import CheckpointStore
CheckpointStore(sys.argv[1], stale_after=None).save(1, {"model": bytes(512 * 1024 * 1024)})
"""

_SAVE_STREAMING = """
import sys, time
from s3dlio.checkpoint import CheckpointStore

def write(f):
    f.write(bytes(20 * 1024 * 1024))  # parts go up; the object is never finished
    time.sleep(600)

CheckpointStore(sys.argv[1], stale_after=None).save(1, {"model": write})
"""


def _temp_files(root: Path) -> list[Path]:
    return [Path(d, n) for d, _, names in os.walk(root) for n in names if n.startswith(TMP_PREFIX)]


def test_killed_file_save_is_cleaned_by_the_next_save(tmp_path: Path) -> None:
    uri = f"file://{tmp_path}/run/"
    kill_when([sys.executable, "-c", _SAVE_BIG, uri], lambda: bool(_temp_files(tmp_path)))
    left = _temp_files(tmp_path)
    assert left

    CheckpointStore(uri, stale_after=None).save(2, {"model": b"two"})  # turned off: kept
    assert _temp_files(tmp_path) == left

    store = CheckpointStore(uri, stale_after=0.5)
    time.sleep(0.6)
    store.save(3, {"model": b"three"})
    assert _temp_files(tmp_path) == []
    assert store.latest_step() == 3 and bytes(store.load(3)["model"]) == b"three"
    assert 1 not in store.steps()  # the killed save never committed


def test_fresh_temporaries_survive_a_save(tmp_path: Path) -> None:
    """A temporary younger than stale_after may be another rank's write in progress: kept."""
    busy = tmp_path / "run" / "step-x" / f"{TMP_PREFIX}4242-aa"
    busy.parent.mkdir(parents=True)
    busy.write_bytes(b"being written")
    CheckpointStore(f"file://{tmp_path}/run/").save(1, {"model": b"one"})
    assert busy.exists()


def test_killed_s3_save_upload_is_aborted_by_the_next_save(moto_server: MotoServer, s3_bucket: str) -> None:
    client, bucket = moto_server.client(), s3_bucket[5:-1]

    def uploads() -> list[str]:
        return [u["Key"] for u in client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]

    uri = f"{s3_bucket}run/"
    kill_when([sys.executable, "-c", _SAVE_STREAMING, uri], lambda: bool(uploads()))
    assert len(uploads()) == 1 and uploads()[0].startswith("run/")
    client.create_multipart_upload(Bucket=bucket, Key="elsewhere/k")  # outside the run: not ours

    store = CheckpointStore(uri, stale_after=0)
    store.save(2, {"model": b"two"})
    assert uploads() == ["elsewhere/k"]
    assert store.latest_step() == 2


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    from servers import venv_tool

    exe = venv_tool("s3dlio")
    assert exe is not None
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=120)


def test_cleanup_command_errors(moto_server: MotoServer, tmp_path: Path) -> None:
    bad = _cli("cleanup", "--older-than", "soon", f"file://{tmp_path}/")
    assert bad.returncode == 2 and "1h or 30m" in bad.stderr, bad.stderr
    missing = _cli("cleanup", "s3://no-such-bucket-for-cleanup/")
    assert missing.returncode == 1 and missing.stderr.startswith("s3dlio: error: "), missing.stderr
    assert "no-such-bucket-for-cleanup" in missing.stderr and len(missing.stderr.strip().splitlines()) == 1
    empty = _cli("cleanup", str(tmp_path))  # a plain path is file://
    assert empty.returncode == 0 and "Found 0 leftovers" in empty.stdout, empty.stderr
