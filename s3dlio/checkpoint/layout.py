"""Where each object of a checkpoint lives, relative to the store's root prefix.

::

    <root>/step-00000100/manifest.json             written last: the checkpoint exists once it does
    <root>/step-00000100/ranks/rank-00000.json     one per rank: the shards that rank wrote
    <root>/step-00000100/rank0-model.1a2b3c4d.bin  a shard (rank 0, name "model", save tag 1a2b3c4d)
    <root>/step-00000100/3f/rank0-model.1a2b3c4d.bin  the same shard with spread=True

The save tag is new for every save: two saves of one step never write the same key, so a
save racing a committed step (or retried after a crash) cannot change the shards its
manifest names.

``spread=True`` puts each shard under a two-hex-digit prefix derived from (step, rank, name):
S3 scales request rates per key prefix, so 256 prefixes let many ranks write at once without
503 SlowDown. The step number has 8 digits (more when larger); order is numeric, not textual.
"""

from __future__ import annotations

import re
import zlib

__all__ = [
    "MANIFEST",
    "is_shard_key",
    "manifest_key",
    "parse_step",
    "rank_file_key",
    "ranks_prefix",
    "shard_key",
    "step_prefix",
    "validate_name",
]

MANIFEST = "manifest.json"
_STEP = re.compile(r"^step-(\d{8,})$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_RANK_FILE = re.compile(r"^rank-(\d{5,})\.json$")
_SHARD = re.compile(r"^rank\d+-[A-Za-z0-9][A-Za-z0-9._-]{0,127}\.[0-9a-f]{8}\.bin$")


def step_dir(step: int) -> str:
    """``step-00000100``."""
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise ValueError(f"checkpoint step {step!r}: must be an int >= 0")
    return f"step-{step:08d}"


def step_prefix(step: int) -> str:
    """``step-00000100/``: everything of the checkpoint is below it."""
    return step_dir(step) + "/"


def parse_step(name: str) -> int | None:
    """The step of a directory name (``step-00000100`` or ``step-00000100/``), else None."""
    match = _STEP.match(name.rstrip("/").rsplit("/", 1)[-1])
    return int(match.group(1)) if match else None


def validate_name(name: str) -> str:
    """A shard name safe in a key on every backend: letters, digits, ``.``, ``_``, ``-``."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"checkpoint shard name {name!r}: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def shard_key(step: int, rank: int, name: str, tag: str, *, spread: bool = False) -> str:
    """The key of one shard of the save tagged ``tag``, relative to the root."""
    leaf = f"rank{rank}-{validate_name(name)}.{tag}.bin"
    if not spread:
        return step_prefix(step) + leaf
    bucket = zlib.crc32(f"{step}/{rank}/{name}".encode()) & 0xFF
    return f"{step_prefix(step)}{bucket:02x}/{leaf}"


def is_shard_key(key: str) -> bool:
    """True for a key :func:`shard_key` makes (at any level below the step)."""
    return _SHARD.match(key.rsplit("/", 1)[-1]) is not None


def manifest_key(step: int) -> str:
    return step_prefix(step) + MANIFEST


def ranks_prefix(step: int) -> str:
    return step_prefix(step) + "ranks/"


def rank_file_key(step: int, rank: int) -> str:
    return f"{ranks_prefix(step)}rank-{rank:05d}.json"


def parse_rank_file(key: str) -> int | None:
    """The rank of a rank-file key, else None."""
    match = _RANK_FILE.match(key.rsplit("/", 1)[-1])
    return int(match.group(1)) if match else None
