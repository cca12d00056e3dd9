"""Unit tests of the hub's pieces that need no server: paths, tree editing, rechunking,
prefix ranges, the stream guard and store recovery."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bucketfs.hub import streamguard
from bucketfs.hub.buckets import rechunk
from bucketfs.hub.db import prefix_upper_bound
from bucketfs.hub.errors import HubError
from bucketfs.hub.paths import clean_path, new_bucket_key, parse_path, thread_id_bytes
from bucketfs.hub.store import HubStore
from bucketfs.hub.tree import TreeEditor, new_root
from bucketfs.ipfs import dirs
from bucketfs.ipfs.blockstore import MemoryBlockstore
from bucketfs.ipfs.cid import CID

pytestmark = pytest.mark.timeout(60)


def test_paths() -> None:
    assert clean_path("/a//b/./c/") == "a/b/c"
    assert clean_path("") == "" and clean_path("/") == ""
    for bad in ("a/../b", "..", "a\0b", "x" * 4097):
        with pytest.raises(HubError):
            clean_path(bad)
    with pytest.raises(HubError) as err:
        parse_path("a/.textileseed/b")
    assert err.value.message == "paths containing .textileseed are not allowed"
    key = new_bucket_key()
    assert key.startswith("bafzbei") and len(key) == 59
    raw = thread_id_bytes("bafkqaaicamcakbqhbaequcymbuha6earcijrifiwc4mbsgq3dqor4hy")
    assert raw == bytes([1, 0x55]) + bytes(range(32))


def test_prefix_upper_bound() -> None:
    assert prefix_upper_bound("a/") == "a0"
    assert "a/zzz" < prefix_upper_bound("a/") and not "a0" < prefix_upper_bound("a/")


def test_rechunk_exact_sizes() -> None:
    for sizes in ([5, 7, 100, 3], [32, 32], [1] * 70, [], [64], [31, 2, 31]):
        pieces = [os.urandom(n) for n in sizes]
        out = list(rechunk(iter(pieces), 32))
        assert b"".join(out) == b"".join(pieces)
        assert all(len(o) == 32 for o in out[:-1]) and all(0 < len(o) <= 32 for o in out)


def test_tree_editor_matches_one_edit_at_a_time() -> None:
    # Many edits applied in memory give the same root as the ipfs layer's one-at-a-time edits.
    store = MemoryBlockstore()
    seed = os.urandom(32)
    seed_cid = CID.of_raw(seed)
    store.put(seed_cid, seed)
    root, _ = new_root(store, seed_cid, 32)
    editor = TreeEditor(store, root)
    reference = root
    for i in range(60):
        data = f"file {i}".encode()
        cid = CID.of_raw(data)
        store.put(cid, data)
        path = f"d{i % 4}/sub{i % 3}/f{i}"
        editor.set_cid(path, cid, len(data))
        reference = dirs.set_entry(store, reference, path, cid, len(data))
    editor.remove("d1/sub1/f25")
    reference = dirs.remove_entry(store, reference, "d1/sub1/f25")
    got, tsize = editor.flush()
    assert got == reference
    assert tsize == dirs.stat(store, got).tsize


def test_stream_guard_hook_is_active() -> None:
    # If grpcio changes the internal this relies on, broken pushes fall back to timing.
    assert streamguard.install()


def test_recovery_deletes_torn_blocks(tmp_path: Path) -> None:
    store = HubStore(tmp_path / "data", gc_interval=0)
    good = os.urandom(1000)
    good_cid = CID.of_raw(good)
    store.blocks.put(good_cid, good)
    store.durable()
    torn = os.urandom(1000)
    torn_cid = CID.of_raw(torn)
    store.blocks.put(torn_cid, torn)
    store.blocks.path_for(torn_cid).write_bytes(torn[:100])  # as after a power loss
    assert store.recover() == 1
    assert store.blocks.has(good_cid) and not store.blocks.has(torn_cid)
    store.close()


def test_recovery_deletes_torn_packed_blocks(tmp_path: Path) -> None:
    """A crash can leave a pack's index rows on disk without all of the pack's bytes."""
    from bucketfs.ipfs.importer import import_bytes

    store = HubStore(tmp_path / "data", gc_interval=0)
    kept = import_bytes(os.urandom(20_000), store.blocks, chunk_size=1000)
    store.durable()
    data = os.urandom(20_000)
    import_bytes(data, store.blocks, chunk_size=1000)
    torn = CID.of_raw(data[-1000:])  # the last leaf: packed (the first four are files)
    assert not store.blocks.path_for(torn).exists() and store.blocks.has(torn)
    store.blocks.corrupt_for_test(torn, b"")  # the pack ends before this block
    assert store.recover() >= 1
    assert not store.blocks.has(torn)
    from bucketfs.ipfs.reader import FileReader

    assert len(FileReader(store.blocks, kept.cid).read(0, 20_000)) == 20_000
    store.close()


def test_push_slots_limit_open_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bucketfs.hub import pushing

    monkeypatch.setattr(pushing, "MAX_OPEN_FILES", 3)
    slots = pushing.FileSlots(MemoryBlockstore(), tmp_path)
    for i in range(3):
        assert slots.write(f"f{i}", b"x") is None
    with pytest.raises(HubError) as err:
        slots.write("f3", b"x")
    assert "files open at once" in err.value.message
    done = slots.write("f0", b"")
    assert done is not None and done[0].cid == CID.of_raw(b"x")
    assert slots.write("f3", b"x") is None  # room again after a close
    with pytest.raises(HubError):
        slots.write("f0", b"again")  # a closed path cannot be reopened in the same stream


def test_push_slots_stream_and_spill_give_ipfs_cids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Three interleaved files past the streaming threshold with one streaming slot: the first
    # streams, the others spill to temp files; all must import exactly like import_bytes.
    from bucketfs.hub import pushing
    from bucketfs.ipfs.importer import import_bytes

    monkeypatch.setattr(pushing, "STREAM_AFTER", 100_000)
    monkeypatch.setattr(pushing, "MAX_STREAMS", 1)
    store = MemoryBlockstore()
    slots = pushing.FileSlots(store, tmp_path)
    datas = {f"f{i}": os.urandom(700_000 + i) for i in range(3)}
    for offset in range(0, 710_000, 65_536):
        for name, data in datas.items():
            piece = data[offset : offset + 65_536]
            if piece:
                assert slots.write(name, piece) is None
    assert sum(1 for f in slots.files.values() if f.stream) == 1
    assert sum(1 for f in slots.files.values() if f.spill) == 2
    for name, data in datas.items():
        done = slots.write(name, b"")
        assert done is not None
        assert done[0].cid == import_bytes(data, MemoryBlockstore()).cid
    assert not list(tmp_path.iterdir())  # spill files are removed


def test_gc_gate_waiting_sweep_holds_new_mutations_back() -> None:
    import threading

    from bucketfs.hub.store import _GCGate

    gate = _GCGate()
    order: list[str] = []
    in_mutation = threading.Event()
    release_mutation = threading.Event()

    def long_mutation() -> None:
        with gate.mutation():
            in_mutation.set()
            release_mutation.wait(30)
            order.append("first mutation done")

    def sweeper() -> None:
        with gate.sweep(wait=True) as ok:
            assert ok
            order.append("sweep")

    def late_mutation() -> None:
        with gate.mutation():
            order.append("late mutation")

    t1 = threading.Thread(target=long_mutation)
    t1.start()
    assert in_mutation.wait(30)
    with gate.sweep(wait=False) as ok:
        assert not ok  # busy: a non-waiting sweep gives up at once
    t2 = threading.Thread(target=sweeper)
    t2.start()
    while not gate._waiting_sweeps:  # the sweep is now queued behind the mutation
        threading.Event().wait(0.01)
    t3 = threading.Thread(target=late_mutation)
    t3.start()
    release_mutation.set()
    for t in (t1, t2, t3):
        t.join(30)
    assert order == ["first mutation done", "sweep", "late mutation"]


def test_push_path_request_parser_matches_protobuf() -> None:
    """The hub's zero-copy PushPath parser reads exactly what protobuf would."""
    from bucketfs.hub.pushing import RawChunk, parse_push_path_request
    from bucketfs.pb import bucketsd_pb2 as pb

    for data in (b"", b"x", os.urandom(127), os.urandom(128), os.urandom(1 << 20)):
        raw = pb.PushPathRequest(chunk=data).SerializeToString()
        got = parse_push_path_request(raw)
        assert isinstance(got, RawChunk) and got.WhichOneof("payload") == "chunk"
        assert bytes(got.chunk) == data
    header = pb.PushPathRequest(header=pb.PushPathRequest.Header(key="k", path="p", mode=0o644))
    got = parse_push_path_request(header.SerializeToString())
    assert got == header and got.WhichOneof("payload") == "header"
    # Anything but one whole chunk field goes through protobuf: two chunk fields (the last
    # wins), or trailing bytes.
    two = pb.PushPathRequest(chunk=b"a").SerializeToString() + pb.PushPathRequest(
        chunk=b"bb"
    ).SerializeToString()
    assert parse_push_path_request(two).chunk == b"bb"
    assert not isinstance(parse_push_path_request(two), RawChunk)
