"""Credentials go only where the user sent them.

- Explicit arguments > the real environment > ``.env``, per setting: a ``.env`` planted in
  the working directory (``S3DLIO_ENDPOINTS``, ``AWS_ENDPOINT_URL_S3``,
  ``AZURE_STORAGE_ENDPOINT``) never redirects a request whose endpoint the user named.
- Azure: the host a URI names wins, then an explicit endpoint, then the connection string's
  BlobEndpoint, then a loose ``AZURE_STORAGE_ENDPOINT``; credentials bound to an account are
  sent to no other account (a ConfigError naming both, never the secret).
- A pickled config carries only the secrets the user passed: one resolved from the
  environment is resolved again where the copy lands (a spawned worker).

A capture server (a real HTTP server that records every request and answers 403) stands
where a planted setting points: the tests assert it received nothing.
"""

from __future__ import annotations

import multiprocessing
import pickle
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import Azurite, CaptureServer, MotoServer, venv_tool

import s3dlio
from s3dlio.config import AZURITE_ACCOUNT, AZURITE_KEY, Config
from s3dlio.errors import ConfigError, S3dlioError
from s3dlio.store.registry import open_store
from s3dlio.uri import parse

ENGINES = ["fast", "portable"]
#: An account name that does not exist: a request to its host fails in DNS, on any network.
NOWHERE = "s3dlionosuchacct7q"
SAS = "sv=2022-11-02&ss=b&srt=sco&sp=rl&se=2030-01-01T00:00:00Z&sig=SIGxxROUTINGxxSIG"


@pytest.fixture
def capture() -> Iterator[CaptureServer]:
    """A planted host: records every request it receives and answers 403."""
    server = CaptureServer()
    yield server
    server.stop()


def _url(server: CaptureServer, path: str = "") -> str:
    return server.url + path


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory of its own, where a test plants its ``.env``."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


# -- S3: a .env never beats an endpoint the user named -------------------------------------------
@pytest.mark.parametrize("engine", ENGINES)
def test_dotenv_endpoints_never_beat_an_explicit_endpoint(
    s3_bucket: str, moto_server: MotoServer, capture: CaptureServer, workdir: Path,
    monkeypatch: pytest.MonkeyPatch, engine: str,
) -> None:  # fmt: skip
    s3dlio.put(f"{s3_bucket}k", b"mine")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "TOKENqqROUTING")
    (workdir / ".env").write_text(f"S3DLIO_ENDPOINTS={_url(capture)}\n")
    client = s3dlio.Client(endpoint_url=moto_server.endpoint, engine=engine, max_attempts=1)
    assert client.config.endpoints == ()
    assert bytes(memoryview(client.get(f"{s3_bucket}k"))) == b"mine"
    assert capture.requests == []


def test_dotenv_endpoints_never_beat_the_cli_endpoint_url(
    s3_bucket: str, moto_server: MotoServer, capture: CaptureServer, workdir: Path
) -> None:
    s3dlio.put(f"{s3_bucket}k", b"mine")
    (workdir / ".env").write_text(f"S3DLIO_ENDPOINTS={_url(capture)}\n")
    exe = venv_tool("s3dlio")
    assert exe is not None
    done = subprocess.run([exe, "--endpoint-url", moto_server.endpoint, "stat", f"{s3_bucket}k"],
                          capture_output=True, text=True, timeout=120, cwd=workdir)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert capture.requests == []


@pytest.mark.parametrize("planted", ["S3DLIO_ENDPOINTS", "AWS_ENDPOINT_URL_S3"])
@pytest.mark.parametrize("engine", ENGINES)
def test_the_real_environment_beats_any_dotenv_name_of_the_setting(
    s3_bucket: str, moto_server: MotoServer, capture: CaptureServer, workdir: Path, planted: str, engine: str
) -> None:
    # AWS_ENDPOINT_URL (moto's) is in the real environment; .env holds a higher-ranked name
    s3dlio.put(f"{s3_bucket}k", b"mine")
    (workdir / ".env").write_text(f"{planted}={_url(capture)}\nS3DLIO_MAX_IN_FLIGHT=7\n")
    client = s3dlio.Client(engine=engine, max_attempts=1)
    assert (client.config.endpoint_url, client.config.endpoints) == (moto_server.endpoint, ())
    assert client.config.max_in_flight == 7  # settings the environment does not hold still come from .env
    assert bytes(memoryview(client.get(f"{s3_bucket}k"))) == b"mine"
    assert capture.requests == []


