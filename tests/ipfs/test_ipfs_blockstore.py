"""FSBlockstore layout, atomic writes, verification, and garbage collection."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from bucketfs.ipfs.blockstore import (
    BlockCorrupt,
    BlockNotFound,
    Blockstore,
    FSBlockstore,
    MemoryBlockstore,
    NullBlockstore,
)
from bucketfs.ipfs.cid import CID
from bucketfs.ipfs.dirs import set_entry
from bucketfs.ipfs.gc import collect
from bucketfs.ipfs.importer import empty_dir, import_bytes

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(params=["fs", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Blockstore:
    if request.param == "fs":
        return FSBlockstore(tmp_path / "bs")
    return MemoryBlockstore()


def test_protocol_conformance(store: Blockstore) -> None:
    assert isinstance(store, Blockstore)
    cid = CID.of_raw(b"block")
    assert not store.has(cid)
    with pytest.raises(BlockNotFound, match=str(cid)):
        store.get(cid)
    store.put(cid, b"block")
    store.put(cid, b"block")  # second put is a no-op
    assert store.has(cid) and store.get(cid) == b"block"
    assert list(store.iter_cids()) == [cid]
    # A CIDv0 and its CIDv1 name the same stored bytes.
    node = CID.of_dagpb(b"\x0a\x02\x08\x01", 0)
    store.put(node, b"\x0a\x02\x08\x01")
    assert store.get(node.to_v1()) == b"\x0a\x02\x08\x01"
    store.delete(cid)
    store.delete(cid)
    assert not store.has(cid)


def test_put_refuses_bytes_that_do_not_match(store: Blockstore) -> None:
    cid = CID.of_raw(b"right")
    with pytest.raises(BlockCorrupt, match=str(cid)):
        store.put(cid, b"wrong")
    assert not store.has(cid)


def test_fs_layout_is_sharded_by_next_to_last_two_chars(tmp_path: Path) -> None:
    fs = FSBlockstore(tmp_path / "bs")
    cid = CID.of_raw(b"layout")
    fs.put(cid, b"layout")
    name = str(cid)
    assert fs.path_for(cid) == tmp_path / "bs" / "blocks" / name[-3:-1] / name
    assert fs.path_for(cid).read_bytes() == b"layout"
    fs.sync()
    assert not [p for p in (tmp_path / "bs").rglob(".tmp-*")]


def test_fs_corrupt_block_names_cid(tmp_path: Path) -> None:
    fs = FSBlockstore(tmp_path / "bs")
    cid = CID.of_raw(b"precious")
    fs.put(cid, b"precious")
    fs.path_for(cid).write_bytes(b"precioux")
    with pytest.raises(BlockCorrupt) as info:
        fs.get(cid)
    assert str(cid) in str(info.value) and info.value.cid == cid


def test_fs_stray_files_are_ignored(tmp_path: Path) -> None:
    fs = FSBlockstore(tmp_path / "bs")
    cid = CID.of_raw(b"a")
    fs.put(cid, b"a")
    (fs.path_for(cid).parent / ".tmp-123-1-1").write_bytes(b"half")
    (fs.path_for(cid).parent / "junk").write_bytes(b"?")
    assert list(fs.iter_cids()) == [cid]
    os.utime(fs.path_for(cid).parent / ".tmp-123-1-1", (0, 0))
    assert fs.clean_temp(older_than=60) == 1


def test_concurrent_puts_of_the_same_block(tmp_path: Path) -> None:
    fs = FSBlockstore(tmp_path / "bs", fsync=False)
    data = os.urandom(100_000)
    cid = CID.of_raw(data)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(50):
                fs.put(cid, data, trusted=True)
                assert fs.get(cid) == data
        except BaseException as exc:  # collected and re-raised in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert list(fs.iter_cids()) == [cid]


def test_null_store_discards() -> None:
    s = NullBlockstore()
    cid = import_bytes(b"x" * 1000, s).cid
    assert not s.has(cid) and list(s.iter_cids()) == []


def _age(store: Blockstore, cid: CID, seconds: float) -> None:
    """Make a block look as if it had been put ``seconds`` ago."""
    if isinstance(store, FSBlockstore):
        store.set_put_time(cid, time.time() - seconds)  # a block file or a packed block
    else:
        store._times[cid.to_v1()] -= seconds  # type: ignore[attr-defined]


def test_gc_keeps_live_and_recent_blocks(store: Blockstore) -> None:
    root = empty_dir(store).cid
    live = import_bytes(b"live" * 100_000, store, chunk_size=4096)
    root = set_entry(store, root, "dir/live", live.cid, live.tsize)
    dead = import_bytes(b"dead" * 100_000, store, chunk_size=4096)
    old_root = root
    root = set_entry(store, root, "dir/other", dead.cid, dead.tsize)
    root = set_entry(store, old_root, "dir/live2", live.cid, live.tsize)  # 'dead' unreferenced
    for cid in list(store.iter_cids()):
        _age(store, cid, 3600)
    fresh = CID.of_raw(b"written during gc")
    store.put(fresh, b"written during gc")
    stats = collect(store, [root], grace_seconds=60)
    assert stats.swept > 0 and stats.missing == 0
    remaining = set(store.iter_cids())
    assert fresh in remaining  # newer than the mark start minus grace
    assert dead.cid.to_v1() not in remaining
    from bucketfs.ipfs.reader import FileReader

    assert FileReader(store, live.cid).read(0, 8) == b"livelive"
    # A second run finds nothing more to do except the unreferenced fresh block once it ages.
    _age(store, fresh, 3600)
    again = collect(store, [root], grace_seconds=60)
    assert again.swept == 1 and not store.has(fresh)


def test_gc_re_put_protects_an_old_block(tmp_path: Path) -> None:
    fs = FSBlockstore(tmp_path / "bs", fsync=False)
    cid = CID.of_raw(b"reused")
    fs.put(cid, b"reused")
    _age(fs, cid, 3600)
    fs.put(cid, b"reused")  # a new DAG references it again: the mtime is refreshed
    assert collect(fs, [], grace_seconds=60).swept == 0
    assert fs.has(cid)


def test_gc_counts_missing_blocks(store: Blockstore) -> None:
    res = import_bytes(b"m" * 10_000, store, chunk_size=1000)
    leaf = next(c for c in store.iter_cids() if c.codec == 0x55)
    store.delete(leaf)
    stats = collect(store, [res.cid], grace_seconds=0)
    assert stats.missing == 0  # raw leaves are marked without being read
    store.delete(res.cid)
    assert collect(store, [res.cid], grace_seconds=0).missing == 1


def test_write_behind_import_equals_plain_import(tmp_path: Path) -> None:
    data = os.urandom(262144 * 5 + 17)
    fs = FSBlockstore(tmp_path / "bs")
    mem = MemoryBlockstore()
    from bucketfs.ipfs.reader import FileReader

    a = import_bytes(data, fs)  # write-behind is on by default for FSBlockstore
    b = import_bytes(data, mem, write_behind=False)
    assert a == b
    assert sorted(fs.iter_cids()) == sorted(mem.iter_cids())
    assert FileReader(fs, a.cid).read(0, len(data)) == data


class FailingStore(MemoryBlockstore):
    """A real MemoryBlockstore that runs out of space after a few blocks."""

    def __init__(self, allowed: int) -> None:
        super().__init__()
        self.allowed = allowed

    def put(self, cid: CID, data: bytes, *, trusted: bool = False) -> None:
        if self.allowed <= 0:
            raise OSError(28, "No space left on device")
        self.allowed -= 1
        super().put(cid, data, trusted=trusted)


@pytest.mark.parametrize("write_behind", [False, True])
def test_store_failure_during_import_is_raised(write_behind: bool) -> None:
    store = FailingStore(allowed=3)
    with pytest.raises(OSError, match="No space"):
        import_bytes(b"x" * 5000 + b"y" * 5000, store, chunk_size=100, write_behind=write_behind)


CHILD = """
import resource, sys
sys.path.insert(0, {root!r})
from bucketfs.ipfs.blockstore import FSBlockstore
from bucketfs.ipfs.importer import import_file

class Zeros:
    def __init__(self, n):
        self.left = n
        self.i = 0
    def read(self, n):
        n = min(n, self.left)
        self.left -= n
        self.i += 1
        return self.i.to_bytes(8, "big") * (n // 8) + bytes(n % 8)

before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
res = import_file(Zeros(256 << 20), FSBlockstore({store!r}, fsync=False))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(before, after, res.filesize)
"""


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_import_memory_is_bounded(tmp_path: Path) -> None:
    """Importing 256 MiB grows peak RSS by a few chunks' worth, not by the file size."""
    import subprocess
    import sys

    root = str(Path(__file__).resolve().parents[2])
    code = CHILD.format(root=root, store=str(tmp_path / "bs"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, after, size = map(int, out.stdout.split())
    assert size == 256 << 20
    assert (after - before) * 1024 < 40 << 20, (before, after)
