"""``s3dlio bench``: measure an object store with a workload, print (or plot) what it achieved.

The command is a thin shell over :func:`s3dlio.bench.run`. ``python -m s3dlio.bench`` runs it
alone, with its own ``--op-log`` (what ``s3dlio --op-log`` does for the whole app), which is
also the handy form under ``torchrun``.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from typing import Any

import click

from .._redact import redact
from ..bench.options import WORKLOADS
from ._output import emit_json

__all__ = ["bench_command", "main"]

EPILOG = """\b
Examples:
  s3dlio bench get s3://bucket/ --obj.size 4MiB --objects 200 -d 30s -c 32
  s3dlio bench put file:///mnt/nvme/b/ --obj.size 4KiB-1MiB -n 10000
  s3dlio bench mixed s3://bucket/ --get 45 --put 15 --stat 30 --delete 10 -d 1m --autoterm
  s3dlio --op-log run.tsv.zst bench get s3://bucket/ -d 10s --plot run.png
  torchrun --nproc_per_node 4 -m s3dlio.bench get s3://bucket/ -d 30s --distributed

\b
Exit status: 0 done (errors, if any, are in the report), 1 every request failed,
2 a bad option.
"""


@click.command("bench", epilog=EPILOG)
@click.argument("workload", type=click.Choice(WORKLOADS), metavar="WORKLOAD")
@click.argument("target")
@click.option(
    "-d", "--duration", metavar="TIME", help="Run this long: 10s, 1m, 1m30s (default 10s unless --ops)."
)
@click.option(
    "-n",
    "--ops",
    type=int,
    help="Stop after this many requests (all ranks together); with -d, whichever comes first.",
)
@click.option("-c", "--concurrent", type=int, default=8, show_default=True, help="Worker threads (per rank).")
@click.option(
    "--obj.size",
    "obj_size",
    metavar="SIZE",
    help="Object size: 1MiB, or a random range 4KiB-1MiB (default 1MiB; multipart 64MiB; stat, list, delete 4KiB).",
)
@click.option(
    "--objects",
    type=int,
    default=100,
    show_default=True,
    help="Objects to prepare for get, stat, list, delete, mixed and loader (all ranks together).",
)
@click.option("--prefix", help="Key prefix under TARGET (default s3dlio-bench-<time>-<random>/).")
@click.option(
    "--dedup", type=int, default=1, show_default=True, help="Data dedupe ratio (1: every block unique)."
)
@click.option(
    "--compress",
    type=float,
    default=1.0,
    show_default=True,
    help="Data compression ratio (1: incompressible).",
)
@click.option(
    "--object-type",
    default="RAW",
    show_default=True,
    help="Object format: RAW, NPZ, NPY, TFRECORD, HDF5, JPEG, PNG, CSV.",
)
@click.option("--get", "w_get", type=float, help="mixed: weight of GET (default 45).")
@click.option("--put", "w_put", type=float, help="mixed: weight of PUT (default 15).")
@click.option("--stat", "w_stat", type=float, help="mixed: weight of STAT (default 30).")
@click.option("--delete", "w_delete", type=float, help="mixed: weight of DELETE (default 10).")
@click.option(
    "--batch", type=int, default=1, show_default=True, help="delete: keys per DELETE request (up to 1000)."
)
@click.option(
    "--noclear", is_flag=True, help="Keep the objects the run wrote (default: delete them at the end)."
)
@click.option(
    "--autoterm", is_flag=True, help="Stop early once throughput is stable (see --autoterm.dur/.pct)."
)
@click.option(
    "--autoterm.dur",
    "autoterm_dur",
    metavar="TIME",
    default="10s",
    show_default=True,
    help="Stable means: this many one-second windows ...",
)
@click.option(
    "--autoterm.pct",
    "autoterm_pct",
    type=float,
    default=7.5,
    show_default=True,
    help="... each within this percentage of their mean.",
)
@click.option("--seed", type=int, help="Seed object sizes, data and choices (default: random).")
@click.option(
    "--distributed",
    is_flag=True,
    help="One rank of many (torchrun; mpirun with mpi4py): start together, rank 0 prints the merged result.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
@click.option("--plot", metavar="FILE.png", help="Draw throughput and latency over time into this image.")
def bench_command(workload: str, target: str, as_json: bool, plot: str | None, autoterm_dur: str,
                  w_get: float | None, w_put: float | None, w_stat: float | None, w_delete: float | None,
                  **options: Any) -> None:  # fmt: skip
    """Benchmark TARGET (a bucket or prefix URI) with WORKLOAD.

    \b
    get        GET of prepared objects (latency and time to first byte)
    put        PUT of new objects
    mixed      GET/PUT/STAT/DELETE by weight (--get --put --stat --delete)
    list       full listings of the prepared objects
    stat       HEAD of prepared objects
    delete     DELETE of prepared objects, --batch keys per request
    multipart  PUT of large objects (multipart upload when available)
    loader     epochs over the prefix: LIST once, shuffled GETs, sharded by rank

    Throughput counts the window in which every worker was running; latency
    percentiles count every successful request.
    """
    from ..bench import run
    from ..bench.options import parse_duration
    from ..errors import ConfigError

    weights = {k: v for k, v in (("get", w_get), ("put", w_put), ("stat", w_stat), ("delete", w_delete))
               if v is not None}  # fmt: skip
    if weights and workload != "mixed":
        raise ConfigError(f"--{next(iter(weights))}: operation weights apply to the mixed workload only")
    if workload == "mixed" and weights:
        options["weights"] = {op: weights.get(op, 0.0) for op in ("get", "put", "stat", "delete")}
    options["autoterm_windows"] = max(1, math.ceil(parse_duration(autoterm_dur)))
    if options["obj_size"] is None:
        del options["obj_size"]
    result = run(workload, target, plot=plot, **options)
    if options.get("distributed") and result.world == 1 and result.ranks[0]["rank"] != 0:
        return  # not rank 0 of a group: rank 0 prints
    if as_json:
        emit_json(result.to_dict())
    else:
        click.echo(result.format_table())
        if plot:
            click.echo(f"plot: {plot}")
    if result.total.count and result.total.errors == result.total.count:
        click.get_current_context().exit(1)


def _standalone() -> click.Command:
    """``bench_command`` with ``-v`` and ``--op-log``: what the app's group adds around it."""
    op_log = click.Option(["--op-log"], metavar="FILE", type=click.Path(dir_okay=False),
                          help="Write a warp-compatible op-log of every request (.tsv or .tsv.zst).")  # fmt: skip

    def callback(op_log: str | None, **kwargs: Any) -> Any:
        from .. import oplog

        if op_log:
            oplog.init_op_log(op_log)
        try:
            return click.get_current_context().invoke(bench_command.callback, **kwargs)  # type: ignore[arg-type]
        finally:
            if op_log:
                oplog.finalize_op_log()

    return click.Command("bench", params=[*bench_command.params, op_log], callback=callback,
                         help=bench_command.help, epilog=bench_command.epilog,
                         context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})  # fmt: skip


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m s3dlio.bench``: the command alone, ending with one line per error like the app."""
    from ..errors import S3dlioError

    try:
        code = _standalone().main(args=argv, prog_name="python -m s3dlio.bench", standalone_mode=False)
    except click.ClickException as exc:  # a usage error quotes what was typed: redacted
        click.echo(redact(f"s3dlio: error: {exc.format_message()}"), err=True)
        code = exc.exit_code
    except click.Abort:
        click.echo("s3dlio: interrupted", err=True)
        code = 130
    except S3dlioError as exc:
        click.echo(redact(f"s3dlio: error: {exc}"), err=True)
        code = exc.exit_code
    sys.exit(code if isinstance(code, int) else 0)
