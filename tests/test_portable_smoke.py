"""Quick checks of the portable engine's stores (s3, az, file, mem) and the O_DIRECT store.

The conformance suite covers the full (backend x engine) matrix; these tests build the stores
directly, against moto, Azurite and tmp_path, and look at what is specific to each.
"""

from __future__ import annotations

import errno
import mmap
import os
import pickle
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path

import numpy as np
import pytest
from servers import Azurite, MotoServer

from s3dlio.config import AZURITE_KEY, Config
from s3dlio.errors import (
    AlreadyExistsError,
    ConfigError,
    NotFoundError,
    PermissionDeniedError,
    S3dlioError,
    TransferError,
)
from s3dlio.store.base import ObjectMeta, Store

BACKENDS = ("s3", "az", "file", "direct", "mem")
MiB = 1024 * 1024


@dataclass
class Case:
    """A store and the key prefix a test may write under."""

    name: str
    store: Store
    base: str

    def key(self, *parts: str) -> str:
        return self.base + "/".join(parts)


def _nonce() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture(params=BACKENDS)
def case(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Case]:
    kind = request.param
    config = Config.resolve()
    if kind == "s3":
        from s3dlio.store.s3 import S3Store

        bucket = request.getfixturevalue("s3_bucket")
        store: Store = S3Store(bucket[5:].rstrip("/"), config)
        base = ""
    elif kind == "az":
        from s3dlio.store.azure import AzureStore

        container = request.getfixturevalue("az_container")
        store = AzureStore(container[5:].rstrip("/"), Config.resolve())
        base = ""
    elif kind == "file":
        from s3dlio.store.local import LocalStore

        store, base = LocalStore(config), str(tmp_path).lstrip("/") + "/"
    elif kind == "direct":
        from s3dlio.store.direct import DirectStore

        store, base = DirectStore(config), str(request.getfixturevalue("direct_dir")).lstrip("/") + "/"
    else:
        from s3dlio.store.memory import MemoryStore

        store, base = MemoryStore(f"smoke-{_nonce()}", config), ""
    yield Case(kind, store, base)
    store.close()


def _put_all(store: Store, keys: list[str]) -> None:
    """Put small objects from 16 threads: quicker on moto, and the stores must be thread-safe."""
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: store.put(k, b"v"), keys))


def _keys(items: list[ObjectMeta | str]) -> list[str]:
    return [i if isinstance(i, str) else i.key for i in items]


# -- reads and writes -----------------------------------------------------------------------------
def test_put_get_buffers(case: Case) -> None:
    k = case.key("obj")
    floats = np.arange(12, dtype=np.float32).reshape(3, 4)
    strided = memoryview(b"abcdef")[::2]
    for data in (
        b"hello",
        bytearray(b"bytearray"),
        memoryview(b"view"),
        floats,
        floats[:, ::2],
        floats.T,
        strided,
        b"",
    ):
        case.store.put(k, data)  # type: ignore[arg-type]
        expected = (
            np.ascontiguousarray(data).tobytes() if isinstance(data, np.ndarray) else bytes(data)
        )  # C order
        got = case.store.get(k)
        assert bytes(got) == expected
        assert np.frombuffer(got, dtype=np.uint8).nbytes == len(expected)


def test_get_range_edges(case: Case) -> None:
    s = case.store
    s.put(case.key("ten"), b"0123456789")
    s.put(case.key("empty"), b"")
    assert bytes(s.get_range(case.key("ten"), 2, 5)) == b"234"
    assert bytes(s.get_range(case.key("ten"), 5, 100)) == b"56789"
    assert bytes(s.get_range(case.key("ten"), 0, 10)) == b"0123456789"
    assert bytes(s.get_range(case.key("ten"), 3, 3)) == b""
    assert bytes(s.get_range(case.key("ten"), 10, 20)) == b""
    assert bytes(s.get_range(case.key("ten"), 20, 30)) == b""
    assert bytes(s.get_range(case.key("empty"), 0, 10)) == b""
    assert bytes(s.get_range(case.key("empty"), 5, 10)) == b""
    assert bytes(s.get(case.key("empty"))) == b""
    with pytest.raises(NotFoundError):
        s.get_range(case.key("missing"), 0, 1)
    with pytest.raises(NotFoundError):
        s.get_range(case.key("missing"), 1, 1)


