"""Object commands: ls (list), stat, get, put, delete (rm), upload, download, cp.

Which objects a URI selects follows the library: a plain last part is exactly that key, a
trailing ``/`` is everything at that level, a last part with regex characters is a regex (a
shell glob when it is no valid regex but holds ``*``, ``?`` or ``[``), ``-r`` reaches below
the level. ``ls`` alone reads a plain last part as a name prefix.
"""

from __future__ import annotations

import collections
import contextlib
import glob
import json
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from .. import _parallel, localpath, ops
from .._redact import redact
from .._select import is_pattern, select
from ..config import default_config
from ..errors import AlreadyExistsError, ConfigError, InvalidUriError, NotFoundError
from ..ranged import StreamBudget
from ..sizes import format_size, parse_size, physical_memory
from ..store.local import map_errors
from ..uri import join, parse
from ..writer import writer_for
from ._output import (
    MB,
    PartialFailure,
    Progress,
    State,
    Tally,
    emit_json,
    mb,
    on_interrupt,
    plural,
    rate,
    remove_temp_files,
    report_failure,
    seconds,
)

if TYPE_CHECKING:
    from collections.abc import Buffer

__all__ = ["COMMANDS", "OBJECT_TYPES"]

#: What ``put -o`` generates (the same as :data:`s3dlio.formats.OBJECT_TYPES`, kept here so that
#: ``s3dlio --help`` does not import the format libraries).
OBJECT_TYPES = ("NPZ", "TFRECORD", "HDF5", "RAW", "NPY", "JPEG", "PNG", "CSV")


class SizeType(click.ParamType):  # type: ignore[type-arg,unused-ignore]  # generic from click 8.2
    """A byte count with an optional unit: ``4096``, ``1k``, ``20MB``, ``8MiB``; at most ``limit``."""

    name = "size"

    def __init__(self, limit: int = 2**63 - 1, why: str = "the largest byte offset HTTP ranges take") -> None:
        self.limit = limit
        self.why = why

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        try:
            n = parse_size(value)
        except ConfigError as exc:
            self.fail(str(exc), param, ctx)
        if n > self.limit:
            self.fail(f"{value}: at most {self.limit} bytes ({format_size(self.limit)}), {self.why}", param, ctx)
        return n


SIZE = SizeType()
#: ``put -s``: S3's largest object (5 TiB); objects are also generated in memory, ``-j`` at a time.
OBJECT_SIZE = SizeType(5 * 2**40, "the largest object S3 stores")


def _jobs(default: int, what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        "-j", "--jobs", type=click.IntRange(min=1), default=default, show_default=True,
        help=f"Maximum concurrent {what}.",
    )  # fmt: skip


_json = click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout (for scripts).")
_recursive = click.option(
    "-r", "--recursive", is_flag=True, help="Reach below the URI's level ('/' stops separating levels)."
)


# -- selection and batch helpers ---------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Target:
    """One selected object: its URI, its key, and its size when a listing told it."""

    uri: str
    key: str
    size: int | None


def _uri(text: str) -> str:
    """A URI from the command line; a plain path ending in ``/`` stays a prefix (``./data/``)."""
    if "://" in text or not text.endswith(("/", os.sep)) or re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:/", text):
        return text
    path = os.path.abspath(os.path.expanduser(text))
    return "file://" + (path if path.endswith("/") else path + "/")


