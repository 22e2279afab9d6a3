"""Every operation of :mod:`s3dlio.ops` against every (backend x engine).

The ``backend`` fixture (tests/conftest.py) gives each test a fresh bucket, container or
directory (``backend.base``, ending in ``/``) and configures the engine. Expected behaviour is
the same for all of them; where a backend legitimately has no value (an ETag of a local file)
the test says so.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from servers import Backend

import s3dlio
from s3dlio.errors import AlreadyExistsError, InvalidArgumentError, InvalidUriError, NotFoundError
from s3dlio.ops import resolve

from ._helpers import SPECIAL_KEYS, MiB, assert_bytes, payload

META_FIELDS = (
    "size",
    "last_modified",
    "etag",
    "content_type",
    "content_language",
    "storage_class",
    "metadata",
    "version_id",
    "replication_status",
    "server_side_encryption",
    "ssekms_key_id",
)


@pytest.fixture
def local(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local scratch directory outside ``backend.base`` (file:// bases live in tmp_path)."""
    return tmp_path_factory.mktemp("local")


def put_tree(backend: Backend, keys: dict[str, bytes]) -> None:
    s3dlio.put_many((backend.uri(k), v) for k, v in keys.items())


def rel(backend: Backend, uris: list[str]) -> list[str]:
    """URIs relative to ``backend.base``, sorted."""
    assert all(u.startswith(backend.base) for u in uris), uris
    return sorted(u[len(backend.base) :] for u in uris)


# -- put / get ---------------------------------------------------------------------------------
def test_put_get_roundtrip(backend: Backend) -> None:
    uri = backend.uri("dir", "hello.txt")
    s3dlio.put(uri, b"hello world")
    assert bytes(s3dlio.get(uri)) == b"hello world"
    assert s3dlio.exists(uri)
    assert s3dlio.stat(uri).size == 11
    s3dlio.put(uri, b"replaced")  # put replaces
    assert bytes(s3dlio.get(uri)) == b"replaced"


def test_empty_object(backend: Backend) -> None:
    uri = backend.uri("empty")
    s3dlio.put(uri, b"")
    assert bytes(s3dlio.get(uri)) == b""
    assert s3dlio.stat(uri).size == 0
    assert s3dlio.exists(uri)
    assert bytes(s3dlio.get_range(uri, 0)) == b""
    assert bytes(s3dlio.get_range(uri, 0, 10)) == b""
    assert rel(backend, s3dlio.list(backend.base)) == ["empty"]


def test_one_byte_object(backend: Backend) -> None:
    uri = backend.uri("one")
    s3dlio.put(uri, b"\x00")
    assert bytes(s3dlio.get(uri)) == b"\x00"
    assert s3dlio.stat(uri).size == 1
    assert bytes(s3dlio.get_range(uri, 0, 1)) == b"\x00"
    assert bytes(s3dlio.get_range(uri, 1)) == b""


@pytest.mark.timeout(120)
def test_50_mib_object(backend: Backend) -> None:
    data = payload(50 * MiB)
    uri = backend.uri("big.bin")
    try:
        s3dlio.put(uri, data)
        assert s3dlio.stat(uri).size == len(data)
        assert_bytes(s3dlio.get(uri), data)
        start = 17 * MiB + 3
        assert_bytes(s3dlio.get_range(uri, start, 9 * MiB), data[start : start + 9 * MiB])
        assert_bytes(s3dlio.get_range(uri, len(data) - 5), data[-5:])
    finally:
        s3dlio.delete(uri)
    assert not s3dlio.exists(uri)


def test_get_many_of_megabyte_objects(backend: Backend) -> None:
    """Bodies from 1 MiB up take the fast engine's async read path; just below keeps the sync one."""
    sizes = {"a.bin": MiB - 1, "b.bin": MiB, "c.bin": 3 * MiB + 7}
    values = {name: payload(size, seed=i) for i, (name, size) in enumerate(sizes.items())}
    uris = [backend.uri(name) for name in values]
    s3dlio.put_many(list(zip(uris, values.values(), strict=True)))
    for got, want in zip(s3dlio.get_many(uris), values.values(), strict=True):
        assert_bytes(got, want)
    assert_bytes(s3dlio.get(uris[2]), values["c.bin"])


