"""URIs (parse, format, join, errors) and settings (precedence, validation, secrets)."""

from __future__ import annotations

import dataclasses
import os
import pickle
from pathlib import Path

import pytest

import s3dlio
from s3dlio.config import Config, default_config
from s3dlio.errors import ConfigError, InvalidUriError, S3dlioError
from s3dlio.store import engine
from s3dlio.uri import ObjectUri, join, parse

MiB = 1024 * 1024


# -- parse and format ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("uri", "scheme", "bucket", "key"),
    [
        ("s3://bucket/key", "s3", "bucket", "key"),
        ("s3://bucket/dir/sub/key.bin", "s3", "bucket", "dir/sub/key.bin"),
        ("s3://bucket/dir/", "s3", "bucket", "dir/"),
        ("s3://bucket", "s3", "bucket", ""),
        ("s3://bucket/", "s3", "bucket", ""),
        ("s3://my.bucket-1_x/k", "s3", "my.bucket-1_x", "k"),
        ("az://container/key", "az", "container", "key"),
        ("mem://name/key", "mem", "name", "key"),
        ("file:///tmp/x.bin", "file", "", "tmp/x.bin"),
        ("file:///tmp/dir/", "file", "", "tmp/dir/"),
        ("file:///", "file", "", ""),
        ("direct:///mnt/data/x", "direct", "", "mnt/data/x"),
        ("/abs/path/x", "file", "", "abs/path/x"),
        ("/abs/dir/", "file", "", "abs/dir/"),
        ("S3://bucket/key", "s3", "bucket", "key"),  # schemes are case-insensitive
    ],
)
def test_parse(uri: str, scheme: str, bucket: str, key: str) -> None:
    parsed = parse(uri)
    assert (parsed.scheme, parsed.bucket, parsed.key) == (scheme, bucket, key)
    assert parse(parsed) is parsed


@pytest.mark.parametrize(
    "uri",
    [
        "s3://bucket/key",
        "s3://bucket/dir/",
        "az://container/a/b",
        "mem://n/k",
        "file:///tmp/x",
        "file:///tmp/dir/",
        "direct:///mnt/x",
    ],
)
def test_format_round_trips(uri: str) -> None:
    assert str(parse(uri)) == uri


def test_keys_are_literal() -> None:
    for key in ("a b", "a+b", "a%20b", "a%2Fb", "ünï/日本", "x=1&y=2", "#hash?q"):
        parsed = parse(f"s3://b/{key}")
        assert parsed.key == key
        assert str(parsed) == f"s3://b/{key}"


def test_properties() -> None:
    parsed = parse("s3://b/dir/name.bin")
    assert parsed.store_uri == "s3://b"
    assert parsed.name == "name.bin"
    assert not parsed.is_prefix
    assert parse("s3://b/dir/").is_prefix
    assert parse("s3://b/dir/").name == "dir"
    assert parse("s3://b").is_prefix
    assert parse("file:///tmp/x").store_uri == "file://"
    assert parsed.with_key("other") == ObjectUri("s3", "b", "other")


def test_plain_relative_paths_resolve_against_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    parsed = parse("data/x.bin")
    assert parsed.scheme == "file"
    assert "/" + parsed.key == str(tmp_path / "data" / "x.bin")
    assert parse("data/").key == str(tmp_path / "data").lstrip("/") + "/"
    assert parse("./a/../b").key == str(tmp_path / "b").lstrip("/")
    assert str(parse("x")) == f"file://{tmp_path}/x"


def test_azure_account(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", "acct1")
    assert parse("az://cont/k").account is None  # parsing never reads the environment; stores do
    https = parse("https://myacct.blob.core.windows.net/cont/dir/k")
    assert (https.scheme, https.account, https.bucket, https.key) == ("az", "myacct", "cont", "dir/k")
    assert parse("https://myacct.blob.core.windows.net/cont").key == ""


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("", "empty"),
        ("s3://", "empty"),
        ("s3:///key", "empty"),
        ("az:///key", "empty"),
        ("s3:/b/k", "s3://b/k"),
        ("az:/c/k", "az://c/k"),
        ("ftp://host/x", "unknown scheme"),
        ("gs://b/k", "gs://"),
        ("file://relative/path", "file:///"),
        ("direct://relative/path", "direct:///"),
        ("az://AB/k", "container"),
        ("az://ab/k", "container"),
        ("az://a--b/k", "container"),
        ("s3://bad bucket/k", "bucket"),
    ],
)
def test_invalid_uris(uri: str, says: str) -> None:
    with pytest.raises(InvalidUriError) as info:
        parse(uri)
    assert isinstance(info.value, ValueError)
    assert says in str(info.value)


