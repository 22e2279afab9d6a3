"""Smoke tests of the fast (obstore) engine against moto, Azurite, temp files and memory.

The servers are the session's own (``tests/servers.py`` through the ``moto_server`` and
``azurite`` fixtures); the stores are opened directly with explicit settings.
"""

from __future__ import annotations

import copy
import os
import pickle
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from servers import Azurite, MotoServer

from s3dlio.config import AZURITE_ACCOUNT, AZURITE_KEY, Config
from s3dlio.errors import (
    AlreadyExistsError,
    ConfigError,
    InvalidUriError,
    NotFoundError,
    PermissionDeniedError,
    S3dlioError,
    TransferError,
)
from s3dlio.store import engine
from s3dlio.store.base import ObjectMeta, Store
from s3dlio.store.fast import FastStore, open_fast_store
from s3dlio.uri import ObjectUri

MiB = 1024 * 1024
BACKENDS = ["s3", "az", "file", "mem"]


@pytest.fixture(scope="module")
def moto_endpoint(moto_server: MotoServer) -> str:
    """The session's moto server (``tests/servers.py``)."""
    return moto_server.endpoint


@pytest.fixture(scope="module")
def azurite_endpoint(azurite: Azurite) -> str:
    """The session's Azurite (``tests/servers.py``): ``http://127.0.0.1:PORT/devstoreaccount1``."""
    return azurite.endpoint


def _s3_config(endpoint: str, **extra: Any) -> Config:
    return Config(
        endpoint_url=endpoint,
        region="us-east-1",
        access_key_id="testing",
        secret_access_key="testing",
        **extra,
    )


def _az_config(endpoint: str, key: str = AZURITE_KEY) -> Config:
    return Config(azure_account_name=AZURITE_ACCOUNT, azure_account_key=key, azure_endpoint=endpoint)


def _bucket_name() -> str:
    return f"t{uuid.uuid4().hex[:20]}"


class Env:
    """A store on a fresh bucket, the prefix tests write under, and a native client."""

    def __init__(self, backend: str, store: Store, base: str, native: Any = None) -> None:
        self.backend, self.store, self.base, self.native = backend, store, base, native


@pytest.fixture(params=BACKENDS)
def env(request: pytest.FixtureRequest, tmp_path: Any) -> Env:
    backend = request.param
    if backend == "s3":
        import boto3

        endpoint = request.getfixturevalue("moto_endpoint")
        bucket = _bucket_name()
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        client.create_bucket(Bucket=bucket)
        return Env(
            backend, open_fast_store(ObjectUri("s3", bucket, ""), _s3_config(endpoint)), "", (client, bucket)
        )
    if backend == "az":
        from azure.storage.blob import BlobServiceClient

        endpoint = request.getfixturevalue("azurite_endpoint")
        container = _bucket_name()
        service = BlobServiceClient(
            endpoint, credential={"account_name": AZURITE_ACCOUNT, "account_key": AZURITE_KEY}
        )
        service.create_container(container)
        store = open_fast_store(ObjectUri("az", container, ""), _az_config(endpoint))
        return Env(backend, store, "", service.get_container_client(container))
    if backend == "file":
        return Env(
            backend, open_fast_store(ObjectUri("file", "", ""), Config()), str(tmp_path).lstrip("/") + "/"
        )
    return Env(backend, open_fast_store(ObjectUri("mem", _bucket_name(), ""), Config()), "")


# -- reads and writes -------------------------------------------------------------------------
def test_marks_fast_engine_started(env: Env) -> None:
    assert engine.fast_started_here()
    assert env.store.engine == "fast" and env.store.scheme == env.backend


def test_put_get_roundtrip_returns_zero_copy_buffer(env: Env) -> None:
    env.store.put(env.base + "a/b.bin", b"hello world")
    data = env.store.get(env.base + "a/b.bin")
    assert bytes(data) == b"hello world"
    assert np.frombuffer(data, dtype=np.uint8).tobytes() == b"hello world"


@pytest.mark.parametrize("end", [3, 11, 12, 1000])
def test_get_range_clips_end(env: Env, end: int) -> None:
    env.store.put(env.base + "r", b"0123456789A")
    assert bytes(env.store.get_range(env.base + "r", 1, end)) == b"0123456789A"[1:end]