def test_special_keys_roundtrip_literally(backend: Backend) -> None:
    values = {key: key.encode() * 3 for key in SPECIAL_KEYS}
    put_tree(backend, values)
    for key, value in values.items():
        uri = backend.uri(key)
        assert bytes(s3dlio.get(uri)) == value, key
        assert s3dlio.stat(uri).size == len(value), key
        assert s3dlio.exists(uri), key
        assert bytes(s3dlio.get_range(uri, 1, 2)) == value[1:3], key
    assert rel(backend, s3dlio.list(backend.base)) == sorted(SPECIAL_KEYS)
    assert rel(backend, s3dlio.list(backend.base, recursive=True)) == sorted(SPECIAL_KEYS)
    # Listing a key by its full name finds it, even when the name holds regex characters.
    for key in SPECIAL_KEYS:
        assert backend.uri(key) in s3dlio.list(backend.uri(key)), key
    for key in SPECIAL_KEYS:
        assert s3dlio.delete(backend.uri(key)) == 1, key
    assert s3dlio.list(backend.base, recursive=True) == []


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda d: d, id="bytes"),
        pytest.param(bytearray, id="bytearray"),
        pytest.param(memoryview, id="memoryview"),
        pytest.param(lambda d: memoryview(d)[3:-3], id="memoryview-slice"),
        pytest.param(lambda d: np.frombuffer(d, dtype=np.uint8).copy(), id="numpy-uint8"),
        pytest.param(
            lambda d: np.frombuffer(d, dtype=np.float32).reshape(4, -1).copy(), id="numpy-float32-2d"
        ),
    ],
)
def test_put_accepts_buffers(backend: Backend, make: object) -> None:
    data = payload(4096, seed=1)
    source = make(data)  # type: ignore[operator]
    expected = memoryview(source).cast("B").tobytes()
    uri = backend.uri("buf")
    s3dlio.put(uri, source)
    assert_bytes(s3dlio.get(uri), expected)


def test_reads_are_buffers(backend: Backend) -> None:
    data = np.arange(1024, dtype=np.float32)
    uri = backend.uri("array.f32")
    s3dlio.put(uri, data)
    buf = s3dlio.get(uri)
    view = memoryview(buf)
    assert view.nbytes == data.nbytes
    assert np.array_equal(np.frombuffer(buf, dtype=np.float32), data)
    assert np.array_equal(np.frombuffer(s3dlio.get(uri), dtype=np.uint8), data.view(np.uint8))
    part = s3dlio.get_range(uri, 400, 40)
    assert np.array_equal(np.frombuffer(part, dtype=np.float32), data[100:110])
    assert bytes(part) == data.tobytes()[400:440]


# -- ranges ------------------------------------------------------------------------------------
def test_get_range_edges(backend: Backend) -> None:
    data = payload(1000, seed=2)
    uri = backend.uri("ranged")
    s3dlio.put(uri, data)
    cases = [
        ((0, 1), data[:1]),  # first byte
        ((999, 1), data[999:]),  # last byte
        ((999,), data[999:]),  # last byte, open-ended
        ((0,), data),
        ((500, 10), data[500:510]),
        ((990, 100), data[990:]),  # clipped at the end
        ((1000,), b""),  # at the end
        ((2000, 10), b""),  # past the end
        ((100, 0), b""),  # zero length
    ]
    for args, want in cases:
        assert bytes(s3dlio.get_range(uri, *args)) == want, args
    with pytest.raises(InvalidArgumentError, match="get_range: offset must be an int >= 0, got -1"):
        s3dlio.get_range(uri, -1, 10)


