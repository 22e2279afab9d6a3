"""What Azure users (ADLS Gen2, adlfs habits) meet, on Azurite and, where the rule is not
Azure's own, on moto too.

- ADLS Gen2 (hierarchical namespace) lists each directory through the Blob API as a zero-byte
  blob with ``hdi_isfolder=true`` (``data`` beside ``data/x.bin``): a directory, never a file,
  so a recursive download of such a tree works and ``ls`` lists it once.
- ``"ab"`` of two writers at once: the second to close gets an error, never silently losing
  the first one's bytes.
- ``mkdir`` of an existing container passes on ``az://`` (adlfs), ``created`` says why it fails.
- An upload whose size needs more parts than the store allows raises the part size up front.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import s3dlio
import s3dlio.fsspec as sfs
from s3dlio.errors import InvalidUriError
from s3dlio.retry import ChangedError

ENGINES = ["fast", "portable"]
FOLDER = {"hdi_isfolder": "true"}


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) + ("/" if p.is_dir() else "") for p in root.rglob("*"))


def _adls_tree(azurite: Any, container: str) -> None:
    """What an ADLS Gen2 account lists for data/train/x.bin and an empty directory ``empty``."""
    client = azurite.client().get_container_client(container)
    client.upload_blob("data", b"", metadata=FOLDER)
    client.upload_blob("data/train", b"", metadata=FOLDER)
    client.upload_blob("data/train/x.bin", b"x" * 10)
    client.upload_blob("empty", b"", metadata=FOLDER)


def _name(base: str) -> str:
    return base.split("://", 1)[1].rstrip("/")


# -- folder markers without "/" --------------------------------------------------------------
@pytest.mark.parametrize("engine", ENGINES)
def test_adls_tree_downloads_and_copies(azurite: Any, az_container: str, tmp_path: Path, engine: str) -> None:
    s3dlio.configure(engine=engine)
    _adls_tree(azurite, _name(az_container))
    got = s3dlio.download(az_container, str(tmp_path / "d"), recursive=True)
    assert (tmp_path / "d/data/train/x.bin").read_bytes() == b"x" * 10
    assert (tmp_path / "d/data").is_dir() and (tmp_path / "d/data/train").is_dir()
    assert str(tmp_path / "d/data/train/x.bin") in got
    assert s3dlio.copy(az_container + "data/", f"file://{tmp_path}/c/", recursive=True) == 2
    assert _files(tmp_path / "c") == ["train/", "train/x.bin"]


def test_cli_downloads_an_adls_tree(azurite: Any, az_container: str, tmp_path: Path) -> None:
    """The CLI lists for itself (``download -r``, ``get -r -o DIR``): the same rule holds."""
    _adls_tree(azurite, _name(az_container))
    exe = str(Path(sys.executable).parent / "s3dlio")
    for args in (["download", "-r", az_container, str(tmp_path / "d")],
                 ["get", "-r", "-o", str(tmp_path / "g"), az_container]):  # fmt: skip
        run = subprocess.run([exe, *args], capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
    for root in ("d", "g"):
        assert (tmp_path / root / "data/train/x.bin").read_bytes() == b"x" * 10, _files(tmp_path / root)


@pytest.mark.parametrize("engine", ENGINES)
def test_marker_without_slash_on_s3(s3_bucket: str, tmp_path: Path, engine: str) -> None:
    """The rule is the listing's, not Azure's: a zero-byte ``data`` beside ``data/...`` on S3."""
    s3dlio.configure(engine=engine)
    s3dlio.put(s3_bucket + "data", b"")
    s3dlio.put(s3_bucket + "data/x.bin", b"abc")
    s3dlio.download(s3_bucket, str(tmp_path / "d"), recursive=True)
    assert _files(tmp_path / "d") == ["data/", "data/x.bin"]


@pytest.mark.parametrize("engine", ENGINES)
def test_non_empty_object_named_like_a_directory_is_still_refused(s3_bucket: str, tmp_path: Path,
                                                                   engine: str) -> None:  # fmt: skip
    s3dlio.configure(engine=engine)
    s3dlio.put(s3_bucket + "data", b"bytes")
    s3dlio.put(s3_bucket + "data/x.bin", b"abc")
    with pytest.raises(InvalidUriError, match="data"):
        s3dlio.download(s3_bucket, str(tmp_path / "d"), recursive=True)


@pytest.mark.parametrize("engine", ENGINES)
def test_fsspec_sees_adls_directories(azurite: Any, az_container: str, tmp_path: Path, engine: str) -> None:
    s3dlio.configure(engine=engine)
    c = _name(az_container)
    _adls_tree(azurite, c)
    fs = sfs.filesystem("az", skip_instance_cache=True)
    top = fs.ls(c, detail=True)
    assert [(e["name"], e["type"]) for e in top if e["name"] == f"{c}/data"] == [(f"{c}/data", "directory")]
    assert fs.isdir(f"{c}/data") and not fs.isfile(f"{c}/data")
    assert fs.isdir(f"{c}/empty")  # its HEAD says so: no children to tell
    found = fs.find(c)
    assert f"{c}/data/train/x.bin" in found and f"{c}/data" not in found and f"{c}/data/train" not in found
    assert f"{c}/data" in fs.find(c, withdirs=True)
    fs.get(f"{c}/", str(tmp_path / "g") + "/", recursive=True)
    assert (tmp_path / "g/data/train/x.bin").read_bytes() == b"x" * 10
    assert not (tmp_path / "g/empty").is_file()  # a directory, never a 0-byte file
    fs.rmdir(f"{c}/empty")
    fs.rm(f"{c}/data", recursive=True)
    assert fs.ls(c) == []


# -- "ab" of two writers at once ---------------------------------------------------------------
@pytest.mark.parametrize("place", ["az", "s3"])
def test_concurrent_appends_are_never_lost_silently(request: pytest.FixtureRequest, place: str) -> None:
    base = request.getfixturevalue("az_container" if place == "az" else "s3_bucket")
    fs = sfs.filesystem(place, skip_instance_cache=True)
    path = f"{_name(base)}/log.txt"
    fs.pipe(path, b"start\n")
    a, b = fs.open(path, "ab"), fs.open(path, "ab")
    a.write(b"from A\n")
    b.write(b"from B\n")
    a.close()
    with pytest.raises(ChangedError, match="changed since this file read it"):
        b.close()
    assert fs.cat(path) == b"start\nfrom A\n"
    with fs.open(path, "ab") as f:  # opened again, it appends
        f.write(b"from B\n")
    assert fs.cat(path) == b"start\nfrom A\nfrom B\n"


def test_concurrent_appends_to_a_new_object(az_container: str) -> None:
    fs = sfs.filesystem("az", skip_instance_cache=True)
    path = f"{_name(az_container)}/new.txt"
    a, b = fs.open(path, "ab"), fs.open(path, "ab")
    a.write(b"A\n")
    b.write(b"B\n")
    a.close()
    with pytest.raises(FileExistsError):
        b.close()
    assert fs.cat(path) == b"A\n"


# -- mkdir, created ----------------------------------------------------------------------------
def test_mkdir_of_an_existing_container(az_container: str, s3_bucket: str) -> None:
    fs = sfs.filesystem("az", skip_instance_cache=True)
    fs.mkdir(_name(az_container))  # adlfs: exist_ok defaults to True
    with pytest.raises(FileExistsError):
        fs.mkdir(_name(az_container), exist_ok=False)
    with pytest.raises(FileExistsError):  # s3fs raises
        sfs.filesystem("s3", skip_instance_cache=True).mkdir(_name(s3_bucket))


def test_created_says_why(az_container: str) -> None:
    fs = sfs.filesystem("az", skip_instance_cache=True)
    fs.pipe(f"{_name(az_container)}/k", b"1")
    with pytest.raises(NotImplementedError, match="creation time.*modified"):
        fs.created(f"{_name(az_container)}/k")


# -- part size for a known size ---------------------------------------------------------------
@pytest.mark.parametrize("engine", ENGINES)
def test_upload_raises_the_part_size_to_fit_max_parts(az_container: str, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch, engine: str) -> None:  # fmt: skip
    from s3dlio.store.upload_azure import AzureUpload

    monkeypatch.setattr(AzureUpload, "max_parts", 10)  # a stand-in for Azure's 50,000 blocks
    s3dlio.configure(engine=engine, part_size=100, range_threshold=100)
    data = os.urandom(1100)  # 11 parts of 100 bytes
    (tmp_path / "f.bin").write_bytes(data)
    s3dlio.upload(str(tmp_path / "f.bin"), az_container + "up/")
    assert bytes(s3dlio.get(az_container + "up/f.bin")) == data
    s3dlio.copy(az_container + "up/f.bin", az_container + "copied.bin")  # streamed: above range_threshold
    assert bytes(s3dlio.get(az_container + "copied.bin")) == data
    fs = sfs.filesystem("az", skip_instance_cache=True)
    fs.put_file(str(tmp_path / "f.bin"), f"{_name(az_container)}/put.bin")
    assert fs.cat(f"{_name(az_container)}/put.bin") == data


@pytest.mark.parametrize("engine", ENGINES)
def test_upload_fits_s3_max_parts(s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  engine: str) -> None:  # fmt: skip
    from s3dlio.store.upload_fast import StreamUpload
    from s3dlio.store.upload_s3 import S3Upload

    for cls in (S3Upload, StreamUpload):
        monkeypatch.setattr(cls, "max_parts", 2)  # parts are at least 5 MiB on S3
    s3dlio.configure(engine=engine, part_size=5 * 2**20)
    data = os.urandom(11 * 2**20)  # 3 parts of 5 MiB
    (tmp_path / "f.bin").write_bytes(data)
    s3dlio.upload(str(tmp_path / "f.bin"), s3_bucket)
    assert bytes(s3dlio.get(s3_bucket + "f.bin")) == data
