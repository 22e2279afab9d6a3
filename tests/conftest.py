"""Shared fixtures: real servers once per session, a fresh bucket per test, the backend matrix.

Servers (started lazily, only when a test asks for them; see ``tests/servers.py``):

- ``moto_server``: moto's S3 over HTTP on a free port. Sets ``AWS_ENDPOINT_URL`` for the session.
- ``azurite``: Azurite's blob service on a free port. Sets ``AZURE_STORAGE_ACCOUNT_NAME``,
  ``AZURE_STORAGE_ACCOUNT_KEY`` and ``AZURE_STORAGE_ENDPOINT`` for the session.

Every test runs with test credentials in the environment (``AWS_ACCESS_KEY_ID=testing`` ...,
``AWS_REGION=us-east-1``, no ``AWS_PROFILE``), so nothing can reach a real account, and with
``s3dlio.configure()`` re-resolved after it. Subprocesses inherit the environment.

``backend`` runs a test once per (backend x engine), with readable ids: ``s3-fast``,
``s3-portable``, ``az-fast``, ``az-portable``, ``file-fast``, ``file-portable``, ``direct``,
``mem-fast``, ``mem-portable`` (``remote_backend``: the first four only). It yields a :class:`Backend` whose ``base`` is a fresh
bucket/container/directory URI ending in ``/``, with ``s3dlio.configure(engine=...)`` set.

A missing dependency or server FAILS its tests and names what to install (the README's first
command installs everything); ``S3DLIO_ALLOW_SKIPS=1`` skips them instead, and
``S3DLIO_REQUIRE_ALL=1`` (CI) forbids that. This covers :func:`servers.require` /
:func:`servers.missing` and plain ``pytest.importorskip``. The run ends with one line naming
every skip and its reason.
"""

from __future__ import annotations

import collections
import contextlib
import os
import sys
import uuid
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from servers import (  # noqa: E402
    DEPENDENCY_SKIP,
    PIP_HINT,
    REQUIRE_ALL,
    SKIP_HINT,
    Azurite,
    Backend,
    EnvPatch,
    MotoServer,
    missing,
)

from s3dlio.config import AZURITE_KEY  # noqa: E402

BACKEND_IDS = (
    "s3-fast",
    "s3-portable",
    "az-fast",
    "az-portable",
    "file-fast",
    "file-portable",
    "direct",
    "mem-fast",
    "mem-portable",
)
REMOTE_BACKEND_IDS = ("s3-fast", "s3-portable", "az-fast", "az-portable")

# Variables that would send a test somewhere other than our servers.
_UNSET = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_S3_ENDPOINT",
    "AWS_SESSION_TOKEN",
    "AWS_CA_BUNDLE_PATH",
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_STORAGE_ACCOUNT",
    "AZURE_STORAGE_KEY",
    "AZURE_BLOB_ENDPOINT",
    "S3DLIO_ENGINE",
    "S3DLIO_MAX_IN_FLIGHT",
    "S3DLIO_MAX_BYTES_IN_FLIGHT",
    "S3DLIO_PART_SIZE",
    "S3DLIO_CONNECT_TIMEOUT",
    "S3DLIO_REQUEST_TIMEOUT",
    "S3DLIO_MAX_ATTEMPTS",
    "S3DLIO_SIGN_PAYLOAD",
    "AWS_MAX_ATTEMPTS",
)


def reconfigure(**settings: Any) -> Any:
    """``s3dlio.configure(**settings)``: process-wide settings, re-resolved from the environment."""
    import s3dlio

    return s3dlio.configure(**settings)


# -- missing dependencies fail (S3DLIO_ALLOW_SKIPS=1: skip); one closing line names every skip --
def _skip_reason(longrepr: Any) -> str:
    reason = str(longrepr[2]) if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return reason.removeprefix("Skipped: ")


def _is_dependency_skip(longrepr: Any) -> str | None:
    reason = _skip_reason(longrepr)
    if DEPENDENCY_SKIP in reason or "could not import" in reason:
        return reason
    return None


