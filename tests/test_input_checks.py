"""Every public function rejects wrong argument types and values before any request.

A wrong type raises :class:`s3dlio.ArgumentTypeError` (a ``TypeError``), a wrong value
:class:`s3dlio.InvalidArgumentError` (a ``ValueError``); both are ``S3dlioError``s and the
message names the function, the parameter and what was given. Each case runs on the sync
function and on its ``_async`` twin, which must raise the same error. The URIs point at
objects that do not exist, so a check that ran after a request would show as NotFoundError.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from servers import Backend, venv_tool

import s3dlio
from s3dlio.datagen import DataGenerator, generate

U = "mem://nowhere/missing"  # valid, but nothing is there
T = s3dlio.ArgumentTypeError
V = s3dlio.InvalidArgumentError

# (function, args, kwargs, error, message the error must hold)
CASES: list[tuple[str, tuple[Any, ...], dict[str, Any], type[Exception], str]] = [
    ("get", (5,), {}, T, "get: uri must be a URI (str, ObjectUri or os.PathLike), got 5 (int)"),
    ("get", (None,), {}, T, "get: uri must be a URI (str, ObjectUri or os.PathLike), got None (NoneType)"),
    ("get", (b"s3://b/k",), {}, T, "get: uri must be a URI (str, ObjectUri or os.PathLike), got b's3://b/k' (bytes)"),
    ("get_range", (U, 1.5), {}, T, "get_range: offset must be an int >= 0, got 1.5 (float)"),
    ("get_range", (U, "2"), {}, T, "get_range: offset must be an int >= 0, got '2' (str)"),
    ("get_range", (U, True), {}, T, "get_range: offset must be an int >= 0, got True (bool)"),
    ("get_range", (U, -1), {}, V, "get_range: offset must be an int >= 0, got -1 (int)"),
    ("get_range", (U, 0, -5), {}, V, "get_range: length must be None or an int >= 0, got -5 (int)"),
    ("get_range", (U, 0, 2.0), {}, T, "get_range: length must be None or an int >= 0, got 2.0 (float)"),
    ("get_range", (7, 0), {}, T, "get_range: uri must be a URI"),
    ("get_many", ("s3://b/k",), {}, T,
     "get_many: uris must be an iterable of URI strings, not a str ('s3://b/k'); wrap one URI in a list"),
    ("get_many", (5,), {}, T, "get_many: uris must be an iterable of URI strings, got 5 (int)"),
    ("get_many", ([U, 5],), {}, T, "get_many: uris[1] must be a URI (str, ObjectUri or os.PathLike), got 5 (int)"),
    ("get_many", ([U],), {"max_in_flight": 0}, V, "get_many: max_in_flight must be None or an int >= 1, got 0 (int)"),
    ("get_many", ([U],), {"max_in_flight": 2.5}, T, "get_many: max_in_flight must be None or an int >= 1, got 2.5"),
    ("get_many", ([U],), {"max_in_flight": True}, T, "get_many: max_in_flight must be None or an int >= 1, got True"),
    ("get_many", ([U],), {"return_exceptions": "yes"}, T, "get_many: return_exceptions must be True or False"),
    ("get_many_stats", ("s3://b/k",), {}, T, "get_many_stats: uris must be an iterable of URI strings, not a str"),
    ("get_many_stats", ([U],), {"max_in_flight": -1}, V, "get_many_stats: max_in_flight must be None or an int >= 1"),
    ("put", (U, "text"), {}, T, "put: data must be a bytes-like object (bytes, bytearray, memoryview, numpy array), "
     "got 'text' (str); encode it first"),
    ("put", (U, 5), {}, T, "put: data must be a bytes-like object (bytes, bytearray, memoryview, numpy array), got 5 (int)"),
    ("put", (U, b"x"), {"verify": "yes"}, T, "put: verify must be None, True or False, got 'yes' (str)"),
    ("put", (3, b"x"), {}, T, "put: uri must be a URI"),
    ("put_many", ("s3://b/k",), {}, T, "put_many: items must be an iterable of (uri, data) pairs, not a str"),
    ("put_many", ([(U,)],), {}, T, "put_many: items[0] must be a (uri, data) pair, got ('mem://nowhere/missing',)"),
    ("put_many", ([(U, "x")],), {}, T, "put_many: items[0][1] must be a bytes-like object"),
    ("put_many", ([(1, b"x")],), {}, T, "put_many: items[0][0] must be a URI"),
    ("put_many", ([(U, b"x")],), {"max_in_flight": 0}, V, "put_many: max_in_flight must be None or an int >= 1"),
    ("list", (5,), {}, T, "list: uri must be a URI"),
    ("list", (U,), {"recursive": "yes"}, T, "list: recursive must be True or False, got 'yes' (str)"),
    ("list", (U,), {"recursive": 1}, T, "list: recursive must be True or False, got 1 (int)"),
    ("list", (U,), {"pattern": 5}, T, "list: pattern must be None or a str, got 5 (int)"),
    ("list_entries", (U,), {"pattern": b".*"}, T, "list_entries: pattern must be None or a str"),
    ("list_stream", (U,), {"recursive": "yes"}, T, "list_stream: recursive must be True or False"),
    ("get", (U,), {"config": {"region": "x"}}, T, "get: config must be None or an s3dlio.Config"),
    ("put_many", ([(U, b"x")],), {"config": "fast"}, T, "put_many: config must be None or an s3dlio.Config"),
    ("download", (U, "dest"), {"config": 1}, T, "download: config must be None or an s3dlio.Config"),
    ("stat", (5,), {}, T, "stat: uri must be a URI"),
    ("exists", (5,), {}, T, "exists: uri must be a URI"),
    ("delete", (5,), {}, T, "delete: uri must be a URI"),
    ("delete", (U,), {"recursive": 1}, T, "delete: recursive must be True or False, got 1 (int)"),
    ("delete", (U,), {"pattern": 5}, T, "delete: pattern must be None or a str"),
    ("create_bucket", (5,), {}, T, "create_bucket: uri must be a URI"),
    ("delete_bucket", (5,), {}, T, "delete_bucket: uri must be a URI"),
    ("list_buckets", (5,), {}, T, "list_buckets: uri must be a URI"),
    ("upload", (5, U), {}, T, "upload: local_glob must be a local path (str or os.PathLike), got 5 (int)"),
    ("upload", ("/nonexistent/*", 5), {}, T, "upload: dest_prefix must be a URI"),
    ("upload", ("/nonexistent/*", U), {"max_in_flight": 0}, V, "upload: max_in_flight must be None or an int >= 1"),
    ("upload", ("/nonexistent/*", U), {"follow_links": "no"}, T, "upload: follow_links must be True or False"),
    ("download", (5, "/tmp"), {}, T, "download: src must be a URI"),
    ("download", (U, 5), {}, T, "download: dest_dir must be a local path (str or os.PathLike), got 5 (int)"),
    ("download", (U, "/tmp"), {"recursive": "y"}, T, "download: recursive must be True or False"),
    ("download", (U, "/tmp"), {"max_in_flight": 0}, V, "download: max_in_flight must be None or an int >= 1"),
    ("download", (U, "/tmp"), {"return_exceptions": 1}, T, "download: return_exceptions must be True or False"),
    ("copy", (5, U), {}, T, "copy: src must be a URI"),
    ("copy", (U, 5), {}, T, "copy: dst must be a URI"),
    ("copy", (U, U), {"max_in_flight": -2}, V, "copy: max_in_flight must be None or an int >= 1, got -2 (int)"),
    ("resolve", (5,), {}, T, "resolve: uri must be a URI"),
    ("resolve", (U,), {"config": {"engine": "fast"}}, T, "resolve: config must be None or an s3dlio.Config"),
    ("endpoint_stats", ("fast",), {}, T, "endpoint_stats: config must be None or an s3dlio.Config"),
    ("open_writer", (5,), {}, T, "open_writer: uri must be a URI"),
    ("open_writer", (U,), {"part_size": 0}, V, "open_writer: part_size must be None or an int >= 1, got 0 (int)"),
    ("open_writer", (U,), {"part_size": 1.5}, T, "open_writer: part_size must be None or an int >= 1, got 1.5"),
    ("open_writer", (U,), {"max_in_flight": 0}, V, "open_writer: max_in_flight must be None or an int >= 1"),
    ("open_writer", (U,), {"content_type": 5}, T, "open_writer: content_type must be None or a str, got 5 (int)"),
    ("open_writer", (U,), {"verify": 1}, T, "open_writer: verify must be None, True or False, got 1 (int)"),
    ("open_reader", (5,), {}, T, "open_reader: uri must be a URI"),
    ("open_reader", (U,), {"read_ahead": -1}, V, "open_reader: read_ahead must be an int >= 0, got -1 (int)"),
    ("open_reader", (U,), {"block_size": 0}, V, "open_reader: block_size must be None or an int >= 1, got 0"),
    ("open_reader", (U,), {"block_size": "8"}, T, "open_reader: block_size must be None or an int >= 1, got '8'"),
    ("get_into", (U, b"abc"), {}, T, "get_into: buffer must be a writable buffer (bytearray, numpy array), "
     "got b'abc' (bytes); it is read-only"),
    ("get_into", (U, "abc"), {}, T, "get_into: buffer must be a writable, contiguous buffer"),
    ("get_into", (U, np.zeros((4, 4), dtype=np.uint8)[:, ::2]), {}, T, "get_into: buffer must be a C-contiguous buffer"),
    ("get_into", (5, bytearray(1)), {}, T, "get_into: uri must be a URI"),
    ("get_many_into", (U, [bytearray(1)]), {}, T, "get_many_into: uris must be an iterable of URI strings"),
    ("get_many_into", ([U], bytearray(1)), {}, T, "get_many_into: buffers must be an iterable of writable buffers"),
    ("get_many_into", ([U], [b"abc"]), {}, T, "get_many_into: buffers[0] must be a writable buffer"),
    ("get_many_into", ([U, U], [bytearray(1)]), {}, V, "get_many_into: 1 buffers for 2 URIs; pass one buffer per URI"),
    ("get_many_into", ([U], [bytearray(1)], 0), {}, V, "get_many_into: max_in_flight must be None or an int >= 1"),
]  # fmt: skip

# Public callables without argument checks here, and why.
EXEMPT = {
    "configure": "settings: Config checks them in __post_init__ (ConfigError)",
    "Config": "settings: Config checks them in __post_init__ (ConfigError)",
    "parse": "the URI parser itself: InvalidUriError for anything it cannot parse",
    "join": "URI arithmetic over parse",
    "init_op_log": "op-log setup, checked by the op-log module",
    "finalize_op_log": "takes no arguments",
    "is_op_log_active": "takes no arguments",
    "set_client_id": "op-log setup, checked by the op-log module",
    "redact": "text filter for messages",
    "install_log_redaction": "logging setup",
    "cleanup": "checked by its own module (s3dlio cleanup)",
}


def _call(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    result = getattr(s3dlio, name)(*args, **kwargs)
    if inspect.iscoroutine(result):
        return asyncio.run(result)
    return result


def _ids() -> list[str]:
    seen: dict[str, int] = {}
    ids = []
    for name, *_ in CASES:
        seen[name] = seen.get(name, 0) + 1
        ids.append(f"{name}-{seen[name]}")
    return ids


@pytest.mark.parametrize(("name", "args", "kwargs", "error", "message"), CASES, ids=_ids())
def test_bad_argument(
    name: str, args: tuple[Any, ...], kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=re.escape(message)) as info:
        _call(name, args, kwargs)
    assert isinstance(info.value, s3dlio.S3dlioError)
    assert isinstance(info.value, TypeError if error is T else ValueError)
    twin = f"{name}_async"
    if twin in s3dlio.__all__:
        with pytest.raises(error) as async_info:
            _call(twin, args, kwargs)
        assert str(async_info.value) == str(info.value)


def test_every_public_function_is_covered() -> None:
    """A new public function needs cases here (or a reason in EXEMPT)."""
    covered = {name for name, *_ in CASES}
    public = {
        name for name in s3dlio.__all__
        if inspect.isfunction(getattr(s3dlio, name)) and not name.endswith("_async")
    }  # fmt: skip
    public |= {"Config"}
    missing = sorted(public - covered - set(EXEMPT))
    assert not missing, f"public functions without argument-check cases: {missing}"
    twins = {name for name in s3dlio.__all__ if name.endswith("_async")}
    assert {t.removesuffix("_async") for t in twins} <= public, "every _async twin has a sync function"


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: generate("10"), T,  # type: ignore[arg-type]
         "generate: size must be an int >= 0, got '10' (str)"),
        (lambda: generate(10, dedup=0), V, "generate: dedup must be an int >= 1, got 0 (int)"),
        (lambda: DataGenerator(compress=True), T, "DataGenerator: compress must be a number >= 1, got True (bool)"),
        (lambda: DataGenerator().object(2.0), T,  # type: ignore[arg-type]
         "DataGenerator.object: size must be an int >= 0, got 2.0"),
        (lambda: DataGenerator().fill(b"ro"), T, "DataGenerator.fill: buffer must be a writable buffer"),
    ],
    ids=["generate-size", "generate-dedup", "DataGenerator-compress", "object-size", "fill-buffer"],
)
def test_datagen_arguments(call: Callable[[], Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        call()


def test_good_arguments_of_every_accepted_kind(tmp_path: Path) -> None:
    """The accepted forms work: path-likes and ObjectUri as URIs, numpy integers, tuples of URIs."""
    api: Any = s3dlio  # the signatures are annotated ``str``; at run time these forms are accepted too
    path = tmp_path / "obj.bin"
    api.put(path, b"0123456789")  # os.PathLike: a local file
    assert bytes(api.get(path)) == b"0123456789"
    parsed = s3dlio.parse(str(path))
    assert bytes(api.get_range(parsed, np.int64(2), np.uint8(3))) == b"234"
    assert [bytes(b) for b in api.get_many((path, str(path)), max_in_flight=np.int32(2))] == [b"0123456789"] * 2
    assert api.get_many_stats(iter([parsed])).bytes == 10
    api.put_many([(tmp_path / "b.bin", bytearray(b"b")), (str(tmp_path / "c.bin"), np.frombuffer(b"c", np.uint8))])
    assert sorted(Path(p).name for p in api.list(f"{tmp_path}/", recursive=True)) == ["b.bin", "c.bin", "obj.bin"]
    buf = np.zeros(16, dtype=np.uint8)
    assert api.get_into(path, buf) == 10
    assert api.download(parsed, tmp_path / "dl") == [str(tmp_path / "dl" / "obj.bin")]


@pytest.mark.parametrize(
    "endpoint, message",
    [("http://127.0.0.1:notaport", "notaport"), ("http://[::1", "Invalid IPv6 URL"), ("http://:9000", "no host"),
     ("http://h:70000", "Port out of range"), ("http://h:0", "port 0"), ("127.0.0.1:9000", "must start with http")],
    ids=["port-not-a-number", "open-bracket", "no-host", "port-too-large", "port-0", "no-scheme"],
)  # fmt: skip
@pytest.mark.parametrize("engine", ["fast", "portable"])
def test_a_malformed_endpoint_is_a_config_error_before_any_request(endpoint: str, message: str, engine: str) -> None:
    """obstore panicked on a port that is not a number, botocore retried it 10 times: the
    endpoint is checked when the config is built (CLI exit status 2, one line, no traceback)."""
    with pytest.raises(s3dlio.ConfigError, match=re.escape(message)):
        s3dlio.Client(endpoint_url=endpoint, engine=engine)
    exe = venv_tool("s3dlio")
    assert exe is not None
    run = subprocess.run([exe, "--endpoint-url", endpoint, "ls", "s3://b/"], capture_output=True, text=True,
                         timeout=60, env={**os.environ, "S3DLIO_ENGINE": engine})  # fmt: skip
    assert run.returncode == 2, run.stderr
    assert run.stderr.startswith("s3dlio: error: endpoint ") and len(run.stderr.splitlines()) == 1, run.stderr


def test_async_get_many_refuses_one_uri_before_listing_its_characters() -> None:
    with pytest.raises(TypeError, match="not a str"):
        asyncio.run(s3dlio.get_many_async("mem://b/k"))


def test_get_into_too_small_names_the_real_size(backend: Backend) -> None:
    uri = backend.uri("hundred.bin")
    s3dlio.put(uri, bytes(range(100)))
    for capacity in (10, 99):
        with pytest.raises(ValueError, match=f"the object has 100 bytes, the buffer holds {capacity}") as info:
            s3dlio.get_into(uri, bytearray(capacity))
        assert isinstance(info.value, s3dlio.InvalidArgumentError)
        with pytest.raises(ValueError, match=f"the object has 100 bytes, the buffer holds {capacity}"):
            asyncio.run(s3dlio.get_into_async(uri, bytearray(capacity)))
    buf = bytearray(100)
    assert s3dlio.get_into(uri, buf) == 100 and bytes(buf) == bytes(range(100))


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda r, w: r.read("3"), T, "ObjectReader.read: size must be None or an int, got '3' (str)"),
        (lambda r, w: r.read(2.5), T, "ObjectReader.read: size must be None or an int, got 2.5 (float)"),
        (lambda r, w: r.seek(1.0), T, "ObjectReader.seek: offset must be an int, got 1.0 (float)"),
        (lambda r, w: r.readinto(b"ro"), T, "ObjectReader.readinto: buffer must be a writable buffer"),
        (lambda r, w: w.write("text"), T, "ObjectWriter.write: data must be a bytes-like object"),
        (lambda r, w: w.reserve(-1), V, "ObjectWriter.reserve: n must be None or an int >= 0, got -1 (int)"),
        (lambda r, w: w.commit(True), T, "ObjectWriter.commit: n must be an int >= 0, got True (bool)"),
    ],
    ids=["read-str", "read-float", "seek-float", "readinto-readonly", "write-str", "reserve-negative",
         "commit-bool"],  # fmt: skip
)
def test_reader_and_writer_methods(call: Callable[[Any, Any], Any], error: type[Exception], message: str) -> None:
    uri = "mem://checks/object.bin"
    s3dlio.put(uri, b"0123456789")
    with s3dlio.open_reader(uri) as reader, s3dlio.open_writer("mem://checks/written.bin") as writer:
        with pytest.raises(error, match=re.escape(message)):
            call(reader, writer)
        assert reader.read(3) == b"012"  # still usable after the refused call
        writer.write(b"ok")
    assert bytes(s3dlio.get("mem://checks/written.bin")) == b"ok"
