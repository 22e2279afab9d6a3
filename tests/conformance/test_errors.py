"""Errors: every failure is one of s3dlio's own, with the right type, on every backend.

Wrong credentials are tested on Azurite only: moto does not check signatures, so any key
works against it (a wrong-key test there would pass for the wrong reason).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from servers import Backend, require

import s3dlio
from s3dlio.config import AZURITE_KEY
from s3dlio.errors import (
    InvalidUriError,
    NotFoundError,
    PermissionDeniedError,
    S3dlioError,
    TransferError,
)

WRONG_AZURE_KEY = base64.b64encode(b"\x01" * 64).decode()
REMOTE_IDS = ("s3-fast", "s3-portable", "az-fast", "az-portable")


def failing_calls(backend: Backend, local: Path) -> Iterator[tuple[str, Callable[[], Any]]]:
    """Calls that may or must fail on this backend, named for the report."""
    missing = backend.uri("missing", "obj")
    present = backend.uri("d", "x")
    yield "get missing", lambda: s3dlio.get(missing)
    yield "get_range missing", lambda: s3dlio.get_range(missing, 0, 1)
    yield "get_range missing open", lambda: s3dlio.get_range(missing, 5)
    yield "stat missing", lambda: s3dlio.stat(missing)
    yield "get_many missing", lambda: s3dlio.get_many([present, missing])
    yield "get_many_stats missing", lambda: s3dlio.get_many_stats([missing])
    yield "copy missing", lambda: s3dlio.copy(missing, backend.uri("copied"))
    yield "download missing", lambda: s3dlio.download(missing, str(local / "dl"))
    yield "get_range negative", lambda: s3dlio.get_range(present, -1, 1)
    yield "list bad pattern", lambda: s3dlio.list(backend.base, pattern="(")
    yield "delete bad pattern", lambda: s3dlio.delete(backend.base, pattern="[")
    yield "put to a prefix", lambda: s3dlio.put(backend.uri("d/"), b"x")
    # Directory-shaped keys: on file systems these hit a directory or a file where a
    # directory is needed (IsADirectoryError, NotADirectoryError) and must still map.
    yield "get a directory", lambda: s3dlio.get(backend.uri("d"))
    yield "get_range a directory", lambda: s3dlio.get_range(backend.uri("d"), 0, 1)
    yield "stat a directory", lambda: s3dlio.stat(backend.uri("d"))
    yield "get a prefix", lambda: s3dlio.get(backend.uri("d/"))
    yield "put under an object", lambda: s3dlio.put(backend.uri("d", "x", "y"), b"x")
    yield "put where a directory is", lambda: s3dlio.put(backend.uri("d2"), b"x")
    yield "get invalid uri", lambda: s3dlio.get(backend.base.split("://")[0] + ":/one-slash/k")
    yield "get_async missing", lambda: asyncio.run(s3dlio.get_async(missing))
    yield "stat_async missing", lambda: asyncio.run(s3dlio.stat_async(missing))
    yield "list_async bad pattern", lambda: asyncio.run(s3dlio.list_async(backend.base, pattern="("))
    if backend.remote:
        nobucket = f"{backend.scheme}://tnone{base64.b16encode(b'xyz').decode().lower()}/"
        yield "get missing bucket", lambda: s3dlio.get(nobucket + "k")
        yield "list missing bucket", lambda: s3dlio.list(nobucket)
        yield "put missing bucket", lambda: s3dlio.put(nobucket + "k", b"x")
        yield "delete_bucket missing", lambda: s3dlio.delete_bucket(nobucket)
        if backend.scheme == "s3":  # Azure deletes a container with its blobs
            yield "delete_bucket not empty", lambda: s3dlio.delete_bucket(backend.base)
        yield "create_bucket exists", lambda: s3dlio.create_bucket(backend.base)
    else:
        yield "create_bucket", lambda: s3dlio.create_bucket(backend.base)


def test_every_error_is_an_s3dlio_error(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No botocore, obstore, azure or OSError escapes: each is mapped (or raised) as ours."""
    local = tmp_path_factory.mktemp("local")
    s3dlio.put(backend.uri("d", "x"), b"x")
    s3dlio.put(backend.uri("d2", "z"), b"z")
    leaks = []
    raised = 0
    for name, call in failing_calls(backend, local):
        try:
            call()
        except S3dlioError as exc:
            raised += 1
            if not type(exc).__module__.startswith("s3dlio"):
                leaks.append(f"{name}: {type(exc).__module__}.{type(exc).__qualname__}: {exc}")
        except Exception as exc:  # noqa: BLE001 - what this test looks for
            leaks.append(f"{name}: {type(exc).__module__}.{type(exc).__qualname__}: {exc}")
    assert not leaks, "unmapped errors:\n" + "\n".join(leaks)
    assert raised >= 15


def test_errors_name_the_uri(backend: Backend) -> None:
    uri = backend.uri("missing-key-name")
    with pytest.raises(NotFoundError, match="missing-key-name"):
        s3dlio.get(uri)
    with pytest.raises(NotFoundError, match="missing-key-name"):
        s3dlio.stat(uri)


@pytest.mark.parametrize("engine", ["fast", "portable"])
def test_wrong_azure_key_is_permission_denied(engine: str, az_container: str) -> None:
    s3dlio.put(az_container + "k", b"x")  # works with the right key
    s3dlio.configure(engine=engine, azure_account_key=WRONG_AZURE_KEY)
    for call in (
        lambda: s3dlio.get(az_container + "k"),
        lambda: s3dlio.stat(az_container + "k"),
        lambda: s3dlio.put(az_container + "k2", b"x"),
        lambda: s3dlio.list(az_container),
    ):
        with pytest.raises(PermissionDeniedError) as info:
            call()
        assert WRONG_AZURE_KEY not in str(info.value), "the key must never appear in a message"
        assert AZURITE_KEY not in str(info.value)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("ident", REMOTE_IDS)
def test_unreachable_endpoint_is_transfer_error(ident: str) -> None:
    """Nothing listens on port 1: the call gives up after its attempts and says so."""
    scheme, _, engine = ident.partition("-")
    if scheme == "s3":
        s3dlio.configure(engine=engine, endpoint_url="http://127.0.0.1:1", connect_timeout=2, max_attempts=2)
        base = "s3://unreachable/"
    else:
        require("azure.storage.blob", "pip install 's3dlio[azure]'")
        s3dlio.configure(
            engine=engine,
            azure_endpoint="http://127.0.0.1:1/devstoreaccount1",
            azure_account_name="devstoreaccount1",
            azure_account_key=AZURITE_KEY,
            connect_timeout=2,
            max_attempts=2,
        )
        base = "az://unreachable/"
    for call in (
        lambda: s3dlio.get(base + "k"),
        lambda: s3dlio.put(base + "k", b"x"),
        lambda: s3dlio.list(base),
    ):
        with pytest.raises(TransferError):
            call()


def test_invalid_uris_are_invalid_uri_errors() -> None:
    for uri in ("", "s3:/b/k", "s3:///k", "az://A_B/k", "gs://b/k", "ftp://h/k", "file://relative/path"):
        with pytest.raises(InvalidUriError):
            s3dlio.get(uri)
        with pytest.raises(ValueError):  # InvalidUriError is also a ValueError
            s3dlio.list(uri)
