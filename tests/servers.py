"""Real servers for the tests: a moto S3 server and Azurite, started once per session, lazily.

Both listen on free loopback ports. ``tests/conftest.py`` wraps them in session fixtures that
also point the environment at them (``AWS_ENDPOINT_URL``, ``AZURE_STORAGE_ENDPOINT``, ...), so
``s3dlio.configure()`` and subprocesses pick them up.

Missing dependencies fail
-------------------------
A test that needs something this machine may lack (a Python package, the ``azurite-blob``
binary, a filesystem with O_DIRECT) calls :func:`require` or :func:`missing` instead of
``pytest.importorskip`` / ``pytest.skip``. That FAILS the test and says what to install: the
README's first command (``bash .ci/setup``) installs everything, so its test command runs every
test. ``S3DLIO_ALLOW_SKIPS=1`` turns those failures into skips (a partial install);
``S3DLIO_REQUIRE_ALL=1`` (CI sets it) forbids skips even when ``S3DLIO_ALLOW_SKIPS`` is set.
The hooks in ``tests/conftest.py`` do the same for plain ``pytest.importorskip`` skips ("could
not import ...") anywhere in the suite, and print one line naming every skip at the end.

Nothing outside the repository and its venv is looked up: Azurite is ``$S3DLIO_AZURITE`` when
set, else ``<repo>/.ci/node_modules/.bin/azurite-blob`` (``.ci/setup`` installs it there);
console scripts (``s3dlio``, ``moto_server``, ...) come from the venv of ``sys.executable``
(:func:`venv_tool`).
"""

from __future__ import annotations

import contextlib
import http.server
import importlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import pytest

__all__ = [
    "ALLOW_SKIPS",
    "AZURITE_ACCOUNT",
    "AZURITE_NPM",
    "DEPENDENCY_SKIP",
    "PIP_HINT",
    "REPO",
    "REQUIRE_ALL",
    "SKIP_HINT",
    "Azurite",
    "Backend",
    "EnvPatch",
    "MotoServer",
    "find_azurite",
    "free_port",
    "kill_when",
    "missing",
    "require",
    "venv_tool",
    "wait_for_port",
]

REPO = Path(__file__).resolve().parent.parent


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


#: True when ``S3DLIO_ALLOW_SKIPS=1`` asks that a missing dependency skip its tests.
ALLOW_SKIPS = _flag("S3DLIO_ALLOW_SKIPS")
#: True when a missing dependency or server fails its tests: the default, and always under
#: ``S3DLIO_REQUIRE_ALL=1`` (CI), which wins over ``S3DLIO_ALLOW_SKIPS``.
REQUIRE_ALL = _flag("S3DLIO_REQUIRE_ALL") or not ALLOW_SKIPS
#: Prefix of every skip reason that means "a dependency or server is missing".
DEPENDENCY_SKIP = "missing dependency:"
#: How to opt out of failing, in every such failure message.
SKIP_HINT = "(S3DLIO_ALLOW_SKIPS=1 skips such tests instead)"
#: What installs a missing Python package: step 3 of ``.ci/setup``.
PIP_HINT = ".venv/bin/pip install -e '.[all,dev]' (step 3 of `bash .ci/setup`)"
AZURITE_ACCOUNT = "devstoreaccount1"
#: The Azurite that ``.ci/setup`` installs (``tests/test_readme.py`` checks that they agree).
AZURITE_NPM = "azurite@3.37.0"
AZURITE_BIN = REPO / ".ci" / "node_modules" / ".bin" / "azurite-blob"


def missing(what: str) -> NoReturn:
    """Fail the test because ``what`` (a package, binary or server) is missing, saying what to install.

    With ``S3DLIO_ALLOW_SKIPS=1`` (and no ``S3DLIO_REQUIRE_ALL=1``) the test is skipped instead.
    """
    if REQUIRE_ALL:
        pytest.fail(f"{DEPENDENCY_SKIP} {what} {SKIP_HINT}", pytrace=False)
    pytest.skip(f"{DEPENDENCY_SKIP} {what}")


def require(module_name: str, hint: str | None = None) -> ModuleType:
    """Import ``module_name``, else fail the test with ``hint`` (skip it under ``S3DLIO_ALLOW_SKIPS=1``)."""
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        error = exc  # reported outside the handler, so the failure shows no chained traceback
    missing(f"cannot import {module_name!r} ({error}); {hint or PIP_HINT}")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, deadline: float, proc: subprocess.Popen[Any] | None = None) -> bool:
    """Wait until 127.0.0.1:``port`` accepts connections (False at ``deadline`` or if ``proc`` died)."""
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
        time.sleep(0.1)
    return False


