"""No secret in any output: CLI at -vv, --json, the op-log, errors, reprs, library logging.

The session token is set to a marker, and the endpoint carries a password marker in its
userinfo (``http://user:PASS@127.0.0.1:PORT``; moto ignores both, so the commands really
run). Every output of every command, on both engines, is searched for the markers.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import traceback
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import EnvPatch, MotoServer, venv_tool

import s3dlio
from s3dlio import configure as reconfigure
from s3dlio._redact import RedactingFilter, redact, redact_url
from s3dlio.config import AZURITE_KEY
from s3dlio.oplog.reader import open_text

PASSWORD = f"SECRETPASS{uuid.uuid4().hex[:8]}"
TOKEN = f"TOKENMARKER{uuid.uuid4().hex[:8]}"


@pytest.fixture
def secret_env(moto_server: MotoServer, _session_env: EnvPatch) -> Iterator[str]:
    """The session token marker and an endpoint with a password, for this process and children."""
    endpoint = f"http://user:{PASSWORD}@127.0.0.1:{moto_server.port}"
    _session_env.set("AWS_SESSION_TOKEN", TOKEN)
    _session_env.set("AWS_ENDPOINT_URL", endpoint)
    reconfigure()
    yield endpoint
    _session_env.set("AWS_SESSION_TOKEN", None)
    _session_env.set("AWS_ENDPOINT_URL", moto_server.endpoint)
    reconfigure()


def _s3dlio(*args: str, engine: str, **extra: str) -> subprocess.CompletedProcess[str]:
    exe = venv_tool("s3dlio")
    assert exe is not None, "the s3dlio console script is not installed in this venv"
    env = dict(os.environ, S3DLIO_ENGINE=engine, **extra)
    return subprocess.run([exe, *args], env=env, capture_output=True, text=True, timeout=120)


def _assert_clean(text: str, where: str) -> None:
    for marker in (PASSWORD, TOKEN):
        assert marker not in text, f"{where} shows {marker}:\n{text[-3000:]}"


@pytest.mark.parametrize("engine", ["fast", "portable"])
def test_cli_outputs_hold_no_secret(secret_env: str, s3_bucket: str, tmp_path: Path, engine: str) -> None:
    oplog, failing_log = tmp_path / "ops.tsv.zst", tmp_path / "fail.tsv.zst"
    ok = [
        ["-vv", "--op-log", str(oplog), "put", "-n", "2", "-s", "1KiB", f"{s3_bucket}d/"],
        ["-vv", "ls", "--json", "-l", f"{s3_bucket}d/"],
        ["-vv", "stat", "--json", f"{s3_bucket}d/object_0_of_2.dat"],
        ["-vv", "get", f"{s3_bucket}d/"],
        ["-vv", "cleanup", "--json", s3_bucket],
    ]
    failing = [
        ["-vv", "--op-log", str(failing_log), "ls", "s3://no-such-bucket-here/"],
        ["-v", "stat", "--json", f"{s3_bucket}missing"],
        ["-vv", "get", f"{s3_bucket}missing"],
    ]
    everything = []
    for args in ok + failing:
        run = _s3dlio(*args, engine=engine)
        assert (run.returncode == 0) == (args in ok), f"{args}: exit {run.returncode}\n{run.stderr[-2000:]}"
        _assert_clean(run.stdout + run.stderr, f"s3dlio {' '.join(args)} ({engine})")
        everything.append(run.stdout + run.stderr)
    # An unreachable endpoint with a password, given on the command line.
    run = _s3dlio("-vv", "--endpoint-url", f"http://user:{PASSWORD}@127.0.0.1:9", "ls", s3_bucket,
                  engine=engine, S3DLIO_MAX_ATTEMPTS="1", S3DLIO_CONNECT_TIMEOUT="2")  # fmt: skip
    assert run.returncode != 0
    _assert_clean(run.stdout + run.stderr, f"unreachable endpoint ({engine})")
    assert "127.0.0.1:9" in run.stderr  # the endpoint is named, without its userinfo

    for log in (oplog, failing_log):
        with open_text(log) as f:
            text = f.read()
        _assert_clean(text, f"op-log {log.name} ({engine})")
        assert f"http://127.0.0.1:{secret_env.rsplit(':', 1)[1]}" in text  # the endpoint column
    if engine == "portable":  # botocore's debug log did show the headers: masked, not dropped
        assert "x-amz-security-token:***" in everything[0].lower()


@pytest.mark.parametrize("engine", ["fast", "portable"])
def test_exceptions_and_reprs_hold_no_secret(secret_env: str, s3_bucket: str, engine: str) -> None:
    reconfigure(engine=engine)
    with pytest.raises(s3dlio.NotFoundError) as info:
        s3dlio.stat(f"{s3_bucket}missing")
    with pytest.raises(s3dlio.NotFoundError) as gone:
        s3dlio.list("s3://no-such-bucket-here/")
    # A server that is not there: the dependency's own error (the cause) names the URL it tried
    port = secret_env.rsplit(":", 1)[1]
    dead = s3dlio.Client(engine=engine, endpoint_url=secret_env.replace(port, "1"), total_timeout=2)
    with pytest.raises(s3dlio.TransferError) as unreachable:
        dead.get(f"{s3_bucket}k")
    for exc in (info.value, gone.value, unreachable.value):
        assert exc.__cause__ is not None or exc.__context__ is not None
        printed = "".join(traceback.format_exception(exc))  # what any traceback shows, causes and all
        _assert_clean(str(exc) + repr(exc) + repr(exc.args) + printed, f"{type(exc).__name__} ({engine})")
    config = s3dlio.configure(engine=engine)
    _assert_clean(repr(config) + str(config), "Config repr")
    assert "127.0.0.1" in repr(config)
    from s3dlio.ops import resolve

    _, store = resolve(s3_bucket)
    _assert_clean(repr(store), "store repr")


_LIBRARY_LOGGING = """
import logging, sys
import s3dlio
logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
if sys.argv[2] == "redact":
    s3dlio.install_log_redaction()
