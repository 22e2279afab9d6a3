"""Where each rank's DCP files go under the checkpoint path: s3torchconnector's prefix strategies.

S3 scales request rates per key prefix, so many ranks writing under one prefix at once can be
throttled (503 SlowDown). ``S3StorageWriter(..., prefix_strategy=...)`` asks a strategy for
each rank's file-name prefix (``"0010/epoch_3/__4_"`` gives ``0010/epoch_3/__4_0.distcp``);
DCP records every file's path relative to the checkpoint in ``.metadata``, so any reader,
ours or torch's, finds them without knowing the strategy.

- :class:`DefaultPrefixStrategy`: ``__{rank}_``, torch's own naming (all files side by side);
- :class:`BinaryPrefixStrategy` / :class:`HexPrefixStrategy`: one of ``prefix_count``
  (default: the world size) numbers per rank, written in base 2 or 16 with the fastest-moving
  digit first, so consecutive ranks differ in their first character;
- :class:`RoundRobinPrefixStrategy`: folders the user names, taken in turn;
- :class:`S3PrefixStrategyBase`: subclass it and define ``generate_prefix(rank)``.

Every prefix is checked before use: relative, no empty, ``.`` or ``..`` folder, so no
strategy can place a file outside the checkpoint.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from s3dlio.errors import ConfigError

__all__ = [
    "BinaryPrefixStrategy",
    "DefaultPrefixStrategy",
    "HexPrefixStrategy",
    "NumericPrefixStrategy",
    "RoundRobinPrefixStrategy",
    "S3PrefixStrategyBase",
    "checked_prefix",
]

_DIGITS = "0123456789abcdef"


class S3PrefixStrategyBase(ABC):
    """A rank's file-name prefix under the checkpoint path: ``strategy(rank)``."""

    def __call__(self, rank: int) -> str:
        return self.generate_prefix(rank)

    @abstractmethod
    def generate_prefix(self, rank: int) -> str:
        """The prefix of ``rank``'s file names (may hold folders: ``"a/b/__3_"``)."""


class DefaultPrefixStrategy(S3PrefixStrategyBase):
    """``__{rank}_``: torch's own file names, all under the checkpoint path."""

    def generate_prefix(self, rank: int) -> str:
        return f"__{rank}_"


def _epoch_folder(epoch_num: int | None, where: str) -> str:
    if epoch_num is None:
        return ""
    if not isinstance(epoch_num, int) or isinstance(epoch_num, bool):
        raise ConfigError(f"{where}(epoch_num={epoch_num!r}): must be an int or None")
    return f"epoch_{epoch_num}/"


class NumericPrefixStrategy(S3PrefixStrategyBase):
    """Ranks spread over ``prefix_count`` numbers written in ``base``, least significant digit
    first, at least ``min_prefix_length`` digits (zero-padded)."""

    def __init__(
        self, base: int, epoch_num: int | None = None, min_prefix_length: int = 10,
        prefix_count: int | None = None, *, min_prefix_len: int | None = None,
    ) -> None:  # fmt: skip
        super().__init__()
        where = type(self).__name__
        if min_prefix_len is not None:  # the spelling s3torchconnector's README uses
            min_prefix_length = min_prefix_len
        if not isinstance(base, int) or not 2 <= base <= len(_DIGITS):
            raise ConfigError(f"{where}(base={base!r}): must be an int from 2 to 16")
        if not isinstance(min_prefix_length, int) or min_prefix_length < 1:
            raise ConfigError(f"{where}(min_prefix_length={min_prefix_length!r}): must be a positive int")
        if prefix_count is not None and (not isinstance(prefix_count, int) or prefix_count < 1):
            raise ConfigError(f"{where}(prefix_count={prefix_count!r}): must be a positive int or None")
        self.base, self.epoch_num, self.min_prefix_len = base, epoch_num, min_prefix_length
        self.prefix_count = prefix_count or _world_size()
        self._epoch = _epoch_folder(epoch_num, where)
        width = max(min_prefix_length, _digits_needed(self.prefix_count, base))
        self.prefix_map = [_reversed_digits(i, base, width) for i in range(self.prefix_count)]

    def generate_prefix(self, rank: int) -> str:
        return f"{self.prefix_map[rank % self.prefix_count]}/{self._epoch}__{rank}_"


class BinaryPrefixStrategy(NumericPrefixStrategy):
    """:class:`NumericPrefixStrategy` in base 2: ``0000000000``, ``1000000000``, ``0100000000`` ..."""

    def __init__(
        self, epoch_num: int | None = None, min_prefix_length: int = 10, prefix_count: int | None = None,
        *, min_prefix_len: int | None = None,
    ) -> None:  # fmt: skip
        super().__init__(2, epoch_num, min_prefix_length, prefix_count, min_prefix_len=min_prefix_len)


class HexPrefixStrategy(NumericPrefixStrategy):
    """:class:`NumericPrefixStrategy` in base 16: ``0000000000``, ``1000000000`` ... ``f000000000``."""

    def __init__(
        self, epoch_num: int | None = None, min_prefix_length: int = 10, prefix_count: int | None = None,
        *, min_prefix_len: int | None = None,
    ) -> None:  # fmt: skip
        super().__init__(16, epoch_num, min_prefix_length, prefix_count, min_prefix_len=min_prefix_len)


class RoundRobinPrefixStrategy(S3PrefixStrategyBase):
    """Rank ``r`` writes under ``user_prefixes[r % len(user_prefixes)]`` (then ``epoch_N/``)."""

    def __init__(self, user_prefixes: list[str], epoch_num: int | None = None) -> None:
        super().__init__()
        where = type(self).__name__
        if isinstance(user_prefixes, str) or not user_prefixes:
            raise ConfigError(f"{where}(user_prefixes={user_prefixes!r}): give a non-empty list of folder names")
        for prefix in user_prefixes:
            checked_prefix(prefix.rstrip("/") + "/" if isinstance(prefix, str) else prefix, where)
        self.user_prefixes, self.epoch_num = list(user_prefixes), epoch_num
        self._epoch = _epoch_folder(epoch_num, where)

    def generate_prefix(self, rank: int) -> str:
        return f"{self.user_prefixes[rank % len(self.user_prefixes)].rstrip('/')}/{self._epoch}__{rank}_"


def checked_prefix(prefix: object, where: str) -> str:
    """``prefix`` if it keeps files inside the checkpoint: a str, relative, and every folder in
    it a real name (not empty, ``.`` or ``..``); else ``ConfigError`` naming it."""
    if not isinstance(prefix, str):
        raise ConfigError(f"{where}: a prefix strategy returned {prefix!r}; it must return a str")
    folders = prefix.split("/")[:-1]  # the last part starts the file name and may be empty
    if prefix.startswith("/") or "\\" in prefix or any(f in ("", ".", "..") for f in folders):
        raise ConfigError(
            f"{where}: prefix {prefix!r} would leave the checkpoint path or hold an empty, '.' or '..' "
            "folder; use relative folder names such as 'shard1/'"
        )
    return prefix


def _world_size() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _digits_needed(count: int, base: int) -> int:
    digits, reach = 1, base
    while reach < count:
        digits, reach = digits + 1, reach * base
    return digits


def _reversed_digits(number: int, base: int, width: int) -> str:
    """``number`` in ``base``, zero-padded to ``width``, least significant digit first."""
    out = []
    for _ in range(width):
        number, digit = divmod(number, base)
        out.append(_DIGITS[digit])
    return "".join(out)
