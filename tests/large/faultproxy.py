"""An HTTP/1.1 proxy for tests and benchmarks: injects faults, caps bandwidth per connection.

It sits between a client and a server on loopback (``configure(endpoint_url=proxy.url)``)
and relays requests one at a time per connection (keep-alive kept), so each request can
be counted and given a fault chosen by a rule ``(n, method, path) -> action``, where ``n``
counts requests from 1 and ``action`` is None (relay) or:

- ``"503"``: answer ``503 SlowDown`` itself, as S3 does when throttling;
- ``"reset"``: read the request, then reset the connection (RST) without an answer;
- ``"cut"``: relay the answer but close the connection halfway through its body;
- ``"stall"``: read the request, then never answer (the connection stays open, silent);
- ``"stall-body"``: relay the answer's headers and the first half of its body, then stall.

Stalled connections are held until :meth:`FaultProxy.stop`.

``rate`` (bytes/s) caps each connection in both directions, as real S3 caps each stream;
``total_rate`` caps all of the proxy's connections together, as a gateway's link would.
Threads and sockets only; ``python faultproxy.py UPSTREAM_PORT [RATE]`` runs one standalone
(the benchmark does, so its CPU is not the client's) and prints the port.
"""

from __future__ import annotations

import collections
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable

__all__ = ["Action", "FaultProxy", "always", "every", "first", "numbered"]

Action = str | None
Rule = Callable[[int, str, str], Action]

_SLOWDOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)
_CHUNK = 256 * 1024
#: ``rate`` caps a connection's mean rate since it opened, so a pause within a transfer (a
#: request waiting on the server) is made up for; a connection idle longer than this starts
#: over, as TCP restarts its window after an idle spell, so one kept in a client's pool is
#: capped like a new one.
_IDLE_RESTART = 0.2


def numbered(plan: Callable[[int, str, str], Action], methods: tuple[str, ...] | None = None) -> Rule:
    """A rule that numbers the requests it sees (of ``methods``, when given) from 1 and asks
    ``plan(k, method, path)`` with that number."""
    seen = [0]
    lock = threading.Lock()

    def rule(n: int, method: str, path: str) -> Action:
        if methods is not None and method not in methods:
            return None
        with lock:
            seen[0] += 1
            k = seen[0]
        return plan(k, method, path)

    return rule


def every(k: int, action: str, methods: tuple[str, ...] | None = None) -> Rule:
    """Fault every ``k``-th request (of ``methods``, when given)."""
    return numbered(lambda i, method, path: action if i % k == 0 else None, methods)


def first(count: int, action: str) -> Rule:
    """Fault the first ``count`` requests."""
    return lambda n, method, path: action if n <= count else None


def always(action: str) -> Rule:
    """Fault every request (a permanent failure)."""
    return lambda n, method, path: action


class _Conn:
    """A socket with a read buffer, for parsing HTTP heads and relaying bodies."""

    def __init__(self, sock: socket.socket, rate: float | None, shared: _Throttle | None = None) -> None:
        self.sock, self.rate, self.buf, self.shared = sock, rate, b"", shared
        self._sent_start, self._sent = time.monotonic(), 0
        self._last_send = self._sent_start

    def head(self) -> bytes | None:
        while b"\r\n\r\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                return None
            self.buf += data
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        return head

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("closed inside a chunked body")
            self.buf += data
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def read(self, n: int) -> bytes:
        while len(self.buf) < n:
            data = self.sock.recv(max(65536, n - len(self.buf)) if n - len(self.buf) < _CHUNK else _CHUNK)
            if not data:
                raise ConnectionError("closed inside a body")
            self.buf += data
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def pipe(self, dst: _Conn | _Discard, n: int) -> None:
        """Relay ``n`` body bytes to ``dst`` through one reused buffer (no copies per chunk)."""
        buffered = self.buf[:n]
        self.buf = self.buf[len(buffered) :]
        if buffered:
            dst.send(buffered)
        left = n - len(buffered)
        block = memoryview(bytearray(min(_CHUNK, max(left, 1))))
        while left > 0:
            got = self.sock.recv_into(block[: min(len(block), left)])
            if not got:
                raise ConnectionError("closed inside a body")
            dst.send(block[:got])
            left -= got

    def send(self, data: bytes | memoryview) -> None:
        for i in range(0, len(data), _CHUNK):
            piece = data[i : i + _CHUNK]
            self.sock.sendall(piece)
            if self.shared is not None:
                self.shared.take(len(piece))
            if self.rate:
                now = time.monotonic()
                if now - self._last_send > _IDLE_RESTART:  # as if new: no credit from idle time
                    self._sent_start, self._sent = now, 0
                self._sent += len(piece)
                ahead = self._sent / self.rate - (now - self._sent_start)
                if ahead > 0:
                    time.sleep(ahead)
                self._last_send = time.monotonic()


class _Throttle:
    """A rate shared by several connections: each send books its bytes on one timeline."""

    def __init__(self, rate: float) -> None:
        self.rate, self._lock, self._free_at = rate, threading.Lock(), time.monotonic()

    def take(self, nbytes: int) -> None:
        with self._lock:
            start = max(self._free_at, time.monotonic())
            self._free_at = start + nbytes / self.rate
            wait = self._free_at - time.monotonic()
        if wait > 0:
            time.sleep(wait)


class _Discard:
    def send(self, data: bytes | memoryview) -> None:
        pass


def _headers(head: bytes) -> tuple[bytes, dict[str, str]]:
    first_line, *lines = head.split(b"\r\n")
    fields = {}
    for raw in lines:
        name, _, value = raw.decode("latin-1").partition(":")
        fields[name.strip().lower()] = value.strip()
    return first_line, fields


