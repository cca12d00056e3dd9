"""Range reads of imported files: any content, any range, any tree shape; corruption is caught."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bucketfs.ipfs import dagpb
from bucketfs.ipfs.blockstore import BlockCorrupt, FSBlockstore, MemoryBlockstore
from bucketfs.ipfs.cid import CID
from bucketfs.ipfs.importer import import_bytes, import_symlink
from bucketfs.ipfs.reader import FileReader, NotAFile

pytestmark = pytest.mark.timeout(300)


class CountingStore(MemoryBlockstore):
    """A real MemoryBlockstore that also counts get() calls, to check fetch economy."""

    def __init__(self) -> None:
        super().__init__()
        self.gets: list[CID] = []

    def get(self, cid: CID) -> bytes:
        self.gets.append(cid)
        return super().get(cid)


@settings(max_examples=150, deadline=None)
@given(
    data=st.binary(max_size=3000),
    chunk=st.integers(1, 64),
    links=st.integers(2, 5),
    version=st.sampled_from([0, 1]),
    raw_leaves=st.booleans(),
    offset=st.integers(0, 3100),
    length=st.integers(0, 3100),
)
def test_import_then_read_any_range(
    data: bytes, chunk: int, links: int, version: int, raw_leaves: bool, offset: int, length: int
) -> None:
    store = MemoryBlockstore()
    res = import_bytes(
        data, store, chunk_size=chunk, max_links=links, cid_version=version, raw_leaves=raw_leaves
    )
    reader = FileReader(store, res.cid)
    assert reader.size == len(data) == res.filesize
    assert reader.read(offset, length) == data[offset : offset + length]
    assert b"".join(reader.iter_range(0, len(data))) == data


def test_read_fetches_only_needed_blocks() -> None:
    data = bytes(range(256)) * 400  # 102400 bytes
    store = CountingStore()
    res = import_bytes(data, store, chunk_size=100, max_links=4)
    reader = FileReader(store, res.cid, cache_blocks=1)
    store.gets.clear()
    assert reader.read(50_000, 150) == data[50_000:50_150]
    # Depth of a 1024-leaf tree with 4 links is 5 levels below the root; 2 leaves are touched.
    assert len(store.gets) <= 5 + 2
    assert len(set(store.gets)) == len(store.gets)


def test_multi_chunk_real_sizes(tmp_path: Path) -> None:
    data = bytes(range(256)) * 4097  # a little over 4 chunks of 262144
    store = FSBlockstore(tmp_path / "bs", fsync=False)
    res = import_bytes(data, store)
    r = FileReader(store, res.cid)
    assert r.read(262140, 10) == data[262140:262150]
    assert r.read(len(data) - 3, 100) == data[-3:]
    assert r.read(len(data), 5) == b""


def test_dagpb_leaf_file_v0() -> None:
    store = MemoryBlockstore()
    res = import_bytes(b"hello world\n", store, cid_version=0)
    assert FileReader(store, res.cid).read(6, 5) == b"world"


def test_not_a_file() -> None:
    store = MemoryBlockstore()
    link = import_symlink("target", store)
    with pytest.raises(NotAFile, match="Symlink"):
        FileReader(store, link.cid)


def test_corrupt_leaf_in_fs_store_names_cid_and_returns_nothing(tmp_path: Path) -> None:
    store = FSBlockstore(tmp_path / "bs", fsync=False)
    data = b"a" * 262144 + b"b" * 1000  # 2 chunks with different leaves
    res = import_bytes(data, store)
    root = dagpb.decode(store.get(res.cid))
    bad = root.links[1].cid
    raw = bytearray(store.get(bad))
    raw[10] ^= 0xFF
    store.corrupt_for_test(bad, bytes(raw))  # the leaf is in a pack: overwritten in place
    reader = FileReader(store, res.cid)
    assert reader.read(0, 100) == data[:100]  # the intact first leaf still reads
    pieces: list[bytes] = []
    with pytest.raises(BlockCorrupt) as info:
        for piece in reader.iter_range(262144, 100):
            pieces.append(piece)
    assert str(bad) in str(info.value)
    assert info.value.cid == bad
    assert pieces == []


def test_corrupt_root_in_fs_store(tmp_path: Path) -> None:
    store = FSBlockstore(tmp_path / "bs", fsync=False)
    res = import_bytes(b"some bytes", store)
    store.path_for(res.cid).write_bytes(b"other bytes")
    with pytest.raises(BlockCorrupt, match=str(res.cid)):
        FileReader(store, res.cid)


def test_truncated_leaf_is_detected_not_returned() -> None:
    """A leaf that verifies but is shorter than its parent claims is a malformed DAG."""
    from bucketfs.ipfs.dagpb import PBLink, PBNode
    from bucketfs.ipfs.reader import MalformedFile
    from bucketfs.ipfs.unixfs import DataType, UnixFSData, encode_data

    store = MemoryBlockstore()
    leaf = import_bytes(b"abc", store)
    data = encode_data(UnixFSData(DataType.File, filesize=5, blocksizes=(5,)))
    block = dagpb.encode(PBNode((PBLink(leaf.cid, b"", 3),), data))
    root = CID.of_dagpb(block)
    store.put(root, block)
    with pytest.raises(MalformedFile, match=str(leaf.cid)):
        FileReader(store, root).read(0, 5)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(min_size=1, max_size=500), st.integers(0, 499))
def test_reader_never_returns_wrong_bytes_after_corruption(data: bytes, at: int) -> None:
    store = MemoryBlockstore()
    res = import_bytes(data, store, chunk_size=16, max_links=3)
    leaves = [c for c in store.iter_cids() if c.codec == 0x55]
    victim = leaves[at % len(leaves)]
    good = store.get(victim)
    store.corrupt_for_test(victim, bytes(b ^ 1 for b in good) or b"x")
    out = bytearray()
    try:
        for piece in FileReader(store, res.cid).iter_range(0, len(data)):
            out += piece
    except BlockCorrupt as exc:
        assert exc.cid == victim
    assert bytes(out) == data[: len(out)]


@pytest.mark.parametrize("size", [0, 10, 1000])
def test_mode_and_mtime_force_a_dagpb_root(size: int) -> None:
    from bucketfs.ipfs.cid import DAG_PB
    from bucketfs.ipfs.dirs import stat
    from bucketfs.ipfs.unixfs import UnixTime

    store = MemoryBlockstore()
    data = bytes(range(256)) * 4
    data = data[:size]
    plain = import_bytes(data, store, chunk_size=256)
    res = import_bytes(
        data, store, chunk_size=256, mode=0o644, mtime=UnixTime.from_ns(1_700_000_000_123)
    )
    assert res.cid.codec == DAG_PB and res.cid != plain.cid
    info = stat(store, res.cid)
    assert (info.kind, info.size, info.mode) == ("file", size, 0o644)
    assert info.mtime is not None and info.mtime.to_ns() == 1_700_000_000_123
    assert FileReader(store, res.cid).read(0, size) == data
