"""The ``endpoint`` fixture of the s3torchconnector drop-in tests (see ``_elsewhere.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from _elsewhere import CLOSED_PORT, WRONG_REGION

import s3dlio


@pytest.fixture
def endpoint(bucket: Any, moto_server: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """moto's endpoint, while the environment (and so the default config) says somewhere else.

    ``bucket`` (each module's own) is filled first, while the environment still names moto."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", CLOSED_PORT)
    monkeypatch.setenv("AWS_REGION", WRONG_REGION)
    monkeypatch.setenv("AWS_DEFAULT_REGION", WRONG_REGION)
    monkeypatch.setenv("S3DLIO_MAX_ATTEMPTS", "1")  # an ignored endpoint fails at once
    s3dlio.configure()
    yield str(moto_server.endpoint)
    monkeypatch.undo()
    s3dlio.configure()
