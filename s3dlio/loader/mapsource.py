"""Random access by index: ``source[i]`` fetches object ``i`` (map-style datasets, Grain).

Ordering, sharding and shuffling belong to the framework's sampler here; :class:`~.plan.
EpochPlan` gives a seeded full permutation for samplers that want s3dlio's order.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from .._parallel import map_bounded
from ..client import Client, settings_of
from ..config import Config
from ..errors import ConfigError
from .fetch import Fetcher
from .samples import Sample, note_transform_error
from .sources import KeySource, as_source

__all__ = ["MapSource"]


class MapSource:
    """``len()`` objects; ``[i]`` is ``transform(Sample(uri, buffer))`` (the Sample if no transform).

    Keys are resolved when built (listing without starting the fast engine here); the store is
    opened in the process that first reads, so a DataLoader worker gets the fast engine.
    """

    def __init__(
        self,
        source: KeySource | str | os.PathLike[str] | Sequence[str],
        *,
        config: Config | None = None,
        transform: Callable[[Sample], Any] | None = None,
        retries: int = 2,
        hedge_after: float | None = None,
        client: Client | None = None,
    ) -> None:
        config = settings_of(client, config, where='MapSource')  # client=: all of this loader's settings
        if transform is not None and not callable(transform):
            raise ConfigError(f"transform={transform!r} is not callable")
        src = as_source(source, config)
        self.source = src.describe()
        self.keys = src.keys()
        self.transform = transform
        self.fetcher = Fetcher(config, retries, hedge_after=hedge_after)

    def __len__(self) -> int:
        return len(self.keys)

    def uri(self, index: int) -> str:
        """The URI of item ``index`` (negative indices count from the end)."""
        return self.keys[index]

    def __getitem__(self, index: int) -> Any:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} objects of {self.source}")
        uri = self.keys[index]
        sample = Sample(uri, memoryview(self.fetcher(uri)).cast("B"))
        if self.transform is None:
            return sample
        try:
            return self.transform(sample)
        except Exception as exc:
            note_transform_error(sample, self.transform, exc)
            raise

    def get_many(self, indices: Sequence[int], max_in_flight: int = 16) -> list[Any]:
        """``[self[i] for i in indices]``, fetched concurrently; the first error is raised."""
        return map_bounded(self.__getitem__, list(indices), max_in_flight)

    def __repr__(self) -> str:
        return f"<MapSource {len(self)} objects of {self.source}>"
