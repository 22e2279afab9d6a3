"""Both engines do the same thing on Azure, whatever the environment says around them.

- The fast engine's client (obstore) reads ``AZURE_*`` variables itself; none of them may send
  its requests elsewhere (``AZURE_STORAGE_USE_EMULATOR`` made it ignore the endpoint) or sign
  them otherwise (a token, key or "skip signature" in the environment) than s3dlio resolved.
- A SAS (``AZURE_STORAGE_SAS_TOKEN``, ``azure_sas_token=``) signs on both engines, bound to its
  account, hidden like the account key; a denial names the SAS.
- Keys with '.' or '..' segments are refused on both engines: no URL can name them.
- A put over an append or page blob replaces it at any size, as a small put does; a writer in
  parts cannot, and says why, leaving the blob as it was.

All against Azurite (``az_container``). Environment variables obstore reads are set in a
child process, so that the client is built with them in place.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from servers import Azurite, free_port

import s3dlio
from s3dlio.config import AZURITE_ACCOUNT, AZURITE_KEY, Config
from s3dlio.errors import ConfigError, InvalidUriError, PermissionDeniedError, S3dlioError
from s3dlio.store.registry import open_store
from s3dlio.uri import parse

ENGINES = ["fast", "portable"]

#: Child process: put and get one blob on each engine, print what happened as JSON.
_ROUND_TRIP = """
import json, sys, s3dlio
out = {}
for engine in ("fast", "portable"):
    s3dlio.configure(engine=engine, total_timeout=5, max_attempts=2)
    uri = sys.argv[1] + engine
    try:
        s3dlio.put(uri, engine.encode())
        out[engine] = bytes(s3dlio.get(uri)).decode()
    except Exception as exc:
        out[engine] = f"{type(exc).__name__}: {exc}"
