"""No secret in any output: CLI at -vv, --json, the op-log, errors, reprs, library logging.

The session token is set to a marker, and the endpoint carries a password marker in its
userinfo (``http://user:PASS@127.0.0.1:PORT``; moto ignores both, so the commands really
run). Every output of every command, on both engines, is searched for the markers.
"""

from __future__ import annotations

import json
import logging
import os
import re
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
from s3dlio.uri import parse as parse_uri

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
        # ... and each request's signature, the credential of that request for 15 minutes
        assert "Signature:\n***" in everything[0]
        assert not re.search(r"[0-9a-f]{64}", everything[0].split("Signature:", 1)[1][:80])


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


# -- userinfo holding '@' or '/', SAS URLs as URIs, usage errors, listed keys, bench output ------

SLASHED = f"wJal/{PASSWORD}"  # AWS secret keys hold '/'


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (f"cannot reach http://user:PA@SS{PASSWORD}@127.0.0.1:1; check", "cannot reach http://127.0.0.1:1; check"),
        (f"endpoint 'http://user:{SLASHED}@127.0.0.1:1': bad", "endpoint 'http://127.0.0.1:1': bad"),
        (f"'s3://AKIAPROBE:{SLASHED}@bucket/key': bad", "'s3://bucket/key': bad"),
        (f"s3://AKIA:se/cr@et{PASSWORD}@bucket/key", "s3://bucket/key"),
        (f"endpoint 'user:PA@SS{PASSWORD}@127.0.0.1:1': bad", "endpoint '127.0.0.1:1': bad"),
        (f"endpoint 'AKIA:{SLASHED}@host:9000'", "endpoint 'host:9000'"),
        (f"(https://token{PASSWORD}@host:9000)", "(https://host:9000)"),
        (f"http://u:{PASSWORD}@[::1]:9000/x", "http://[::1]:9000/x"),
        # the userinfo ends at the last '@' before the host: an '@' in the key after it stays
        (f"s3://AKIA:{SLASHED}@bucket/user@example.com/f", "s3://bucket/user@example.com/f"),
    ],
)
def test_userinfo_with_at_or_slash_is_removed_whole(text: str, shown: str) -> None:
    assert redact(text) == shown
    assert redact_url(text) == shown


@pytest.mark.parametrize(
    "text",
    [
        "s3://bucket/user@example.com/file",
        "s3://bucket/a@b",
        "az://cont/team/alice@corp.com/2024:01@v2.bin",
        "http://host:9000/bucket/user@example.com/file",
        "https://[::1]:9000/bucket/a:b@c",
        "file:///data/user@host/x:y@z",
        "get s3://b/a:b@c.bin and mail bob@example.com at 12:30",
        "user@example.com/file",
    ],
)
def test_an_at_in_a_key_is_not_userinfo(text: str) -> None:
    assert redact(text) == text


@pytest.mark.parametrize(
    "uri",
    [
        f"s3://AKIAPROBE:{SLASHED}@bucket/key",
        f"s3://AKIAPROBE:{PASSWORD}@bucket/key",
        f"s3://{PASSWORD}@bucket/key",
        f"az://acct:{SLASHED}@cont/key",
        f"https://acct:{SLASHED}@acct.blob.core.windows.net/cont/key",
    ],
)
def test_a_uri_with_credentials_is_refused_without_them(uri: str) -> None:
    with pytest.raises(s3dlio.InvalidUriError) as info:
        parse_uri(uri)
    printed = str(info.value) + repr(info.value) + "".join(traceback.format_exception(info.value))
    _assert_clean(printed, uri)
    assert "cannot carry credentials" in str(info.value)


def test_keys_with_at_and_question_marks_still_parse() -> None:
    assert parse_uri("s3://bucket/user@example.com/file").key == "user@example.com/file"
    assert parse_uri("s3://bucket/a:b@c").key == "a:b@c"
    assert parse_uri("s3://bucket/what?.txt").key == "what?.txt"  # s3:// keys may hold '?'
    uri = parse_uri("https://acct.blob.core.windows.net/cont/a@b.bin")
    assert (uri.scheme, uri.account, uri.bucket, uri.key) == ("az", "acct", "cont", "a@b.bin")


