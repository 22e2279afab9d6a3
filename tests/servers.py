"""Real servers for the tests: a moto S3 server and Azurite, started once per session, lazily.

Both listen on free loopback ports. ``tests/conftest.py`` wraps them in session fixtures that
also point the environment at them (``AWS_ENDPOINT_URL``, ``AZURE_STORAGE_ENDPOINT``, ...), so
``s3dlio.configure()`` and subprocesses pick them up.

Skips for missing dependencies
------------------------------
A test that needs something this machine may lack (a Python package, the ``azurite-blob``
binary, a filesystem with O_DIRECT) calls :func:`require` or :func:`missing` instead of
``pytest.importorskip`` / ``pytest.skip``. Normally that skips the test. With
``S3DLIO_REQUIRE_ALL=1`` (CI sets it) it fails the test instead, so CI cannot pass by skipping.
The hooks in ``tests/conftest.py`` do the same for plain ``pytest.importorskip`` skips ("could
not import ...") anywhere in the suite.

Where Azurite is looked for, first hit wins: ``$S3DLIO_AZURITE``,
``<repo>/.ci/node_modules/.bin/azurite-blob`` (``.ci/run`` installs it there),
``/tmp/azurite/node_modules/.bin/azurite-blob``, then ``azurite-blob`` on ``PATH``.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import pytest

__all__ = [
    "AZURITE_ACCOUNT",
    "DEPENDENCY_SKIP",
    "REQUIRE_ALL",
    "Azurite",
    "Backend",
    "EnvPatch",
    "MotoServer",
    "find_azurite",
    "free_port",
    "missing",
    "require",
    "wait_for_port",
]

REPO = Path(__file__).resolve().parent.parent
#: True when CI asks that nothing be skipped for want of a dependency or server.
REQUIRE_ALL = os.environ.get("S3DLIO_REQUIRE_ALL", "").strip().lower() in ("1", "true", "yes", "on")
#: Prefix of every skip reason that means "a dependency or server is missing".
DEPENDENCY_SKIP = "missing dependency:"
AZURITE_ACCOUNT = "devstoreaccount1"


def missing(what: str) -> NoReturn:
    """Skip the test because ``what`` (a package, binary or server) is missing.

    Under ``S3DLIO_REQUIRE_ALL=1`` the test fails instead.
    """
    if REQUIRE_ALL:
        pytest.fail(f"S3DLIO_REQUIRE_ALL=1 and {DEPENDENCY_SKIP} {what}", pytrace=False)
    pytest.skip(f"{DEPENDENCY_SKIP} {what}")


def require(module_name: str, hint: str | None = None) -> ModuleType:
    """Import ``module_name`` or skip the test (fail it under ``S3DLIO_REQUIRE_ALL=1``)."""
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        missing(f"cannot import {module_name!r} ({exc}){'; ' + hint if hint else ''}")


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


def find_azurite() -> str | None:
    """The azurite-blob executable, or None."""
    candidates = [
        os.environ.get("S3DLIO_AZURITE"),
        str(REPO / ".ci" / "node_modules" / ".bin" / "azurite-blob"),
        "/tmp/azurite/node_modules/.bin/azurite-blob",
        shutil.which("azurite-blob"),
    ]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


class Azurite:
    """Azurite's blob service as a subprocess on a free port, in-memory, killed by :meth:`stop`."""

    def __init__(self, account_key: str) -> None:
        require("azure.storage.blob", "pip install 's3dlio[azure]'")
        binary = find_azurite()
        if binary is None:
            missing(
                "azurite-blob not found (set S3DLIO_AZURITE, or `npm install azurite` into .ci/, "
                "/tmp/azurite or onto PATH)"
            )
        self.account_key = account_key
        self._workdir = tempfile.mkdtemp(prefix="s3dlio-azurite-")
        self._log_path = os.path.join(self._workdir, "azurite.log")
        self._log = open(self._log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc: subprocess.Popen[bytes] | None = None
        for _ in range(3):  # the free port can be taken between choosing and binding it
            self.port = free_port()
            self.proc = subprocess.Popen(
                [
                    binary,
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
