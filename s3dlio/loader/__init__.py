"""Framework-free dataset engine for object storage; the torch, TF and JAX layers build on it.

- :class:`Loader`: streaming epochs: keys -> rank/worker shard -> seeded order -> bounded
  prefetch -> samples (whole objects, TFRecord records, tar members, NPZ) -> ``transform``,
  with ``state_dict()``/``load_state_dict()`` resume.
- :class:`MapSource`: random access by index, for map-style datasets and Grain.
- Key sources (:class:`PrefixSource`, :class:`UriListSource`, :class:`KeyFileSource`) and
  the compact :class:`KeyList`; :class:`EpochPlan` is the order, a pure function of
  (seed, epoch, index).
- :func:`tune_worker_process`: garbage-collector and allocator settings for a process that
  only loads data (applied in DataLoader workers by the torch datasets).
"""

from __future__ import annotations

from .core import Loader, batched
from .fetch import Fetcher
from .keylist import KeyList
from .mapsource import MapSource
from .plan import EpochPlan, record_order, worker_positions
from .prefetch import prefetch
from .reader import BufferReader
from .samples import Sample, SampleError, split_records
from .sharding import detect_rank_world, detect_worker, resolve_rank_world
from .sources import KeyFileSource, KeySource, PrefixSource, UriListSource, as_source, cache_dir
from .state import STATE_VERSION, check_state, make_state
from .worker import tune_worker_process

__all__ = [
    "STATE_VERSION",
    "BufferReader",
    "EpochPlan",
    "Fetcher",
    "KeyFileSource",
    "KeyList",
    "KeySource",
    "Loader",
    "MapSource",
    "PrefixSource",
    "Sample",
    "SampleError",
    "UriListSource",
    "as_source",
    "batched",
    "cache_dir",
    "check_state",
    "detect_rank_world",
    "detect_worker",
    "make_state",
    "prefetch",
    "record_order",
    "resolve_rank_world",
    "split_records",
    "tune_worker_process",
    "worker_positions",
]