def test_head(case: Case) -> None:
    s = case.store
    before = time.time()
    s.put(case.key("data.bin"), b"x" * 1234)
    meta = s.head(case.key("data.bin"))
    assert meta.key == case.key("data.bin") and meta.size == 1234
    assert meta.last_modified is not None and meta.last_modified.tzinfo is not None
    assert meta.last_modified.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert abs(meta.last_modified.timestamp() - before) < 120
    assert meta.content_type
    assert isinstance(meta.metadata, dict)
    if case.name != "mem":
        assert meta.etag
    s.put(case.key("data.bin"), b"y" * 10)
    assert s.head(case.key("data.bin")).size == 10
    for missing in ("missing", "nope/deeper"):
        with pytest.raises(NotFoundError) as info:
            s.head(case.key(missing))
        assert isinstance(info.value, FileNotFoundError)
        assert "not found" in str(info.value)


def test_missing_key(case: Case) -> None:
    with pytest.raises(NotFoundError, match="get .*missing"):
        case.store.get(case.key("missing"))
    case.store.delete(case.key("missing"))  # not an error
    assert case.store.delete_many([case.key("missing")]) == []


def test_list_many_sorted_and_delimited(case: Case) -> None:
    s = case.store
    count = {"az": 600}.get(case.name, 1100)  # S3 pages hold 1000
    names = [f"many/obj_{i}" for i in range(count)]
    _put_all(s, [case.key(n) for n in names])
    listed = list(s.list(case.key("many/")))
    assert _keys(listed) == sorted(case.key(n) for n in names)
    assert all(isinstance(m, ObjectMeta) and m.size == 1 for m in listed)
    # A path prefix, not a directory.
    assert len(list(s.list(case.key("many/obj_1")))) == len([n for n in names if n.startswith("many/obj_1")])
    for name in ("d/a/1", "d/a/2", "d/a.txt", "d/a0", "d/b", "d/c/x/y", "e/z"):
        s.put(case.key(name), b"v")
    assert _keys(list(s.list(case.key("d/"), delimiter=True))) == [
        case.key(k) for k in ("d/a.txt", "d/a/", "d/a0", "d/b", "d/c/")
    ]
    prefixes = [i for i in s.list(case.key("d/"), delimiter=True) if isinstance(i, str)]
    assert all(p.endswith("/") for p in prefixes)
    assert _keys(list(s.list(case.key("d/a"), delimiter=True))) == [
        case.key(k) for k in ("d/a.txt", "d/a/", "d/a0")
    ]
    assert _keys(list(s.list(case.key("d/")))) == [
        case.key(k) for k in ("d/a.txt", "d/a/1", "d/a/2", "d/a0", "d/b", "d/c/x/y")
    ]
    assert list(s.list(case.key("nothing-here/"))) == []
    assert list(s.list(case.key("nothing-here/deeper/x"), delimiter=True)) == []


def test_delete_and_delete_many(case: Case) -> None:
    s = case.store
    s.put(case.key("one"), b"1")
    s.delete(case.key("one"))
    with pytest.raises(NotFoundError):
        s.get(case.key("one"))
    count = 1200 if case.name != "direct" else 300  # two batches (1000 / 256)
    keys = [case.key(f"batch/{i:05d}") for i in range(count)]
    _put_all(s, keys)
    assert s.delete_many([*keys, case.key("batch/missing")]) == []
    assert list(s.list(case.key("batch/"))) == []