@pytest.mark.parametrize("start", [11, 12, 500])
def test_get_range_from_past_end_is_empty(env: Env, start: int) -> None:
    env.store.put(env.base + "r", b"0123456789A")
    assert bytes(env.store.get_range(env.base + "r", start, start + 10)) == b""
    assert bytes(env.store.get_range(env.base + "r", 4, 4)) == b""


def test_empty_object(env: Env) -> None:
    env.store.put(env.base + "empty", b"")
    assert bytes(env.store.get(env.base + "empty")) == b""
    assert bytes(env.store.get_range(env.base + "empty", 0, 10)) == b""
    assert env.store.head(env.base + "empty").size == 0


@pytest.mark.slow
def test_50_mib_object_multipart(env: Env) -> None:
    data = np.random.default_rng(1).integers(0, 256, 50 * MiB, dtype=np.uint8)
    env.store.put(env.base + "big", data)
    got = env.store.get(env.base + "big")
    assert len(got) == data.nbytes and np.array_equal(np.frombuffer(got, dtype=np.uint8), data)
    tail = env.store.get_range(env.base + "big", 50 * MiB - 10, 60 * MiB)
    assert bytes(tail) == data[-10:].tobytes()


@pytest.mark.parametrize("key", ["a b/c d.txt", "ünï/cödé", "p+q", "r%20s", "t%u", "x=y&z", "~!@$()[];,"])
def test_keys_are_literal(env: Env, key: str) -> None:
    env.store.put(env.base + key, key.encode())
    assert bytes(env.store.get(env.base + key)) == key.encode()
    listed = [m.key for m in env.store.list(env.base) if isinstance(m, ObjectMeta)]
    assert listed == [env.base + key]
    if env.backend == "s3":
        client, bucket = env.native
        assert [o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]] == [key]
    if env.backend == "file":
        with open("/" + env.base + key, "rb") as f:
            assert f.read() == key.encode()
    env.store.delete(env.base + key)
    with pytest.raises(NotFoundError):
        env.store.get(env.base + key)


@pytest.mark.parametrize("key", ["", "a//b", "dir/", "/lead", "a/./b", "../x"])
def test_keys_obstore_cannot_address_are_refused(env: Env, key: str) -> None:
    with pytest.raises(InvalidUriError):
        env.store.put(key, b"x")
    if key == "dir/" and env.backend != "mem":  # a folder marker (zero bytes), served by the portable
        with pytest.raises(NotFoundError):  # store: tests/conformance/test_folder_markers.py
            env.store.get(env.base + key)
        return
    with pytest.raises(InvalidUriError):
        env.store.get(key)


def test_put_accepts_any_buffer(env: Env) -> None:
    arr = np.arange(12, dtype=np.int32).reshape(3, 4)
    env.store.put(env.base + "i32", arr)
    assert bytes(env.store.get(env.base + "i32")) == arr.tobytes()
    env.store.put(env.base + "strided", arr[:, ::2])  # not contiguous: copied once
    assert bytes(env.store.get(env.base + "strided")) == arr[:, ::2].tobytes()
    env.store.put(env.base + "ba", bytearray(b"abc"))
    env.store.put(env.base + "mv", memoryview(b"xyz123")[2:])
    assert bytes(env.store.get(env.base + "mv")) == b"z123"


def test_later_changes_to_the_callers_buffer_do_not_change_the_object(env: Env) -> None:
    arr = np.zeros(100, dtype=np.uint8)
    env.store.put(env.base + "alias", arr)
    arr[:] = 7
    assert bytes(env.store.get(env.base + "alias")) == bytes(100)


def test_missing_key_is_not_found(env: Env) -> None:
    for call in (
        lambda: env.store.get(env.base + "nope"),
        lambda: env.store.get_range(env.base + "nope", 0, 5),
        lambda: env.store.get_range(env.base + "nope", 3, 3),
        lambda: env.store.head(env.base + "nope"),
    ):
        with pytest.raises(NotFoundError, match="nope: not found"):
            call()
    env.store.delete(env.base + "nope")  # deleting a missing key is not an error