s3dlio.put(sys.argv[1] + "k", b"x")
s3dlio.list(sys.argv[1])
"""


@pytest.mark.parametrize("mode", ["redact", "plain"])
def test_library_logging_is_redacted_once_installed(secret_env: str, s3_bucket: str, mode: str) -> None:
    env = dict(os.environ, S3DLIO_ENGINE="portable")
    run = subprocess.run([sys.executable, "-c", _LIBRARY_LOGGING, s3_bucket, mode], env=env,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    if mode == "redact":
        _assert_clean(run.stderr, "library debug log with install_log_redaction()")
    else:  # without the filter botocore prints them: the check above can fail
        assert TOKEN in run.stderr and PASSWORD in run.stderr


@pytest.mark.parametrize("engine", ["fast", "portable"])
def test_azure_debug_output_holds_no_key(azurite: object, az_container: str, engine: str) -> None:
    for args in (["-vv", "put", "-n", "1", "-s", "1KiB", az_container], ["-vv", "ls", "--json", az_container],
                 ["-vv", "stat", f"{az_container}missing"]):  # fmt: skip
        run = _s3dlio(*args, engine=engine)
        text = run.stdout + run.stderr
        assert AZURITE_KEY not in text, f"{args} ({engine}) shows the account key"
        assert "SharedKey devstoreaccount1:" not in text


def test_redaction_patterns() -> None:
    samples = {
        "headers={'X-Amz-Security-Token': b'TOKVALUE', 'Authorization': b'AWS4-HMAC-SHA256 Credential=A/1, "
        "SignedHeaders=host, Signature=SIGVALUE'}": ("TOKVALUE", "SIGVALUE", "Credential=A"),
        "x-amz-security-token:TOKVALUE\nhost:h": ("TOKVALUE",),
        "GET https://a.blob.core.windows.net/c/b?sv=2024&sig=SIGVALUE%3D&se=x": ("SIGVALUE",),
        "https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIAVALUE%2F1&X-Amz-Signature=SIGVALUE": (
            "AKIAVALUE", "SIGVALUE"),
        "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=KEYVALUE==;EndpointSuffix=x": ("KEYVALUE",),
        "could not connect to http://me:PWVALUE@host:9000/b": ("PWVALUE", "me:"),
        "endpoint 'me:PWVALUE@127.0.0.1:9000': must start with http://": ("PWVALUE", "me:"),
        "Authorization: SharedKey acct:SIGVALUE=": ("SIGVALUE",),
    }
    for text, secrets in samples.items():
        cleaned = redact(text)
        for secret in secrets:
            assert secret not in cleaned, f"{text!r} -> {cleaned!r}"
    assert redact("s3://bucket/key sig-nature plain text") == "s3://bucket/key sig-nature plain text"
    assert redact_url("http://me:pw@host:9000/x") == "http://host:9000/x"
    assert redact_url("https://host") == "https://host"
    assert redact_url("me:pw@host:9000") == "host:9000"  # no scheme: still userinfo
    assert redact("get s3://b/a:b@c.bin and mail bob@example.com at 12:30") == (
        "get s3://b/a:b@c.bin and mail bob@example.com at 12:30"
    )  # a key, an address, a time: not userinfo

    record = logging.LogRecord("botocore", logging.DEBUG, __file__, 1, "token %s at %s", (TOKEN, "x"), None)
    os.environ["AWS_SESSION_TOKEN"] = TOKEN  # a literal secret value anywhere in a message
    try:
        assert RedactingFilter().filter(record)
        assert TOKEN not in record.getMessage() and record.getMessage() == "token *** at x"
    finally:
        del os.environ["AWS_SESSION_TOKEN"]


@pytest.mark.parametrize(
    "endpoint", [f"usr:{PASSWORD}@127.0.0.1:9000", f"http://usr:{PASSWORD}@127.0.0.1:notaport",
                 f"https://usr:{PASSWORD}@[::1"],
    ids=["no-scheme", "bad-port", "bad-host"],
)  # fmt: skip
@pytest.mark.parametrize("engine", ["fast", "portable"])
def test_a_refused_endpoint_is_named_without_its_password(endpoint: str, engine: str) -> None:
    """The error that refuses an endpoint shows it, userinfo removed: from --endpoint-url, from
    AWS_ENDPOINT_URL, and in the ConfigError's str and repr from configure()."""
    for run in (_s3dlio("--endpoint-url", endpoint, "ls", "s3://b/", engine=engine),
                _s3dlio("ls", "s3://b/", engine=engine, AWS_ENDPOINT_URL=endpoint)):  # fmt: skip
        assert run.returncode == 2, run.stderr
        assert run.stderr.startswith("s3dlio: error: endpoint '") and len(run.stderr.splitlines()) == 1, run.stderr
        _assert_clean(run.stdout + run.stderr, "a refused endpoint")
    with pytest.raises(s3dlio.ConfigError) as info:
        s3dlio.configure(endpoint_url=endpoint)
    _assert_clean(str(info.value) + repr(info.value) + "".join(traceback.format_exception(info.value)), "configure")


def test_a_clients_secret_is_masked_too() -> None:
    secret = "CLIENT-ONLY-SECRET-4711"
    s3dlio.Client(access_key_id="AKIDCLIENT", secret_access_key=secret)
    assert secret not in s3dlio.redact(f"signed with {secret} here")