def test_drain_counts_the_bytes_get_returns(backend: Backend) -> None:
    """``Store.drain``, the benchmark's and the replay's GET: whole objects and ranges counted
    as get and get_range return them, the same errors, and a first-byte time within the call."""
    data = payload(9 * MiB + 4097, seed=5)  # several pieces of every engine's stream and window
    uri = backend.uri("drained.bin")
    s3dlio.put(uri, data)
    s3dlio.put(backend.uri("empty"), b"")
    parsed, store = resolve(uri)
    before = time.time_ns()
    nbytes, first_byte = store.drain(parsed.key)
    assert nbytes == len(data)
    assert first_byte is None or before <= first_byte <= time.time_ns()
    size = len(data)
    for (start, end), want in [
        ((0, 1), 1), ((5, 3 * MiB), 3 * MiB - 5), ((size - 3, size + 100), 3),  # clipped at the end
        ((size, size + 10), 0), ((size + 10, size + 20), 0), ((100, 100), 0),  # at, past, empty
    ]:  # fmt: skip
        assert store.drain(parsed.key, (start, end))[0] == want, (start, end)
        assert memoryview(store.get_range(parsed.key, start, end)).nbytes == want, (start, end)
    empty = resolve(backend.uri("empty"))[0].key
    assert store.drain(empty)[0] == 0
    missing = resolve(backend.uri("missing"))[0].key
    with pytest.raises(NotFoundError):
        store.drain(missing)
    with pytest.raises(NotFoundError):
        store.drain(missing, (0, 10))


def test_get_into_edges(backend: Backend) -> None:
    """get_into streams a reply into the caller's buffer: exact fit, room to spare, too small, empty."""
    data = payload(1000, seed=3)
    uri = backend.uri("into.bin")
    s3dlio.put(uri, data)
    exact = bytearray(1000)
    assert s3dlio.get_into(uri, exact) == 1000 and exact == data
    roomy = bytearray(b"\xee" * 1500)
    assert s3dlio.get_into(uri, roomy) == 1000
    assert roomy[:1000] == data and roomy[1000:] == b"\xee" * 500, "nothing past the object is written"
    with pytest.raises(InvalidArgumentError, match="the object has 1000 bytes, the buffer holds 999"):
        s3dlio.get_into(uri, bytearray(999))
    s3dlio.put(backend.uri("empty.bin"), b"")
    assert s3dlio.get_into(backend.uri("empty.bin"), bytearray(10)) == 0
    with pytest.raises(NotFoundError):
        s3dlio.get_into(backend.uri("absent.bin"), bytearray(10))


def test_get_many_into(backend: Backend) -> None:
    """Each object lands in its own buffer, in order; a misfit is named in its slot."""
    datas = [payload(n, seed=n) for n in (0, 1, 700, 4096)]
    uris = [backend.uri("many-into", f"{i}.bin") for i in range(len(datas))]
    s3dlio.put_many(list(zip(uris, datas, strict=True)))
    buffers = [bytearray(4096) for _ in uris]
    assert s3dlio.get_many_into(uris, buffers, max_in_flight=3) == [len(d) for d in datas]
    for buf, data in zip(buffers, datas, strict=True):
        assert buf[: len(data)] == data
    got = s3dlio.get_many_into([uris[3], backend.uri("absent.bin")], [bytearray(10), bytearray(10)],
                               return_exceptions=True)  # fmt: skip
    assert isinstance(got[0], InvalidArgumentError) and "buffer holds 10" in str(got[0])
    assert isinstance(got[1], NotFoundError)
    with pytest.raises(InvalidArgumentError, match="get_many_into: 1 buffers for 2 URIs"):
        s3dlio.get_many_into(uris[:2], [bytearray(1)])
    assert asyncio.run(s3dlio.get_many_into_async(uris[2:3], buffers[:1])) == [700]
    rows = np.zeros((2, 4096), dtype=np.uint8)  # the rows of one array are buffers too
    assert s3dlio.get_many_into(uris[2:], rows) == [700, 4096]
    assert rows[1].tobytes() == datas[3]


