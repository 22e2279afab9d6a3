"""Op-log commands: ``oplog summarize FILE...`` (statistics) and ``replay FILE... --target URI``.

The app registers :data:`oplog_group` and :data:`replay_command`; the global ``--op-log``
option of the app makes a replay write its own op-log.
"""

from __future__ import annotations

from typing import Any

import click

from ._output import PartialFailure, emit_json, plural

__all__ = ["COMMANDS", "oplog_group", "replay_command"]

_FILES = click.argument(
    "files", nargs=-1, required=True, metavar="FILE...", type=click.Path(exists=True, dir_okay=False)
)
_json = click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout (for scripts).")


@click.group("oplog", short_help="Analyse op-logs (warp-compatible operation logs).")
def oplog_group() -> None:
    """Analyse op-logs written with --op-log, s3dlio.init_op_log or MinIO warp."""


@oplog_group.command("summarize", short_help="Count, bytes, throughput and latency per operation type.")
@_FILES
@_json
def summarize(files: tuple[str, ...], as_json: bool) -> None:
    """Statistics of one or more op-logs taken together (several clients merge by time).

    Per operation type and overall: count, errors, bytes, throughput (MiB/s, ops/s) over the
    active window (first start to last end), latency mean/p50/p90/p99/max and time to first
    byte in milliseconds.

    \b
    Examples:
      s3dlio oplog summarize run.tsv.zst run.*.tsv.zst
      s3dlio oplog summarize --json run.tsv.zst > summary.json
    """
    from ..oplog import summarize_files

    summary = summarize_files(files)
    if as_json:
        emit_json(summary.to_dict())
    else:
        click.echo(summary.format_table())


def _ops(ctx: click.Context, param: click.Parameter, value: str | None) -> frozenset[str] | None:
    """``--ops GET,PUT``: known names, any case; a usage error (exit 2) names the bad ones."""
    if value is None:
        return None
    from ..errors import ConfigError
    from ..replay import parse_ops

    try:
        return parse_ops(value)
    except ConfigError as exc:
        raise click.BadParameter(str(exc).removeprefix("replay: "), ctx, param) from None


@click.command("replay", short_help="Re-issue the operations of an op-log against another store.")
@_FILES
@click.option(
    "-t", "--target", required=True, metavar="URI_PREFIX",
    help="Where to replay: a record's key (without its bucket) is appended to this prefix.",
)  # fmt: skip
@click.option(
    "--speed", type=click.FloatRange(min=0), default=1.0, show_default=True,
    help="Scale the recorded timing: 2 twice as fast, 0.5 half, 0 as fast as possible.",
)  # fmt: skip
@click.option("--as-fast-as-possible", "afap", is_flag=True, help="Ignore the recorded timing (--speed 0).")
@click.option(
    "--ops", callback=_ops, metavar="GET,PUT,...",
    help="Replay only these operations (default GET,PUT,STAT,LIST,DELETE; add CREATE_BUCKET, DELETE_BUCKET).",
)  # fmt: skip
@click.option(
    "-j", "--jobs", type=click.IntRange(1, 512), default=32, show_default=True,
    help="Worker threads issuing operations.",
)  # fmt: skip
@click.option(
    "--prepare", is_flag=True, help="First create the objects GETs and STATs read, at recorded sizes."
)
@click.option("--continue-on-error", is_flag=True, help="Go on past failures (default: stop at the first).")
@_json
def replay_command(
    files: tuple[str, ...], target: str, speed: float, afap: bool, ops: frozenset[str] | None, jobs: int,
    prepare: bool, continue_on_error: bool, as_json: bool,
) -> None:  # fmt: skip
    """Re-issue the operations of op-log FILE (several: merged by time) under URI_PREFIX.

    Operations start in recorded order at their recorded times, scaled by --speed. A PUT
    writes generated data of the recorded size; a GET reads the recorded number of bytes;
    STAT, LIST and DELETE name the same keys under the target. A failure of an operation the
    recording shows as failed too is expected and counted, never fatal. Prints counts and bytes
    per operation and the lag (how late operations started); with the global --op-log, the
    replay writes its own op-log.

    \b
    Examples:
      s3dlio replay run.tsv.zst --target s3://other-bucket/replay/ --prepare
      s3dlio replay run.tsv.zst -t mem://x/ --speed 0 --ops GET,STAT --json
      s3dlio --op-log replayed.tsv.zst replay run.tsv.zst -t file:///scratch/replay/ --speed 2
    """
    from ..replay import replay

    result = replay(
        files, target, speed=0.0 if afap else speed, ops=ops, jobs=jobs, prepare=prepare,
        continue_on_error=continue_on_error,
    )  # fmt: skip
    if as_json:
        emit_json(result.to_dict())
    else:
        click.echo(result.format_text())
    if result.unexpected_errors:
        raise PartialFailure(
            f"{result.unexpected_errors} of {plural(result.count, 'replayed operation')} failed"
        )


#: What the app registers.
COMMANDS: tuple[Any, ...] = (oplog_group, replay_command)
