"""s3dlio.Client: settings per client, several servers and credentials in one process."""

from __future__ import annotations

import asyncio
import multiprocessing
import pickle
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from servers import AZURITE_ACCOUNT, Azurite, MotoServer, free_port, wait_for_port

import s3dlio
from s3dlio import fsspec as sfs
from s3dlio.errors import PermissionDeniedError
from s3dlio.oplog import reader


class OtherMoto:
    """A moto server in its own process (moto's servers in one process share their data)."""

    def __init__(self) -> None:
        for _ in range(3):  # the free port can be taken between choosing and binding it
            self.port = free_port()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            if wait_for_port(self.port, time.monotonic() + 60, self.proc):
                break
            self.proc.kill()
        else:
            pytest.fail("a second moto server did not start")
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id="testing",
                            aws_secret_access_key="testing", region_name="us-east-1")  # fmt: skip


@pytest.fixture(scope="module")
def second_server() -> Iterator[OtherMoto]:
    """Another moto server, which the environment does not point at."""
    server = OtherMoto()
    yield server
    server.proc.kill()
    server.proc.wait()


@pytest.fixture(params=["fast", "portable"])
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _keys(server: MotoServer | OtherMoto, bucket: str) -> list[str]:
    listed = server.client().list_objects_v2(Bucket=bucket).get("Contents", [])
    return sorted(item["Key"] for item in listed)


