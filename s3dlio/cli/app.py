"""The ``s3dlio`` command: the click group, its global options, and how a run ends.

Every error ends the run with one line on stderr, ``s3dlio: error: <message>``, and an exit
status: 0 success, 1 failure (or some objects of a batch failed), 2 usage or configuration
error (:attr:`s3dlio.S3dlioError.exit_code`; click's usage errors), 130 interrupted (Ctrl-C),
143 terminated (SIGTERM). ``-v``
adds the cause chain, ``-vv`` the traceback. A closed pipe (``s3dlio ls ... | head``) ends the
run quietly. An error names the command as typed (``rm``, not the library's ``head``).

Ctrl-C or SIGTERM (docker stop, Kubernetes): the batch loops stop starting work
(:func:`s3dlio._parallel.cancel`), every multipart upload still open is aborted
(:func:`._output.abort_open_uploads`), the command's temporary files are removed
(:func:`._output.on_interrupt`), and the process exits 130 (SIGTERM: 143) within about a
second, without waiting for transfers still in flight.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NoReturn

import click

from .. import __version__
from .._redact import RedactingFilter, redact
from ..errors import AlreadyExistsError, ConfigError, NotFoundError, S3dlioError
from . import bench, buckets, objects, oplog
from ._output import (
    State,
    abort_open_uploads,
    as_command,
    error_lines,
    plural,
    run_interrupt_hooks,
    wait_uploads_aborted,
)
from .cleanup import cleanup_command

__all__ = ["cli", "main"]

HELP = """Fast object storage I/O for AI/ML: S3, Azure Blob, local and O_DIRECT files.

\b
URIs:  s3://bucket/key   az://container/key   file:///path (or a plain path)
       direct:///path (O_DIRECT)   mem://name/key (in-process; tests only)

The last part of a URI may be a regular expression; a trailing / selects everything at
that level, and -r/--recursive everything below it. Credentials and endpoints come from
the environment or a .env file (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_REGION,
AWS_CA_BUNDLE_PATH, AZURE_STORAGE_ACCOUNT_NAME, ...).

\b
Examples:
  s3dlio put -c -n 100 -s 8MiB s3://bucket/data/
  s3dlio ls s3://bucket/data/
  s3dlio ls --long 's3://bucket/data/object_.*_of_100\\.dat'
  s3dlio get -j 32 s3://bucket/data/
  s3dlio download -r s3://bucket/data/ ./data
  s3dlio cp ./model.bin az://container/models/
  s3dlio --op-log ops.tsv.zst get s3://bucket/data/
  s3dlio rm -r s3://bucket/data/