def _fail_dependency_skip(report: Any) -> None:
    if REQUIRE_ALL and report.skipped and not hasattr(report, "wasxfail"):
        reason = _is_dependency_skip(report.longrepr)
        if reason is not None:
            install = "" if DEPENDENCY_SKIP in reason else f"; install it: {PIP_HINT}"
            report.outcome = "failed"
            report.longrepr = f"{reason}{install} {SKIP_HINT}"


def skip_summary(reports: list[Any]) -> str | None:
    """One line naming how many tests were skipped and why (None when none were)."""
    reasons: collections.Counter[str] = collections.Counter(
        _skip_reason(report.longrepr) for report in reports if not hasattr(report, "wasxfail")
    )
    if not reasons:
        return None
    parts = "; ".join(f"{count}x {reason}" for reason, count in reasons.most_common())
    return f"s3dlio: {reasons.total()} skipped: {parts}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    line = skip_summary(terminalreporter.stats.get("skipped", []))
    if line is not None:
        terminalreporter.write_line(line, yellow=True, bold=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the tests that import JAX or TensorFlow last.

    Both start threads at import, and a process with those threads must not fork (JAX warns
    that a forked child may deadlock); the fork, DataLoader and multiprocessing tests run first.
    """

    def threaded_framework(item: pytest.Item) -> bool:
        parts = item.path.parts
        return "jax" in parts or "tf" in parts or "tensorflow" in item.name or item.name.startswith("test_jax_")

    items.sort(key=threaded_framework)  # stable: the order within each group is kept


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    _fail_dependency_skip(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    report = yield
    _fail_dependency_skip(report)
    return report


# -- environment and servers -----------------------------------------------------------------
@pytest.fixture(scope="session", autouse=True)
def _session_env() -> Iterator[EnvPatch]:
    env = EnvPatch()
    for name in _UNSET:
        env.set(name, None)
    env.set("AWS_ACCESS_KEY_ID", "testing")
    env.set("AWS_SECRET_ACCESS_KEY", "testing")
    env.set("AWS_REGION", "us-east-1")
    env.set("AWS_DEFAULT_REGION", "us-east-1")
    env.set("AWS_EC2_METADATA_DISABLED", "true")
    yield env
    env.restore()


@pytest.fixture(autouse=True)
def _fresh_config() -> Iterator[None]:
    """Each test starts and ends with settings resolved from the (session) environment."""
    reconfigure()
    yield
    reconfigure()


@pytest.fixture(scope="session")
def moto_server(_session_env: EnvPatch) -> Iterator[MotoServer]:
    server = MotoServer()
    _session_env.set("AWS_ENDPOINT_URL", server.endpoint)
    reconfigure()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def azurite(_session_env: EnvPatch, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    server = Azurite(AZURITE_KEY)
    _session_env.set("AZURE_STORAGE_ACCOUNT_NAME", "devstoreaccount1")
    _session_env.set("AZURE_STORAGE_ACCOUNT_KEY", AZURITE_KEY)
    _session_env.set("AZURE_STORAGE_ENDPOINT", server.endpoint)
    reconfigure()
    yield server
    server.stop()


def nonce() -> str:
    return uuid.uuid4().hex[:12]


def empty_s3_bucket(client: Any, bucket: str) -> None:
    """Delete every object (and version) in ``bucket``, then the bucket."""
    try:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for page in pages:
            keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
        client.delete_bucket(Bucket=bucket)
    except client.exceptions.NoSuchBucket:
        pass


@pytest.fixture
def s3_bucket(moto_server: MotoServer) -> Iterator[str]:
    """A fresh, empty bucket on the moto server: ``s3://t-<nonce>/``; deleted afterwards."""
    client = moto_server.client()
    name = f"t-{nonce()}"
    client.create_bucket(Bucket=name)
    yield f"s3://{name}/"
    empty_s3_bucket(client, name)


@pytest.fixture
def az_container(azurite: Azurite) -> Iterator[str]:
    """A fresh, empty container on Azurite: ``az://t<nonce>/``; deleted afterwards."""
    from azure.core.exceptions import ResourceExistsError

    client = azurite.client()
    name = f"t{nonce()}"
    # A fresh name can only exist if the SDK retried a create whose first reply was lost.
    with contextlib.suppress(ResourceExistsError):
        client.create_container(name)
    yield f"az://{name}/"
    with contextlib.suppress(Exception):  # a test may have deleted it itself
        client.delete_container(name)


def o_direct_dir(candidates: list[Path]) -> Path | None:
    """The first directory among ``candidates`` whose filesystem accepts ``open(O_DIRECT)``."""
    if not hasattr(os, "O_DIRECT"):
        return None
    for directory in candidates:
        probe = directory / f".o_direct_probe_{nonce()}"
        try:
            fd = os.open(probe, os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o600)
        except OSError:
            continue
        os.close(fd)
        probe.unlink()
        return directory
    return None


@pytest.fixture
def direct_dir(tmp_path: Path) -> Iterator[Path]:
    """A fresh directory on a filesystem with O_DIRECT (tmp_path, else ``$S3DLIO_DIRECT_DIR``)."""
    candidates = [tmp_path]
    extra = os.environ.get("S3DLIO_DIRECT_DIR")
    if extra:
        path = Path(extra) / f"t-{nonce()}"
        path.mkdir(parents=True)
        candidates.append(path)
    found = o_direct_dir(candidates)
    if found is None:
        missing(
            f"no filesystem with O_DIRECT: {tmp_path} rejects open(O_DIRECT) (tmpfs does); "
            "set S3DLIO_DIRECT_DIR to a directory on ext4/xfs"
        )
    yield found
    if found != tmp_path:
        import shutil

        shutil.rmtree(found, ignore_errors=True)


def _backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    ident: str = request.param
    scheme, _, engine = ident.partition("-")
    engine = engine or "auto"
    if scheme == "s3":
        base = request.getfixturevalue("s3_bucket")
    elif scheme == "az":
        base = request.getfixturevalue("az_container")
    elif scheme == "file":
        base = f"file://{tmp_path}/"
    elif scheme == "direct":
        base = f"direct://{request.getfixturevalue('direct_dir')}/"
    else:
        base = f"mem://t-{nonce()}/"
    reconfigure(engine=engine)
    yield Backend(ident, scheme, engine, base)
    if scheme == "mem":
        import s3dlio

        with contextlib.suppress(Exception):  # best effort: frees memory only
            reconfigure(engine=engine)
            s3dlio.delete(base, recursive=True)
    reconfigure()


@pytest.fixture(params=["s3", "az", "file", "mem"])
def fsspec_place(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Any, str]:
    """(an s3dlio fsspec filesystem, a fresh root as an fsspec path: ``bucket`` or ``/abs/dir``)."""
    import s3dlio
    import s3dlio.fsspec as sfs

    if request.param in ("s3", "az"):
        uri = request.getfixturevalue("s3_bucket" if request.param == "s3" else "az_container")
        root = uri.split("://", 1)[1].rstrip("/")
    elif request.param == "file":
        (tmp_path / "root").mkdir()
        root = f"{tmp_path}/root"
    else:
        root = f"fsp-{tmp_path.name}"
        s3dlio.create_bucket(f"mem://{root}")
    return sfs.filesystem(request.param), root


@pytest.fixture(params=BACKEND_IDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Each (backend x engine) with a fresh place to write and ``s3dlio.configure(engine=...)``."""
    yield from _backend(request, tmp_path)


@pytest.fixture(params=REMOTE_BACKEND_IDS)
def remote_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Like ``backend``, for the services with buckets/containers only: s3 and az x both engines."""
    yield from _backend(request, tmp_path)