# -- missing objects ---------------------------------------------------------------------------
def test_missing_object(backend: Backend) -> None:
    s3dlio.put(backend.uri("present"), b"x")
    uri = backend.uri("absent")
    for call in (
        lambda: s3dlio.get(uri),
        lambda: s3dlio.stat(uri),
        lambda: s3dlio.get_range(uri, 0, 1),
        lambda: s3dlio.get_range(uri, 0),
        lambda: s3dlio.get_many([backend.uri("present"), uri]),
    ):
        with pytest.raises(NotFoundError) as info:
            call()
        assert isinstance(info.value, FileNotFoundError)
        assert "absent" in str(info.value), f"the message should name the key: {info.value}"
    assert not s3dlio.exists(uri)
    assert not s3dlio.exists(backend.uri("sub", "absent"))
    assert s3dlio.delete(uri) == 0
    assert s3dlio.delete(backend.uri("nothing-here/"), recursive=True) == 0
    assert s3dlio.list(backend.uri("nothing-here/")) == []


# -- stat and list -----------------------------------------------------------------------------
def test_stat_metadata(backend: Backend) -> None:
    uri = backend.uri("meta", "obj.bin")
    before = dt.datetime.now(dt.UTC)
    s3dlio.put(uri, payload(123))
    meta = s3dlio.stat(uri)
    for name in META_FIELDS:
        assert hasattr(meta, name), name
    assert meta.size == 123
    assert isinstance(meta.last_modified, dt.datetime)
    assert meta.last_modified.tzinfo is not None, "last_modified must be timezone-aware"
    assert abs(meta.last_modified - before) < dt.timedelta(hours=1)
    assert isinstance(meta.metadata, dict)
    for name in META_FIELDS[2:]:
        if name != "metadata":
            assert getattr(meta, name) is None or isinstance(getattr(meta, name), str), name
    if backend.remote:
        assert meta.etag, "S3 and Azure always return an ETag"
    assert meta.to_dict()["size"] == 123


TREE = {
    "a/1": b"1",
    "a/2": b"22",
    "a/b/3": b"333",
    "top1": b"t1",
    "top2": b"t2",
    "x.bin": b"xbin",
}


def test_list_levels_and_recursive(backend: Backend) -> None:
    put_tree(backend, TREE)
    assert rel(backend, s3dlio.list(backend.base)) == ["a/", "top1", "top2", "x.bin"]
    assert rel(backend, s3dlio.list(backend.base, recursive=True)) == sorted(TREE)
    assert rel(backend, s3dlio.list(backend.uri("a/"))) == ["a/1", "a/2", "a/b/"]
    assert rel(backend, s3dlio.list(backend.uri("a/"), recursive=True)) == ["a/1", "a/2", "a/b/3"]
    assert rel(backend, s3dlio.list(backend.uri("top"))) == ["top1", "top2"]  # plain text: a name prefix
    assert rel(backend, s3dlio.list(backend.uri("a"))) == ["a/"]
    assert rel(backend, s3dlio.list(backend.uri("a/b/"))) == ["a/b/3"]


def test_list_regex(backend: Backend) -> None:
    put_tree(backend, TREE)
    assert rel(backend, s3dlio.list(backend.uri(r"top\d"))) == ["top1", "top2"]
    assert rel(backend, s3dlio.list(backend.uri(r".*\.bin"))) == ["x.bin"]
    assert rel(backend, s3dlio.list(backend.uri(r"top[2-9]"))) == ["top2"]
    assert rel(backend, s3dlio.list(backend.uri(r"a/\d"))) == ["a/1", "a/2"]
    # With recursive, the regex matches the path relative to the URI's directory part.
    assert rel(backend, s3dlio.list(backend.uri(r"a/.*3"), recursive=True)) == ["a/b/3"]
    assert rel(backend, s3dlio.list(backend.uri(r"a/\d"), recursive=True)) == ["a/1", "a/2"]
    # pattern= is an explicit regex applied the same way.
    assert rel(backend, s3dlio.list(backend.base, pattern=r"top[12]")) == ["top1", "top2"]
    assert rel(backend, s3dlio.list(backend.base, recursive=True, pattern=r".*\d")) == [
        "a/1",
        "a/2",
        "a/b/3",
        "top1",
        "top2",
    ]
    assert s3dlio.list(backend.uri(r"nomatch\d+")) == []
    with pytest.raises(InvalidUriError):
        s3dlio.list(backend.base, pattern="(unclosed")