def _relay_body(src: _Conn, dst: _Conn | _Discard, fields: dict[str, str], limit: int | None = None) -> bool:
    """Relay one message body; with ``limit``, stop after that many bytes. False when cut."""
    if fields.get("transfer-encoding", "").lower() == "chunked":
        sent = 0
        while True:
            size_line = src.line()
            size = int(size_line.split(b";")[0], 16)
            chunk = src.read(size + 2) if size else b""
            if limit is not None and sent + size > limit:
                dst.send(size_line + b"\r\n" + chunk[: max(0, limit - sent)])
                return False
            if size == 0:
                trailer = b""
                while (line := src.line()) != b"":
                    trailer += line + b"\r\n"
                dst.send(b"0\r\n" + trailer + b"\r\n")
                return True
            dst.send(size_line + b"\r\n" + chunk)
            sent += size
    remaining = int(fields.get("content-length", "0"))
    stop = remaining if limit is None else min(limit, remaining)
    src.pipe(dst, stop)
    return stop == remaining


class FaultProxy:
    """A proxy on a free loopback port in front of ``127.0.0.1:upstream_port``."""

    def __init__(
        self, upstream_port: int, rule: Rule | None = None, *, rate: float | None = None,
        total_rate: float | None = None,
    ) -> None:  # fmt: skip
        self.upstream_port, self.rule, self.rate = upstream_port, rule, rate
        self._throttle = _Throttle(total_rate) if total_rate else None
        self.requests = 0
        #: Requests being answered now, and the most at any one time (reset it to measure a phase).
        self.active = 0
        self.peak = 0
        self.faults: list[tuple[int, str, str, str]] = []
        #: The last 10,000 requests: (n, method, path, lower-cased header fields).
        self.log: collections.deque[tuple[int, str, str, dict[str, str]]] = collections.deque(maxlen=10_000)
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._stopped = False
        self._stop = threading.Event()
        threading.Thread(target=self._accept, name="faultproxy", daemon=True).start()

    def stop(self) -> None:
        self._stopped = True
        self._stop.set()  # releases stalled connections
        self._listener.close()

    def _stall(self) -> None:
        """Keep the connection open and silent until the proxy stops."""
        self._stop.wait()

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client_sock: socket.socket) -> None:
        client = _Conn(client_sock, self.rate, self._throttle)
        upstream: _Conn | None = None
        busy = False  # a request of this connection is being answered
        try:
            while not self._stopped:
                if busy:
                    busy = self._answered()
                head = client.head()
                if head is None:
                    return
                request_line, fields = _headers(head)
                method, path = request_line.decode("latin-1").split(" ")[:2]
                with self._lock:
                    self.requests += 1
                    n = self.requests
                    self.active += 1
                    self.peak = max(self.peak, self.active)
                    busy = True
                    self.log.append((n, method, path, fields))
                action = self.rule(n, method, path) if self.rule else None
                if action is not None:
                    with self._lock:
                        self.faults.append((n, method, path, action))
                expect = fields.get("expect", "").lower() == "100-continue"
                if action == "stall":
                    if not expect:
                        _relay_body(client, _Discard(), fields)
                    self._stall()
                    return
                if action in ("503", "reset"):
                    if not expect:  # with Expect the client sends no body before an answer
                        _relay_body(client, _Discard(), fields)
                    if action == "reset":
                        client_sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        return
                    close = b"Connection: close\r\n" if expect else b""
                    client.send(b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\n%s"
                                b"Content-Length: %d\r\n\r\n%s" % (close, len(_SLOWDOWN), _SLOWDOWN))  # fmt: skip
                    if expect:
                        return
                    continue
                if expect:  # answer it here, so the body comes before the request goes on
                    client.send(b"HTTP/1.1 100 Continue\r\n\r\n")
                    head = b"\r\n".join(
                        line for line in head.split(b"\r\n") if not line.lower().startswith(b"expect:")
                    )
                if upstream is None:
                    upstream = _Conn(
                        socket.create_connection(("127.0.0.1", self.upstream_port)), self.rate, self._throttle
                    )
                upstream.send(head + b"\r\n\r\n")
                _relay_body(client, upstream, fields)
                status_head = upstream.head()
                if status_head is None:
                    return
                client.send(status_head + b"\r\n\r\n")
                status_line, answer = _headers(status_head)
                status = int(status_line.split(b" ")[1])
                if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
                    continue
                if "content-length" not in answer and "chunked" not in answer.get("transfer-encoding", ""):
                    while data := upstream.sock.recv(_CHUNK):  # body until close
                        client.send(data)
                    return
                if action in ("cut", "stall-body"):
                    length = int(answer.get("content-length", "0") or 0)
                    _relay_body(upstream, client, answer, limit=max(0, length // 2))
                    if action == "stall-body":
                        self._stall()
                    return
                _relay_body(upstream, client, answer)
        except (OSError, ConnectionError, ValueError):
            return
        finally:
            if busy:
                self._answered()
            client_sock.close()
            if upstream is not None:
                upstream.sock.close()

    def _answered(self) -> bool:
        with self._lock:
            self.active -= 1
        return False


if __name__ == "__main__":
    # python faultproxy.py UPSTREAM_PORT [RATE [TOTAL_RATE]]  (0 or absent: no cap)
    caps = [float(v) or None for v in sys.argv[2:4]] + [None, None]
    proxy = FaultProxy(int(sys.argv[1]), rate=caps[0], total_rate=caps[1])
    print(proxy.port, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        proxy.stop()