print(json.dumps(out))
"""


def _container(uri: str) -> str:
    return uri[len("az://") :].rstrip("/")


def _round_trip(base: str, **env: str | None) -> dict[str, str]:
    """Run :data:`_ROUND_TRIP` in a child whose environment is this one changed by ``env``."""
    child = dict(os.environ)
    for name, value in env.items():
        if value is None:
            child.pop(name, None)
        else:
            child[name] = value
    done = subprocess.run(
        [sys.executable, "-c", _ROUND_TRIP, base], env=child, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def _raise(error: Exception) -> None:
    raise error


def _sas(container: str, **permissions: bool) -> str:
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    return generate_container_sas(
        AZURITE_ACCOUNT,
        container,
        account_key=AZURITE_KEY,
        permission=ContainerSasPermissions(**permissions),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )


# -- 1. obstore's own AZURE_* variables never override what s3dlio resolved ---------------------
def test_emulator_flag_never_beats_the_endpoint(azurite: Azurite, az_container: str) -> None:
    """AZURE_STORAGE_USE_EMULATOR with AZURE_STORAGE_ENDPOINT: both engines use the endpoint
    (obstore alone would send to AZURITE_BLOB_STORAGE_URL / 127.0.0.1:10000)."""
    nowhere = f"http://127.0.0.1:{free_port()}"
    got = _round_trip(az_container, AZURE_STORAGE_USE_EMULATOR="true", AZURITE_BLOB_STORAGE_URL=nowhere)
    assert got == {"fast": "fast", "portable": "portable"}
    names = sorted(b.name for b in azurite.client().get_container_client(_container(az_container)).list_blobs())
    assert names == ["fast", "portable"]


def test_obstore_credential_variables_never_replace_the_key(az_container: str) -> None:
    """A bearer token, an obstore-only key variable or "skip signature" in the environment: the
    requests are still signed with the key s3dlio resolved."""
    got = _round_trip(
        az_container,
        AZURE_STORAGE_TOKEN="not-a-token",
        AZURE_STORAGE_ACCESS_KEY="bm90IHRoZSBrZXk=",
        AZURE_SKIP_SIGNATURE="true",
    )
    assert got == {"fast": "fast", "portable": "portable"}


def test_sas_token_variable_signs_both_engines(az_container: str) -> None:
    """AZURE_STORAGE_SAS_TOKEN with no account key (a leading '?' allowed): both engines use it."""
    sas = "?" + _sas(_container(az_container), read=True, write=True, create=True, list=True)
    got = _round_trip(az_container, AZURE_STORAGE_ACCOUNT_KEY=None, AZURE_STORAGE_SAS_TOKEN=sas)
    assert got == {"fast": "fast", "portable": "portable"}


def test_read_only_sas_variable_is_not_replaced_by_a_key_obstore_reads(az_container: str) -> None:
    """A read-only SAS from AZURE_STORAGE_SAS_TOKEN, with a valid key in a variable only obstore
    reads: the write is denied on both engines (the key would have let it through)."""
    sas = _sas(_container(az_container), read=True, list=True)
    got = _round_trip(
        az_container, AZURE_STORAGE_ACCOUNT_KEY=None, AZURE_STORAGE_SAS_TOKEN=sas, AZURE_STORAGE_ACCESS_KEY=AZURITE_KEY
    )
    for engine in ENGINES:
        assert got[engine].startswith("PermissionDeniedError"), got
        assert "the SAS does not grant write" in got[engine]


# -- 2. a SAS: explicit or from the environment, bound, secret, named in denials -----------------
@pytest.mark.parametrize("engine", ENGINES)
def test_explicit_read_only_sas_beats_the_key_from_the_environment(
    engine: str, azurite: Azurite, az_container: str
) -> None:
    """An explicit SAS outranks AZURE_STORAGE_ACCOUNT_KEY from the environment (as an explicit
    key outranks a connection string there): reads work, a write is denied naming the SAS."""
    container = _container(az_container)
    azurite.client().get_container_client(container).upload_blob("r.txt", b"readable")
    s3dlio.configure(engine=engine, azure_sas_token=_sas(container, read=True, list=True))
    assert bytes(s3dlio.get(f"{az_container}r.txt")) == b"readable"
    assert s3dlio.list(az_container) == [f"{az_container}r.txt"]
    with pytest.raises(PermissionDeniedError, match="the SAS does not grant write") as info:
        s3dlio.put(f"{az_container}w.txt", b"x")
    assert "ACCOUNT_KEY" not in str(info.value)
    with pytest.raises(PermissionDeniedError, match="SAS"):
        s3dlio.delete(f"{az_container}r.txt")  # the fast engine's batch delete too: no retries
    assert s3dlio.exists(f"{az_container}r.txt")


@pytest.mark.parametrize("engine", ENGINES)
def test_connection_string_sas_beats_the_key_obstore_reads(engine: str, azurite: Azurite, az_container: str) -> None:
    """A read-only SAS in an explicit connection string, AZURE_STORAGE_ACCOUNT_KEY in the
    environment: obstore must not sign with the key (it ranks a key above a SAS)."""
    container = _container(az_container)
    conn = f"BlobEndpoint={azurite.endpoint};SharedAccessSignature={_sas(container, read=True, list=True)}"
    s3dlio.configure(engine=engine, azure_connection_string=conn)
    with pytest.raises(PermissionDeniedError, match="the SAS does not grant write"):
        s3dlio.put(f"{az_container}w.txt", b"x")
    assert s3dlio.list(az_container) == []


def test_sas_is_a_secret_and_bound_to_its_account(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hidden from repr; one from the environment stays out of a pickle (resolved again where
    it lands), an explicit one travels; never sent to another account than AZURE_STORAGE_ACCOUNT_NAME."""
    secret = "sv=2022-11-02&sp=r&se=2030-01-01T00:00:00Z&sig=SIGxxFIDELITYxxSIG"
    monkeypatch.setenv("AZURE_STORAGE_SAS_TOKEN", secret)
    from_env = Config.resolve()
    assert from_env.azure_sas_token == secret
    assert "SIGxx" not in repr(from_env)
    assert b"SIGxx" not in pickle.dumps(from_env)
    assert pickle.loads(pickle.dumps(from_env)).azure_sas_token == secret
    explicit = Config.resolve(azure_sas_token=secret)
    assert pickle.loads(pickle.dumps(explicit)).azure_sas_token == secret
    monkeypatch.delenv("AZURE_STORAGE_ACCOUNT_KEY", raising=False)
    s3dlio.configure(azure_account_name=AZURITE_ACCOUNT, azure_sas_token=secret)
    with pytest.raises(ConfigError, match="s3dliootheracct") as info:
        s3dlio.get("https://s3dliootheracct.blob.core.windows.net/cont/k")
    assert "SIGxx" not in str(info.value)