SIG = f"SIGMARK{uuid.uuid4().hex[:8]}"
SAS_URL = f"https://devstoreaccount1.blob.core.windows.net/{{}}/data.bin?sv=2022-11-02&sp=r&se=2030-01-01&sig={SIG}"


@pytest.mark.parametrize("engine", ["fast", "portable"])
def test_a_sas_url_given_as_a_uri_is_refused(az_container: str, azurite: object, tmp_path: Path, engine: str) -> None:
    """A "Blob SAS URL" as a URI: refused, with the fix, the query never echoed, nothing stored
    under a name holding it, nothing in the op-log."""
    container = az_container.removeprefix("az://").rstrip("/")
    url, log = SAS_URL.format(container), tmp_path / "ops.tsv"
    for args in (["put", "-s", "10", url], ["stat", "--json", url], ["get", url], ["ls", "--json", url]):
        run = _s3dlio("--op-log", str(log), *args, engine=engine)
        assert run.returncode == 2, f"{args}: {run.stderr}"
        assert SIG not in run.stdout + run.stderr and "sv=2022" not in run.stderr, run.stderr
        assert "AZURE_STORAGE_CONNECTION_STRING" in run.stderr and "SharedAccessSignature" in run.stderr
        assert SIG not in log.read_text()
    with pytest.raises(s3dlio.InvalidUriError):
        s3dlio.put(url, b"x")
    assert s3dlio.list(az_container) == []


@pytest.mark.parametrize("engine", ["fast", "portable"])
def test_listed_and_logged_keys_are_redacted_but_keep_their_at(
    moto_server: MotoServer, s3_bucket: str, tmp_path: Path, engine: str
) -> None:
    """An object whose name holds a SAS (stored by an older release, or by another tool) is
    listed and logged with the signature masked; an e-mail address in a key stays readable."""
    bucket = s3_bucket.removeprefix("s3://").rstrip("/")
    signed, mail = f"d/data.bin?sv=2022-11-02&sig={SIG}", "d/user@example.com/file"
    for key in (signed, mail):
        moto_server.client().put_object(Bucket=bucket, Key=key, Body=b"x")
    log = tmp_path / "ops.tsv"
    runs = [_s3dlio("--op-log", str(log), "ls", "--json", "-r", f"{s3_bucket}d/", engine=engine),
            _s3dlio("ls", "-r", "-l", f"{s3_bucket}d/", engine=engine),
            _s3dlio("--op-log", str(log), "get", f"{s3_bucket}{signed}", engine=engine),
            _s3dlio("stat", f"{s3_bucket}{signed}", engine=engine)]  # fmt: skip
    for run in runs:
        assert run.returncode == 0, run.stderr
        assert SIG not in run.stdout + run.stderr, run.stdout + run.stderr
    assert f"{s3_bucket}{mail}" in runs[0].stdout and f"{s3_bucket}{mail}" in runs[1].stdout
    assert f"{s3_bucket}d/data.bin?sv=2022-11-02&sig=***" in runs[0].stdout
    text = log.read_text()
    assert SIG not in text and f"{bucket}/d/data.bin?sv=2022-11-02&sig=***\t" in text, text