@pytest.mark.parametrize("name", ["with space", "ünïcødé/日本", "a+b", "100%", "%20", "q?x=1&y", "tab\tx"])
def test_odd_keys(case: Case, name: str) -> None:
    if "\t" in name and case.name == "az":
        pytest.skip("Azure blob names cannot hold control characters")
    s, k = case.store, case.key("odd", name)
    s.put(k, name.encode())
    assert bytes(s.get(k)) == name.encode()
    assert s.head(k).size == len(name.encode())
    assert _keys(list(s.list(case.key("odd/")))) == [k]
    s.delete(k)
    assert list(s.list(case.key("odd/"))) == []


def test_large_object(case: Case) -> None:
    data = np.random.default_rng(0).integers(0, 255, 50 * MiB + 3, dtype=np.uint8)
    k = case.key("big")
    case.store.put(k, data)
    got = case.store.get(k)
    assert np.array_equal(np.frombuffer(got, dtype=np.uint8), data)
    assert (
        bytes(case.store.get_range(k, 30 * MiB + 1, 30 * MiB + 4100))
        == data[30 * MiB + 1 : 30 * MiB + 4100].tobytes()
    )
    assert case.store.head(k).size == data.size


def test_pickles(case: Case) -> None:
    case.store.put(case.key("p"), b"pickled")
    clone = pickle.loads(pickle.dumps(case.store))
    assert bytes(clone.get(case.key("p"))) == b"pickled"
    assert clone.scheme == case.store.scheme and clone.endpoint == case.store.endpoint


# -- buckets --------------------------------------------------------------------------------------
@pytest.fixture(params=["s3", "az", "mem"])
def fresh_bucket_store(request: pytest.FixtureRequest) -> Store:
    name = f"smoke{_nonce()}"
    if request.param == "s3":
        request.getfixturevalue("moto_server")
        from s3dlio.store.s3 import S3Store

        return S3Store(name, Config.resolve())
    if request.param == "az":
        request.getfixturevalue("azurite")
        from s3dlio.store.azure import AzureStore

        return AzureStore(name, Config.resolve())
    from s3dlio.store.memory import MemoryStore

    return MemoryStore(name, Config.resolve())


def test_bucket_lifecycle(fresh_bucket_store: Store) -> None:
    s = fresh_bucket_store
    with pytest.raises(NotFoundError):
        s.delete_bucket()
    if s.scheme != "mem":  # memory stores spring into existence on put
        with pytest.raises(NotFoundError, match="does not exist"):
            s.put("k", b"v")
        with pytest.raises(NotFoundError):
            list(s.list(""))
    with pytest.raises(NotFoundError):
        s.get("k")
    s.create_bucket()
    assert s.bucket in s.list_buckets()
    with pytest.raises(AlreadyExistsError):
        s.create_bucket()
    s.put("k", b"v")
    with pytest.raises(S3dlioError, match="not empty") as info:
        s.delete_bucket()
    assert not isinstance(info.value, NotFoundError | AlreadyExistsError)
    s.delete("k")
    s.delete_bucket()
    assert s.bucket not in s.list_buckets()


# -- errors ---------------------------------------------------------------------------------------
def test_s3_unreachable_endpoint_fails_fast() -> None:
    from s3dlio.store.s3 import S3Store

    store = S3Store("bucket", Config.resolve(endpoint_url="http://127.0.0.1:1"))
    start = time.monotonic()
    with pytest.raises(TransferError, match="could not connect"):
        store.get("k")
    assert time.monotonic() - start < 15


def test_azure_unreachable_endpoint_fails_fast(azurite: object) -> None:
    from s3dlio.store.azure import AzureStore

    config = Config.resolve(azure_endpoint="http://127.0.0.1:1/devstoreaccount1")
    start = time.monotonic()
    with pytest.raises(TransferError, match="could not connect"):
        AzureStore("container", config).get("k")
    assert time.monotonic() - start < 15


def test_azure_wrong_key(az_container: str) -> None:
    from s3dlio.store.azure import AzureStore

    wrong = "A" * 10 + AZURITE_KEY[10:]
    store = AzureStore(az_container[5:].rstrip("/"), Config.resolve(azure_account_key=wrong))
    with pytest.raises(PermissionDeniedError) as info:
        store.get("k")
    assert wrong not in str(info.value) and "AZURE_STORAGE_ACCOUNT_KEY" in str(info.value)