def test_explicit_endpoint_url_and_endpoints_that_disagree_are_an_error() -> None:
    with pytest.raises(ConfigError, match=r"endpoint_url='http://a:1'.*endpoints=\['http://b:1'\]"):
        Config.resolve(endpoint_url="http://a:1", endpoints=["http://b:1"])
    # the CLI's form: repeated --endpoint-url, the first also as endpoint_url
    agreed = Config.resolve(endpoint_url="http://a:1", endpoints=["http://a:1", "http://b:1"])
    assert (agreed.endpoint_url, agreed.endpoints) == ("http://a:1", ("http://a:1", "http://b:1"))
    several = Config.resolve(endpoints=["http://b:1", "http://c:1"])
    assert several.replace(endpoint_url="http://a:1").endpoints == ()  # the newer explicit setting
    assert several.replace(endpoints=["http://d:1"]).endpoint_url == "http://d:1"


# -- Azure: endpoints -------------------------------------------------------------------------------
@pytest.fixture
def azure_env(azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No loose Azure settings in the environment (the session sets them for Azurite)."""
    for name in ("AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize("engine", ENGINES)
def test_the_connection_strings_endpoint_beats_a_dotenv_endpoint(
    az_container: str, azurite: Azurite, azure_env: pytest.MonkeyPatch, capture: CaptureServer,
    workdir: Path, engine: str,
) -> None:  # fmt: skip
    s3dlio.put(f"{az_container}k", b"mine")  # through the session's settings
    azure_env.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    (workdir / ".env").write_text(f"AZURE_STORAGE_ENDPOINT={_url(capture, '/' + AZURITE_ACCOUNT)}\n")
    client = s3dlio.Client(engine=engine, max_attempts=1)
    assert bytes(memoryview(client.get(f"{az_container}k"))) == b"mine"
    assert capture.requests == []


def _sas(azurite: Azurite) -> str:
    from datetime import UTC, datetime, timedelta

    from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas

    return generate_account_sas(
        AZURITE_ACCOUNT, AZURITE_KEY, ResourceTypes(service=True, container=True, object=True),
        AccountSasPermissions(read=True, write=True, list=True), datetime.now(UTC) + timedelta(hours=1),
    )  # fmt: skip


@pytest.mark.parametrize("engine", ENGINES)
def test_a_sas_connection_string_reads_and_writes_on_both_engines(
    az_container: str, azurite: Azurite, azure_env: pytest.MonkeyPatch, engine: str
) -> None:
    string = f"BlobEndpoint={azurite.endpoint};SharedAccessSignature={_sas(azurite)}"
    azure_env.setenv("AZURE_STORAGE_CONNECTION_STRING", string)
    client = s3dlio.Client(engine=engine, max_attempts=1)
    client.put(f"{az_container}k", b"by sas")
    assert bytes(memoryview(client.get(f"{az_container}k"))) == b"by sas"


@pytest.mark.parametrize("credentials", ["connection-string", "account-key"])
@pytest.mark.parametrize("engine", ENGINES)
def test_the_host_a_uri_names_beats_a_dotenv_endpoint(
    azure_env: pytest.MonkeyPatch, capture: CaptureServer, workdir: Path, credentials: str, engine: str
) -> None:
    if credentials == "connection-string":
        azure_env.setenv("AZURE_STORAGE_CONNECTION_STRING",
                         f"BlobEndpoint=https://{NOWHERE}.blob.core.windows.net;SharedAccessSignature={SAS}")  # fmt: skip
    else:
        azure_env.setenv("AZURE_STORAGE_ACCOUNT_NAME", NOWHERE)
        azure_env.setenv("AZURE_STORAGE_ACCOUNT_KEY", AZURITE_KEY)
    (workdir / ".env").write_text(f"AZURE_STORAGE_ENDPOINT={_url(capture, '/' + NOWHERE)}\n")
    client = s3dlio.Client(engine=engine, max_attempts=1, total_timeout=5, connect_timeout=3)
    with pytest.raises(S3dlioError) as info:  # no such account: its host does not resolve
        client.stat(f"https://{NOWHERE}.blob.core.windows.net/cont/key")
    assert capture.requests == []
    assert f"https://{NOWHERE}.blob.core.windows.net" in str(info.value)
    assert "SIGxx" not in str(info.value) and AZURITE_KEY not in str(info.value)


# -- Azure: credentials stay with their account --------------------------------------------------
@pytest.mark.parametrize(
    "credentials",
    [
        {"AZURE_STORAGE_CONNECTION_STRING": f"AccountName=myacct;SharedAccessSignature={SAS}"},
        {"AZURE_STORAGE_CONNECTION_STRING": f"BlobEndpoint=https://myacct.blob.core.windows.net;SharedAccessSignature={SAS}"},
        {"AZURE_STORAGE_CONNECTION_STRING": f"AccountName=myacct;AccountKey={AZURITE_KEY}"},
        {"AZURE_STORAGE_ACCOUNT_NAME": "myacct", "AZURE_STORAGE_ACCOUNT_KEY": AZURITE_KEY},
    ],
    ids=["sas-accountname", "sas-blobendpoint", "key-connection-string", "key-and-name"],
)  # fmt: skip
@pytest.mark.parametrize("engine", ENGINES)
def test_a_uri_naming_another_account_gets_no_credentials(
    azure_env: pytest.MonkeyPatch, credentials: dict[str, str], engine: str
) -> None:
    for name, value in credentials.items():
        azure_env.setenv(name, value)
    client = s3dlio.Client(engine=engine, max_attempts=1)
    with pytest.raises(ConfigError) as info:
        client.stat(f"https://{NOWHERE}.blob.core.windows.net/public/data.bin")
    text = str(info.value)
    assert "'myacct'" in text and f"'{NOWHERE}'" in text
    assert "SIGxx" not in text and AZURITE_KEY not in text
    # anonymous access, asked for, may go anywhere: the store opens without credentials
    anonymous = Config.resolve(engine=engine, unsigned=True)
    open_store(parse(f"https://{NOWHERE}.blob.core.windows.net/public/data.bin"), anonymous)
    # and the account the credentials are for opens as before
    open_store(parse("https://myacct.blob.core.windows.net/cont/k"), Config.resolve(engine=engine))


# -- pickles carry only the secrets the user passed ------------------------------------------------
def test_pickles_leave_resolved_secrets_behind(azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> None:
    from s3dlio.fsspec import S3FileSystem

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "SECRETzzROUTING1")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "TOKENqqROUTING1")
    s3dlio.configure()
    resolved = {
        "Client()": s3dlio.Client(),
        "default_config()": s3dlio.config.default_config(),
        "S3FileSystem()": S3FileSystem(),
    }
    for name, value in resolved.items():
        data = pickle.dumps(value)
        for secret in (b"SECRETzzROUTING1", b"TOKENqqROUTING1", AZURITE_KEY.encode()):
            assert secret not in data, f"{name} pickles {secret!r}"
        assert pickle.loads(data) == value  # resolved again from this environment
    given = s3dlio.Client(secret_access_key="SECRETzzGIVEN2", azure_account_key=AZURITE_KEY)
    data = pickle.dumps(given)
    # passed explicitly: they travel, as in s3fs
    assert b"SECRETzzGIVEN2" in data and AZURITE_KEY.encode() in data
    assert pickle.loads(data) == given


def _get_in_worker(client: s3dlio.Client, uri: str) -> bytes:
    """Module level, so a spawned child can import it."""
    return bytes(memoryview(client.get(uri)))


@pytest.mark.parametrize("engine", ENGINES)
def test_a_spawned_worker_resolves_the_secret_again(az_container: str, engine: str) -> None:
    # Azurite checks signatures: the child can read only if it found the key itself
    client = s3dlio.Client(engine=engine)
    assert client.config.azure_account_key == AZURITE_KEY
    assert not client.config.is_explicit("azure_account_key")
    assert AZURITE_KEY.encode() not in pickle.dumps(client)
    client.put(f"{az_container}k", b"from the parent")
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        assert pool.apply(_get_in_worker, (client, f"{az_container}k")) == b"from the parent"
