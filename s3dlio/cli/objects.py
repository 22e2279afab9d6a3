"""Object commands: ls (list), stat, get, put, delete (rm), upload, download, cp.

Which objects a URI selects follows the library: a plain last part is exactly that key, a
trailing ``/`` is everything at that level, a last part with regex characters is a regex,
``-r`` reaches below the level. ``ls`` alone reads a plain last part as a name prefix.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import click

from .. import _parallel, ops
from .._select import select
from ..errors import AlreadyExistsError, ConfigError, InvalidUriError, NotFoundError
from ..sizes import parse_size
from ..uri import join, parse
from ._output import PartialFailure, Progress, State, emit_json, mb, rate, report_failure, seconds

if TYPE_CHECKING:
    from collections.abc import Buffer

__all__ = ["COMMANDS", "OBJECT_TYPES"]

#: What ``put -o`` generates (the same as :data:`s3dlio.formats.OBJECT_TYPES`, kept here so that
#: ``s3dlio --help`` does not import the format libraries).
OBJECT_TYPES = ("NPZ", "TFRECORD", "HDF5", "RAW", "NPY", "JPEG", "PNG", "CSV")

#: Characters that make a URI's last part a regex here; a lone "." (``data.bin``) does not.
_REGEX_CHARS = frozenset("^$*+?{}[]\\|()")

T = TypeVar("T")
R = TypeVar("R")


class SizeType(click.ParamType):  # type: ignore[type-arg,unused-ignore]  # generic from click 8.2
    """A byte count with an optional unit: ``4096``, ``1k``, ``20MB``, ``8MiB``."""

    name = "size"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_size(value)
        except ConfigError as exc:
            self.fail(str(exc), param, ctx)


SIZE = SizeType()


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


def _selected(uri: str, recursive: bool) -> tuple[str, list[Target]]:
    """The objects ``uri`` selects, and the key prefix their relative names start after.

    A plain last part is exactly that key, with no listing (``rm s3://b/obj_1`` never touches
    ``obj_10``), and so is one whose only regex character is ``.`` (``data.bin``); a trailing
    ``/`` or a regex last part lists.
    """
    parsed = parse(uri)
    sel = select(parsed.key, recursive=recursive, exact=True)
    if sel.literal and (sel.regex is None or not _REGEX_CHARS.intersection(sel.literal)):
        return sel.base, [Target(str(parsed), parsed.key, None)]
    found = [
        Target(entry.uri, entry.meta.key, entry.meta.size)
        for entry in ops.list_entries(uri, recursive=recursive)
        if entry.meta is not None
    ]
    if not recursive and sel.literal:  # a regex last part: the exact key wins over its regex reading
        exact = [t for t in found if t.key == parsed.key]
        found = exact or found
    return sel.base, found


def _no_match(op: str, uri: str) -> NotFoundError:
    return NotFoundError(f"{op} {uri}: no object matches; see what is there with: s3dlio ls {uri}")


def _map(fn: Callable[[T], R], items: Sequence[T], jobs: int) -> list[R | BaseException]:
    """``map_bounded`` with each error in its slot, stopping early on Ctrl-C (which it re-raises)."""
    stop = threading.Event()

    def guarded(item: T) -> R:
        if stop.is_set():
            raise KeyboardInterrupt
        try:
            return fn(item)
        except KeyboardInterrupt:
            stop.set()
            raise

    results = _parallel.map_bounded(guarded, items, jobs, return_exceptions=True)
    if stop.is_set():
        raise KeyboardInterrupt
    return results


def _failures(op: str, state: State, items: Sequence[Any], results: Sequence[Any]) -> list[BaseException]:
    """Report each failed object on stderr (one line each) and return the errors.

    A batch of one reports nothing here: its error ends the command as the only line.
    """
    errors = [(item, r) for item, r in zip(items, results, strict=True) if isinstance(r, BaseException)]
    if len(items) > 1:
        for item, exc in errors:
            report_failure(f"{op} {getattr(item, 'uri', item)}", exc, state.verbose)
    return [exc for _, exc in errors]


def _end(errors: Sequence[BaseException], total: int) -> None:
    """Exit 1 when some objects failed (each already reported); a batch of one raises its error."""
    if not errors:
        return
    if total == 1:
        raise errors[0]
    raise PartialFailure(f"{len(errors)} of {total} objects failed (each is reported above)")


def _error_list(items: Sequence[Any], results: Sequence[Any]) -> list[dict[str, str]]:
    return [
        {"uri": str(getattr(item, "uri", item)), "error": str(r)}
        for item, r in zip(items, results, strict=True)
        if isinstance(r, BaseException)
    ]


def _numbers(objects: int, nbytes: int | None, secs: float) -> dict[str, Any]:
    out: dict[str, Any] = {"objects": objects}
    if nbytes is not None:
        out["bytes"] = nbytes
    out["seconds"] = round(secs, 6)
    out["objects_per_s"] = round(rate(objects, secs), 3)
    if nbytes is not None:
        out["mb_per_s"] = round(rate(nbytes, secs) / 1e6, 3)
    return out


def _dir_sink(dest_dir: str, base: str) -> Callable[[Target, Buffer], None]:
    """Write each object under ``dest_dir`` at its key relative to ``base``."""
    root = os.path.abspath(dest_dir)

    def sink(target: Target, data: Buffer) -> None:
        rel = target.key[len(base) :]
        path = os.path.normpath(os.path.join(root, *rel.split("/")))
        if os.path.commonpath([root, path]) != root or path == root:
            raise InvalidUriError(
                f"{target.uri}: its key would be written outside {root} ('..' in the key); "
                "download it alone with: s3dlio get URI -o FILE"
            )
        if rel.endswith("/"):  # a "directory marker" object
            os.makedirs(path, exist_ok=True)
            return
        ops.write_file_atomic(path, data)

    return sink


def _fetch(
    state: State,
    label: str,
    targets: list[Target],
    jobs: int,
    sink: Callable[[Target, Buffer], None] | None = None,
    offset: int | None = None,
    length: int | None = None,
) -> tuple[list[int | BaseException], float]:
    """GET every target with ``jobs`` in flight; data goes to ``sink`` or is dropped. Sizes and seconds."""
    ranged = offset is not None or length is not None
    sizes = [t.size for t in targets]
    total = None if ranged or None in sizes else sum(s for s in sizes if s is not None)
    with Progress(label, len(targets), total) as progress:

        def one(target: Target) -> int:
            data = ops.get_range(target.uri, offset or 0, length) if ranged else ops.get(target.uri)
            n = memoryview(data).nbytes
            if sink is not None:
                sink(target, data)
            progress.advance(1, n)
            return n

        start = time.perf_counter()
        results = _map(one, targets, jobs)
        return results, time.perf_counter() - start


# -- ls / stat ---------------------------------------------------------------------------------
def _date(meta: Any) -> str:
    when = getattr(meta, "last_modified", None)
    if when is None:
        return "-"
    return str(when.isoformat(timespec="seconds")).replace("+00:00", "Z")


@click.command("ls", short_help="List objects; the last part of the URI may be a regex.")
@click.argument("uri", callback=_uri_arg)
@_recursive
@click.option("--count", is_flag=True, help="Print only how many entries there are.")
@click.option("-l", "--long", "long_format", is_flag=True, help="Show each object's size and date.")
@_json
def ls(uri: str, recursive: bool, count: bool, long_format: bool, as_json: bool) -> None:
    """List what URI selects, one URI per line, then the total.

    Without -r, '/' separates levels and sub-levels show as URIs ending in '/'. A plain last
    part is a name prefix (s3://b/data/img_ lists img_0, img_1, ...); one with regex
    characters is a regex (s3://b/data/img_.*\\.npz).

    \b
    Examples:
      s3dlio ls s3://bucket/data/
      s3dlio ls -r --count s3://bucket/
      s3dlio ls --long 's3://bucket/data/.*\\.npz'
    """
    entries = ops.list_entries(uri, recursive=recursive)
    n = 0
    listed: list[dict[str, Any]] = []
    if count or as_json:
        with Progress("ls", counting=True) as progress:
            for entry in entries:
                n += 1
                progress.advance(1, entry.meta.size if entry.meta else 0)
                if as_json and not count:
                    listed.append(_entry_dict(entry))
    else:
        write = sys.stdout.write
        for entry in entries:
            n += 1
            if long_format:
                size = f"{entry.meta.size:>14}" if entry.meta else f"{'PRE':>14}"
                write(f"{size}  {_date(entry.meta):<20}  {entry.uri}\n")
            else:
                write(entry.uri + "\n")
    if as_json:
        emit_json({"uri": uri, "count": n} if count else {"uri": uri, "count": n, "entries": listed})
    else:
        if not count:
            click.echo("")
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
    click.echo("\n".join(lines))


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
    delivers, in MB (10^6 bytes) per second.

    \b
    Examples:
      s3dlio get -j 32 s3://bucket/data/
      s3dlio get 's3://bucket/data/object_1.*'
      s3dlio get --offset 1MiB --length 4k s3://bucket/big.bin -o - | xxd | head
    """
    base, targets = _selected(uri, recursive)
    if not targets:
        raise _no_match("get", uri)
    sink: Callable[[Target, Buffer], None] | None = None
    if output == "-":
        if len(targets) > 1 or as_json:
            raise click.UsageError("-o - writes one object to stdout: select a single object and drop --json")
        stdout = sys.stdout.buffer

        def sink(_target: Target, data: Buffer) -> None:
            stdout.write(data)
    elif output:
        if len(targets) == 1 and not output.endswith(("/", os.sep)) and not os.path.isdir(output):
            sink = lambda _t, data: ops.write_file_atomic(output, data)  # noqa: E731
        else:
            sink = _dir_sink(output, base)
    talk = not as_json and output != "-"
    if talk:
        click.echo(f"Fetching {len(targets)} objects with {jobs} jobs…")
    results, secs = _fetch(state, "get", targets, jobs, sink, offset, length)
    errors = _failures("get", state, targets, results)
    nbytes = sum(r for r in results if isinstance(r, int))
    if as_json:
        out = _numbers(len(targets) - len(errors), nbytes, secs)
        emit_json({**out, "failed": len(errors), "errors": _error_list(targets, results)})
    elif talk and len(errors) < len(targets):
        click.echo(f"downloaded {mb(nbytes)} MB in {seconds(secs)} ({mb(rate(nbytes, secs))} MB/s)")
    _end(errors, len(targets))


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
    """
    base, targets = _selected(uri, recursive)
    if not targets:
        raise _no_match("download", uri)
    results, secs = _fetch(state, "download", targets, jobs, _dir_sink(dest_dir, base))
    errors = _failures("download", state, targets, results)
    nbytes = sum(r for r in results if isinstance(r, int))
    done = len(targets) - len(errors)
    if as_json:
        out = _numbers(done, nbytes, secs)
        emit_json({**out, "failed": len(errors), "dest": os.path.abspath(dest_dir),
                   "errors": _error_list(targets, results)})  # fmt: skip
    elif done:
        click.echo(
            f"Downloaded {done} objects (total {nbytes} bytes) in {seconds(secs)} "
            f"({rate(done, secs):.2f} objects/s, {mb(rate(nbytes, secs))} MB/s)"
        )
    _end(errors, len(targets))


# -- put ---------------------------------------------------------------------------------------
def _object_names(template: str, num: int) -> list[str]:
    """Names from ``template``: the first ``{}`` is the object's index, the second the total."""
    if "{}" not in template and num > 1:
        stem, ext = os.path.splitext(template)
        raise click.UsageError(
            f"template {template!r} has no '{{}}', so all {num} objects would get the same name; "
            f"put {{}} where the index goes, e.g. -t '{stem}_{{}}{ext}'"
        )
    return [template.replace("{}", str(i), 1).replace("{}", str(num), 1) for i in range(num)]


@click.command("put", short_help="Generate objects (RAW, NPZ, HDF5, ...) and upload them concurrently.")
@click.argument("uri_prefix", callback=_uri_arg)
@click.option("-n", "--num", type=click.IntRange(min=1), default=1, show_default=True,
              help="Number of objects to create and upload.")  # fmt: skip
@click.option("-s", "--size", type=SIZE, default=20971520, show_default=True,
              help="Object size: bytes or with a unit (8MiB, 20MB, 1k).")  # fmt: skip
@click.option("-t", "--template", default="object_{}_of_{}.dat", show_default=True,
              help="Object names: the first {} is the index, the second the total.")  # fmt: skip
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
    state: State, uri_prefix: str, num: int, size: int, template: str, object_type: str, dedup: int,
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

    names = _object_names(template, num)
    prefix = parse(uri_prefix)
    uris = [str(join(prefix, name)) for name in names]
    generator = DataGenerator(dedup=dedup, compress=compress, seed=seed)
    if create_bucket and prefix.scheme in ("s3", "az", "mem"):
        with contextlib.suppress(AlreadyExistsError):
            ops.create_bucket(prefix.store_uri)
    with Progress("put", num, size * num) as progress:

        def one(i: int) -> int:
            data = make_object(object_type, size, generator, index=i)
            ops.put(uris[i], data)
            n = memoryview(data).nbytes
            progress.advance(1, n)
            return n

        start = time.perf_counter()
        results = _map(one, range(num), min(jobs, num))
        secs = time.perf_counter() - start
    errors = _failures("put", state, uris, results)
    nbytes = sum(r for r in results if isinstance(r, int))
    done = num - len(errors)
    if as_json:
        out = _numbers(done, nbytes, secs)
        emit_json({**out, "failed": len(errors), "errors": _error_list(uris, results)})
    elif done:
        click.echo(
            f"Uploaded {done} objects (total {nbytes} bytes) in {seconds(secs)} "
            f"({rate(done, secs):.2f} objects/s, {mb(rate(nbytes, secs))} MB/s)"
        )
    _end(errors, num)


# -- delete ------------------------------------------------------------------------------------
@click.command("delete", short_help="Delete one object, a prefix (ending in /) or what a regex selects.")
@click.argument("uri", callback=_uri_arg)
@_recursive
@_json
def delete(uri: str, recursive: bool, as_json: bool) -> None:
    """Delete the object at URI, everything at a level (URI ending in /), or what a regex selects.

    A plain last part deletes exactly that key (never obj_10 for obj_1). Deletes go out in
    batches of 1000.

    \b
    Examples:
      s3dlio rm s3://bucket/data/object_0_of_5.dat
      s3dlio delete -r s3://bucket/data/
      s3dlio rm 's3://bucket/data/.*\\.tmp'
    """
    _, targets = _selected(uri, recursive)
    if len(targets) == 1 and targets[0].size is None:
        ops.stat(targets[0].uri)  # a plain key that is missing: NotFoundError names it
    if not targets and not parse(uri).is_prefix:
        raise _no_match("delete", uri)  # a regex that selects nothing; an empty prefix is fine
    if not as_json:
        click.echo(f"Deleting {len(targets)} objects…")
    start = time.perf_counter()
    with Progress("delete", counting=False):
        deleted = ops.delete(uri, recursive=recursive) if targets else 0
    secs = time.perf_counter() - start
    if as_json:
        emit_json({"deleted": deleted, "seconds": round(secs, 6)})
    else:
        click.echo("Done.")


# -- upload / cp -------------------------------------------------------------------------------
def _local_files(pattern: str) -> list[str]:
    return sorted(p for p in glob.glob(os.path.expanduser(pattern), recursive=True) if os.path.isfile(p))


@click.command("upload", short_help="Upload local files (globs, directories) under a URI prefix.")
@click.argument("sources", nargs=-1, required=True, metavar="LOCAL...")
@click.argument("dest", metavar="URI_PREFIX", callback=_uri_arg)
@_jobs(32, "uploads")
@_json
@click.pass_obj
def upload(state: State, sources: tuple[str, ...], dest: str, jobs: int, as_json: bool) -> None:
    """Upload local files under URI_PREFIX: files, globs (quoted; ** recurses) or directories.

    A file keeps its name; a glob's files keep their path below the glob's fixed part; a
    directory's files keep their path below it.

    \b
    Examples:
      s3dlio upload ./model.bin s3://bucket/models/
      s3dlio upload './data/**/*.npz' s3://bucket/train/
      s3dlio upload ./data az://container/data/
    """
    files: list[str] = []
    patterns: list[tuple[str, list[str]]] = []
    for src in sources:
        if os.path.isfile(src):
            files.append(src)
            continue
        pattern = os.path.join(glob.escape(src), "**") if os.path.isdir(src) else src
        matched = _local_files(pattern)
        if not matched:
            raise NotFoundError(f"upload {src}: no local file matches; check the path, and quote a glob")
        patterns.append((pattern, matched))
    every = files + [p for _, matched in patterns for p in matched]
    total = sum(os.path.getsize(p) for p in every)
    with Progress("upload", len(every), total) as progress:

        def one_file(path: str) -> int:
            ops.upload(glob.escape(path), dest, 1)
            n = os.path.getsize(path)
            progress.advance(1, n)
            return n

        start = time.perf_counter()
        results: list[int | BaseException] = _map(one_file, files, jobs) if files else []
        for pattern, matched in patterns:
            ops.upload(pattern, dest, jobs)
            n = sum(os.path.getsize(p) for p in matched)
            progress.advance(len(matched), n)
            results += [os.path.getsize(p) for p in matched]
        secs = time.perf_counter() - start
    errors = _failures("upload", state, every, results)
    nbytes = sum(r for r in results if isinstance(r, int))
    done = len(every) - len(errors)
    if as_json:
        out = _numbers(done, nbytes, secs)
        emit_json({**out, "failed": len(errors), "errors": _error_list(every, results)})
    elif done:
        click.echo(
            f"Uploaded {done} objects (total {nbytes} bytes) in {seconds(secs)} "
            f"({rate(done, secs):.2f} objects/s, {mb(rate(nbytes, secs))} MB/s)"
        )
    _end(errors, len(every))


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
@_json
def cp(sources: tuple[str, ...], dest: str, recursive: bool, jobs: int, as_json: bool) -> None:
    """Copy SRC to DST: s3, az, file, direct and mem URIs, and plain local paths, in any direction.

    One object goes to the key DST, or into DST when DST ends in / (or is a local
    directory), keeping its name; a prefix (ending in /), a regex or -r copies everything
    selected under DST, keeping relative paths.

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
    with Progress("cp", counting=False):
        for src in sources:
            copied += ops.copy(_cp_source(src, recursive), dest, recursive, jobs)
    secs = time.perf_counter() - start
    if as_json:
        emit_json(_numbers(copied, None, secs))
    else:
        click.echo(f"Copied {copied} objects in {seconds(secs)} ({rate(copied, secs):.2f} objects/s)")


COMMANDS: tuple[click.Command, ...] = (ls, stat, get, put, delete, upload, download, cp)