def test_list_entries(backend: Backend) -> None:
    put_tree(backend, TREE)
    entries = list(s3dlio.list_entries(backend.base))
    assert [e.uri for e in entries] == s3dlio.list(backend.base)
    by_name = {e.uri[len(backend.base) :]: e for e in entries}
    assert by_name["a/"].meta is None  # a common prefix
    for name in ("top1", "top2", "x.bin"):
        meta = by_name[name].meta
        assert meta is not None and meta.size == len(TREE[name]), name
    deep = {e.uri[len(backend.base) :]: e.meta for e in s3dlio.list_entries(backend.base, recursive=True)}
    assert sorted(deep) == sorted(TREE)
    assert all(m is not None and m.size == len(TREE[k]) for k, m in deep.items())


@pytest.mark.timeout(180)
def test_more_keys_than_a_list_page_and_a_delete_batch(backend: Backend) -> None:
    """More keys than one S3 list page (1,000), created with put_many; list, regex, batch delete."""
    n = 1300
    names = [f"k{i:05d}" for i in range(n)]
    s3dlio.put_many(
        ((backend.uri("many", k), k.encode()[: i % 7]) for i, k in enumerate(names)), max_in_flight=32
    )
    listed = s3dlio.list(backend.uri("many/"))
    assert len(listed) == n
    assert sorted(listed) == [backend.uri("many", k) for k in names]
    assert len(s3dlio.list(backend.base, recursive=True)) == n
    assert rel(backend, s3dlio.list(backend.uri("many", "k0001"))) == [f"many/k0001{d}" for d in range(10)]
    assert len(s3dlio.list(backend.uri("many", r"k\d{3}7\d"))) == 130
    sizes = {e.uri: e.meta.size for e in s3dlio.list_entries(backend.uri("many/")) if e.meta is not None}
    assert sum(sizes.values()) == sum(len(k.encode()[: i % 7]) for i, k in enumerate(names))
    # More than one delete batch (1,000 keys); the rest goes with the bucket (one request).
    assert s3dlio.delete(backend.uri("many/"), pattern=r"k0(0\d{3}|10\d\d)") == 1100
    assert sorted(s3dlio.list(backend.uri("many/"))) == [backend.uri("many", k) for k in names[1100:]]


# -- delete ------------------------------------------------------------------------------------
def test_delete_key_regex_prefix(backend: Backend) -> None:
    keys = ["d/1", "d/10", "d/2", "d/x.txt", "d/y.txt", "d/sub/3", "d/sub/4", "d/sub/deep/5", "keep"]
    put_tree(backend, {k: b"v" for k in keys})

    def remaining() -> list[str]:
        return rel(backend, s3dlio.list(backend.base, recursive=True))

    assert s3dlio.delete(backend.uri("d/1")) == 1  # an exact key, never a name prefix (d/10 stays)
    assert remaining() == sorted(set(keys) - {"d/1"})
    assert s3dlio.delete(backend.uri(r"d/.*\.txt")) == 0  # the URI is literal: no such key
    assert s3dlio.delete(backend.uri("d/"), pattern=r".*\.txt") == 2  # a regex, asked for explicitly
    assert s3dlio.delete(backend.uri("d/sub/"), pattern=r"[3]") == 1  # an explicit pattern
    assert remaining() == ["d/10", "d/2", "d/sub/4", "d/sub/deep/5", "keep"]
    assert s3dlio.delete(backend.uri("d/")) == 2  # a prefix level: d/10, d/2, not below
    assert remaining() == ["d/sub/4", "d/sub/deep/5", "keep"]
    assert s3dlio.delete(backend.uri("d/"), recursive=True) == 2  # everything below
    assert remaining() == ["keep"]
    assert not s3dlio.exists(backend.uri("d/sub/4"))