# -- metadata ---------------------------------------------------------------------------------
def test_head_returns_full_metadata(env: Env) -> None:
    key = env.base + "meta.txt"
    if env.backend == "s3":
        client, bucket = env.native
        client.put_object(
            Bucket=bucket,
            Key=key,
            Body=b"hello",
            ContentType="text/plain",
            ContentLanguage="en",
            Metadata={"Foo": "bar"},
        )
    elif env.backend == "az":
        from azure.storage.blob import ContentSettings

        env.native.upload_blob(
            key,
            b"hello",
            metadata={"foo": "bar"},
            content_settings=ContentSettings("text/plain", content_language="en"),
        )
    else:
        env.store.put(key, b"hello")
    meta = env.store.head(key)
    assert (meta.key, meta.size) == (key, 5)
    assert isinstance(meta.last_modified, datetime) and meta.last_modified.utcoffset() is not None
    assert abs(meta.last_modified.timestamp() - time.time()) < 300
    assert meta.etag and meta.etag.startswith('"')
    if env.backend in ("s3", "az"):
        assert (meta.content_type, meta.content_language) == ("text/plain", "en")
        assert meta.metadata == {"foo": "bar"}
    listed = next(m for m in env.store.list(env.base) if isinstance(m, ObjectMeta))
    assert (listed.key, listed.size, listed.etag) == (key, 5, meta.etag)


# -- listing ----------------------------------------------------------------------------------
def test_list_past_1000_keys_streams_pages(env: Env) -> None:
    keys = [f"{env.base}many/k{i:05d}" for i in range(1100)]  # S3 pages hold 1000
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: env.store.put(k, b"x"), keys))
    stream = env.store.list(env.base + "many/")
    first = next(stream)
    assert isinstance(first, ObjectMeta)
    rest = [m.key for m in stream if isinstance(m, ObjectMeta)]
    assert sorted([first.key, *rest]) == keys
    assert len(env.store.delete_many(keys)) == 0
    assert list(env.store.list(env.base + "many/")) == []


def test_list_prefix_is_a_string_prefix_and_delimiter_folds(env: Env) -> None:
    b = env.base
    for key in ["data/x", "data/fa", "data/fib", "data/fic/z", "data/f/q", "datb", "data2/q", "zz"]:
        env.store.put(b + key, b"1")

    def keys(prefix: str, delimiter: bool = False) -> list[str]:
        return sorted(
            m if isinstance(m, str) else m.key for m in env.store.list(b + prefix, delimiter=delimiter)
        )

    assert keys("data/f") == [b + k for k in ["data/f/q", "data/fa", "data/fib", "data/fic/z"]]
    assert keys("dat") == [
        b + k for k in ["data/f/q", "data/fa", "data/fib", "data/fic/z", "data/x", "data2/q", "datb"]
    ]
    assert keys("data/") == [b + k for k in ["data/f/q", "data/fa", "data/fib", "data/fic/z", "data/x"]]
    assert keys("data/f", True) == [b + k for k in ["data/f/", "data/fa", "data/fib", "data/fic/"]]
    assert keys("data/", True) == [b + k for k in ["data/f/", "data/fa", "data/fib", "data/fic/", "data/x"]]
    assert keys("", True) == [b + k for k in ["data/", "data2/", "datb", "zz"]]
    assert keys("nothing/") == [] and keys("nothing/", True) == [] and keys("q") == []


@pytest.mark.parametrize("prefix", ["d/.", "d/.h", "d/0", "d/%", "d/ü"])
def test_partial_prefixes_with_awkward_last_characters(env: Env, prefix: str) -> None:
    keys = ["d/.h", "d/.i/x", "d/0", "d/-", "d/%z", "d/ü1", "d/zz"]
    for key in keys:
        env.store.put(env.base + key, b"1")
    listed = sorted(m.key for m in env.store.list(env.base + prefix) if isinstance(m, ObjectMeta))
    assert listed == sorted(env.base + k for k in keys if k.startswith(prefix))


# -- deletes ----------------------------------------------------------------------------------
def test_delete_many_with_missing_and_invalid_keys(env: Env) -> None:
    keys = [f"{env.base}d/{i}" for i in range(30)]
    for key in keys[:20]:
        env.store.put(key, b"1")
    failures = env.store.delete_many([*keys, env.base + "bad//key"])
    assert [f.key for f in failures] == [env.base + "bad//key"]
    assert isinstance(failures[0].error, InvalidUriError)
    assert list(env.store.list(env.base + "d/")) == []


# -- service errors ---------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["s3", "az"])
def test_missing_bucket_is_not_found(request: pytest.FixtureRequest, backend: str) -> None:
    if backend == "s3":
        config = _s3_config(request.getfixturevalue("moto_endpoint"))
    else:
        config = _az_config(request.getfixturevalue("azurite_endpoint"))
    store = open_fast_store(ObjectUri(backend, "nosuchbucket1", ""), config)  # type: ignore[arg-type]
    for call in (
        lambda: store.get("k"),
        lambda: store.put("k", b"1"),
        lambda: list(store.list("")),
        lambda: store.delete("k"),
        lambda: store.delete_many(["k", "j"]),
    ):
        with pytest.raises(NotFoundError, match="nosuchbucket1"):
            call()
    with pytest.raises(NotFoundError):
        store.head("k")


