"""s3dlio_torch.load reads the object once into one buffer and the tensors share it.

torch.load's semantics stay its own (map_location, weights_only, legacy archives, views of
one storage); only where the tensors' bytes live changes, as with torch.load(mmap=True).
"""

from __future__ import annotations

import io
import pickle
import threading
from collections.abc import Iterator
from typing import Any

import pytest

torch = pytest.importorskip("torch")

import s3dlio  # noqa: E402
from s3dlio_torch import _inplace  # noqa: E402
from s3dlio_torch.checkpoint import CheckpointManager, load, save  # noqa: E402


def state(n: int = 6, each: int = 40_000) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(1)
    out: dict[str, Any] = {f"w{i}": torch.rand(each, generator=gen) for i in range(n)}
    base = torch.arange(60, dtype=torch.int16).reshape(6, 10)
    out.update(view_a=base[1], view_b=base[2:5].t(), half=torch.randn(9).half(), step=3)
    return out


def assert_same(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a.keys() == b.keys()
    for key, value in a.items():
        if isinstance(value, torch.Tensor):
            assert value.dtype == b[key].dtype and value.stride() == b[key].stride()
            assert torch.equal(value, b[key]), key
        else:
            assert value == b[key]


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """64 KiB parts and a 256 KiB range threshold: a state of a few MiB arrives in many ranges."""
    monkeypatch.setenv("S3DLIO_PART_SIZE", str(64 * 1024))
    monkeypatch.setenv("S3DLIO_RANGE_THRESHOLD", str(256 * 1024))
    s3dlio.configure()
    yield
    monkeypatch.undo()
    s3dlio.configure()


def test_tensors_share_one_buffer_of_the_object(root: str, small_parts: None) -> None:
    sd = state()
    save(sd, root + "m.pt")
    size = s3dlio.stat(root + "m.pt").size
    got = load(root + "m.pt")
    assert_same(sd, got)
    ptrs = [t.untyped_storage().data_ptr() for t in got.values() if isinstance(t, torch.Tensor)]
    assert max(ptrs) - min(ptrs) < size  # every storage lies inside one object-sized buffer
    assert got["view_a"].untyped_storage().data_ptr() == got["view_b"].untyped_storage().data_ptr()


def test_loaded_tensors_are_ordinary_to_compute_with(root: str) -> None:
    sd = state(2, 1000)
    save(sd, root + "m.pt")
    got = load(root + "m.pt")
    got["w0"].add_(1)  # in place: changes only that tensor
    assert torch.equal(got["w0"], sd["w0"] + 1) and torch.equal(got["w1"], sd["w1"])
    got["w1"].share_memory_()
    assert torch.equal(got["w1"], sd["w1"])
    model = torch.nn.Linear(4, 2)
    model.load_state_dict(load_after_save(root + "lin.pt", model.state_dict()))


def load_after_save(uri: str, sd: dict[str, Any]) -> Any:
    save(sd, uri)
    return load(uri)


def test_map_location_is_honoured(root: str) -> None:
    sd = state(2, 100)
    save(sd, root + "m.pt")
    assert all(t.device.type == "meta" for t in load(root + "m.pt", map_location="meta").values()
               if isinstance(t, torch.Tensor))  # fmt: skip
    seen: list[str] = []

    def where(storage: Any, location: str) -> Any:
        seen.append(location)
        return storage

    assert_same(sd, load(root + "m.pt", map_location=where))
    assert seen and set(seen) == {"cpu"}
    assert_same(sd, load(root + "m.pt", map_location={"cpu": "cpu"}))
    assert_same(sd, load(root + "m.pt", map_location=torch.device("cpu")))


class Custom:
    def __init__(self, x: int) -> None:
        self.x = x


def test_weights_only_stays_torchs_default(root: str) -> None:
    save({"obj": Custom(5), "w": torch.ones(2)}, root + "c.pt")
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        load(root + "c.pt")
    assert load(root + "c.pt", weights_only=False)["obj"].x == 5


def test_legacy_archive_and_other_loads_unchanged(root: str) -> None:
    sd = state(2, 100)
    raw = io.BytesIO()
    torch.save(sd, raw, _use_new_zipfile_serialization=False)
    s3dlio.put(root + "legacy.pt", raw.getvalue())
    assert_same(sd, load(root + "legacy.pt"))
    save(sd, root + "m.pt")
    load(root + "m.pt")
    plain = io.BytesIO()
    torch.save(sd, plain)
    plain.seek(0)
    again = torch.load(plain)  # a torch.load elsewhere reads its own archive as before
    assert_same(sd, again)
    assert getattr(_inplace._pending, "storage", None) is None


def test_concurrent_loads_each_get_their_own_object(root: str) -> None:
    states = [state(2, 500 + i) for i in range(4)]
    for i, sd in enumerate(states):
        save(sd, root + f"{i}.pt")
    results: dict[int, Any] = {}

    def one(i: int) -> None:
        results[i] = load(root + f"{i}.pt")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, sd in enumerate(states):
        assert_same(sd, results[i])


def test_missing_object_is_not_found(root: str) -> None:
    with pytest.raises(FileNotFoundError):
        load(root + "absent.pt")


def test_manager_loads_large_shards_in_place(root: str, small_parts: None) -> None:
    manager = CheckpointManager(root + "run/")
    sd = state(4, 100_000)
    manager.save(1, {"model": sd})
    got = manager.load(1)["model"]
    assert_same(sd, got)
    ptrs = [t.untyped_storage().data_ptr() for t in got.values() if isinstance(t, torch.Tensor)]
    if not root.startswith("mem://"):  # mem:// hands out its stored bytes read-only: copied
        assert max(ptrs) - min(ptrs) < 2_000_000  # four 400 KB tensors inside one shard's buffer


def test_a_state_of_several_prefault_steps_loads_whole(root: str) -> None:
    """20 MiB: the buffer is populated by the helper while the ranges arrive (on Linux)."""
    sd = state(5, 1 << 20)
    save(sd, root + "big.pt")
    assert_same(sd, load(root + "big.pt"))
    assert_same(sd, load(root + "big.pt", map_location="cpu"))


def test_prefault_leaves_the_bytes_as_they_are() -> None:
    buffer = torch.empty(3 * _inplace._PREFAULT_STEP + 123, dtype=torch.uint8).numpy()
    buffer[::4096] = 7  # some pages written before the helper reaches them, the rest untouched
    buffer[-1] = 9
    done = threading.Event()
    helper = _inplace._prefault(buffer, done)
    if helper is None:
        pytest.skip("no madvise here")
    helper.join()
    assert (buffer[::4096] == 7).all() and buffer[-1] == 9


def test_read_only_buffer_is_copied_out() -> None:
    raw = io.BytesIO()
    sd = state(1, 10)
    torch.save(sd, raw)
    data = raw.getvalue()
    got = _inplace.load_buffer(data, "bytes", None)
    assert_same(sd, got)
    got["w0"].add_(1)  # its own storage: the bytes object is untouched
    assert data == raw.getvalue()