# -- batches -----------------------------------------------------------------------------------
def test_get_many_keeps_input_order(backend: Backend) -> None:
    values = {f"gm/{i:03d}": payload(1 + (i * 997) % 5000, seed=i) for i in range(40)}
    s3dlio.put_many(((backend.uri(k), v) for k, v in values.items()), max_in_flight=8)
    keys = sorted(values, reverse=True)
    got = s3dlio.get_many([backend.uri(k) for k in keys], max_in_flight=8)
    assert len(got) == len(keys)
    for key, buf in zip(keys, got, strict=True):
        assert_bytes(buf, values[key])
    assert s3dlio.get_many([]) == []


def test_get_many_return_exceptions(backend: Backend) -> None:
    s3dlio.put_many([(backend.uri("a"), b"A"), (backend.uri("b"), b"BB")])
    uris = [backend.uri("a"), backend.uri("missing"), backend.uri("b")]
    with pytest.raises(NotFoundError):
        s3dlio.get_many(uris)
    got = s3dlio.get_many(uris, return_exceptions=True)
    assert bytes(got[0]) == b"A"  # type: ignore[arg-type]
    assert isinstance(got[1], NotFoundError)
    assert bytes(got[2]) == b"BB"  # type: ignore[arg-type]


def test_get_many_stats(backend: Backend) -> None:
    sizes = [0, 1, 100, 4096]
    s3dlio.put_many((backend.uri(f"s{n}"), payload(n)) for n in sizes)
    stats = s3dlio.get_many_stats([backend.uri(f"s{n}") for n in sizes], max_in_flight=2)
    assert stats.objects == len(sizes)
    assert stats.bytes == sum(sizes)
    assert stats.seconds >= 0
    with pytest.raises(NotFoundError):
        s3dlio.get_many_stats([backend.uri("nope")])


def test_put_many_from_a_generator(backend: Backend) -> None:
    def items():  # type: ignore[no-untyped-def]
        for i in range(20):
            yield backend.uri("pm", f"{i}"), bytes([i]) * i

    s3dlio.put_many(items(), max_in_flight=3)
    for i in range(20):
        assert bytes(s3dlio.get(backend.uri("pm", f"{i}"))) == bytes([i]) * i
    with pytest.raises(InvalidUriError):
        s3dlio.put(backend.uri("pm/"), b"a prefix is not an object")


# -- files <-> objects -------------------------------------------------------------------------
def test_upload_download(backend: Backend, local: Path) -> None:
    src = local / "src"
    (src / "n").mkdir(parents=True)
    files = {"a.bin": payload(1000, seed=3), "b.bin": b"", "n/d.bin": payload(77, seed=4)}
    for name, data in files.items():
        (src / name).write_bytes(data)
    (src / "c.txt").write_text("not selected")

    uris = s3dlio.upload(str(src / "*.bin"), backend.uri("up/"))
    assert rel(backend, uris) == ["up/a.bin", "up/b.bin"]
    uris = s3dlio.upload(str(src / "**" / "*.bin"), backend.uri("up2/"), max_in_flight=2)
    assert rel(backend, uris) == ["up2/a.bin", "up2/b.bin", "up2/n/d.bin"]
    assert rel(backend, s3dlio.list(backend.uri("up2/"), recursive=True)) == [
        "up2/a.bin",
        "up2/b.bin",
        "up2/n/d.bin",
    ]

    dst = local / "dst"
    paths = s3dlio.download(backend.uri("up2/"), str(dst), recursive=True)
    assert sorted(os.path.relpath(p, dst) for p in paths) == ["a.bin", "b.bin", os.path.join("n", "d.bin")]
    for name, data in files.items():
        assert (dst / name).read_bytes() == data, name

    flat = local / "flat"
    paths = s3dlio.download(backend.uri("up2/"), str(flat))
    assert sorted(os.path.relpath(p, flat) for p in paths) == ["a.bin", "b.bin"]

    one = local / "one"
    assert s3dlio.download(backend.uri("up2/a.bin"), str(one)) == [str(one / "a.bin")]
    assert (one / "a.bin").read_bytes() == files["a.bin"]

    with pytest.raises(NotFoundError):
        s3dlio.download(backend.uri("nothing/"), str(local / "none"), recursive=True)
    with pytest.raises(NotFoundError):
        s3dlio.upload(str(local / "nothing" / "*.bin"), backend.uri("up3/"))


