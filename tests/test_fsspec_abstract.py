"""fsspec's own abstract test suite (``fsspec.tests.abstract``) against every s3dlio filesystem.

Wired as s3fs wires it: one fixtures class per filesystem (``fs``, ``fs_path``, ``fs_join``,
``supports_empty_directories``) mixed into each of fsspec's test classes (Copy, Get, Put, Pipe,
Open). ``s3`` runs on moto and ``az`` on Azurite, both with empty directories (folder
markers), ``file`` in a temporary directory and ``mem`` in s3dlio's in-process store; each test gets a fresh bucket/container/directory. fsspec's ``mv``
tests (plain functions on ``fsspec.filesystem("file")``) run with s3dlio's ``file`` filesystem
registered in fsspec's place.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

fsspec = pytest.importorskip("fsspec")

from fsspec.tests import abstract  # noqa: E402
from fsspec.tests.abstract import mv as abstract_mv  # noqa: E402

import s3dlio  # noqa: E402
import s3dlio.fsspec as sfs  # noqa: E402


def _join(*parts: str) -> str:
    return "/".join(parts)


class _S3dlioFixtures(abstract.AbstractFixtures):  # type: ignore[misc]
    """Fixtures shared by the object stores: paths are ``bucket/key``; empty directories only where
    ``mkdir`` writes a folder marker (s3, az)."""

    scheme = "s3"

    @pytest.fixture
    def fs(self) -> sfs.S3dlioFileSystem:
        return sfs.filesystem(self.scheme)

    @pytest.fixture
    def fs_join(self) -> Callable[..., str]:
        return _join

    @pytest.fixture
    def supports_empty_directories(self) -> bool:
        return False


class S3Fixtures(_S3dlioFixtures):
    scheme = "s3"

    @pytest.fixture
    def supports_empty_directories(self) -> bool:
        return True  # mkdir writes a folder marker

    @pytest.fixture
    def fs_path(self, s3_bucket: str) -> str:
        return s3_bucket[len("s3://") :].rstrip("/")


class AzureFixtures(_S3dlioFixtures):
    scheme = "az"

    @pytest.fixture
    def supports_empty_directories(self) -> bool:
        return True  # mkdir writes a folder marker

    @pytest.fixture
    def fs_path(self, az_container: str) -> str:
        return az_container[len("az://") :].rstrip("/")


class MemoryFixtures(_S3dlioFixtures):
    scheme = "mem"

    @pytest.fixture
    def fs_path(self) -> Iterator[str]:
        name = f"abs-{uuid.uuid4().hex[:12]}"
        yield name
        s3dlio.delete(f"mem://{name}/", recursive=True)


class FileFixtures(_S3dlioFixtures):
    scheme = "file"

    @pytest.fixture
    def fs_path(self, tmp_path: Path) -> str:
        root = tmp_path / "remote"
        root.mkdir()
        return str(root)

    @pytest.fixture
    def supports_empty_directories(self) -> bool:
        return True


# -- the suite, once per filesystem ---------------------------------------------------------------
class TestS3Copy(abstract.AbstractCopyTests, S3Fixtures):  # type: ignore[misc]
    pass


class TestS3Get(abstract.AbstractGetTests, S3Fixtures):  # type: ignore[misc]
    pass


class TestS3Put(abstract.AbstractPutTests, S3Fixtures):  # type: ignore[misc]
    pass


class TestS3Pipe(abstract.AbstractPipeTests, S3Fixtures):  # type: ignore[misc]
    pass


class TestS3Open(abstract.AbstractOpenTests, S3Fixtures):  # type: ignore[misc]
    pass


class TestAzureCopy(abstract.AbstractCopyTests, AzureFixtures):  # type: ignore[misc]
    pass


class TestAzureGet(abstract.AbstractGetTests, AzureFixtures):  # type: ignore[misc]
    pass


class TestAzurePut(abstract.AbstractPutTests, AzureFixtures):  # type: ignore[misc]
    pass


class TestAzurePipe(abstract.AbstractPipeTests, AzureFixtures):  # type: ignore[misc]
    pass


class TestAzureOpen(abstract.AbstractOpenTests, AzureFixtures):  # type: ignore[misc]
    pass


class TestMemoryCopy(abstract.AbstractCopyTests, MemoryFixtures):  # type: ignore[misc]
    pass


class TestMemoryGet(abstract.AbstractGetTests, MemoryFixtures):  # type: ignore[misc]
    pass


class TestMemoryPut(abstract.AbstractPutTests, MemoryFixtures):  # type: ignore[misc]
    pass


class TestMemoryPipe(abstract.AbstractPipeTests, MemoryFixtures):  # type: ignore[misc]
    pass


class TestMemoryOpen(abstract.AbstractOpenTests, MemoryFixtures):  # type: ignore[misc]
    pass


class TestFileCopy(abstract.AbstractCopyTests, FileFixtures):  # type: ignore[misc]
    pass


class TestFileGet(abstract.AbstractGetTests, FileFixtures):  # type: ignore[misc]
    pass


class TestFilePut(abstract.AbstractPutTests, FileFixtures):  # type: ignore[misc]
    pass


class TestFilePipe(abstract.AbstractPipeTests, FileFixtures):  # type: ignore[misc]
    pass


class TestFileOpen(abstract.AbstractOpenTests, FileFixtures):  # type: ignore[misc]
    pass


# -- fsspec's mv tests: module functions on fsspec.filesystem("file") ------------------------------
@pytest.fixture
def s3dlio_file_registered() -> Iterator[None]:
    """``fsspec.filesystem("file")`` is s3dlio's LocalFileSystem for the test, then fsspec's again."""
    before = fsspec.get_filesystem_class("file")
    sfs.register(["file"])
    assert isinstance(fsspec.filesystem("file"), sfs.LocalFileSystem)
    yield
    fsspec.register_implementation("file", before, clobber=True)


def test_mv_missing_parent_raises(s3dlio_file_registered: None, tmpdir: Any) -> None:
    abstract_mv.test_move_raises_error_with_tmpdir(tmpdir)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions (chmod 0o555)")
@pytest.mark.parametrize("recursive", [True, False])
def test_mv_into_read_only_directory_raises(s3dlio_file_registered: None, recursive: bool, tmpdir: Any) -> None:
    abstract_mv.test_move_raises_error_with_tmpdir_permission(recursive, tmpdir)