def _uri_arg(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Argument callback: :func:`_uri` on one value or each of several."""
    if isinstance(value, tuple):
        return tuple(_uri(v) for v in value)
    return _uri(value)


def _selected(
    uri: str, recursive: bool, *, literal: bool = False, pattern: str | None = None
) -> tuple[str, list[Target]]:
    """The objects ``uri`` selects, and the key prefix their relative names start after.

    A plain last part is exactly that key, with no listing (``rm s3://b/obj_1`` never touches
    ``obj_10``), and so is one whose only regex character is ``.`` (``data.bin``, see
    :func:`s3dlio._select.select`) and, when ``literal``, any last part; a trailing ``/``,
    ``pattern`` or a regex last part lists.
    """
    parsed = parse(uri)
    sel = select(parsed.key, recursive=recursive, exact=True, literal=literal)
    if pattern is None and sel.literal and sel.regex is None:
        return sel.base, [Target(str(parsed), parsed.key, None)]
    found = [
        Target(entry.uri, entry.meta.key, entry.meta.size)
        for entry in ops.list_entries(uri, recursive=recursive, pattern=pattern)
        if entry.meta is not None
    ]
    if not recursive and sel.literal:  # a regex last part: the exact key wins over its regex reading
        exact = [t for t in found if t.key == parsed.key]
        found = exact or found
    return sel.base, found


def _no_match(op: str, uri: str) -> NotFoundError:
    return NotFoundError(f"{op} {uri}: no object matches; see what is there with: s3dlio ls {uri}")


def _end(errors: Sequence[BaseException], total: int) -> None:
    """Exit 1 when some objects failed (each already reported); a batch of one raises its error."""
    if not errors:
        return
    if total == 1:
        raise errors[0]
    raise PartialFailure(f"{len(errors)} of {plural(total, 'object')} failed (each is reported above)")


def _numbers(objects: int, nbytes: int | None, secs: float) -> dict[str, Any]:
    out: dict[str, Any] = {"objects": objects}
    if nbytes is not None:
        out["bytes"] = nbytes
    out["seconds"] = round(secs, 6)
    out["objects_per_s"] = round(rate(objects, secs), 3)
    if nbytes is not None:
        out["mb_per_s"] = round(rate(nbytes, secs) / MB, 3)  # the MB of the text lines: 2^20 bytes
    return out


#: Where ``get``/``download`` send an object: its first piece, then None or the rest, in order
#: (:func:`s3dlio.ops.get_in_pieces`), so a large object is never held whole.
Sink = Callable[["Target", "Buffer", "Iterator[Buffer] | None"], None]


def _dir_sink(dest_dir: str, base: str, targets: Sequence[Target], op: str) -> Sink:
    """Write each object under ``dest_dir`` at its key relative to ``base``, where
    :func:`s3dlio.localpath.plan` puts it: keys that would leave ``dest_dir`` or share a path
    are refused (their error names them), the others written. A zero-byte object named like
    the directory of others (ADLS Gen2's directories, :func:`s3dlio.ops.folder_markers`) is
    that directory, as a ``dir/`` marker is."""
    dirs: set[str] = set()
    for t in targets:
        ops.add_parents(dirs, t.key)
    folders = set(ops.folder_markers(((t.key, t.size) for t in targets if t.size is not None), dirs))
    rels = ops.relative_names([t.key for t in targets], base, folders)
    planned = localpath.plan(op, dest_dir, rels, [t.uri for t in targets])
    paths = dict(zip((t.key for t in targets), planned, strict=True))

    def sink(target: Target, data: Buffer, rest: Iterator[Buffer] | None) -> None:
        path = paths[target.key]
        if isinstance(path, BaseException):
            raise path
        if path.endswith(os.sep):  # a "directory marker" object
            os.makedirs(path, exist_ok=True)
            return
        ops.write_file_atomic(path, data, rest, op=op)

    return sink


def _fetch(
    state: State,
    label: str,
    targets: list[Target],
    jobs: int,
    sink: Sink | None = None,
    offset: int | None = None,
    length: int | None = None,
) -> tuple[Tally, float]:
    """GET every target with ``jobs`` in flight; data goes to ``sink`` or is dropped. Counts and seconds.

    Progress advances as each object lands; failures are reported as they happen.
    """
    ranged = offset is not None or length is not None
    total: int | None = 0
    for t in targets:
        total = None if total is None or t.size is None or ranged else total + t.size
    interrupted = threading.Event()
    streams = StreamBudget(default_config())
    with Progress(label, len(targets), total) as progress:
        tally = Tally(label, len(targets), progress, state.verbose)

        def one(target: Target) -> None:
            if ranged:
                data, rest = ops.get_range(target.uri, offset or 0, length), None
            else:
                data, rest = ops.get_in_pieces(target.uri)
            nbytes = [memoryview(data).nbytes]

            def counted(pieces: Iterator[Buffer]) -> Iterator[Buffer]:
                for piece in pieces:
                    nbytes[0] += memoryview(piece).nbytes
                    yield piece

            with streams.holding(rest):
                if sink is not None:
                    if interrupted.is_set() or _parallel.cancelled():  # Ctrl-C: start no new file
                        raise KeyboardInterrupt
                    sink(target, data, None if rest is None else counted(rest))
                else:  # nowhere to go: fetched and dropped, a window at a time
                    collections.deque(counted(rest or iter(())), maxlen=0)
            tally.ok(nbytes[0])

        start = time.perf_counter()
        try:
            _parallel.for_each_bounded(  # this thread waits where Ctrl-C reaches it at once
                one, targets, jobs, on_error=lambda t, exc: tally.fail(t.uri, exc), caller_works=False
            )
        except KeyboardInterrupt:  # raised at once: the GETs still in flight must not write
            interrupted.set()
            raise
        return tally, time.perf_counter() - start


def _json_end(tally: Tally, secs: float, **extra: Any) -> None:
    """The ``--json`` summary of a batch: numbers, ``failed`` and the first errors."""
    emit_json({**_numbers(tally.done, tally.nbytes, secs), "failed": tally.failed, **extra,
               "errors": tally.errors})  # fmt: skip


def _summary(verb: str, tally: Tally, secs: float) -> str:
    """``Uploaded 2 objects (total 20 bytes) in 0.100s (20.00 objects/s, 0.00 MB/s)``: s3-cli's
    line, ``objects`` whatever the count (``Uploaded 1 objects``), MB of 2^20 bytes."""
    return (
        f"{verb} {tally.done} objects (total {tally.nbytes} bytes) in {seconds(secs)} "
        f"({rate(tally.done, secs):.2f} objects/s, {mb(rate(tally.nbytes, secs))} MB/s)"
    )


# -- ls / stat ---------------------------------------------------------------------------------
def _date(meta: Any) -> str:
    when = getattr(meta, "last_modified", None)
    if when is None:
        return "-"
    return str(when.isoformat(timespec="seconds")).replace("+00:00", "Z")


@click.command("ls", short_help="List objects; the last part of the URI may be a regex.")
@click.argument("uri", callback=_uri_arg)
@_recursive
@click.option("--count", is_flag=True, help="Print only the totals.")
@click.option("-l", "--long", "long_format", is_flag=True, help="Show each object's size and date.")
@_json
def ls(uri: str, recursive: bool, count: bool, long_format: bool, as_json: bool) -> None:
    """List what URI selects, one URI per line, then the number of objects.

    Without -r, '/' separates levels and sub-levels show as URIs ending in '/'; they are
    counted apart ('Total sub-levels: N'), never as objects. A plain last part is a name
    prefix (s3://b/data/img_ lists img_0, img_1, ...); one with regex characters is a regex
    (s3://b/data/img_.*\\.npz), or a shell glob when it is no valid regex ('*.npz'). Full URIs, unlike the original s3-cli's keys, so that a line
    can be passed to any other command whatever the scheme.

    \b
    Examples:
      s3dlio ls s3://bucket/data/
      s3dlio ls -r --count s3://bucket/
      s3dlio ls --long 's3://bucket/data/.*\\.npz'
    """
    entries = ops.list_entries(uri, recursive=recursive)
    n = levels = 0
    out = sys.stdout.write

    def write(text: str) -> None:  # listed names, like every output, go out redacted
        out(redact(text))

    if as_json and not count:  # streamed: one entry in memory at a time, whatever the listing
        write(f'{{"uri": {json.dumps(uri)}, "entries": [')
    if count or as_json:
        with Progress("ls") as progress:
            for entry in entries:
                if entry.meta is None:
                    levels += 1
                else:
                    n += 1
                    progress.advance(1, entry.meta.size)
                if as_json and not count:
                    write((", " if n + levels > 1 else "") + json.dumps(_entry_dict(entry)))
    else:
        for entry in entries:
            if entry.meta is None:
                levels += 1
            else:
                n += 1
            if long_format:
                size = f"{entry.meta.size:>14}" if entry.meta else f"{'PRE':>14}"
                write(f"{size}  {_date(entry.meta):<20}  {entry.uri}\n")
            else:
                write(entry.uri + "\n")
    if as_json:
        if count:
            emit_json({"uri": uri, "count": n, "prefixes": levels})
        else:
            write(f'], "count": {n}, "prefixes": {levels}}}\n')
        return
    if not count:
        click.echo("")
    if levels:
        click.echo(f"Total sub-levels: {levels}")
    click.echo(f"Total objects: {n}")


def _entry_dict(entry: ops.Entry) -> dict[str, Any]:
    if entry.meta is None:
        return {"uri": entry.uri, "prefix": True}
    return {
        "uri": entry.uri,
        "size": entry.meta.size,
        "last_modified": _date(entry.meta),
        "etag": entry.meta.etag,
    }


@click.command("stat", short_help="Show one object's size, date, etag and other metadata.")
@click.argument("uri", callback=_uri_arg)
@_json
def stat(uri: str, as_json: bool) -> None:
    """Show the metadata of the object at URI, one field per line.

    \b
    Example:
      s3dlio stat s3://bucket/data/object_0_of_5.dat
    """
    meta = ops.stat(uri).to_dict()
    meta.pop("key", None)
    if as_json:
        emit_json({"uri": str(parse(uri)), **meta})
        return
    lines = [f"Stat for {uri}:"]
    for name, value in meta.items():
        shown = json.dumps(value) if isinstance(value, dict) else value
        lines.append(f"  {name}: {shown}")
    click.echo(redact("\n".join(lines)))


# -- get / download ----------------------------------------------------------------------------
@click.command("get", short_help="Fetch one or many objects concurrently (measures; -o keeps the data).")
@click.argument("uri", callback=_uri_arg)
@_recursive
@_jobs(64, "GET requests")
@click.option("--offset", type=SIZE, help="Read from this byte on (a ranged GET), e.g. 1MiB.")
@click.option("--length", type=SIZE, help="Read this many bytes (default: to the end).")
@click.option(
    "-o", "--output", metavar="PATH",
    help="Keep the data: a file for one object, a directory for many, '-' for stdout. Default: discard.",
)  # fmt: skip
@_json
@click.pass_obj
def get(
    state: State, uri: str, recursive: bool, jobs: int, offset: int | None, length: int | None,
    output: str | None, as_json: bool,
) -> None:  # fmt: skip
    """Fetch one object, a prefix (URI ending in /) or a regex, JOBS requests at a time.

    The data is discarded unless -o says where to keep it: get measures what the storage
    delivers, in MB (2^20 bytes, as s3-cli counted them) per second.

    \b
    Examples:
      s3dlio get -j 32 s3://bucket/data/
      s3dlio get 's3://bucket/data/object_1.*'
      s3dlio get --offset 1MiB --length 4k s3://bucket/big.bin -o - | xxd | head
    """
    base, targets = _selected(uri, recursive)
    if not targets:
        raise _no_match("get", uri)
    sink: Sink | None = None
    if output == "-":
        if len(targets) > 1 or as_json:
            raise click.UsageError("-o - writes one object to stdout: select a single object and drop --json")
        stdout = sys.stdout.buffer

        def sink(_target: Target, data: Buffer, rest: Iterator[Buffer] | None) -> None:
            stdout.write(data)
            for piece in rest or ():
                stdout.write(piece)
    elif output:
        if len(targets) == 1 and not output.endswith(("/", os.sep)) and not os.path.isdir(output):
            sink = lambda _t, data, rest: ops.write_file_atomic(output, data, rest, op="get")  # noqa: E731
        else:
            sink = _dir_sink(output, base, targets, "get")
    talk = not as_json and output != "-"
    if output and output != "-":
        on_interrupt(lambda: remove_temp_files(output, recursive=len(targets) > 1))
    if talk:
        click.echo(f"Fetching {len(targets)} objects with {jobs} jobs…")  # s3-cli's words, any counts
    tally, secs = _fetch(state, "get", targets, jobs, sink, offset, length)
    if as_json:
        _json_end(tally, secs)
    elif talk and tally.done:
        nbytes = tally.nbytes
        click.echo(f"downloaded {mb(nbytes)} MB in {seconds(secs)} ({mb(rate(nbytes, secs))} MB/s)")
    tally.end()


@click.command("download", short_help="Download objects (a key, a prefix, a regex) into a local directory.")
@click.argument("uri", callback=_uri_arg)
@click.argument("dest_dir", metavar="DIR", type=click.Path(file_okay=False))
@_recursive
@_jobs(64, "GET requests")
@_json
@click.pass_obj
def download(state: State, uri: str, dest_dir: str, recursive: bool, jobs: int, as_json: bool) -> None:
    """Download what URI selects into DIR; files keep their path relative to the URI's level.

    \b
    Examples:
      s3dlio download s3://bucket/data/object_0_of_5.dat ./
      s3dlio download -r s3://bucket/data/ ./data
      s3dlio download 'az://container/logs/.*\\.json' ./logs
      s3dlio download 's3://bucket/NPZ/*.npz' ./npz      (a glob: not a valid regex)
    """
    base, targets = _selected(uri, recursive)
    if not targets:
        raise _no_match("download", uri)
    on_interrupt(lambda: remove_temp_files(dest_dir))
    tally, secs = _fetch(state, "download", targets, jobs, _dir_sink(dest_dir, base, targets, "download"))
    if as_json:
        _json_end(tally, secs, dest=os.path.abspath(dest_dir))
    elif tally.done:
        click.echo(_summary("Downloaded", tally, secs))
    tally.end()


# -- put ---------------------------------------------------------------------------------------
#: The file extension of each ``put -o`` type, for the default template.
EXTENSIONS = {
    "NPZ": "npz", "TFRECORD": "tfrecord", "HDF5": "h5", "RAW": "dat",
    "NPY": "npy", "JPEG": "jpg", "PNG": "png", "CSV": "csv",
}  # fmt: skip


def _namer(template: str, num: int) -> Callable[[int], str]:
    """Object ``i``'s name from ``template``: the first ``{}`` is the index, the second the total.

    A function, not a list: ``put -n 10**12`` holds one name at a time.
    """
    if "{}" not in template and num > 1:
        stem, ext = os.path.splitext(template)
        raise click.UsageError(
            f"template {template!r} has no '{{}}', so all {num} objects would get the same name; "
            f"put {{}} where the index goes, e.g. -t '{stem}_{{}}{ext}'"
        )
    head, _, rest = template.partition("{}")
    tail = rest.replace("{}", str(num), 1)
    if "{}" not in template:
        return lambda i: template
    return lambda i: f"{head}{i}{tail}"


def _multipart_size(uri: str) -> int | None:
    """Objects above this size go up in parts on ``uri``'s store (None: never in parts)."""
    parsed, store = ops.resolve(uri)
    if parsed.scheme not in ("s3", "az") or store.in_process:
        return None
    return 2 * max(store.config.part_size, 5 * 2**20)


def _check_memory(size: int, jobs: int) -> None:
    """A usage error when ``jobs`` objects of ``size`` bytes (each generated in memory) cannot fit."""
    physical = physical_memory()
    if physical is None:
        return
    if size > physical:
        raise click.BadParameter(
            f"{format_size(size)}: each object is generated in memory, and this machine has "
            f"{format_size(physical)}; lower -s",
            param_hint="'-s' / '--size'",
        )
    if size * jobs > physical:
        raise click.BadParameter(
            f"{jobs} objects of {format_size(size)} at once need more than this machine's "
            f"{format_size(physical)} of memory; lower -j to at most {physical // size}, or -s",
            param_hint="'-j' / '--jobs'",
        )


@click.command("put", short_help="Generate objects (RAW, NPZ, HDF5, ...) and upload them concurrently.")
@click.argument("uri_prefix", callback=_uri_arg)
@click.option("-n", "--num", type=click.IntRange(min=1), default=1, show_default=True,
              help="Number of objects to create and upload.")  # fmt: skip
@click.option("-s", "--size", type=OBJECT_SIZE, default=20971520, show_default=True,
              help="Object size: bytes or with a unit (8MiB, 20MB, 1k); at most 5TiB.")  # fmt: skip
@click.option("-t", "--template", show_default="object_{}_of_{}.EXT, EXT from -o: dat (RAW), npz, tfrecord, "
              "h5, npy, jpg, png, csv", help="Object names: the first {} is the index, the second the total.")  # fmt: skip
@click.option("-o", "--object-type", type=click.Choice(OBJECT_TYPES, case_sensitive=False), default="RAW",
              metavar="TYPE", show_default=True,
              help=f"What kind of object to generate: {', '.join(OBJECT_TYPES)} (any case).")  # fmt: skip
@click.option("-d", "--dedup", type=click.IntRange(min=1), default=1, show_default=True,
              help="Dedupe ratio of the data over the whole run (1: every block unique).")  # fmt: skip
@click.option("-x", "--compress", type=click.FloatRange(min=1), default=1, show_default=True,
              help="Compression ratio of the data (1: incompressible).")  # fmt: skip
@_jobs(32, "uploads (at most --num)")
@click.option("-c", "--create-bucket", is_flag=True, help="Create the bucket/container if it does not exist.")
@click.option("--seed", type=int, help="Seed the data (the same seed makes the same bytes).")
@_json
@click.pass_obj
def put(
    state: State, uri_prefix: str, num: int, size: int, template: str | None, object_type: str, dedup: int,
    compress: float, jobs: int, create_bucket: bool, seed: int | None, as_json: bool,
) -> None:  # fmt: skip
    """Generate NUM objects of SIZE bytes and upload them under URI_PREFIX, JOBS at a time.

    One data generator serves the whole run, so the dedupe ratio holds across objects;
    each object is generated by the worker that uploads it (memory stays at JOBS objects).

    \b
    Examples:
      s3dlio put -c -n 1200 -t 'russ-test3-{}.obj' s3://bucket/
      s3dlio put -n 100 -s 8MiB -o NPZ -d 2 -x 3 s3://bucket/train/
    """
    from ..datagen import DataGenerator
    from ..formats import make_object

    jobs = min(jobs, num)
    _check_memory(size, jobs)
    name = _namer(template or f"object_{{}}_of_{{}}.{EXTENSIONS[object_type.upper()]}", num)
    prefix = parse(uri_prefix)
    generator = DataGenerator(dedup=dedup, compress=compress, seed=seed)
    if create_bucket and prefix.scheme in ("s3", "az", "mem"):
        with contextlib.suppress(AlreadyExistsError):
            ops.create_bucket(prefix.store_uri)
    multipart = _multipart_size(str(prefix))
    with Progress("put", num, size * num) as progress:
        tally = Tally("put", num, progress, state.verbose)

        def one(i: int) -> None:
            data = make_object(object_type, size, generator, index=i)
            n = memoryview(data).nbytes
            if multipart is not None and n > multipart:  # in parts; aborted on Ctrl-C (abort_open_uploads)
                _parallel.stop_if_cancelled()  # interrupted while this object was generated: start nothing
                uri = str(join(prefix, name(i)))
                parsed, store = ops.resolve(uri)
                with writer_for(uri, store, parsed.key) as writer:
                    writer.write(data)
            else:
                ops.put(str(join(prefix, name(i))), data)
            tally.ok(n)

        start = time.perf_counter()
        _parallel.for_each_bounded(  # names, data and results one at a time: memory stays flat
            one, range(num), jobs, on_error=lambda i, exc: tally.fail(join(prefix, name(i)), exc),
            caller_works=False,  # this thread waits where Ctrl-C reaches it at once
        )
        secs = time.perf_counter() - start
    if as_json:
        _json_end(tally, secs)
    elif tally.done:
        click.echo(_summary("Uploaded", tally, secs))
    tally.end()


# -- delete ------------------------------------------------------------------------------------
@click.command("delete", short_help="Delete one object, a prefix (ending in /), or what --regex selects.")
@click.argument("uri", callback=_uri_arg)
@_recursive
@click.option(
    "--regex", is_flag=True,
    help="Read the URI's last part as a regular expression (without it, the URI is literal).",
)  # fmt: skip
@_json
def delete(uri: str, recursive: bool, regex: bool, as_json: bool) -> None:
    """Delete the object at URI, or everything at a level (URI ending in /).

    URI is literal: its last part is exactly one key, even with regex characters in it
    (rm s3://b/a+b.bin deletes that key and never aab.bin), so running the same delete
    twice deletes nothing more. --regex reads the last part as a regular expression
    matched against the whole name. Deletes go out in batches of 1000.

    \b
    Examples:
      s3dlio rm s3://bucket/data/object_0_of_5.dat
      s3dlio delete -r s3://bucket/data/
      s3dlio rm --regex 's3://bucket/data/.*\\.tmp'
    """
    parsed = parse(uri)
    pattern = None
    if regex:
        base, slash, pattern = parsed.key.rpartition("/")
        if not pattern:
            raise InvalidUriError(f"rm --regex {uri}: the URI ends in '/'; put the regex after it")
        uri = str(parsed.with_key(base + slash))
    _, targets = _selected(uri, recursive, literal=True, pattern=pattern)
    if len(targets) == 1 and targets[0].size is None:
        try:
            ops.stat(targets[0].uri)  # a plain key that is missing: NotFoundError names it
        except NotFoundError as exc:
            if not is_pattern(parsed.key.rpartition("/")[2]):
                raise
            # s3-cli read a last part like '.*' as a regex; here the URI is literal
            raise NotFoundError(f"{exc}; to delete by pattern use --regex") from exc
    if not targets and regex:
        raise _no_match("delete", str(parsed))  # a regex that selects nothing; an empty prefix is fine
    if not as_json:
        click.echo(f"Deleting {len(targets)} objects…")  # s3-cli's words, whatever the count
    start = time.perf_counter()
    with Progress("delete", len(targets), show_bytes=False) as progress:  # advances per batch deleted
        deleted = (
            ops.delete(uri, recursive=recursive, pattern=pattern, on_object=progress.advance) if targets else 0
        )
    secs = time.perf_counter() - start
    if as_json:
        emit_json({"deleted": deleted, "seconds": round(secs, 6)})
    else:
        click.echo("Done.")


# -- upload / cp -------------------------------------------------------------------------------
def _local_files(pattern: str, include_hidden: bool, follow_links: bool) -> localpath.LocalFiles:
    """The files a local glob selects; each skipped item (a link leaving the tree, a loop, a
    broken link) gets a line on stderr."""
    with map_errors("upload", pattern):
        found = localpath.local_files(pattern, include_hidden=include_hidden, follow_links=follow_links)
    for item in found.skipped:
        click.echo(redact(f"s3dlio: skipped {item}"), err=True)
    return found


@click.command("upload", short_help="Upload local files (globs, directories) under a URI prefix.")
@click.argument("sources", nargs=-1, required=True, metavar="LOCAL...")
@click.argument("dest", metavar="URI_PREFIX", callback=_uri_arg)
@_jobs(32, "uploads")
@click.option("--exclude-hidden", is_flag=True, help="Skip names starting with '.' in directories and globs.")
@click.option(
    "-L", "--copy-links", is_flag=True,
    help="Follow symbolic links that point outside the directory (default: skip and report them).",
)  # fmt: skip
@_json
@click.pass_obj
def upload(
    state: State, sources: tuple[str, ...], dest: str, jobs: int, exclude_hidden: bool, copy_links: bool,
    as_json: bool,
) -> None:  # fmt: skip
    """Upload local files under URI_PREFIX: files, globs (quoted; ** recurses) or directories.

    A file keeps its name; a glob's files keep their path below the glob's fixed part; a
    directory's files keep their path below it. Dot-files are included (as with aws s3 cp
    --recursive) unless --exclude-hidden. A symbolic link that leaves the directory is
    skipped unless -L, a link back to a directory above it is never followed; each skipped
    item is reported on stderr, then their count.

    \b
    Examples:
      s3dlio upload ./model.bin s3://bucket/models/
      s3dlio upload './data/**/*.npz' s3://bucket/train/
      s3dlio upload ./data az://container/data/
    """
    files: list[str] = []
    patterns: list[localpath.LocalFiles] = []
    skipped = 0
    for src in sources:
        if os.path.isfile(src):
            files.append(src)
            continue
        pattern = os.path.join(glob.escape(src), "**") if os.path.isdir(src) else src
        found = _local_files(pattern, not exclude_hidden, copy_links)
        skipped += len(found.skipped)
        if not found.files:
            raise NotFoundError(f"upload {src}: no local file matches; check the path, and quote a glob")
        patterns.append(found)
    if skipped:
        click.echo(f"s3dlio: skipped {plural(skipped, 'item')} (each is reported above)", err=True)
    every = files + [p for found in patterns for p in found.files]
    total = sum(_size(p) for p in every)
    with Progress("upload", len(every), total) as progress:
        tally = Tally("upload", len(every), progress, state.verbose)

        def one_file(path: str) -> None:
            ops.upload(glob.escape(path), dest, 1, follow_links=True, on_object=tally.advance)  # named: as it is

        start = time.perf_counter()
        _parallel.for_each_bounded(one_file, files, jobs, on_error=tally.fail, caller_works=False)
        for found in patterns:  # progress advances per file written (on_object)
            results = ops.upload_found(found, dest, jobs, on_object=tally.advance)
            for path, result in zip(found.files, results, strict=True):
                if isinstance(result, BaseException):  # a file gone or changed: the others still went
                    tally.fail(path, result)
        secs = time.perf_counter() - start
    if as_json:
        _json_end(tally, secs)
    elif tally.done:
        click.echo(_summary("Uploaded", tally, secs))
    tally.end()


def _size(path: str) -> int:
    """A listed file's size for the progress total (0 when it is gone: its upload says so)."""
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _is_local_dir(uri: str) -> bool:
    parsed = parse(uri)
    return parsed.scheme in ("file", "direct") and os.path.isdir("/" + parsed.key)


def _cp_source(src: str, recursive: bool) -> str:
    if _is_local_dir(src) and not src.endswith("/"):
        if not recursive:
            raise click.UsageError(
                f"cp {src!r}: is a directory; add -r to copy everything below it, or end it with / for its files"
            )
        return _uri(src + "/")
    return src


@click.command("cp", short_help="Copy objects between any two schemes (plain paths are local files).")
@click.argument("sources", nargs=-1, required=True, metavar="SRC...", callback=_uri_arg)
@click.argument("dest", metavar="DST", callback=_uri_arg)
@_recursive
@_jobs(32, "copies")
@click.option(
    "-L", "--copy-links", is_flag=True,
    help="From a local directory, also copy what symbolic links leaving it point to (default: skip them).",
)
@_json
@click.pass_obj
def cp(
    state: State, sources: tuple[str, ...], dest: str, recursive: bool, jobs: int, copy_links: bool, as_json: bool
) -> None:
    """Copy SRC to DST: s3, az, file, direct and mem URIs, and plain local paths, in any direction.

    One object goes to the key DST, or into DST when DST ends in / (or is a local
    directory), keeping its name; a prefix (ending in /), a regex or -r copies everything
    selected under DST, keeping relative paths. Into a local directory, a key that would
    leave it (an empty, '.' or '..' part) or share one file with another is refused and
    reported; the rest is copied and the command exits 1. From a local directory, a symbolic
    link that leaves it is skipped (reported on stderr) unless -L.

    \b
    Examples:
      s3dlio cp ./model.bin s3://bucket/models/
      s3dlio cp s3://bucket/models/model.bin ./
      s3dlio cp -r s3://bucket/data/ az://container/data/
      s3dlio cp -r ./data s3://bucket/data/
    """
    if _is_local_dir(dest) and not dest.endswith("/"):
        dest = _uri(dest + "/")
    if len(sources) > 1 and not parse(dest).is_prefix:
        raise click.UsageError(f"several sources go into a prefix: end DST with / (e.g. {dest}/)")
    start = time.perf_counter()
    copied = 0
    errors: list[BaseException] = []
    target = parse(dest)
    if target.scheme in ("file", "direct"):  # Ctrl-C: no half-written temporary file stays
        on_interrupt(lambda: remove_temp_files("/" + target.key, recursive=target.is_prefix))
    with Progress("cp") as progress:  # advances per object copied (on_object)
        for src in sources:
            results = ops.copy(
                _cp_source(src, recursive), dest, recursive, jobs, return_exceptions=True, on_object=progress.advance,
                follow_links=copy_links, on_skip=lambda item: click.echo(redact(f"s3dlio: skipped {item}"), err=True),
            )  # fmt: skip
            errors += [r for r in results if isinstance(r, BaseException)]
            copied += len(results)
    secs = time.perf_counter() - start
    total, copied = copied, copied - len(errors)
    if total > 1:
        for exc in errors:
            report_failure("cp", exc, state.verbose)
    if as_json:
        emit_json({**_numbers(copied, None, secs), "failed": len(errors)})
    elif copied:
        click.echo(f"Copied {copied} objects in {seconds(secs)} ({rate(copied, secs):.2f} objects/s)")
    _end(errors, total)


COMMANDS: tuple[click.Command, ...] = (ls, stat, get, put, delete, upload, download, cp)