def test_copy_within_and_across_schemes(backend: Backend, local: Path) -> None:
    data = payload(3000, seed=5)
    s3dlio.put(backend.uri("c/a"), data)
    assert s3dlio.copy(backend.uri("c/a"), backend.uri("c/b")) == 1
    assert_bytes(s3dlio.get(backend.uri("c/b")), data)
    assert s3dlio.copy(backend.uri("c/"), backend.uri("c2/"), recursive=True) == 2
    assert rel(backend, s3dlio.list(backend.uri("c2/"))) == ["c2/a", "c2/b"]

    # file -> backend -> file
    (local / "in.bin").write_bytes(data)
    assert s3dlio.copy(f"file://{local}/in.bin", backend.uri("x/in.bin")) == 1
    assert s3dlio.copy(backend.uri("x/in.bin"), f"file://{local}/out/") == 1
    assert (local / "out" / "in.bin").read_bytes() == data
    assert s3dlio.copy(backend.uri("x/in.bin"), f"file://{local}/renamed.bin") == 1
    assert (local / "renamed.bin").read_bytes() == data

    # backend -> mem (another scheme), keeping relative paths
    mem = f"mem://copy-{os.getpid()}-{id(backend)}/"
    assert s3dlio.copy(backend.uri("c/"), mem, recursive=True) == 2
    assert_bytes(s3dlio.get(mem + "a"), data)
    s3dlio.delete(mem, recursive=True)

    with pytest.raises(NotFoundError):
        s3dlio.copy(backend.uri("c/missing"), backend.uri("c/other"))


# -- async twins -------------------------------------------------------------------------------
def test_async_twins(backend: Backend, local: Path) -> None:
    async def scenario() -> None:
        uris = [backend.uri("as", f"{i}") for i in range(10)]
        await asyncio.gather(*(s3dlio.put_async(u, f"v{i}".encode()) for i, u in enumerate(uris)))
        got = await asyncio.gather(*(s3dlio.get_async(u) for u in uris))
        assert [bytes(g) for g in got] == [f"v{i}".encode() for i in range(10)]
        assert bytes(await s3dlio.get_range_async(uris[3], 1, 1)) == b"3"
        assert bytes(await s3dlio.get_range_async(uris[3], 1)) == b"3"
        assert (await s3dlio.stat_async(uris[0])).size == 2
        assert await s3dlio.exists_async(uris[0])
        assert not await s3dlio.exists_async(backend.uri("as", "nope"))
        with pytest.raises(NotFoundError):
            await s3dlio.get_async(backend.uri("as", "nope"))
        assert sorted(await s3dlio.list_async(backend.uri("as/"))) == sorted(uris)
        assert rel(backend, await s3dlio.list_async(backend.base, recursive=True, pattern=r"as/[12]")) == [
            "as/1",
            "as/2",
        ]
        many = await s3dlio.get_many_async(reversed(uris), max_in_flight=3)
        assert [bytes(m) for m in many] == [f"v{i}".encode() for i in reversed(range(10))]  # type: ignore[arg-type]
        mixed = await s3dlio.get_many_async([uris[0], backend.uri("as", "nope")], return_exceptions=True)
        assert isinstance(mixed[1], NotFoundError)
        stats = await s3dlio.get_many_stats_async(uris)
        assert (stats.objects, stats.bytes) == (10, 20)
        await s3dlio.put_many_async([(backend.uri("bs", "x"), b"x"), (backend.uri("bs", "y"), b"yy")])
        assert await s3dlio.copy_async(backend.uri("bs/"), backend.uri("cs/")) == 2
        assert bytes(await s3dlio.get_async(backend.uri("cs", "y"))) == b"yy"
        (local / "up").mkdir()
        (local / "up" / "f.bin").write_bytes(b"file")
        assert rel(backend, await s3dlio.upload_async(str(local / "up" / "*"), backend.uri("us/"))) == [
            "us/f.bin"
        ]
        paths = await s3dlio.download_async(backend.uri("us/"), str(local / "down"))
        assert [Path(p).read_bytes() for p in paths] == [b"file"]
        assert await s3dlio.delete_async(backend.uri("as/"), pattern=r"[0-4]") == 5
        assert await s3dlio.delete_async(backend.base, recursive=True) == 5 + 2 + 2 + 1

    asyncio.run(scenario())


