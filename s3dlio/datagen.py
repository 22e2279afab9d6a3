"""Synthetic object data with a settable dedupe ratio and compression ratio.

Storage benchmarks are only honest when the bytes look like the workload to the storage system:
a target that deduplicates or compresses would report fantastic numbers for zeros. The data
here is built from fixed-size blocks (4 KiB by default) so that, over one run of a
:class:`DataGenerator`,

* ``N`` blocks hold ``N / dedup`` distinct blocks (counted across *all* objects of the run), and
* ``zstd -1`` shrinks the bytes by a factor of about ``compress``.

Why it is fast: random numbers are expensive (numpy's ``Generator.bytes`` makes ~0.2 GB/s), so
a pool of random blocks is made once per process and every output block is a pool block XORed
with a 64-bit word unique to that block (a SplitMix64 hash of the block's id and the seed). The
XOR runs over numpy ``uint64`` views of many blocks at once, at about memory bandwidth, and it
leaves no byte repeated: zstd finds nothing to match and the block is incompressible.
For ``compress = c`` the last ``1 - 1/c`` of each block is zeros. The ``dedup`` copies of a
block are spread 1 MiB apart, beyond the 512 KiB window of ``zstd -1``, so dedupe does not
turn into compression.
"""

from __future__ import annotations

import functools
import secrets
import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _check

if TYPE_CHECKING:
    from collections.abc import Buffer

__all__ = ["DataGenerator", "generate"]

_SPREAD = 1 << 20  # bytes between the copies of one deduplicated block
_POOL_SEED = 0x5D1_0DA7A  # the pool is the same in every process; seeds act through the XOR words
_MASK = (1 << 64) - 1
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
# zstd spends a few bytes per block on the zero run and the sequence header; subtracting them
# from the random part keeps the measured ratio on target even at high ``compress``.
_ZSTD_BLOCK_OVERHEAD = 4