\b
Exit status: 0 success, 1 failure (some objects failed), 2 usage or configuration error,
130 interrupted, 143 terminated (Ctrl-C or SIGTERM ends any command within 2 seconds, leaving
no temporary files and no open multipart upload; up to 5 while a busy server confirms the aborts).
"""

#: Other names a command answers to.
ALIASES = {"list": "ls", "rm": "delete"}


class CommandError(click.ClickException):
    """An error that ends a command, shown as one line (plus the cause chain with ``-v``)."""

    def __init__(self, exc: BaseException, verbose: int = 0, command: str | None = None) -> None:
        super().__init__(str(exc))
        code = getattr(exc, "exit_code", 1) if isinstance(exc, S3dlioError) else 1
        self.exit_code = code  # type: ignore[misc,unused-ignore]  # a ClassVar in click's stubs
        self.lines = error_lines(exc, verbose)
        if command is not None:
            self.lines[0] = _for_command(self.lines[0], exc, command)
        if verbose >= 2:
            self.lines.append(redact("".join(traceback.format_exception(exc)).rstrip()))

    def show(self, file: Any = None) -> None:
        click.echo("\n".join(self.lines), file=file, err=True)


#: The fix an error gets under a command that offers it, unless the message already names it.
_FIXES: tuple[tuple[type[S3dlioError], tuple[str, ...], str, str], ...] = (
    (AlreadyExistsError, ("create-bucket",), "--exist-ok", "add --exist-ok to accept an existing one"),
)


def _for_command(line: str, exc: BaseException, command: str) -> str:
    """The error line naming ``command`` as typed, with the fix that command offers."""
    prefix = "s3dlio: error: "
    body = as_command(line.removeprefix(prefix), command)
    for kind, commands, mark, fix in _FIXES:
        if isinstance(exc, kind) and command in commands and mark not in body:
            body = f"{body}; {fix}"
    missing = re.search(r" ([a-z0-9]+)://\S*: bucket/container '([^']+)' does not exist; create it first", body)
    if missing:  # the fast engine's message, which names no command
        scheme, bucket = missing.groups()
        body = body.replace("create it first", f"create it with s3dlio create-bucket {scheme}://{bucket}")
    if isinstance(exc, NotFoundError) and command in ("stat", "rm", "delete") and "s3dlio ls" not in body:
        words = body.split(" ", 2)
        uri = words[1].rstrip(":") if len(words) == 3 and words[0] == command else ""
        if "://" in uri and not uri.endswith("/"):
            body = f"{body}; see what is there with: s3dlio ls {uri.rsplit('/', 1)[0]}/"
    return prefix + body


class S3dlioGroup(click.Group):
    """A group with command aliases, one-line errors and quiet broken pipes."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, ALIASES.get(cmd_name, cmd_name))

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name, cmd, rest = super().resolve_command(ctx, args)
        if args:
            ctx.meta["s3dlio.command"] = args[0]  # as typed: ``rm`` stays ``rm`` in errors
        return (cmd.name if cmd is not None else name), cmd, rest

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = {v: k for k, v in ALIASES.items()}
        rows = []
        for name in self.list_commands(ctx):
            cmd = self.get_command(ctx, name)
            if cmd is None or cmd.hidden:
                continue
            shown = f"{name}, {names[name]}" if name in names else name
            rows.append((shown, cmd.get_short_help_str(formatter.width - 20)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except BrokenPipeError:
            _silence_stdout()
            raise click.exceptions.Exit(0) from None
        except Exception as exc:
            state = ctx.find_object(State)
            command = ctx.meta.get("s3dlio.command")
            raise CommandError(exc, state.verbose if state else 0, command) from exc

    def main(  # type: ignore[override,unused-ignore]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        code = _run(self, args, prog_name or "s3dlio", complete_var, **extra)
        if standalone_mode:
            sys.exit(code)
        return code


def _run(group: click.Group, args: Sequence[str] | None, prog_name: str, complete_var: str | None,
         **extra: Any) -> int:  # fmt: skip
    """Run the group in click's non-standalone mode and turn every ending into an exit status."""
    try:
        rv = click.Group.main(group, args, prog_name, complete_var, standalone_mode=False, **extra)
        code = rv if isinstance(rv, int) else 0
        sys.stdout.flush()
        return code
    except click.exceptions.NoArgsIsHelpError as exc:
        exc.show()
        return exc.exit_code
    except click.UsageError as exc:  # its message quotes what was typed: redacted, like every error
        hint = f"; see '{exc.ctx.command_path} --help'" if exc.ctx is not None else ""
        click.echo(redact(f"s3dlio: error: {exc.format_message().rstrip('.')}{hint}"), err=True)
        return exc.exit_code
    except CommandError as exc:
        exc.show()
        return exc.exit_code
    except click.ClickException as exc:  # click's own (a file it cannot open...): one redacted line
        click.echo(redact(f"s3dlio: error: {exc.format_message()}"), err=True)
        return exc.exit_code
    except click.Abort:
        _say_interrupted()
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return 0
    except S3dlioError as exc:
        click.echo("\n".join(error_lines(exc)), err=True)
        return exc.exit_code


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's last flush cannot fail on a closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass  # not a real file (e.g. click's CliRunner): nothing to protect


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time (click's CliRunner swaps it)."""

    @property  # type: ignore[override,unused-ignore]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def _setup_logging(verbose: int) -> Callable[[], None]:
    """Log to stderr at info (``-v``) or debug (``-vv``); returns what undoes it."""
    if verbose <= 0:
        return lambda: None
    root = logging.getLogger()
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("s3dlio: %(levelname)s: %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())  # botocore/urllib3/azure debug logs carry credentials
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO if verbose == 1 else logging.DEBUG)

    def undo() -> None:
        root.removeHandler(handler)
        root.setLevel(old_level)

    return undo


def _finalize_op_log() -> None:
    from ..oplog import finalize_op_log

    dropped = finalize_op_log()
    if dropped:
        click.echo(
            f"s3dlio: warning: the op-log dropped {plural(dropped, 'entry', 'entries')}; "
            "set S3DLIO_OPLOG_LOSSLESS=true to keep every one",
            err=True,
        )


@click.group(
    "s3dlio",
    cls=S3dlioGroup,
    help=HELP,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option("-v", "--verbose", count=True, help="More logging: -v info (and error causes), -vv debug.")
@click.option(
    "--op-log",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="Write a warp-replay compatible op-log of every storage operation (.tsv or .tsv.zst).",
)
@click.option(
    "--endpoint-url", "endpoint_urls", metavar="URL", multiple=True,
    help="S3 endpoint, e.g. http://127.0.0.1:9000 (AWS_ENDPOINT_URL). Repeat it for gateways of one "
    "cluster: requests are spread over them (S3DLIO_ENDPOINTS; --endpoint-strategy).",
)
@click.option(
    "--endpoint-strategy", type=click.Choice(["round_robin", "least_connections"]),
    help="How requests are spread over several --endpoint-url (S3DLIO_ENDPOINT_STRATEGY; default round_robin).",
)
@click.option("--region", help="S3 region (AWS_REGION).")
@click.option(
    "--ca-bundle", metavar="PEM", help="Trust the CAs in this PEM bundle for TLS (AWS_CA_BUNDLE_PATH)."
)
@click.version_option(__version__, "-V", "--version", prog_name="s3dlio", message="%(prog)s %(version)s")
@click.pass_context
def cli(
    ctx: click.Context,
    verbose: int,
    op_log: str | None,
    endpoint_urls: tuple[str, ...],
    endpoint_strategy: str | None,
    region: str | None,
    ca_bundle: str | None,
) -> None:
    ctx.obj = State(verbose=verbose)
    ctx.call_on_close(_setup_logging(verbose))
    if endpoint_urls or endpoint_strategy or region is not None or ca_bundle is not None:
        from ..config import configure

        several = len(endpoint_urls) > 1
        configure(
            endpoint_url=endpoint_urls[0] if endpoint_urls else None,
            endpoints=endpoint_urls if several else None,
            endpoint_strategy=endpoint_strategy, region=region, ca_bundle=ca_bundle,
        )  # fmt: skip
    if op_log:
        from ..oplog import init_op_log

        try:
            init_op_log(op_log)
        except OSError as exc:
            raise ConfigError(
                f"--op-log {op_log!r}: cannot write it ({exc.strerror or exc}); "
                "name a file in a directory that exists and is writable"
            ) from exc
        ctx.call_on_close(_finalize_op_log)


@click.command("help", short_help="Print this message or the help of the given subcommand(s).")
@click.argument("names", nargs=-1, metavar="[COMMAND]...")
@click.pass_context
def help_command(ctx: click.Context, names: tuple[str, ...]) -> None:
    """Print the help of the s3dlio command, or of COMMAND (and its subcommands: help oplog summarize).

    \b
    Examples:
      s3dlio help
      s3dlio help get
    """
    parent = ctx.parent if ctx.parent is not None else ctx
    command, at = parent.command, parent  # as s3-cli's `help`, built by clap, does
    for name in names:
        found = command.get_command(at, name) if isinstance(command, click.Group) else None
        if found is None:
            what = f"'{at.command_path}' has no subcommand {name!r}"
            raise click.UsageError(f"no such command: {name!r}" if at is parent else what, ctx=at)
        command, at = found, click.Context(found, info_name=name, parent=at)
    click.echo(command.get_help(at))


for _command in (
    *objects.COMMANDS, *buckets.COMMANDS, *oplog.COMMANDS, bench.bench_command, cleanup_command, help_command,
):  # fmt: skip
    cli.add_command(_command)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``s3dlio`` console script."""
    for signum in (signal.SIGINT, signal.SIGTERM):  # docker stop and Kubernetes send SIGTERM
        signal.signal(signum, _on_signal)
    try:
        with _watching_for_a_stuck_main_thread():
            code = cli.main(args=argv, prog_name="s3dlio", standalone_mode=False)
    except S3dlioError as exc:  # raised outside a command (e.g. while importing a backend)
        click.echo("\n".join(error_lines(exc)), err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:  # after the command, while its result was being printed
        code = 130
    if code == 130:
        _exit_interrupted()
    sys.exit(code)


#: When the first Ctrl-C or SIGTERM arrived (``time.monotonic()``), and which signal it was;
#: the exit is due ``_EXIT_WITHIN`` after it.
_interrupted_at: list[float] = []
_interrupted_by: list[int] = []
_EXIT_WITHIN = 1.5
#: Seconds after the signal the exit may wait for the server to confirm the aborted uploads.
_ABORTS_WITHIN = 5.0
#: Seconds after the signal before a watcher thread ends the run itself, when the main thread
#: has not begun to (it waits inside a store call that a stalled server does not answer).
_TAKE_OVER_AFTER = 1.0
_exiting = threading.Lock()
_said: list[bool] = []


def _on_signal(signum: int, frame: Any) -> None:
    """SIGINT and SIGTERM alike: note when the first came and which, and raise
    ``KeyboardInterrupt`` so the command stops and cleans up the same way."""
    _note_signal(signum, time.monotonic())
    raise KeyboardInterrupt


def _say_interrupted() -> None:
    if _said:
        return
    _said.append(True)
    click.echo("s3dlio: terminated" if _interrupted_by[:1] == [signal.SIGTERM] else "s3dlio: interrupted", err=True)


def _note_signal(signum: int, at: float) -> None:
    if not _interrupted_at:
        _interrupted_at.append(at)
        _interrupted_by.append(signum)


@contextlib.contextmanager
def _watching_for_a_stuck_main_thread() -> Iterator[None]:
    """Make Ctrl-C prompt while the main thread waits inside a store call.

    Python runs a signal handler only between bytecodes of the main thread; a listing or a
    HEAD that a stalled server never answers keeps it inside obstore or botocore until the
    read timeout and the retries give up (about 40 s by default). The interpreter also writes
    each signal's number to the wakeup fd at once, whatever the main thread is doing: a
    watcher thread reads it and, if the handler has still not run ``_TAKE_OVER_AFTER``
    seconds later, runs :func:`_exit_interrupted` itself. Once the handler ran, the command
    is left to end its own way (``bench`` reports and cleans up).
    """
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)

    def watch() -> None:
        with open(read_end, "rb", buffering=0) as signals:
            while (got := signals.read(1)) and got[0] not in (signal.SIGINT, signal.SIGTERM):
                pass  # another signal with a Python handler (a terminal resize, say)
        if not got:  # the command ended
            return
        arrived = time.monotonic()
        time.sleep(_TAKE_OVER_AFTER)
        if not _interrupted_at:  # the handler never ran: the main thread is stuck in a call
            _note_signal(got[0], arrived)
            _exit_interrupted(say=True)

    previous = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    threading.Thread(target=watch, name="s3dlio-signals", daemon=True).start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(previous)
        os.close(write_end)


def _exit_interrupted(grace: float = 0.4, say: bool = False) -> NoReturn:
    """End an interrupted run now: stop the batch loops, abort the multipart uploads still
    open, give the calls in flight up to ``grace`` seconds to finish (they clean up after
    themselves), remove the command's temporary files, and exit 128 + the signal (130 for
    Ctrl-C, 143 for SIGTERM) by ``_EXIT_WITHIN`` seconds after it (``_ABORTS_WITHIN`` while
    the server has not confirmed an abort), without joining worker threads still blocked in
    a transfer."""
    from .. import _parallel

    if not _exiting.acquire(blocking=False):  # the other thread is ending the run: let it
        threading.Event().wait()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):  # a second signal cannot cut the clean-up short
            signal.signal(signum, signal.SIG_IGN)
    if say:
        with contextlib.suppress(OSError, ValueError):
            _say_interrupted()
    signalled = _interrupted_at[0] if _interrupted_at else time.monotonic()
    deadline = signalled + _EXIT_WITHIN
    _parallel.cancel()
    abort_open_uploads()
    _parallel.drain(max(0.0, min(grace, deadline - time.monotonic())))
    run_interrupt_hooks()  # e.g. remove temporary files
    wait_uploads_aborted(signalled + _ABORTS_WITHIN)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(128 + (_interrupted_by[0] if _interrupted_by else signal.SIGINT))