# -- 3. '.' and '..' segments: refused on both engines, before any request --------------------
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("key", ["a/./b", "a/../b", "./x", "x/..", "..", "a/."])
def test_dot_segments_are_refused(engine: str, key: str, az_container: str) -> None:
    """Not "use the portable engine", nor the access denied its mangled URL met."""
    config = s3dlio.configure(engine=engine)
    uri = az_container + key
    store = open_store(parse(uri), config)
    for call in (lambda: s3dlio.put(uri, b"1"), lambda: s3dlio.get(uri), lambda: s3dlio.stat(uri),
                 lambda: store.delete(key), lambda: _raise(store.delete_many([key])[0].error)):  # fmt: skip
        with pytest.raises(InvalidUriError, match="Azure Blob Storage cannot address") as info:
            call()
        assert "portable engine" not in str(info.value)
    assert s3dlio.list(az_container, recursive=True) == []


# -- 4. append and page blobs: a put replaces them at any size --------------------------------
def _put_size(engine: str) -> int:
    """A size each engine writes in blocks (part_size 1 KiB; the fast engine's parts are >= 5 MiB)."""
    return 10 * 1024 * 1024 + 1024 if engine == "fast" else 5000


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("kind", ["append", "page"])
def test_large_put_replaces_an_append_or_page_blob(engine: str, kind: str, azurite: Azurite, az_container: str) -> None:
    blob = azurite.client().get_container_client(_container(az_container)).get_blob_client("log")
    if kind == "append":
        blob.create_append_blob()
        blob.append_block(b"old\n")
    else:
        blob.create_page_blob(512)
    s3dlio.configure(engine=engine, part_size=1024)
    data = os.urandom(_put_size(engine))
    s3dlio.put(f"{az_container}log", data)
    assert blob.get_blob_properties().blob_type == "BlockBlob"
    assert bytes(s3dlio.get(f"{az_container}log")) == data


@pytest.mark.parametrize("engine", ENGINES)
def test_writer_in_parts_over_an_append_blob_says_why_and_keeps_it(
    engine: str, azurite: Azurite, az_container: str
) -> None:
    blob = azurite.client().get_container_client(_container(az_container)).get_blob_client("log")
    blob.create_append_blob()
    blob.append_block(b"old\n")
    s3dlio.configure(engine=engine)
    with (
        pytest.raises(S3dlioError, match="append or page blob") as info,
        s3dlio.open_writer(f"{az_container}log", part_size=1024) as writer,
    ):
        writer.write(b"w" * 5000)
    assert "already exists" not in str(info.value)
    props: Any = blob.get_blob_properties()
    assert (props.blob_type, blob.download_blob().readall()) == ("AppendBlob", b"old\n")


@pytest.mark.parametrize("engine", ENGINES)
def test_put_over_an_append_blob_larger_than_one_put_blob_says_why_and_keeps_it(
    engine: str, azurite: Azurite, az_container: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past Put Blob's limit (5000 MiB; 4 KiB here) nothing can replace the blob in one request:
    an error that says so, and the blob as it was."""
    import s3dlio.store.azure as azure_store

    monkeypatch.setattr(azure_store, "PUT_BLOB_MAX", 4096)
    blob = azurite.client().get_container_client(_container(az_container)).get_blob_client("log")
    blob.create_append_blob()
    blob.append_block(b"old\n")
    s3dlio.configure(engine=engine, part_size=1024)
    with pytest.raises(S3dlioError, match="append or page blob.*delete it first"):
        s3dlio.put(f"{az_container}log", os.urandom(max(_put_size(engine), 4097)))
    assert blob.download_blob().readall() == b"old\n"