def kill_when(
    cmd: list[str], ready: Callable[[], bool], *, env: dict[str, str] | None = None, timeout: float = 120.0
) -> None:
    """Start ``cmd``; SIGKILL it as soon as ``ready()`` sees its work in progress (a write, an
    upload). Fails the test if it ends first or nothing shows within ``timeout`` seconds."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                pytest.fail(f"{cmd} ended (exit {proc.returncode}) before its work was seen in progress:\n{err}")
            if time.monotonic() > deadline:
                pytest.fail(f"{cmd}: no work in progress after {timeout} s")
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stderr:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL, f"{cmd} finished before it could be killed"


class EnvPatch:
    """Set environment variables for a whole session and put the old values back afterwards."""

    def __init__(self) -> None:
        self._saved: dict[str, str | None] = {}

    def set(self, name: str, value: str | None) -> None:
        """Set ``name`` (or remove it when ``value`` is None), remembering the first old value."""
        if name not in self._saved:
            self._saved[name] = os.environ.get(name)
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value

    def restore(self) -> None:
        for name, value in self._saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved.clear()


class MotoServer:
    """moto's S3 over real HTTP, in a thread of this process, on a free port."""

    def __init__(self) -> None:
        require("moto.server", "pip install 'moto[server]'")
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        _, self.port = self._server.get_host_and_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def client(self) -> Any:
        """A boto3 S3 client for this server (test setup and inspection, not the code under test)."""
        import boto3
        from botocore.config import Config as BotoConfig

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
            config=BotoConfig(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
        )

    def stop(self) -> None:
        self._server.stop()


class CaptureServer:
    """A planted host on loopback: records every request it receives (``requests``: method,
    path, headers with lower-case names) and answers 403, for tests that a request never goes
    where it must not."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        seen = self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def _any(self) -> None:
                seen.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                self.send_response(403)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_PUT = do_HEAD = do_POST = do_DELETE = _any

            def log_message(self, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def venv_tool(name: str) -> str | None:
    """The console script ``name`` installed next to ``sys.executable`` (this venv), or None."""
    path = Path(sys.executable).parent / name
    return str(path) if path.is_file() and os.access(path, os.X_OK) else None


def find_azurite() -> str:
    """The azurite-blob executable: ``$S3DLIO_AZURITE``, else the one ``.ci/setup`` installs.

    Fails the test (skips it under ``S3DLIO_ALLOW_SKIPS=1``) with the command that installs it.
    """
    override = os.environ.get("S3DLIO_AZURITE")
    candidate = Path(override) if override else AZURITE_BIN
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    where = f"S3DLIO_AZURITE={override}" if override else str(candidate)
    missing(
        f"no azurite-blob at {where}; install it with "
        f"`npm install --prefix {REPO / '.ci'} --no-audit --no-fund {AZURITE_NPM}` "
        "(the last step of `bash .ci/setup`)"
    )


def _without_sweep(binary: str) -> list[str]:
    """The command that starts ``binary`` without Azurite's periodic extent sweep, which blocks
    the server for minutes once thousands of blobs were deleted (tests/azurite_nogc.js); the
    binary itself when it is not an npm install of Azurite's blob service."""
    main = Path(binary).resolve()
    node = shutil.which("node")
    if node is None or main.suffix != ".js" or not (main.parent / "utils" / "constants.js").is_file():
        return [binary]
    return [node, str(Path(__file__).with_name("azurite_nogc.js")), str(main)]


class Azurite:
    """Azurite's blob service as a subprocess on a free port, in-memory, killed by :meth:`stop`."""

    def __init__(self, account_key: str) -> None:
        require("azure.storage.blob", "pip install 's3dlio[azure]'")
        binary = find_azurite()
        self.account_key = account_key
        self._workdir = tempfile.mkdtemp(prefix="s3dlio-azurite-")
        self._log_path = os.path.join(self._workdir, "azurite.log")
        self._log = open(self._log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc: subprocess.Popen[bytes] | None = None
        for _ in range(3):  # the free port can be taken between choosing and binding it
            self.port = free_port()
            self.proc = subprocess.Popen(
                [
                    *_without_sweep(binary),
                    "--blobHost",
                    "127.0.0.1",
                    "--blobPort",
                    str(self.port),
                    "--inMemoryPersistence",
                    "--skipApiVersionCheck",
                    "--loose",
                    "--silent",
                    "--disableTelemetry",
                ],  # fmt: skip
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                cwd=self._workdir,
            )
            if wait_for_port(self.port, time.monotonic() + 60, self.proc):
                break
            self._kill()
        else:
            log = Path(self._log_path).read_text(errors="replace")[-2000:]
            self.stop()
            pytest.fail(f"Azurite ({binary}) did not start listening; its log:\n{log}", pytrace=False)
        self.endpoint = f"http://127.0.0.1:{self.port}/{AZURITE_ACCOUNT}"
        self.connection_string = (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={account_key};"
            f"BlobEndpoint={self.endpoint};"
        )

    def client(self) -> Any:
        """An azure-storage-blob BlobServiceClient (test setup and inspection only)."""
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(self.connection_string)

    def _kill(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        self._kill()
        self._log.close()
        shutil.rmtree(self._workdir, ignore_errors=True)


@dataclass
class Backend:
    """One cell of the (backend x engine) matrix, with a fresh place to write."""

    id: str
    scheme: str
    #: "fast", "portable" or "auto" (direct:// has one engine).
    engine: str
    #: A fresh bucket/container/directory URI, ending in "/".
    base: str

    def uri(self, *parts: str) -> str:
        """``base`` joined with ``parts``."""
        return self.base + "/".join(parts)

    @property
    def remote(self) -> bool:
        """True for services with buckets/containers (s3, az)."""
        return self.scheme in ("s3", "az")

    def __str__(self) -> str:
        return self.id