def test_two_clients_two_servers_at_once(
    moto_server: MotoServer, second_server: OtherMoto, engine: str
) -> None:
    for server in (moto_server, second_server):
        server.client().create_bucket(Bucket="twin")
    first = s3dlio.Client(endpoint_url=moto_server.endpoint, engine=engine)
    second = s3dlio.Client(endpoint_url=second_server.endpoint, engine=engine)
    errors: list[BaseException] = []

    def write(client: s3dlio.Client, name: str) -> None:
        try:
            client.put_many((f"s3://twin/{name}/{i}", name.encode() * 100) for i in range(20))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(c, n)) for c, n in ((first, "one"), (second, "two"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert _keys(moto_server, "twin") == sorted(f"one/{i}" for i in range(20))
    assert _keys(second_server, "twin") == sorted(f"two/{i}" for i in range(20))
    assert bytes(memoryview(second.get("s3://twin/two/3"))) == b"two" * 100
    # The module functions are the default client: the environment's server.
    assert s3dlio.list("s3://twin/", recursive=True) == [f"s3://twin/one/{i}" for i in sorted(map(str, range(20)))]
    for server in (moto_server, second_server):
        client = server.client()
        for key in _keys(server, "twin"):
            client.delete_object(Bucket="twin", Key=key)
        client.delete_bucket(Bucket="twin")


def test_a_wrong_credential_fails_only_its_own_client(azurite: Azurite, az_container: str, engine: str) -> None:
    right = s3dlio.Client(azure_account_name=AZURITE_ACCOUNT, azure_account_key=azurite.account_key,
                          azure_endpoint=azurite.endpoint, engine=engine)  # fmt: skip
    wrong = s3dlio.Client(azure_account_name=AZURITE_ACCOUNT, azure_account_key="QUJDREVGR0g=",
                          azure_endpoint=azurite.endpoint, engine=engine)  # fmt: skip
    results: dict[str, Any] = {}

    def use(name: str, client: s3dlio.Client) -> None:
        try:
            client.put(f"{az_container}{name}.bin", b"x" * 10)
            results[name] = bytes(memoryview(client.get(f"{az_container}{name}.bin")))
        except BaseException as exc:  # noqa: BLE001 - checked below
            results[name] = exc

    threads = [threading.Thread(target=use, args=item) for item in (("right", right), ("wrong", wrong))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results["right"] == b"x" * 10
    assert isinstance(results["wrong"], PermissionDeniedError)
    assert s3dlio.list(az_container) == [f"{az_container}right.bin"]


def _read_in_worker(client: s3dlio.Client, uri: str) -> bytes:
    return bytes(memoryview(client.get(uri)))


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_a_pickled_client_rebuilds_in_a_worker(second_server: OtherMoto, method: str) -> None:
    second_server.client().create_bucket(Bucket="pickled")
    client = s3dlio.Client(endpoint_url=second_server.endpoint)
    assert pickle.loads(pickle.dumps(client)) == client
    client.put("s3://pickled/k", b"from the second server")
    with multiprocessing.get_context(method).Pool(1) as pool:
        # The worker's environment points at the first server: only the client knows the second.
        assert pool.apply(_read_in_worker, (client, "s3://pickled/k")) == b"from the second server"
    client.delete("s3://pickled/k")
    client.delete_bucket("s3://pickled")


def test_streaming_listing_for_and_async_for(s3_bucket: str, engine: str) -> None:
    client = s3dlio.Client(engine=engine)
    uris = [f"{s3_bucket}many/{i:05d}" for i in range(1100)]  # more than one listing page
    client.put_many((uri, b"") for uri in uris)
    stream = client.list_stream(f"{s3_bucket}many/")
    assert [entry.uri for entry in stream] == uris

    async def collect() -> list[str]:
        return [entry.uri async for entry in client.list_stream(f"{s3_bucket}many/")]

    assert asyncio.run(collect()) == uris
    assert len(asyncio.run(client.list_stream(f"{s3_bucket}many/").collect_async())) == 1100
    assert asyncio.run(client.delete_async(f"{s3_bucket}many/")) == 1100


def test_client_operations_and_twins(s3_bucket: str, tmp_path: Path) -> None:
    with s3dlio.Client(max_in_flight=4) as client:
        client.put(f"{s3_bucket}a.bin", b"abcdef")
        assert bytes(memoryview(client.get_range(f"{s3_bucket}a.bin", 1, 3))) == b"bcd"
        assert client.stat(f"{s3_bucket}a.bin").size == 6
        assert client.exists(f"{s3_bucket}a.bin") and not client.exists(f"{s3_bucket}b.bin")
        buffer = bytearray(6)
        assert client.get_into(f"{s3_bucket}a.bin", buffer) == 6 and buffer == b"abcdef"
        with client.open_writer(f"{s3_bucket}w.bin") as writer:
            writer.write(b"written")
        with client.open_reader(f"{s3_bucket}w.bin") as reader_:
            assert reader_.read() == b"written"
        assert client.download(f"{s3_bucket}w.bin", str(tmp_path)) == [str(tmp_path / "w.bin")]
        assert client.copy(f"{s3_bucket}w.bin", f"{s3_bucket}c.bin") == 1
        assert asyncio.run(client.exists_async(f"{s3_bucket}c.bin"))
        with pytest.raises(TypeError, match="build another Client"):
            client.get(f"{s3_bucket}a.bin", config=s3dlio.Config.resolve())


def test_fsspec_with_explicit_options_is_op_logged(moto_server: MotoServer, s3_bucket: str, tmp_path: Path) -> None:
    log = tmp_path / "ops.tsv"
    s3dlio.init_op_log(str(log))
    try:
        fs = sfs.filesystem("s3", endpoint_url=moto_server.endpoint, region="us-east-1")
        fs.pipe(f"{s3_bucket}logged.bin", b"payload")
        assert fs.cat(f"{s3_bucket}logged.bin") == b"payload"
        client_fs = sfs.filesystem("s3", client=s3dlio.Client(endpoint_url=moto_server.endpoint))
        assert client_fs.cat(f"{s3_bucket}logged.bin") == b"payload"
    finally:
        s3dlio.finalize_op_log()
    ops = [(r.op, r.file) for r in reader.read(str(log))]
    name = s3_bucket[len("s3://") :] + "logged.bin"
    assert ("PUT", name) in ops
    assert ops.count(("GET", name)) >= 2
