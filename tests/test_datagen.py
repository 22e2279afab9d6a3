"""Data generation: dedupe and compression ratios as a storage system would measure them."""

from __future__ import annotations

import hashlib
import re
import threading

import numpy as np
import pytest
import zstandard

from s3dlio.datagen import DataGenerator, generate
from s3dlio.errors import S3dlioError

BLOCK = 4096
KIB, MIB = 1024, 1024 * 1024
# block-aligned objects of mixed sizes, 12 MiB in all: a whole number of dedupe periods for d = 1..4
SIZES = [256 * KIB, 768 * KIB, 1 * MIB, 2 * MIB, 4 * MIB, 4 * MIB]


def _blocks(data: bytes) -> list[bytes]:
    return [hashlib.blake2b(data[i : i + BLOCK], digest_size=16).digest() for i in range(0, len(data), BLOCK)]


def _zstd_ratio(data: bytes) -> float:
    return len(data) / len(zstandard.ZstdCompressor(level=1).compress(data))


@pytest.mark.parametrize(("dedup", "compress"), [(1, 1), (2, 1), (1, 2), (3, 4), (4, 3), (2, 2.5)])
def test_run_has_asked_dedupe_and_compression(dedup: int, compress: float) -> None:
    gen = DataGenerator(dedup=dedup, compress=compress)
    objects = [bytes(gen.object(size)) for size in SIZES]
    data = b"".join(objects)
    blocks = _blocks(data)
    assert len(set(blocks)) == len(blocks) // dedup
    assert _zstd_ratio(data) == pytest.approx(compress, rel=0.10)
    assert len(set(objects)) == len(objects)
    assert gen.blocks_generated == len(blocks)


def test_dedupe_spans_objects() -> None:
    """With dedup=2 and 4 KiB objects, a block's twin lives in another object."""
    gen = DataGenerator(dedup=2)
    objects = [bytes(gen.object(BLOCK)) for _ in range(512)]
    assert len(set(objects)) == 256


@pytest.mark.parametrize("compress", [1.5, 10, 50])
def test_compression_ratio_across_range(compress: float) -> None:
    data = bytes(generate(4 * MIB, compress=compress))
    assert _zstd_ratio(data) == pytest.approx(compress, rel=0.10)


def test_incompressible_per_object() -> None:
    """Objects compressed one by one (as a storage target would) do not shrink either."""
    gen = DataGenerator()
    for size in (BLOCK, 100_000, MIB):
        assert _zstd_ratio(bytes(gen.object(size))) < 1.01


def test_seeds() -> None:
    assert bytes(generate(100_000, seed=7)) == bytes(generate(100_000, seed=7))
    assert bytes(generate(100_000, seed=7)) != bytes(generate(100_000, seed=8))
    assert bytes(generate(100_000)) != bytes(generate(100_000))
    same_a, same_b = DataGenerator(seed=3), DataGenerator(seed=3)
    assert [bytes(same_a.object(5000)) for _ in range(3)] == [bytes(same_b.object(5000)) for _ in range(3)]


def test_sizes_and_partial_blocks() -> None:
    gen = DataGenerator(seed=1)
    for size in (0, 1, 7, BLOCK - 1, BLOCK + 1, 3 * BLOCK + 5):
        assert len(gen.object(size)) == size
    assert len(generate(0)) == 0
    # a partial last block is the head of the block the stream would have held there
    assert (
        bytes(DataGenerator(seed=2).object(BLOCK + 100))
        == bytes(DataGenerator(seed=2).object(2 * BLOCK))[: BLOCK + 100]
    )


def test_fill_in_place() -> None:
    expected = bytes(DataGenerator(seed=5).object(3 * 40_000))
    gen = DataGenerator(seed=5)
    array = np.zeros(40_000, dtype=np.uint8)
    gen.fill(array)
    assert array.tobytes() == expected[:40_000]
    buf = bytearray(40_000)
    gen.fill(memoryview(buf))
    assert bytes(buf)[:BLOCK] == expected[40_960 : 40_960 + BLOCK]  # objects start on block boundaries
    floats = np.zeros(10_000, dtype=np.float32)  # 40,000 bytes
    gen.fill(floats)
    assert floats.tobytes()[:100] == expected[81_920 : 81_920 + 100]


def test_fill_rejects_unwritable_buffers() -> None:
    gen = DataGenerator()
    with pytest.raises(TypeError, match="writable"):
        gen.fill(b"read-only bytes")
    with pytest.raises(TypeError, match="contiguous"):
        gen.fill(np.zeros((10, 10), dtype=np.uint8)[:, ::2])


def test_threads_share_one_run() -> None:
    gen = DataGenerator()
    results: list[bytes] = []

    def work() -> None:
        results.extend(bytes(gen.object(64 * KIB)) for _ in range(8))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    blocks = _blocks(b"".join(results))
    assert len(set(blocks)) == len(blocks) == 4 * 8 * 16


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"dedup": 0}, ValueError, "dedup must be an int >= 1, got 0 (int)"),
        ({"dedup": 1.5}, TypeError, "dedup must be an int >= 1, got 1.5 (float)"),
        ({"dedup": True}, TypeError, "dedup must be an int >= 1, got True (bool)"),
        ({"compress": 0.5}, ValueError, "compress must be a number >= 1, got 0.5 (float)"),
        ({"compress": "2"}, TypeError, "compress must be a number >= 1, got '2' (str)"),
        ({"compress": float("nan")}, ValueError, "compress must be a number >= 1, got nan (float)"),
        ({"seed": "abc"}, TypeError, "seed must be None or an int, got 'abc' (str)"),
        ({"block_size": 100}, ValueError, "block_size must be a multiple of 8, e.g. 4096, got 100 (int)"),
        ({"block_size": 0}, ValueError, "block_size must be an int >= 8, got 0 (int)"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=re.escape(f"DataGenerator: {message}")) as info:
        DataGenerator(**kwargs)  # type: ignore[arg-type]
    assert isinstance(info.value, S3dlioError)
    if "block_size" not in kwargs:  # generate() takes the other three
        with pytest.raises(error, match=re.escape(f"generate: {message}")):
            generate(10, **kwargs)  # type: ignore[arg-type]


def test_bad_size() -> None:
    with pytest.raises(ValueError, match=re.escape("generate: size must be an int >= 0, got -1 (int)")):
        generate(-1)
    with pytest.raises(TypeError, match=re.escape("generate: size must be an int >= 0, got 1.5 (float)")):
        generate(1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=re.escape("DataGenerator.object: size must be an int >= 0, got -1")):
        DataGenerator().object(-1)


def test_custom_block_size() -> None:
    gen = DataGenerator(dedup=2, block_size=512)
    data = bytes(gen.object(4 * MIB))
    blocks = {data[i : i + 512] for i in range(0, len(data), 512)}
    assert len(blocks) == len(data) // 512 // 2
    assert "block_size=512" in repr(gen)
