"""The ``cleanup`` command: remove what killed writers left under a prefix (s3dlio.cleanup)."""

from __future__ import annotations

import click

from ..cleanup import Leftover, cleanup, parse_age
from ._output import PartialFailure, emit_json

__all__ = ["cleanup_command"]


def _age(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    try:
        parse_age(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


@click.command("cleanup", short_help="Remove incomplete uploads and temporary files killed writers left.")
@click.argument("prefix")
@click.option("--older-than", metavar="AGE", callback=_age,
              help="Only leftovers at least this old (90s, 30m, 1h, 2d): spares writes still running.")
@click.option("--dry-run", is_flag=True, help="List what would be removed; remove nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout (for scripts).")
def cleanup_command(prefix: str, older_than: str | None, dry_run: bool, as_json: bool) -> None:  # fmt: skip
    """Find and remove what writers killed mid-write left under PREFIX.

    s3://: incomplete multipart uploads (aborted). az://: blobs that have only uncommitted
    blocks (discarded). file:// and direct://: hidden .s3dlio-tmp-* files. Every backend:
    objects named .s3dlio-tmp-*. None of these show in ls or get. Without --older-than,
    uploads still running under PREFIX are removed too (and then fail).

    \b
    Examples:
      s3dlio cleanup --dry-run s3://bucket/data/
      s3dlio cleanup --older-than 1h s3://bucket/
      s3dlio cleanup --json file:///scratch/ckpt/
    """
    found = cleanup(prefix, older_than=older_than, dry_run=dry_run)
    failed = [item for item in found if item.error]
    if as_json:
        emit_json({
            "prefix": prefix, "dry_run": dry_run, "older_than": older_than, "found": len(found),
            "removed": sum(item.removed for item in found), "failed": len(failed),
            "leftovers": [item.to_dict() for item in found],
        })  # fmt: skip
    else:
        for item in found:
            click.echo(_line(item, dry_run))
        verb = "would remove" if dry_run else "removed"
        done = len(found) if dry_run else len(found) - len(failed)
        click.echo(f"Found {len(found)} leftovers; {verb} {done}.")
    if failed:
        raise PartialFailure(f"{len(failed)} of {len(found)} leftovers could not be removed")


def _line(item: Leftover, dry_run: bool) -> str:
    state = "found" if dry_run else "removed" if item.removed else "FAILED"
    when = item.modified.isoformat(timespec="seconds").replace("+00:00", "Z") if item.modified else "-"
    size = "-" if item.size is None else str(item.size)
    line = f"{state:<8}{item.kind:<20}{size:>14}  {when:<20}  {item.uri}"
    return f"{line}  ({item.error})" if item.error else line