def test_azure_needs_account() -> None:
    from s3dlio.store.azure import AzureStore

    config = Config(azure_account_name=None)
    with pytest.raises(ConfigError, match="AZURE_STORAGE_ACCOUNT_NAME"):
        AzureStore("container", config)


def test_s3_error_messages_name_the_uri(s3_bucket: str) -> None:
    from s3dlio.store.s3 import S3Store

    store = S3Store(s3_bucket[5:].rstrip("/"), Config.resolve())
    with pytest.raises(NotFoundError) as info:
        store.get("dir/missing")
    assert str(info.value) == f"get {s3_bucket}dir/missing: not found"
    assert info.value.__cause__ is not None


def test_s3_untrusted_certificate(tmp_path: Path) -> None:
    """A TLS endpoint whose CA is not trusted: TransferError naming AWS_CA_BUNDLE_PATH (as on obstore)."""
    import http.server
    import ssl
    import threading

    trustme = pytest.importorskip("trustme")
    from s3dlio.store.s3 import S3Store

    ca = trustme.CA()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        endpoint = f"https://127.0.0.1:{server.server_address[1]}"
        with pytest.raises(TransferError, match="certificate verify failed.*AWS_CA_BUNDLE_PATH"):
            S3Store("bucket", Config.resolve(endpoint_url=endpoint, max_attempts=1)).get("k")
    finally:
        server.shutdown()


# -- files ----------------------------------------------------------------------------------------
def test_local_put_is_atomic_and_clean(tmp_path: Path) -> None:
    from s3dlio.store.local import TMP_PREFIX, LocalStore

    store = LocalStore(Config.resolve())
    key = str(tmp_path / "a" / "b" / "c.npy").lstrip("/")
    store.put(key, b"first")
    store.put(key, b"second")
    assert (tmp_path / "a/b/c.npy").read_bytes() == b"second"
    assert os.listdir(tmp_path / "a/b") == ["c.npy"]
    (tmp_path / "a/b" / f"{TMP_PREFIX}123").write_bytes(b"in progress")
    (tmp_path / "a/empty/deeper").mkdir(parents=True)
    base = str(tmp_path).lstrip("/") + "/"
    assert _keys(list(store.list(base))) == [key]
    assert _keys(list(store.list(base + "a/", delimiter=True))) == [base + "a/b/"]
    assert store.head(key).content_type == "application/octet-stream" or store.head(key).content_type
    assert store.head(base + "a/b/c.npy").last_modified.tzinfo is UTC  # type: ignore[union-attr]
    with pytest.raises(NotFoundError, match="directory"):
        store.get(base + "a/b")
    with pytest.raises(NotFoundError):
        store.head(base + "a/b")
    with pytest.raises(AlreadyExistsError):
        store.put(base + "a/b/c.npy/under-a-file", b"x")
    store.put(base + "marker/", b"")  # S3's empty folder marker: a directory
    assert (tmp_path / "marker").is_dir()
    store.delete(base + "marker/")
    assert not (tmp_path / "marker").exists()
    store.delete(base + "a/")  # not empty: stays, as its objects do
    assert (tmp_path / "a/b/c.npy").exists()