def test_the_op_log_masks_the_endpoint_and_file_columns_it_is_given(tmp_path: Path) -> None:
    """Whatever a caller hands the writer (its API takes any strings), the columns it writes
    hold no secret; the format stays warp's (same columns, nothing quoted needlessly)."""
    from s3dlio.oplog import OpLogWriter
    from s3dlio.oplog.reader import read

    path = tmp_path / "ops.tsv"
    with OpLogWriter(path) as writer:
        writer.log("GET", file=f"b/k?sig={SIG}", endpoint=f"http://u:{SLASHED}@h:9000", start_ns=1, end_ns=2)
        writer.log_ok("GET", f"u:PA@SS{PASSWORD}@h:9000", "b/", "user@example.com", 3, 4, 1, None)
        writer.log_run("GET", f"http://{PASSWORD}@h", "b/", [f"x=1&sig={SIG}"], [5, 6], [None], [b"x"])
    text = path.read_text()
    _assert_clean(text, "op-log")
    assert SIG not in text
    records = list(read(path))
    assert [(r.endpoint, r.file) for r in records] == [
        ("http://h:9000", "b/k?sig=***"), ("h:9000", "b/user@example.com"), ("http://h", "b/x=1&sig=***"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    "args",
    [
        ["stat", "s3://b/k", f"https://user:{PASSWORD}@host:9000"],
        ["stat", "s3://b/k", f"https://user:{SLASHED}@host:9000"],
        ["put", "-s", f"AccountKey={PASSWORD}", "s3://b/k"],
        ["ls", "--no-such-option", f"http://u:PA@SS{PASSWORD}@h"],
        ["get", "-j", f"user:{PASSWORD}@host"],
        ["bench", "get", "s3://b/", f"https://user:{PASSWORD}@host:9000"],
    ],
)
def test_usage_errors_do_not_echo_secrets(args: list[str]) -> None:
    run = _s3dlio(*args, engine="portable")
    assert run.returncode == 2, run.stderr
    assert run.stderr.startswith("s3dlio: error: "), run.stderr
    _assert_clean(run.stdout + run.stderr, f"s3dlio {args[0]} usage error")
    if args[0] == "bench":  # the command alone (python -m s3dlio.bench) ends the same way
        alone = subprocess.run([sys.executable, "-m", "s3dlio.bench", *args[1:]], capture_output=True, text=True,
                               timeout=120)  # fmt: skip
        assert alone.returncode == 2 and alone.stderr.startswith("s3dlio: error: "), alone.stderr
        _assert_clean(alone.stdout + alone.stderr, "python -m s3dlio.bench usage error")


@pytest.mark.parametrize("engine", ["fast", "portable"])
def test_bench_output_holds_no_secret(secret_env: str, s3_bucket: str, tmp_path: Path, engine: str) -> None:
    """The table, --json and the op-log of a bench run whose target holds a signature and whose
    endpoint holds a password."""
    target = f"{s3_bucket}run?sig={SIG}/"
    for extra in ([], ["--json"]):
        run = _s3dlio("--op-log", str(tmp_path / "ops.tsv"), "bench", "stat", "-n", "6", "--objects", "2",
                      "-c", "1", *extra, target, engine=engine)  # fmt: skip
        assert run.returncode == 0, run.stderr
        assert SIG not in run.stdout + run.stderr, run.stdout
        _assert_clean(run.stdout + run.stderr, f"bench {extra} ({engine})")
        assert "run?sig=***" in run.stdout
        text = (tmp_path / "ops.tsv").read_text()
        assert SIG not in text
        _assert_clean(text, "bench op-log")
    result_json = json.loads(run.stdout)
    assert result_json["target"] == f"{s3_bucket}run?sig=***"  # a signature runs to the next &


@pytest.mark.parametrize("engine", ["fast", "portable"])
def test_endpoint_passwords_with_at_or_slash_stay_out_of_errors(engine: str) -> None:
    """A dead endpoint whose password holds '@': the error names it without any of the password."""
    client = s3dlio.Client(engine=engine, endpoint_url=f"http://user:PA@SS{PASSWORD}@127.0.0.1:1",
                           total_timeout=2, max_attempts=1)  # fmt: skip
    with pytest.raises(s3dlio.TransferError) as info:
        client.stat("s3://b/k")
    printed = str(info.value) + repr(info.value) + "".join(traceback.format_exception(info.value))
    _assert_clean(printed, f"unreachable endpoint ({engine})")
    assert "PA@SS" not in printed and "http://127.0.0.1:1" in str(info.value)
    for endpoint in (f"http://user:{SLASHED}@127.0.0.1:1", f"user:PA@SS{PASSWORD}@127.0.0.1:1"):
        with pytest.raises(s3dlio.ConfigError) as refused:
            s3dlio.Client(engine=engine, endpoint_url=endpoint).stat("s3://b/k")
        _assert_clean(str(refused.value) + "".join(traceback.format_exception(refused.value)), endpoint)
        assert "127.0.0.1:1" in str(refused.value)


def test_a_refused_endpoint_names_no_part_of_the_password() -> None:
    with pytest.raises(s3dlio.ConfigError) as refused:
        s3dlio.configure(endpoint_url=f"http://user:{SLASHED}@127.0.0.1:1")
    assert "wJal" not in str(refused.value)
