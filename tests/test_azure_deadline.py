"""The portable engine's Azure store keeps the documented deadline (docs/configuration.md):
a server that never answers ends any operation in a TransferError within about
``total_timeout + read_timeout``; the Azure SDK's own retries do not multiply it.

Azurite behind :class:`large.faultproxy.FaultProxy`, which reads each request and then
stays silent (``"stall"``), or relays the headers and half the body, then stalls.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from large.faultproxy import FaultProxy, Rule, always
from servers import Azurite

import s3dlio
from s3dlio.errors import TransferError

READ, TOTAL = 1.0, 2.0
#: The documented bound plus slack for backoff, Python start-up of the SDK and a loaded CI box.
BOUND = TOTAL + READ + 3.0


@pytest.fixture
def stalled(azurite: Azurite, az_container: str) -> Iterator[Callable[..., s3dlio.Client]]:
    """``stalled(rule, total_timeout=TOTAL)``: a portable-engine client whose Azure requests
    pass a fault proxy with that rule."""
    container = az_container.split("/")[2]
    azurite.client().get_container_client(container).upload_blob("small.bin", b"x" * 100)
    proxies: list[FaultProxy] = []

    def start(rule: Rule, total_timeout: float = TOTAL) -> s3dlio.Client:
        proxy = FaultProxy(azurite.port, rule)
        proxies.append(proxy)
        return s3dlio.Client(engine="portable", azure_endpoint=f"{proxy.url}/devstoreaccount1",
                             read_timeout=READ, total_timeout=total_timeout)  # fmt: skip

    yield start
    for proxy in proxies:
        proxy.stop()


def _timed(op: Callable[[], object]) -> tuple[float, TransferError]:
    began = time.monotonic()
    with pytest.raises(TransferError) as caught:
        op()
    return time.monotonic() - began, caught.value


@pytest.mark.parametrize("op", ["get", "put", "list", "head", "get_range"])
def test_silent_server_ends_within_the_deadline(stalled: Callable[..., s3dlio.Client], az_container: str,
                                                op: str) -> None:  # fmt: skip
    client = stalled(always("stall"))
    uri = f"{az_container}small.bin"
    calls: dict[str, Callable[[], object]] = {
        "get": lambda: client.get(uri),
        "put": lambda: client.put(f"{az_container}new.bin", b"y" * 100),
        "list": lambda: client.list(az_container),
        "head": lambda: client.stat(uri),
        "get_range": lambda: client.get_range(uri, 0, 10),
    }
    took, error = _timed(calls[op])
    assert took < BOUND, f"{op} took {took:.1f} s, more than total_timeout + read_timeout ({error})"
    assert "timed out" in str(error), error


def test_body_stalled_half_way_ends_within_the_deadline(stalled: Callable[..., s3dlio.Client],
                                                        az_container: str) -> None:  # fmt: skip
    """Headers and half the body, then silence: the SDK's own re-reads of the body count too."""
    client = stalled(lambda n, method, path: "stall-body" if method == "GET" else None)
    took, error = _timed(lambda: client.get(f"{az_container}small.bin"))
    # the SDK reads a stalled body 3 times, 1 s apart (docs/configuration.md)
    assert took < 3 * READ + 2 + 3.0, f"get took {took:.1f} s ({error})"
    assert "timed out" in str(error), error


def test_sdk_body_retries_are_not_multiplied(
    stalled: Callable[..., s3dlio.Client], az_container: str
) -> None:
    """With time left in total_timeout, s3dlio's layer does not retry a stall the SDK gave up on."""
    client = stalled(lambda n, method, path: "stall-body" if method == "GET" else None, total_timeout=30)
    took, error = _timed(lambda: client.get(f"{az_container}small.bin"))
    assert took < 3 * READ + 2 + 3.0, f"get took {took:.1f} s ({error})"
