"""Finding and restoring checkpoints: what is complete, which is latest, verified loads.

A checkpoint is complete when its manifest parses and a listing shows every shard it names
with exactly the recorded size. Loads verify every shard's checksum before returning
anything, so a caller never gets part of a checkpoint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import _parallel, ops
from ..client import Client, settings_of
from ..config import Config, default_config
from ..errors import NotFoundError
from ..ops import resolve
from ..uri import parse
from . import layout
from ._checksum import checksum
from .errors import CheckpointCorruptError, CheckpointError, CheckpointNotFoundError
from .manifest import Manifest, ShardRecord

if TYPE_CHECKING:
    from collections.abc import Buffer, Iterable

    from ..store import Store

__all__ = ["CheckpointReader"]

#: Listings a search for the latest step takes at most while steps vanish under it (a writer
#: committing a newer step and deleting older ones meanwhile).
_LISTINGS = 4


class CheckpointReader:
    """Read-only view of the checkpoints under ``uri``; :class:`CheckpointStore` adds saving.

    ``client`` (or ``config``): the settings of every request (default: the process-wide ones,
    read at each use).
    """

    def __init__(
        self, uri: str, *, rank: int = 0, max_in_flight: int | None = None, config: Config | None = None,
        client: Client | None = None,
    ) -> None:  # fmt: skip
        self.config = settings_of(client, config, where=f"checkpoints at {uri!r}")
        parsed = parse(uri)
        root = parsed.key if not parsed.key or parsed.key.endswith("/") else parsed.key + "/"
        self._parsed = parsed.with_key(root)
        self._root = root
        self.uri = str(self._parsed)
        self.rank = rank
        self._in_flight = max_in_flight or (self.config or default_config()).max_in_flight

    @property
    def _store(self) -> Store:
        """Resolved on each use: follows ``s3dlio.configure`` (without a client) and the op-log."""
        return resolve(self._parsed, self.config)[1]

    def _where(self, key: str) -> str:
        return str(self._parsed.with_key(key))

    def step_uri(self, step: int) -> str:
        """The URI of one checkpoint's directory."""
        return self._where(self._root + layout.step_prefix(step))

    def _exists(self, key: str) -> bool:
        try:
            self._store.head(key)
        except NotFoundError:
            return False
        return True

    def _sizes(self, step: int) -> dict[str, int]:
        return {
            m.key: m.size
            for m in self._store.list(self._root + layout.step_prefix(step))
            if not isinstance(m, str)
        }

    def _step_dirs(self) -> list[int]:
        """Every step with a directory, complete or not, ascending."""
        found = (
            layout.parse_step(item)
            for item in self._store.list(self._root, delimiter=True)
            if isinstance(item, str)
        )
        return sorted({s for s in found if s is not None})

    # -- completeness ------------------------------------------------------------------------
    def check(self, step: int) -> Manifest:
        """The manifest of ``step`` if the checkpoint is complete, else a clear error."""
        where = self.step_uri(step)
        try:
            data = self._store.get(self._root + layout.manifest_key(step))
        except NotFoundError:
            raise CheckpointNotFoundError(
                f"{where}: no manifest, so no complete checkpoint (the save did not finish, or it was "
                "deleted); restore another step (store.steps() lists the complete ones)"
            ) from None
        manifest = Manifest.from_json(memoryview(data), where)
        if manifest.step != step:
            raise CheckpointCorruptError(f"{where}: manifest is for step {manifest.step}, not {step}")
        sizes = self._sizes(step)
        for s in manifest.shards:
            actual = sizes.get(self._root + s.key)
            if actual != s.size:
                what = "is missing" if actual is None else f"has {actual} bytes, the manifest says {s.size}"
                raise CheckpointCorruptError(f"{where}: shard {s.key} {what}; restore an earlier step")
        return manifest

    def _classify(self) -> tuple[list[int], list[int]]:
        """(complete, incomplete) steps; a newer-format checkpoint counts as neither."""
        complete, incomplete = [], []
        for step in self._step_dirs():
            try:
                self.check(step)
                complete.append(step)
            except (CheckpointNotFoundError, CheckpointCorruptError):
                incomplete.append(step)
            except CheckpointError:
                continue
        return complete, incomplete

    def steps(self) -> list[int]:
        """Steps of the complete checkpoints, ascending."""
        return self._classify()[0]

    def _latest(self) -> Manifest | None:
        """The newest step with a valid manifest. A writer committing a newer step and deleting
        older ones (retention) can remove a listed step while it is checked: finding none
        among the steps listed, they are listed and checked again (a few times at most; a
        listing is not a snapshot either, and may miss a step that is being replaced)."""
        empty = 0
        for _ in range(_LISTINGS):
            steps = self._step_dirs()
            for step in reversed(steps):
                try:
                    return self.check(step)
                except (CheckpointNotFoundError, CheckpointCorruptError):
                    continue
            empty = 0 if steps else empty + 1
            if empty == 2:  # nothing there, twice: no checkpoint yet
                break
        return None

    def latest_step(self) -> int | None:
        """The newest complete checkpoint's step, or None. A newer-format one raises."""
        latest = self._latest()
        return None if latest is None else latest.step

    def manifest(self, step: int | None = None) -> Manifest:
        """The manifest of ``step`` (default: the latest complete checkpoint)."""
        if step is not None:
            return self.check(step)
        latest = self._latest()
        if latest is None:
            dirs = self._step_dirs()
            found = f"; step directories without a valid manifest: {dirs}" if dirs else ""
            raise CheckpointNotFoundError(f"{self.uri}: no complete checkpoint to restore{found}")
        return latest

    # -- loading -----------------------------------------------------------------------------
    def read_shard(self, manifest: Manifest, record: ShardRecord) -> Buffer:
        """One shard's bytes, checked against the manifest's size and checksum."""
        where = self.step_uri(manifest.step)
        data = ops.get(self._where(self._root + record.key), config=self.config)  # parallel ranges when large
        size = memoryview(data).nbytes
        if size != record.size:
            raise CheckpointCorruptError(
                f"{where}: shard {record.key} has {size} bytes, the manifest says {record.size}"
            )
        got = checksum(data, manifest.algorithm)
        if got != record.checksum:
            raise CheckpointCorruptError(
                f"{where}: shard {record.key} fails its {manifest.algorithm} check "
                f"({got:08x} != {record.checksum:08x}): it changed after the save; restore an earlier step"
            )
        return data

    def load(
        self, step: int | None = None, *, rank: int | None = None, names: Iterable[str] | None = None
    ) -> dict[str, Buffer]:
        """Verified shards of one rank (default: this one) by name, all or nothing.

        ``step`` defaults to the latest complete checkpoint; ``names`` selects shards.
        """
        manifest = self.manifest(step)
        rank = self.rank if rank is None else rank
        mine = manifest.rank_shards(rank)
        where = self.step_uri(manifest.step)
        if not mine:
            raise CheckpointNotFoundError(
                f"{where}: no shards of rank {rank} (saved with world_size={manifest.world_size})"
            )
        wanted = list(mine) if names is None else list(names)
        absent = [n for n in wanted if n not in mine]
        if absent:
            raise CheckpointNotFoundError(
                f"{where}: rank {rank} has no shards {absent}; it has {sorted(mine)}"
            )
        datas = _parallel.map_bounded(lambda n: self.read_shard(manifest, mine[n]), wanted, self._in_flight)
        return dict(zip(wanted, datas, strict=True))  # type: ignore[arg-type]