def _splitmix(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser, vectorised: a bijection on uint64, so distinct inputs stay distinct."""
    with np.errstate(over="ignore"):
        z = x + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def _mix1(x: int) -> int:
    """SplitMix64 of one Python int (plain ints: a one-element numpy call costs 10x more)."""
    z = (x + 0x9E3779B97F4A7C15) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


@functools.lru_cache(maxsize=8)
def _pool(block_size: int, rows: int) -> np.ndarray:
    """``rows`` random blocks as uint64, stored twice so any window of ``rows`` rows is one slice."""
    words = block_size // 8
    raw = np.random.Generator(np.random.PCG64(_POOL_SEED)).bit_generator.random_raw(rows * words)
    pool = np.asarray(raw, dtype=np.uint64).reshape(rows, words)
    doubled = np.concatenate([pool, pool])
    doubled.flags.writeable = False
    return doubled


def _settings(func: str, dedup: Any, compress: Any, seed: Any, block_size: Any) -> tuple[int, float, int | None, int]:
    """The generator's settings, checked (``_check``: TypeError or ValueError naming each)."""
    dedup = _check.integer(func, "dedup", dedup, 1)  # 1 = every block unique, 3 = each block 3 times
    compress = _check.number(func, "compress", compress, 1)  # 1 = incompressible, 4 = zstd -1 shrinks 4x
    seed = _check.optional_integer(func, "seed", seed, None)
    block_size = _check.integer(func, "block_size", block_size, 8)
    if block_size % 8:
        _check.fail_value(func, "block_size", "a multiple of 8, e.g. 4096", block_size)
    return dedup, compress, seed, block_size


class DataGenerator:
    """A stream of blocks with a dedupe and a compression ratio, cut into objects.

    One generator serves one run: the dedupe ratio holds over every object it makes, and no
    two objects are alike unless ``dedup`` asks for it. The same ``seed`` repeats the same
    bytes; ``seed=None`` picks a fresh one. ``fill`` and ``object`` are thread-safe (numpy
    releases the GIL while it XORs, so threads scale).
    """

    def __init__(
        self, dedup: int = 1, compress: float = 1, seed: int | None = None, block_size: int = 4096
    ) -> None:
        dedup, compress, seed, block_size = _settings("DataGenerator", dedup, compress, seed, block_size)
        self.dedup = dedup
        self.compress = compress
        self.block_size = block_size
        self.seed = secrets.randbits(64) if seed is None else seed
        self._rows = max(1, -(-_SPREAD // self.block_size))  # blocks per segment (and pool rows)
        self._seed64 = _mix1(self.seed)
        self._random_bytes = self._random_part()
        self._next_block = 0
        self._lock = threading.Lock()
        self._chunk_cache: tuple[int, int, np.ndarray] = (-1, 0, np.empty(0, dtype=np.uint64))

    def __repr__(self) -> str:
        return (
            f"DataGenerator(dedup={self.dedup}, compress={self.compress:g}, seed={self.seed}, "
            f"block_size={self.block_size})"
        )

    @property
    def blocks_generated(self) -> int:
        """Blocks handed out so far in this run (a partial last block of an object counts as one)."""
        return self._next_block

    def object(self, size: int) -> memoryview:
        """The next object of the run: ``size`` new bytes in a writable numpy-backed memoryview.

        numpy memory rather than a ``bytearray``: fresh ``bytearray`` pages are zeroed and
        faulted in one by one, which alone costs more than generating the data.
        """
        out = np.empty(_check.integer("DataGenerator.object", "size", size, 0), dtype=np.uint8)
        self._fill_array(out)
        return memoryview(out)

    def fill(self, buffer: Buffer) -> None:
        """Write the next object of the run into ``buffer`` (bytearray, memoryview, numpy array) in place."""
        view = memoryview(_check.buffer("DataGenerator.fill", "buffer", buffer, writable=True))
        self._fill_array(np.frombuffer(view.cast("B"), dtype=np.uint8))

    def _fill_array(self, out: np.ndarray) -> None:
        """Reserve this object's block ids under the lock, then render them outside it."""
        bsize = self.block_size
        nblocks = -(-out.size // bsize)
        with self._lock:
            first = self._next_block
            self._next_block += nblocks
        full = out.size // bsize
        if full:
            self._render(out[: full * bsize].reshape(full, bsize).view(np.uint64), first)
        if full < nblocks:
            scratch = np.empty((1, bsize // 8), dtype=np.uint64)
            self._render(scratch, first + full)
            out[full * bsize :] = scratch.view(np.uint8).ravel()[: out.size - full * bsize]

    def _random_part(self) -> int:
        """Bytes per block that stay random so that ``zstd -1`` sees the asked ratio."""
        if self.compress == 1:
            return self.block_size
        target = self.block_size / self.compress - _ZSTD_BLOCK_OVERHEAD
        return min(self.block_size, max(0, round(target)))

    def _chunk(self, chunk: int) -> tuple[int, np.ndarray]:
        """Pool offset and XOR words of the ``rows`` distinct blocks of ``chunk``, cached.

        Small objects reuse one chunk many times over (a 64 KiB object is 1/16 of one), and
        hashing afresh per object would cost more than the XOR itself.
        """
        cached_chunk, start, keys = self._chunk_cache
        if cached_chunk != chunk:
            rows = self._rows
            uids = np.arange(chunk * rows, (chunk + 1) * rows, dtype=np.uint64)
            with np.errstate(over="ignore"):
                keys = _splitmix(uids * _GOLDEN + np.uint64(self._seed64))
            start = _mix1(self._seed64 ^ chunk) % rows
            self._chunk_cache = (chunk, start, keys)  # one tuple store: safe between threads
        return start, keys

    def _render(self, out: np.ndarray, first: int) -> None:
        """Fill rows of ``out`` (blocks as uint64 words) with the blocks ``first``, ``first+1``, ...

        Block ``g`` of the run is copy ``(g // rows) % dedup`` of the distinct block
        ``uid = (g // (rows * dedup)) * rows + g % rows``: copies sit ``rows`` blocks (1 MiB) apart,
        and a segment of ``rows`` consecutive blocks maps to consecutive pool rows, so one
        numpy XOR renders it.
        """
        rows, period = self._rows, self._rows * self.dedup
        pool = _pool(self.block_size, rows)
        nrand = self._random_bytes
        words = -(-nrand // 8)
        done, block = 0, first
        while done < out.shape[0]:
            offset = block % rows
            count = min(rows - offset, out.shape[0] - done)
            start, keys = self._chunk(block // period)
            start += offset
            dest = out[done : done + count]
            np.bitwise_xor(
                pool[start : start + count, :words], keys[offset : offset + count, None], out=dest[:, :words]
            )
            if words < dest.shape[1]:
                dest[:, words:] = 0
            if nrand % 8:
                dest.view(np.uint8)[:, nrand : words * 8] = 0
            done += count
            block += count


def generate(size: int, dedup: int = 1, compress: float = 1, seed: int | None = None) -> memoryview:
    """``size`` bytes of one-object run data: a one-shot :meth:`DataGenerator.object`.

    For many objects make one :class:`DataGenerator`: the dedupe ratio is kept per generator.
    """
    size = _check.integer("generate", "size", size, 0)
    dedup, compress, seed, _ = _settings("generate", dedup, compress, seed, 4096)
    return DataGenerator(dedup=dedup, compress=compress, seed=seed).object(size)