def test_invalid_uri_type() -> None:
    with pytest.raises(InvalidUriError):
        parse(123)  # type: ignore[arg-type]


def test_join() -> None:
    assert str(join("s3://b/", "a", "/b/", "c")) == "s3://b/a/b/c"
    assert str(join("s3://b", "x")) == "s3://b/x"
    assert str(join("s3://b/dir", "x")) == "s3://b/dir/x"
    assert str(join("s3://b/dir/", "", "x")) == "s3://b/dir/x"
    assert str(join("s3://b/dir/", "sub/")) == "s3://b/dir/sub/"
    assert str(join("file:///tmp", "x")) == "file:///tmp/x"
    assert str(join(parse("mem://n/"), "k")) == "mem://n/k"


# -- configuration -------------------------------------------------------------------------
@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No s3dlio-related variables, and a working directory without a .env file."""
    for name in list(os.environ):
        if name.startswith(("AWS_", "AZURE_", "S3DLIO_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def test_defaults(clean_env: pytest.MonkeyPatch) -> None:
    cfg = Config.resolve()
    assert cfg.engine == "auto"
    assert cfg.endpoint_url is None
    assert cfg.max_in_flight >= 1
    assert cfg.part_size >= 5 * MiB


def test_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("AWS_ENDPOINT_URL", "http://generic:1")
    clean_env.setenv("AWS_REGION", "eu-west-3")
    clean_env.setenv("S3DLIO_MAX_IN_FLIGHT", "12")
    clean_env.setenv("S3DLIO_PART_SIZE", "16MiB")
    clean_env.setenv("S3DLIO_CONNECT_TIMEOUT", "2.5")
    clean_env.setenv("AZURE_STORAGE_USE_EMULATOR", "yes")
    cfg = Config.resolve()
    assert cfg.endpoint_url == "http://generic:1"
    assert cfg.region == "eu-west-3"
    assert cfg.max_in_flight == 12
    assert cfg.part_size == 16 * MiB
    assert cfg.connect_timeout == 2.5
    assert cfg.azure_use_emulator is True
    clean_env.setenv("AWS_ENDPOINT_URL_S3", "http://specific:2")  # the S3-specific name wins
    assert Config.resolve().endpoint_url == "http://specific:2"


def test_explicit_beats_environment_beats_dotenv(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "AWS_REGION=from-dotenv\nS3DLIO_MAX_IN_FLIGHT=7\nAWS_ENDPOINT_URL=http://dotenv:9000\n"
    )
    cfg = Config.resolve()
    assert (cfg.region, cfg.max_in_flight, cfg.endpoint_url) == ("from-dotenv", 7, "http://dotenv:9000")
    clean_env.setenv("AWS_REGION", "from-env")
    cfg = Config.resolve()
    assert (cfg.region, cfg.max_in_flight) == ("from-env", 7)
    cfg = Config.resolve(region="explicit", max_in_flight=3)
    assert (cfg.region, cfg.max_in_flight, cfg.endpoint_url) == ("explicit", 3, "http://dotenv:9000")


@pytest.mark.parametrize("engine_name", ["fast", "portable"])
def test_an_empty_endpoint_variable_counts_as_unset(clean_env: pytest.MonkeyPatch, engine_name: str) -> None:
    # obstore and botocore read AWS_ENDPOINT_URL themselves; an empty one made obstore panic
    for name, value in {"AWS_ENDPOINT_URL": "", "AWS_ENDPOINT_URL_S3": "", "AWS_ACCESS_KEY_ID": "a",
                        "AWS_SECRET_ACCESS_KEY": "b", "S3DLIO_CONNECT_TIMEOUT": "1",
                        "S3DLIO_MAX_ATTEMPTS": "1"}.items():  # fmt: skip
        clean_env.setenv(name, value)
    s3dlio.configure(engine=engine_name)  # the autouse _fresh_config resets it afterwards
    with pytest.raises(S3dlioError) as caught:  # no network here
        s3dlio.get("s3://s3dlio-no-such-bucket-here/key")
    assert "panic" not in str(caught.value)


def test_an_empty_variable_obstore_cannot_parse_is_named(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("AWS_CHECKSUM_ALGORITHM", "")
    s3dlio.configure(engine="fast")
    with pytest.raises(ConfigError, match="empty in the environment: AWS_CHECKSUM_ALGORITHM"):
        s3dlio.stat("s3://some-bucket/key")


@pytest.mark.parametrize("engine_name", ["fast", "portable"])
def test_an_empty_aws_profile_is_named(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, engine_name: str
) -> None:
    clean_env.setenv("HOME", str(tmp_path))  # no ~/.aws here
    clean_env.setenv("AWS_PROFILE", "")
    s3dlio.configure(engine=engine_name, endpoint_url="http://127.0.0.1:9", max_attempts=1)
    with pytest.raises(ConfigError, match="AWS_PROFILE"):
        s3dlio.get("s3://some-bucket/key")


@pytest.mark.parametrize("engine_name", ["fast", "portable"])
def test_the_configured_endpoint_beats_aws_endpoint_url_s3(
    s3_bucket: str, monkeypatch: pytest.MonkeyPatch, engine_name: str
) -> None:
    # obstore ranks AWS_ENDPOINT_URL_S3 from the environment above an endpoint passed to it
    s3dlio.put(f"{s3_bucket}k", b"here")
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")  # nothing listens there
    s3dlio.configure(engine=engine_name, endpoint_url=endpoint, max_attempts=1)
    assert bytes(s3dlio.get(f"{s3_bucket}k")) == b"here"


def test_configure_sets_the_process_default(clean_env: pytest.MonkeyPatch) -> None:
    cfg = s3dlio.configure(engine="portable", max_in_flight=5)
    assert isinstance(cfg, Config)
    assert default_config() == cfg
    assert engine.select(cfg) == "portable"
    assert s3dlio.configure().engine == "auto"


def test_config_is_frozen_picklable_and_replaceable(clean_env: pytest.MonkeyPatch) -> None:
    cfg = Config.resolve(endpoint_url="http://x:1", secret_access_key="s")
    assert pickle.loads(pickle.dumps(cfg)) == cfg
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.region = "x"  # type: ignore[misc]
    assert cfg.replace(max_in_flight=3).max_in_flight == 3
    assert cfg.replace(max_in_flight=3).endpoint_url == "http://x:1"


def test_secrets_never_in_repr(clean_env: pytest.MonkeyPatch) -> None:
    secrets = {
        "secret_access_key": "SECRET-ACCESS-123",
        "session_token": "SESSION-TOKEN-456",
        "azure_account_key": "AZURE-KEY-789",
        "azure_connection_string": "DefaultEndpointsProtocol=https;AccountKey=CONN-KEY-000",
    }
    cfg = Config.resolve(access_key_id="AKIDPUBLIC", **secrets)
    for text in (repr(cfg), str(cfg)):
        for value in secrets.values():
            assert value not in text
        assert "CONN-KEY-000" not in text
    assert "AKIDPUBLIC" in repr(cfg)  # the key id is not a secret
    clean_env.setenv("AWS_SECRET_ACCESS_KEY", "ENV-SECRET-XYZ")
    assert "ENV-SECRET-XYZ" not in repr(Config.resolve())


@pytest.mark.parametrize(
    "settings",
    [
        {"engine": "turbo"},
        {"max_in_flight": 0},
        {"max_bytes_in_flight": -1},
        {"part_size": 0},
        {"max_attempts": 0},
        {"connect_timeout": 0},
        {"request_timeout": -1.0},
        {"endpoint_url": "localhost:9000"},
        {"ca_bundle": "/nonexistent/ca.pem"},
        {"no_such_setting": 1},
    ],
    ids=lambda s: next(iter(s)),
)
def test_bad_values_are_config_errors(clean_env: pytest.MonkeyPatch, settings: dict[str, object]) -> None:
    with pytest.raises(ConfigError) as info:
        Config.resolve(**settings)
    assert isinstance(info.value, ValueError)
    assert str(next(iter(settings.values()))) in str(info.value) or next(iter(settings)) in str(info.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("S3DLIO_MAX_IN_FLIGHT", "many"),
        ("S3DLIO_PART_SIZE", "8 parsecs"),
        ("S3DLIO_CONNECT_TIMEOUT", "soon"),
        ("AZURE_STORAGE_USE_EMULATOR", "perhaps"),
        ("S3DLIO_ENGINE", "warp"),
        ("AWS_CA_BUNDLE_PATH", "/nonexistent/ca.pem"),
    ],
)
def test_bad_environment_is_config_error(clean_env: pytest.MonkeyPatch, name: str, value: str) -> None:
    clean_env.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        Config.resolve()
    assert value in str(info.value)


def test_bad_dotenv_value_is_config_error(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("S3DLIO_MAX_IN_FLIGHT=lots\n")
    with pytest.raises(ConfigError, match="lots"):
        Config.resolve()


def test_ca_bundle_from_environment(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    pem = tmp_path / "ca.pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\n")
    clean_env.setenv("AWS_CA_BUNDLE", "/etc/hosts")
    clean_env.setenv("AWS_CA_BUNDLE_PATH", str(pem))  # AWS_CA_BUNDLE_PATH wins
    assert Config.resolve().ca_bundle == str(pem)