def test_direct_sizes_and_alignment(direct_dir: Path) -> None:
    from s3dlio.store.direct import ALIGN, DirectStore

    store = DirectStore(Config.resolve())
    base = str(direct_dir).lstrip("/") + "/"
    rng = np.random.default_rng(1)
    for size in (0, 1, ALIGN - 1, ALIGN, ALIGN + 1, 3 * MiB + 5, 9 * MiB):
        data = rng.integers(0, 255, size, dtype=np.uint8).tobytes()
        store.put(base + f"s{size}", data)
        assert (direct_dir / f"s{size}").read_bytes() == data
        assert bytes(store.get(base + f"s{size}")) == data
        for start, end in ((1, 5000), (ALIGN - 1, ALIGN + 1), (size // 2, size + 10)):
            assert bytes(store.get_range(base + f"s{size}", start, end)) == data[start:end]
    aligned = mmap.mmap(-1, 2 * MiB + 100)  # page-aligned source: written without staging
    aligned[:] = rng.integers(0, 255, len(aligned), dtype=np.uint8).tobytes()
    store.put(base + "aligned", aligned)
    assert (direct_dir / "aligned").read_bytes() == aligned[:]
    assert store.endpoint == "direct://" and store.engine == "direct"


def test_direct_without_o_direct_support(direct_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from s3dlio.store.direct import DirectStore

    real_open = os.open

    def tmpfs_open(path: str, flags: int, *args: int) -> int:
        if flags & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument", path)
        return real_open(path, flags, *args)

    store = DirectStore(Config.resolve())
    key = str(direct_dir / "x").lstrip("/")
    store.put(key, b"data")
    monkeypatch.setattr(os, "open", tmpfs_open)
    for call in (lambda: store.put(key, b"data"), lambda: store.get(key)):
        with pytest.raises(ConfigError, match="O_DIRECT support .*file://"):
            call()
    assert sorted(os.listdir(direct_dir)) == ["x"]  # no temporary file left behind


# -- memory ---------------------------------------------------------------------------------------
def test_memory_copies_on_put_and_shares_on_get() -> None:
    from s3dlio.store.memory import MemoryStore

    store = MemoryStore(f"zc-{_nonce()}", Config.resolve())
    source = bytearray(b"abc")
    store.put("k", source)
    source[0] = ord("X")
    first, second = store.get("k"), store.get("k")
    assert bytes(first) == b"abc"
    assert isinstance(first, memoryview) and first.readonly
    assert first.obj is second.obj  # both views of the one stored object: no copy
    assert MemoryStore(store.bucket, store.config).get("k").obj is first.obj  # process-wide by name


# -- fork -----------------------------------------------------------------------------------------
def test_s3_store_works_in_forked_child(s3_bucket: str) -> None:
    from s3dlio.store.s3 import S3Store

    store = S3Store(s3_bucket[5:].rstrip("/"), Config.resolve())
    store.put("parent", b"p")
    pid = os.fork()
    if pid == 0:  # child: its own client, built on first use
        code = 1
        try:
            store.put("child", bytes(store.get("parent")) + b"c")
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert bytes(store.get("child")) == b"pc"


# -- full metadata --------------------------------------------------------------------------------
def test_s3_head_reports_service_metadata(moto_server: MotoServer, s3_bucket: str) -> None:
    from s3dlio.store.s3 import S3Store

    bucket = s3_bucket[5:].rstrip("/")
    moto_server.client().put_object(
        Bucket=bucket,
        Key="m",
        Body=b"abc",
        ContentType="text/plain",
        ContentLanguage="en",
        Metadata={"owner": "team-a"},
        StorageClass="STANDARD_IA",
        ServerSideEncryption="AES256",
    )
    meta = S3Store(bucket, Config.resolve()).head("m")
    assert (meta.content_type, meta.content_language, meta.metadata) == (
        "text/plain",
        "en",
        {"owner": "team-a"},
    )
    assert (meta.storage_class, meta.server_side_encryption) == ("STANDARD_IA", "AES256")
    assert meta.etag == '"900150983cd24fb0d6963f7d28e17f72"'  # as S3 sends it: quoted MD5


def test_azure_head_reports_service_metadata(azurite: Azurite, az_container: str) -> None:
    from azure.storage.blob import ContentSettings

    from s3dlio.store.azure import AzureStore

    container = az_container[5:].rstrip("/")
    azurite.client().get_container_client(container).upload_blob(
        "m",
        b"abc",
        metadata={"owner": "team-a"},
        content_settings=ContentSettings(content_type="text/plain", content_language="en"),
    )
    meta = AzureStore(container, Config.resolve()).head("m")
    assert (meta.content_type, meta.content_language, meta.metadata) == (
        "text/plain",
        "en",
        {"owner": "team-a"},
    )
    assert meta.storage_class == "Hot" and meta.etag and meta.size == 3
