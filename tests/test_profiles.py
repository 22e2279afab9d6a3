"""Which AWS credentials sign a request when a profile and access keys are both about.

As botocore orders them: an explicitly named profile beats keys from the environment or
``.env``; ``AWS_PROFILE`` beats keys from ``.env`` but not ``AWS_ACCESS_KEY_ID`` from the real
environment (botocore's env provider comes first); keys given explicitly beat any profile; a
named profile that does not exist is a ConfigError naming it and the files looked in, never a
fallback to other keys. Both engines, through ``Client``, ``configure`` and the fsspec
filesystem; a capture server records the access key id each request was signed with.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from servers import CaptureServer

import s3dlio
import s3dlio.fsspec
from s3dlio.config import Config, default_config
from s3dlio.errors import ConfigError, S3dlioError

ENGINES = ["fast", "portable"]
ENV_KEY, DOTENV_KEY, PROFILE_KEY, EXPLICIT_KEY = "AKIA_FROM_ENV", "AKIA_FROM_DOTENV", "AKIA_FROM_PROFILE", "AKIA_EXPLICIT"


@pytest.fixture
def signed() -> Iterator[CaptureServer]:
    """A server that records each request (the access key id it was signed with: :func:`_keys`)
    and answers 403."""
    server = CaptureServer()
    yield server
    server.stop()


def _keys(server: CaptureServer) -> list[str | None]:
    """The access key id of each request ``server`` received."""
    found = (re.search(r"Credential=([^/]+)/", headers.get("authorization", "")) for _, _, headers in server.requests)
    return [m.group(1) if m else None for m in found]


@pytest.fixture
def aws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Profile ``prof`` in temp AWS files, keys ``AKIA_FROM_ENV`` in the environment, a working
    directory of its own (for a ``.env``)."""
    (tmp_path / "credentials").write_text(f"[prof]\naws_access_key_id = {PROFILE_KEY}\naws_secret_access_key = s\n")
    (tmp_path / "config").write_text("[profile prof]\nregion = us-east-1\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ENV_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _endpoint(server: CaptureServer) -> str:
    return server.url


def _signer(server: CaptureServer, stat: Any) -> list[str | None]:
    """The access key ids the requests of ``stat("s3://bkt/x")`` were signed with."""
    server.requests.clear()
    with pytest.raises(S3dlioError):  # the server denies everything
        stat("s3://bkt/x")
    return sorted(set(_keys(server)), key=str)


def _client(server: CaptureServer, engine: str, **settings: Any) -> Any:
    return s3dlio.Client(endpoint_url=_endpoint(server), engine=engine, max_attempts=1, **settings).stat


# -- an explicit profile beats keys from the environment --------------------------------------------
@pytest.mark.parametrize("engine", ENGINES)
def test_an_explicit_profile_beats_environment_keys(aws: Path, signed: CaptureServer, engine: str) -> None:
    assert _signer(signed, _client(signed, engine, profile="prof")) == [PROFILE_KEY]
    s3dlio.configure(endpoint_url=_endpoint(signed), engine=engine, max_attempts=1, profile="prof")
    assert _signer(signed, s3dlio.stat) == [PROFILE_KEY]


@pytest.mark.parametrize("engine", ENGINES)
def test_an_fsspec_profile_option_beats_environment_keys(aws: Path, signed: CaptureServer, engine: str) -> None:
    s3dlio.configure(engine=engine, max_attempts=1)
    fs = s3dlio.fsspec.filesystem("s3", endpoint_url=_endpoint(signed), profile="prof")
    assert _signer(signed, lambda uri: fs.info(uri)) == [PROFILE_KEY]


@pytest.mark.parametrize("engine", ENGINES)
def test_an_explicit_profile_beats_dotenv_keys(
    aws: Path, signed: CaptureServer, monkeypatch: pytest.MonkeyPatch, engine: str
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    (aws / ".env").write_text(f"AWS_ACCESS_KEY_ID={DOTENV_KEY}\nAWS_SECRET_ACCESS_KEY=s\n")
    assert _signer(signed, _client(signed, engine)) == [DOTENV_KEY]
    assert _signer(signed, _client(signed, engine, profile="prof")) == [PROFILE_KEY]


# -- AWS_PROFILE: beats .env keys, not the environment's ---------------------------------------------
@pytest.mark.parametrize("engine", ENGINES)
def test_aws_profile_beats_dotenv_keys(
    aws: Path, signed: CaptureServer, monkeypatch: pytest.MonkeyPatch, engine: str
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_PROFILE", "prof")
    (aws / ".env").write_text(f"AWS_ACCESS_KEY_ID={DOTENV_KEY}\nAWS_SECRET_ACCESS_KEY=s\n")
    assert _signer(signed, _client(signed, engine)) == [PROFILE_KEY]


@pytest.mark.parametrize("engine", ENGINES)
def test_environment_keys_beat_aws_profile(
    aws: Path, signed: CaptureServer, monkeypatch: pytest.MonkeyPatch, engine: str
) -> None:
    monkeypatch.setenv("AWS_PROFILE", "prof")  # botocore: EnvProvider before the shared-credentials file
    assert _signer(signed, _client(signed, engine)) == [ENV_KEY]


@pytest.mark.parametrize("engine", ENGINES)
def test_dotenv_keys_beat_a_dotenv_profile(aws: Path, signed: CaptureServer, monkeypatch: pytest.MonkeyPatch, engine: str) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    (aws / ".env").write_text(f"AWS_PROFILE=prof\nAWS_ACCESS_KEY_ID={DOTENV_KEY}\nAWS_SECRET_ACCESS_KEY=s\n")
    assert _signer(signed, _client(signed, engine)) == [DOTENV_KEY]


# -- explicit keys beat any profile ----------------------------------------------------------------
@pytest.mark.parametrize("engine", ENGINES)
def test_explicit_keys_beat_a_profile(
    aws: Path, signed: CaptureServer, monkeypatch: pytest.MonkeyPatch, engine: str
) -> None:
    keys = {"access_key_id": EXPLICIT_KEY, "secret_access_key": "s"}
    assert _signer(signed, _client(signed, engine, profile="prof", **keys)) == [EXPLICIT_KEY]
    monkeypatch.setenv("AWS_PROFILE", "prof")
    assert _signer(signed, _client(signed, engine, **keys)) == [EXPLICIT_KEY]
    fs = s3dlio.fsspec.filesystem("s3", endpoint_url=_endpoint(signed), key=EXPLICIT_KEY, secret="s",
                                  engine=engine, max_attempts=1)  # fmt: skip
    assert _signer(signed, lambda uri: fs.info(uri)) == [EXPLICIT_KEY]


# -- a profile that does not exist --------------------------------------------------------------------
@pytest.mark.parametrize("engine", ENGINES)
def test_a_missing_explicit_profile_is_a_config_error(aws: Path, signed: CaptureServer, engine: str) -> None:
    for stat in (_client(signed, engine, profile="nosuch"),
                 s3dlio.fsspec.filesystem("s3", endpoint_url=_endpoint(signed), profile="nosuch",
                                          engine=engine, max_attempts=1).info):  # fmt: skip
        with pytest.raises(ConfigError) as caught:
            stat("s3://bkt/x")
        message = str(caught.value)
        assert "profile='nosuch'" in message
        assert str(aws / "credentials") in message and "AWS_SHARED_CREDENTIALS_FILE" in message
        assert str(aws / "config") in message and "AWS_CONFIG_FILE" in message
    assert signed.requests == []  # never a fallback to the environment's keys


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("keys", ["environment", "explicit"])
def test_a_missing_aws_profile_is_a_config_error_even_beside_keys(
    aws: Path, signed: CaptureServer, monkeypatch: pytest.MonkeyPatch, engine: str, keys: str
) -> None:
    monkeypatch.setenv("AWS_PROFILE", "nosuch")  # botocore raises ProfileNotFound here too
    given = {"access_key_id": EXPLICIT_KEY, "secret_access_key": "s"} if keys == "explicit" else {}
    with pytest.raises(ConfigError, match=r"AWS_PROFILE='nosuch': no such AWS profile in .*credentials"):
        _client(signed, engine, **given)("s3://bkt/x")
    assert signed.requests == []


# -- the ranking survives replace() and pickles ----------------------------------------------------
def test_the_ranking_survives_replace_and_pickle(aws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s3dlio.configure()
    assert default_config().aws_credentials() == "keys"
    replaced = default_config().replace(profile="prof")  # as fsspec's storage options are applied
    assert replaced.aws_credentials() == "profile"
    assert pickle.loads(pickle.dumps(replaced)).aws_credentials() == "profile"
    monkeypatch.setenv("AWS_PROFILE", "prof")
    from_env = Config.resolve()
    assert from_env.aws_credentials() == "keys"
    assert from_env != Config.resolve(profile="prof")  # equal values, other sources: not one interned config
    assert Config.resolve(unsigned=True, profile="prof").aws_credentials() == "unsigned"
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    assert Config.resolve().aws_credentials() == "profile"
    monkeypatch.delenv("AWS_PROFILE")
    assert Config.resolve().aws_credentials() == "chain"