# -- buckets -----------------------------------------------------------------------------------
def test_buckets(remote_backend: Backend) -> None:
    backend = remote_backend
    name = f"tb{os.urandom(6).hex()}"
    bucket = f"{backend.scheme}://{name}"
    s3dlio.create_bucket(bucket)
    try:
        assert bucket in s3dlio.list_buckets(f"{backend.scheme}://")
        with pytest.raises(s3dlio.AlreadyExistsError):
            s3dlio.create_bucket(bucket)
        s3dlio.put(f"{bucket}/k", b"in a new bucket")
        assert bytes(s3dlio.get(f"{bucket}/k")) == b"in a new bucket"
        assert s3dlio.delete(f"{bucket}/k") == 1
    finally:
        s3dlio.delete_bucket(bucket)
    assert bucket not in s3dlio.list_buckets(f"{backend.scheme}://")
    with pytest.raises(NotFoundError):
        s3dlio.delete_bucket(bucket)


def test_async_buckets(remote_backend: Backend) -> None:
    backend = remote_backend
    bucket = f"{backend.scheme}://tb{os.urandom(6).hex()}"

    async def scenario() -> None:
        await s3dlio.create_bucket_async(bucket)
        assert bucket in await s3dlio.list_buckets_async(f"{backend.scheme}://")
        await s3dlio.delete_bucket_async(bucket)
        assert bucket not in await s3dlio.list_buckets_async(f"{backend.scheme}://")

    asyncio.run(scenario())


def test_missing_bucket(remote_backend: Backend) -> None:
    backend = remote_backend
    base = f"{backend.scheme}://tmissing{os.urandom(6).hex()}/"
    for call in (
        lambda: s3dlio.get(base + "k"),
        lambda: s3dlio.stat(base + "k"),
        lambda: s3dlio.get_range(base + "k", 0, 1),
        lambda: s3dlio.list(base),
        lambda: s3dlio.list(base, recursive=True),
        lambda: s3dlio.put(base + "k", b"x"),
        lambda: s3dlio.delete(base, recursive=True),
    ):
        with pytest.raises(NotFoundError):
            call()
    assert not s3dlio.exists(base + "k")


def test_put_new_writes_only_where_nothing_is(backend: Backend) -> None:
    """A conditional create (If-None-Match: * on S3 and Azure, link on files): of eight writers
    racing for one key exactly one wins, and the object holds its bytes."""
    parsed, store = resolve(backend.uri("commit.json"))
    wins: list[int] = []

    def race(i: int) -> None:
        try:
            store.put_new(parsed.key, b"writer %d" % i)
            wins.append(i)
        except AlreadyExistsError:
            pass

    threads = [threading.Thread(target=race, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(wins) == 1
    assert bytes(s3dlio.get(backend.uri("commit.json"))) == b"writer %d" % wins[0]
    with pytest.raises(AlreadyExistsError, match="already exists"):
        store.put_new(parsed.key, b"late")


def test_put_keeps_the_bytes_it_was_given(backend: Backend) -> None:
    """A read-only view of memory the caller still changes is no promise its bytes stay: every
    store keeps what put was given (``mem://`` once kept the very view, and changed with it)."""
    array, raw = np.zeros(4096, np.uint8), bytearray(4096)
    view = array.view()
    view.flags.writeable = False
    s3dlio.put(backend.uri("np"), view)
    s3dlio.put(backend.uri("mv"), memoryview(raw).toreadonly())
    array[:] = 7
    raw[:] = b"\x07" * 4096
    assert bytes(s3dlio.get(backend.uri("np"))) == bytes(4096)
    assert bytes(s3dlio.get(backend.uri("mv"))) == bytes(4096)
