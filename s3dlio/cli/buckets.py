"""Bucket commands: create-bucket, delete-bucket, list-buckets (s3://, az:// containers, mem://)."""

from __future__ import annotations

import click

from .. import ops
from ..errors import AlreadyExistsError
from ._output import Progress, emit_json

__all__ = ["COMMANDS"]


def _bucket_arg(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """A bare bucket name (``my-bucket``, as s3-cli took it) is the S3 bucket ``s3://my-bucket``."""
    return ops._bucket_uri(value)


@click.command("create-bucket", short_help="Create a bucket (s3://name or name) or container (az://name).")
@click.argument("uri", callback=_bucket_arg)
@click.option("--exist-ok", is_flag=True, help="Succeed when the bucket already exists.")
def create_bucket(uri: str, exist_ok: bool) -> None:
    """Create the bucket or container that URI names.

    \b
    Examples:
      s3dlio create-bucket s3://my-bucket
      s3dlio create-bucket my-bucket        (the same: a bare name is an S3 bucket)
      s3dlio create-bucket --exist-ok az://my-container
    """
    try:
        ops.create_bucket(uri)
    except AlreadyExistsError:
        if not exist_ok:
            raise
        click.echo(f"Bucket {uri} already exists.")
        return
    click.echo(f"Created bucket {uri}")


@click.command("delete-bucket", short_help="Delete a bucket or container. It must be empty (or use --force).")
@click.argument("uri", callback=_bucket_arg)
@click.option("-f", "--force", is_flag=True, help="Delete every object in it first.")
def delete_bucket(uri: str, force: bool) -> None:
    """Delete the bucket or container that URI names (a bare name is an S3 bucket); it must be
    empty unless --force.

    \b
    Examples:
      s3dlio delete-bucket s3://my-bucket
      s3dlio delete-bucket --force az://my-container
    """
    if force:
        with Progress("delete", show_bytes=False) as progress:  # advances per batch deleted
            deleted = ops.delete(uri.rstrip("/") + "/", recursive=True, on_object=progress.advance)
        click.echo(f"Deleted {deleted} objects.")  # s3-cli's fixed wording, whatever the count
    ops.delete_bucket(uri)
    click.echo(f"Deleted bucket {uri}")


@click.command("list-buckets", short_help="List buckets (s3://, the default) or containers (az://).")
@click.argument("uri", default="s3://")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout (for scripts).")
def list_buckets(uri: str, as_json: bool) -> None:
    """List the buckets (or, for az://, the containers) the credentials can see.

    \b
    Examples:
      s3dlio list-buckets
      s3dlio list-buckets az://
    """
    if uri.rstrip("/") in ("az:", "az://"):
        # The Azure store builds a container client even to list containers, and the SDK refuses
        # an empty container name: name any valid container; only the account matters here.
        uri = "az://s3dlio-list"
    names = ops.list_buckets(uri)
    if as_json:
        emit_json({"buckets": names, "count": len(names)})
        return
    for name in names:
        click.echo(name)
    click.echo(f"\nTotal buckets: {len(names)}")


COMMANDS: tuple[click.Command, ...] = (create_bucket, delete_bucket, list_buckets)