@pytest.mark.parametrize("backend", ["s3", "az"])
def test_bucket_create_list_delete_through_the_portable_store(
    request: pytest.FixtureRequest, backend: str
) -> None:
    if backend == "s3":
        config = _s3_config(request.getfixturevalue("moto_endpoint"))
    else:
        config = _az_config(request.getfixturevalue("azurite_endpoint"))
    name = _bucket_name()
    store = open_fast_store(ObjectUri(backend, name, ""), config)  # type: ignore[arg-type]
    store.create_bucket()
    assert name in store.list_buckets()
    with pytest.raises(AlreadyExistsError):
        store.create_bucket()
    store.put("k", b"v")
    store.delete("k")
    store.delete_bucket()
    assert name not in store.list_buckets()
    with pytest.raises(NotFoundError):
        store.delete_bucket()


def test_wrong_azure_key_is_permission_denied(azurite_endpoint: str) -> None:
    store = open_fast_store(
        ObjectUri("az", "anycontainer", ""), _az_config(azurite_endpoint, key="QUJDREVGR0g=")
    )
    for call in (
        lambda: store.get("k"),
        lambda: store.put("k", b"1"),
        lambda: list(store.list("")),
        lambda: store.head("k"),
    ):
        with pytest.raises(PermissionDeniedError, match="access denied") as info:
            call()
        assert "QUJDREVGR0g" not in str(info.value)


def test_azure_connection_string_and_https_account_form(azurite_endpoint: str) -> None:
    conn = (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"BlobEndpoint={azurite_endpoint};"
    )
    from azure.storage.blob import BlobServiceClient

    BlobServiceClient.from_connection_string(conn).create_container("connstr")
    store = open_fast_store(ObjectUri("az", "connstr", ""), Config(azure_connection_string=conn))
    store.put("k", b"v")
    assert bytes(store.get("k")) == b"v"
    # a key bound to one account is never sent to another that a URL-form URI names
    config = Config(
        azure_account_name="someoneelse", azure_account_key=AZURITE_KEY, azure_endpoint=azurite_endpoint
    )
    with pytest.raises(ConfigError, match="'someoneelse'.*'devstoreaccount1'") as info:
        open_fast_store(ObjectUri("az", "connstr", "", account=AZURITE_ACCOUNT), config)
    assert AZURITE_KEY not in str(info.value)


def test_unreachable_endpoint_fails_fast() -> None:
    store = open_fast_store(ObjectUri("s3", "bucket", ""), _s3_config("http://127.0.0.1:1"))
    start = time.monotonic()
    with pytest.raises(TransferError, match=r"cannot reach http://127\.0\.0\.1:1"):
        store.get("k")
    assert time.monotonic() - start < 15


def test_stalled_server_times_out() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # accepts connections, never answers
    try:
        config = _s3_config(
            f"http://127.0.0.1:{listener.getsockname()[1]}", request_timeout=0.5, max_attempts=2
        )
        store = open_fast_store(ObjectUri("s3", "bucket", ""), config)
        start = time.monotonic()
        with pytest.raises(TransferError, match="timed out"):
            store.get("k")
        assert time.monotonic() - start < 10
    finally:
        listener.close()


