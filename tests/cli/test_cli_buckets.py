"""create-bucket, delete-bucket, list-buckets: as the installed subprocess on moto and Azurite."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

Run = Any


@pytest.fixture(params=["s3", "az"])
def scheme(request: pytest.FixtureRequest) -> str:
    request.getfixturevalue("moto_server" if request.param == "s3" else "azurite")
    return str(request.param)


def test_bucket_lifecycle(sh: Callable[..., Run], invoke: Callable[..., Run], scheme: str) -> None:
    uri = f"{scheme}://cli-{uuid.uuid4().hex[:10]}"
    run = sh("create-bucket", uri)
    assert run.code == 0 and run.out == f"Created bucket {uri}\n", str(run)
    again = invoke("create-bucket", uri)
    assert again.code == 1 and again.err.startswith("s3dlio: error: ") and len(again.err.splitlines()) == 1
    assert invoke("create-bucket", "--exist-ok", uri).code == 0

    run = sh("list-buckets", f"{scheme}://")
    assert run.code == 0 and uri in run.out.splitlines(), str(run)
    assert uri in invoke("list-buckets", "--json", f"{scheme}://").json()["buckets"]

    assert invoke("put", "-n", "2", "-s", "10", "-t", "o{}", uri + "/").code == 0
    full = invoke("delete-bucket", uri)
    assert full.code != 0 and full.err.startswith("s3dlio: error: ")
    run = sh("delete-bucket", "--force", uri)
    assert run.code == 0 and run.out == f"Deleted 2 objects.\nDeleted bucket {uri}\n", str(run)
    assert uri not in invoke("list-buckets", f"{scheme}://").out.splitlines()
    gone = invoke("delete-bucket", uri)
    assert gone.code == 1 and len(gone.err.splitlines()) == 1


def test_buckets_need_a_bucket_scheme(invoke: Callable[..., Run], tmp_path: Path) -> None:
    run = invoke("create-bucket", f"file://{tmp_path}/b")
    assert run.code == 2 and "s3://" in run.err and len(run.err.splitlines()) == 1


def test_put_creates_the_bucket(invoke: Callable[..., Run], moto_server: Any) -> None:
    uri = f"s3://cli-{uuid.uuid4().hex[:10]}"
    run = invoke("put", "-c", "-n", "2", "-s", "1k", uri + "/p/")
    assert run.code == 0, str(run)
    assert invoke("put", "-c", "-s", "1k", uri + "/p/").code == 0  # an existing bucket is fine
    assert invoke("delete-bucket", "-f", uri).code == 0
