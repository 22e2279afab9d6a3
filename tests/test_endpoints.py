"""Several endpoints, one namespace: three proxies in front of one moto server stand in for
three gateways of a storage cluster."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from large.faultproxy import FaultProxy
from servers import MotoServer

import s3dlio
from s3dlio.config import Config
from s3dlio.errors import ConfigError
from s3dlio.oplog import reader


@pytest.fixture(params=["fast", "portable"])
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def gateways(moto_server: MotoServer) -> Iterator[Any]:
    """``gateways(n, **proxy_settings)``: n proxies to the one server; all stopped afterwards."""
    started: list[FaultProxy] = []

    def start(n: int, rule: Any = None, rates: list[float | None] | None = None) -> list[FaultProxy]:
        for i in range(n):
            started.append(FaultProxy(moto_server.port, rule, rate=(rates or [None] * n)[i]))
        return started[-n:]

    yield start
    for proxy in started:
        proxy.stop()


def _objects(bucket: str, n: int, size: int = 1024) -> dict[str, bytes]:
    return {f"{bucket}obj/{i:05d}": bytes([i % 251]) * size for i in range(n)}


def test_round_robin_spreads_requests_evenly(gateways: Any, s3_bucket: str, engine: str) -> None:
    proxies = gateways(3)
    s3dlio.configure(endpoints=[p.url for p in proxies], engine=engine, max_in_flight=16)
    objects = _objects(s3_bucket, 150)
    s3dlio.put_many(objects.items())
    for _ in range(9):  # 150 PUTs + 1,350 GETs
        got = s3dlio.get_many(objects)
        assert [bytes(memoryview(b)) for b in got] == list(objects.values())  # type: ignore[arg-type]
    counts = [p.requests for p in proxies]
    assert sum(counts) == 1500
    for count in counts:
        assert abs(count - 500) <= 50, counts
    stats = s3dlio.endpoint_stats()
    assert [s["endpoint"] for s in stats] == [p.url for p in proxies]
    assert [s["requests"] for s in stats] == counts
    assert sum(s["bytes"] for s in stats) == 10 * 150 * 1024
    assert all(s["errors"] == 0 and s["available"] for s in stats)


def test_a_gateway_that_dies_mid_run_loses_no_request(gateways: Any, s3_bucket: str, engine: str) -> None:
    dead = threading.Event()
    proxies = gateways(3, lambda n, method, path: "reset" if dead.is_set() else None)
    victim = proxies[1]
    # Only the victim's rule matters once ``dead`` is set: the others keep relaying.
    for proxy in (proxies[0], proxies[2]):
        proxy.rule = None
    s3dlio.configure(endpoints=[p.url for p in proxies], engine=engine, max_in_flight=8)
    objects = _objects(s3_bucket, 300)
    s3dlio.put_many(objects.items())

    def kill_when_busy() -> None:
        while victim.requests < 150:
            threading.Event().wait(0.005)
        dead.set()
        victim.stop()

    killer = threading.Thread(target=kill_when_busy)
    killer.start()
    got = s3dlio.get_many(list(objects) * 2)
    killer.join()
    assert dead.is_set()
    assert [bytes(memoryview(b)) for b in got] == list(objects.values()) * 2  # type: ignore[arg-type]
    stats = {s["endpoint"]: s for s in s3dlio.endpoint_stats()}
    assert stats[victim.url]["errors"] >= 1
    assert not stats[victim.url]["available"]
    assert sum(s["requests"] for s in stats.values()) == 900


def test_least_connections_avoids_a_slow_gateway(gateways: Any, s3_bucket: str) -> None:
    # The third: about 4 s per 64 KiB object, so it stays the slow one on a loaded machine too
    # (at 2 s it once took 66 of 240 GETs against 87 and 87, with moto itself slow behind all three)
    proxies = gateways(3, rates=[None, None, 16 * 1024])
    objects = _objects(s3_bucket, 240, size=64 * 1024)
    s3dlio.configure(endpoints=[p.url for p in proxies], endpoint_strategy="least_connections", max_in_flight=12)
    s3dlio.put_many(objects.items())
    before = [p.requests for p in proxies]
    s3dlio.get_many(objects)
    fast_a, fast_b, slow = (p.requests - b for p, b in zip(proxies, before, strict=True))
    assert slow < 0.5 * min(fast_a, fast_b), (fast_a, fast_b, slow)


def test_round_robin_ignores_speed(gateways: Any, s3_bucket: str) -> None:
    """The contrast to least-connections: round-robin sends the slow gateway its third."""
    proxies = gateways(3, rates=[None, None, 1024 * 1024])
    s3dlio.configure(endpoints=[p.url for p in proxies], max_in_flight=12)
    objects = _objects(s3_bucket, 90, size=16 * 1024)
    s3dlio.put_many(objects.items())
    before = [p.requests for p in proxies]
    s3dlio.get_many(objects)
    assert [p.requests - b for p, b in zip(proxies, before, strict=True)] == [30, 30, 30]


def test_op_log_names_the_endpoint_each_request_used(gateways: Any, s3_bucket: str, tmp_path: Path) -> None:
    proxies = gateways(3)
    s3dlio.configure(endpoints=[p.url for p in proxies])
    log = tmp_path / "ops.tsv.zst"
    s3dlio.init_op_log(str(log))
    try:
        objects = _objects(s3_bucket, 30)
        s3dlio.put_many(objects.items())
        s3dlio.get_many(objects)
    finally:
        s3dlio.finalize_op_log()
    used = Counter((r.op, r.endpoint) for r in reader.read(str(log)))
    for proxy in proxies:
        assert used[("PUT", proxy.url)] == 10
        assert used[("GET", proxy.url)] == 10


def test_a_multipart_upload_stays_on_one_endpoint(gateways: Any, s3_bucket: str, engine: str) -> None:
    proxies = gateways(3)
    s3dlio.configure(endpoints=[p.url for p in proxies], engine=engine, part_size=5 * 1024 * 1024)
    data = bytes(range(256)) * (11 * 1024 * 1024 // 256)
    with s3dlio.open_writer(f"{s3_bucket}big.bin") as writer:
        writer.write(data)
    used = [p.requests for p in proxies]
    assert sorted(used)[:2] == [0, 0], used  # create, 3 parts and complete: all on one gateway
    assert bytes(memoryview(s3dlio.get(f"{s3_bucket}big.bin"))) == data


def test_endpoints_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S3DLIO_ENDPOINTS", "http://10.0.0.1:9000, http://10.0.0.2:9000")
    monkeypatch.setenv("S3DLIO_ENDPOINT_STRATEGY", "least_connections")
    config = Config.resolve()
    assert config.endpoints == ("http://10.0.0.1:9000", "http://10.0.0.2:9000")
    assert config.endpoint_url == "http://10.0.0.1:9000"
    assert config.endpoint_strategy == "least_connections"


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"endpoints": ["http://a:1", "ftp://b:2"]}, "ftp://b:2"),
        ({"endpoints": ["http://a:1"], "endpoint_strategy": "random"}, "random"),
        ({"endpoints": ["http://a:1"], "endpoint_cooldown": 0}, "endpoint_cooldown"),
    ],
)
def test_bad_endpoint_settings_name_the_value(settings: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        Config.resolve(**settings)


def test_cli_repeated_endpoint_url_spreads_requests(gateways: Any, s3_bucket: str) -> None:
    proxies = gateways(2)
    s3dlio.put_many(_objects(s3_bucket, 20).items())
    s3dlio_cli = Path(sys.executable).with_name("s3dlio")
    run = subprocess.run(
        [str(s3dlio_cli), "--endpoint-url", proxies[0].url, "--endpoint-url", proxies[1].url,
         "--endpoint-strategy", "round_robin", "get", "-j", "4", f"{s3_bucket}obj/"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert sorted(p.requests for p in proxies) == [10, 11]  # one LIST and 20 GETs, taking turns