def test_credentials_from_a_profile(
    moto_endpoint: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    credentials = tmp_path / "credentials"
    credentials.write_text("[p1]\naws_access_key_id = fromprofile\naws_secret_access_key = fromprofile\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        aws_access_key_id="t",
        aws_secret_access_key="t",
        region_name="us-east-1",
    ).create_bucket(Bucket="profilebucket")
    store = open_fast_store(
        ObjectUri("s3", "profilebucket", ""), Config(endpoint_url=moto_endpoint, profile="p1")
    )
    store.put("k", b"v")
    assert bytes(store.get("k")) == b"v"
    with pytest.raises(ConfigError, match="nosuchprofile"):
        open_fast_store(
            ObjectUri("s3", "profilebucket", ""), Config(endpoint_url=moto_endpoint, profile="nosuchprofile")
        )


# -- TLS ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def https_moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    trustme = pytest.importorskip("trustme")
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    ca = trustme.CA()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    server = make_server(
        "127.0.0.1", 0, DomainDispatcherApplication(create_backend_app), True, ssl_context=context
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    bundle = tmp_path_factory.mktemp("ca") / "private-ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    yield f"https://127.0.0.1:{server.server_port}", str(bundle)
    server.shutdown()


def test_private_ca_bundle_is_trusted(https_moto: tuple[str, str], tmp_path: Any) -> None:
    import boto3

    endpoint, bundle = https_moto
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        verify=bundle,
        aws_access_key_id="t",
        aws_secret_access_key="t",
        region_name="us-east-1",
    ).create_bucket(Bucket="tlsbucket")
    store = open_fast_store(ObjectUri("s3", "tlsbucket", ""), _s3_config(endpoint, ca_bundle=bundle))
    store.put("k", b"secure")
    assert bytes(store.get("k")) == b"secure"
    # The system bundle plus the private CA (what AWS_CA_BUNDLE_PATH usually points at) works too.
    combined = tmp_path / "combined.pem"
    system = "/etc/ssl/certs/ca-certificates.crt"
    system_pem = Path(system).read_text() if os.path.exists(system) else ""
    combined.write_text(system_pem + Path(bundle).read_text())
    store = open_fast_store(ObjectUri("s3", "tlsbucket", ""), _s3_config(endpoint, ca_bundle=str(combined)))
    assert bytes(store.get("k")) == b"secure"


def test_a_bundle_without_certificates_is_a_config_error(tmp_path: Any) -> None:
    bundle = tmp_path / "bad.pem"
    bundle.write_text("not a certificate")
    with pytest.raises(ConfigError, match="no PEM certificate"):
        open_fast_store(ObjectUri("s3", "b", ""), _s3_config("https://127.0.0.1:1", ca_bundle=str(bundle)))


@pytest.mark.parametrize("system_bundle", [False, True])
def test_untrusted_certificate_names_the_fix(https_moto: tuple[str, str], system_bundle: bool) -> None:
    endpoint, _ = https_moto
    system = "/etc/ssl/certs/ca-certificates.crt"
    if system_bundle and not os.path.exists(system):
        pytest.skip("no system CA bundle")
    store = open_fast_store(
        ObjectUri("s3", "tlsbucket", ""), _s3_config(endpoint, ca_bundle=system if system_bundle else None)
    )
    with pytest.raises(TransferError, match="certificate verification failed.*AWS_CA_BUNDLE_PATH") as caught:
        store.get("k")
    assert "attempts" not in str(caught.value)  # the same certificate fails every attempt: not retried


# -- in-process details ------------------------------------------------------------------------
def test_mem_stores_are_shared_by_name_and_spring_up_on_put() -> None:
    name = _bucket_name()
    a = open_fast_store(ObjectUri("mem", name, ""), Config())
    b = open_fast_store(ObjectUri("mem", name, ""), Config())
    assert name not in a.list_buckets()
    a.put("k", b"v")
    assert bytes(b.get("k")) == b"v" and b.head("k").content_type == "application/octet-stream"
    assert name in b.list_buckets()
    with pytest.raises(AlreadyExistsError):
        b.create_bucket()
    with pytest.raises(S3dlioError, match="not empty"):
        b.delete_bucket()
    a.delete("k")
    b.delete_bucket()
    assert name not in a.list_buckets()
    with pytest.raises(NotFoundError):
        a.delete_bucket()
    a.create_bucket()
    assert name in a.list_buckets()


def test_file_list_of_missing_directory_is_empty(tmp_path: Any) -> None:
    store = open_fast_store(ObjectUri("file", "", ""), Config())
    base = str(tmp_path).lstrip("/")
    assert list(store.list(base + "/missing/")) == []
    assert list(store.list(base + "/missing/", delimiter=True)) == []
    store.put(base + "/deep/er/file", b"x")  # parent directories are created
    assert (tmp_path / "deep" / "er" / "file").read_bytes() == b"x"


def test_store_copies_and_pickles_by_reopening(env: Env) -> None:
    if env.backend == "file":
        pytest.skip("file store has no bucket to keep")
    env.store.put(env.base + "k", b"v")
    for clone in (copy.copy(env.store), copy.deepcopy(env.store), pickle.loads(pickle.dumps(env.store))):
        assert isinstance(clone, FastStore) and clone.bucket == env.store.bucket
        assert bytes(clone.get(env.base + "k")) == b"v"
