"""Resume state: a small versioned JSON-able dict, checked against the loader on restore.

Positions are in the rank order of the epoch (see :mod:`.plan`). ``done`` counts the
leading positions of this worker's stream that are behind us; ``ahead`` lists rank positions
already yielded out of order (``in_order=False``); ``partial`` is ``[rank position, records
yielded]`` of an object (or group) whose records were half read. A state saved with one
worker is rank-level and resumes under any number of workers; a per-worker state (a
DataLoader worker's) resumes the same worker of the same count.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError

__all__ = ["STATE_VERSION", "Position", "check_state", "make_state"]

STATE_VERSION = 1
_KIND = "s3dlio.loader"


@dataclass
class Position:
    """Where an iteration is: the state's integers, mutable while iterating."""

    epoch: int = 0
    start: int = 0
    num_workers: int = 1
    worker_id: int = 0
    block: int = 1
    done: int = 0
    ahead: list[int] = field(default_factory=list)
    partial: list[int] | None = None

    @property
    def rank_level(self) -> bool:
        """True when the state describes the whole rank (one worker read it all)."""
        return self.num_workers == 1

    def rebased(self, num_workers: int, worker_id: int, block: int, group: int) -> Position:
        """This position for a worker of another layout (only from a rank-level state)."""
        same = (self.num_workers, self.worker_id, self.block) == (num_workers, worker_id, block)
        if same:
            return self
        if not self.rank_level:
            raise ConfigError(
                f"resume state of worker {self.worker_id} of {self.num_workers} (block {self.block}) cannot "
                f"resume worker {worker_id} of {num_workers} (block {block}): use the same num_workers, "
                "or resume from a rank-level state (one worker, or state_at(consumed))"
            )
        if self.partial is not None and group > 1:
            raise ConfigError(
                "resume state stopped inside a shuffle group of records; groups depend on the workers, "
                f"so resume with num_workers={self.num_workers}"
            )
        return Position(
            self.epoch, self.start + self.done, num_workers, worker_id, block, 0, list(self.ahead),
            None if self.partial is None else list(self.partial),
        )  # fmt: skip


def make_state(config: dict[str, Any], pos: Position) -> dict[str, Any]:
    """The state dict of ``pos`` (plain ints, lists and strings: JSON-able)."""
    return {
        "version": STATE_VERSION,
        "kind": _KIND,
        "config": dict(config),
        "epoch": pos.epoch,
        "start": pos.start,
        "workers": [pos.num_workers, pos.worker_id, pos.block],
        "done": pos.done,
        "consumed": pos.start + pos.done if pos.rank_level else None,
        "ahead": sorted(pos.ahead),
        "partial": pos.partial,
    }


def check_state(state: dict[str, Any], config: dict[str, Any]) -> Position:
    """The position a state dict holds, after checking it belongs to a loader with ``config``."""
    if not isinstance(state, dict) or state.get("kind") != _KIND:
        raise ConfigError(f"not an s3dlio loader state: {str(state)[:200]!r}")
    if state.get("version") != STATE_VERSION:
        raise ConfigError(
            f"loader state version {state.get('version')!r}; this s3dlio reads version {STATE_VERSION}"
        )
    saved = state.get("config", {})
    for name in sorted(set(saved) | set(config)):
        if saved.get(name) != config.get(name):
            raise ConfigError(
                f"loader state was saved with {name}={saved.get(name)!r} but this loader has "
                f"{name}={config.get(name)!r}; build the loader with the settings of the saved run"
            )
    try:
        num_workers, worker_id, block = (int(x) for x in state["workers"])
        partial = state.get("partial")
        return Position(
            int(state["epoch"]), int(state["start"]), num_workers, worker_id, block, int(state["done"]),
            [int(x) for x in state.get("ahead") or []], None if partial is None else [int(x) for x in partial],
        )  # fmt: skip
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(
            f"loader state is malformed ({type(exc).__name__}: {exc}): {str(state)[:200]!r}"
        ) from None
