"""The early upload's bookkeeping against a reference model (no FUSE, no hub).

A real :class:`DirtyStore` record gets random writes and truncates while its
:class:`LeafPipe` sends chunks on its own thread into a real :class:`MemoryBlockstore`
(which verifies every block against its CID, as the hub does), or, with ``local``, by
descriptor to a real hub store's local ingest server (the hub reads and hashes the chunks).
At the end, the root that ``finish()`` returns must be the importer's root of the model
bytes (so: the CID ``ipfs add --cid-version=1`` gives), and every block of that DAG must be in
the store. The end-to-end path through a mount and a real hub is in test_mount_leafpipe.py.
"""

from __future__ import annotations

import io
import os
import random
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bucketfs.client.ingest import LocalIngest
from bucketfs.hub.ingest import IngestServer
from bucketfs.hub.store import HubStore
from bucketfs.ipfs.blockstore import MemoryBlockstore
from bucketfs.ipfs.cid import CID
from bucketfs.ipfs.importer import import_file
from bucketfs.ipfs.reader import FileReader
from bucketfs.mount.leafpipe import LeafPipes
from bucketfs.mount.writeback import CHUNK, DirtyStore

ops = st.lists(
    st.one_of(
        # (kind, offset, length, byte): writes mostly near the end, like real writers
        st.tuples(st.just("w"), st.integers(0, 12 * CHUNK), st.integers(1, 3 * CHUNK),
                  st.integers(0, 255)),
        st.tuples(st.just("t"), st.integers(0, 12 * CHUNK), st.just(0), st.just(0)),
        st.tuples(st.just("pause"), st.just(0), st.just(0), st.just(0)),
    ),
    min_size=1,
    max_size=14,
)


@pytest.fixture(scope="module")
def hub_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HubStore, str]]:
    """A real hub store (no gRPC server) and its local ingest socket's name."""
    store = HubStore(Path(tmp_path_factory.mktemp("hub")))
    server = IngestServer(store)
    try:
        yield store, server.name
    finally:
        server.stop()
        store.close()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(base_chunks=st.sampled_from([0, 0, 3, 9]), base_tail=st.integers(0, CHUNK - 1), ops=ops,
       early=st.booleans(), local=st.booleans())
# Sent chunks cut by a truncate, then brought back as a hole by a growing truncate: they must
# read as zeros, not as what was sent before the cut.
@example(base_chunks=0, base_tail=0, early=True, local=False,
         ops=[("w", 0, 8 * CHUNK, 1), ("pause", 0, 0, 0), ("t", 2 * CHUNK + 5, 0, 0),
              ("t", 8 * CHUNK, 0, 0)])
@example(base_chunks=0, base_tail=0, early=True, local=True,
         ops=[("w", 0, 8 * CHUNK, 1), ("pause", 0, 0, 0), ("t", 2 * CHUNK + 5, 0, 0),
              ("t", 8 * CHUNK, 0, 0)])
# A chunk rewritten after it was sent.
@example(base_chunks=0, base_tail=0, early=True, local=True,
         ops=[("w", 0, 4 * CHUNK, 1), ("pause", 0, 0, 0), ("w", CHUNK + 9, 10, 2)])
# A small change to a file in the bucket (base leaves kept), its tail partly cut.
@example(base_chunks=9, base_tail=1000, early=False, local=True,
         ops=[("w", 3 * CHUNK + 7, 10, 5), ("t", 8 * CHUNK + 3, 0, 0)])
def test_finish_gives_the_importers_root_of_the_model(  # noqa: ANN001
    tmp_path_factory, hub_store, base_chunks: int, base_tail: int, ops, early: bool,
    local: bool,
) -> None:
    """``base_chunks`` and ``base_tail``: the file's version in the bucket (in ``hub``, which
    also receives what the pipe sends), or a new file when both are 0. ``early`` False: no
    chunk is sent before finish(), which then decides alone. ``local``: leaves go by local
    ingest into a real hub store (whose blockstore is then ``hub``)."""
    hub = hub_store[0].blocks if local else MemoryBlockstore()
    base = bytes(range(256)) * ((base_chunks * CHUNK + base_tail) // 256 + 1)
    base = base[: base_chunks * CHUNK + base_tail] if base_chunks else b""
    base_cid = str(import_file(io.BytesIO(base), hub).cid) if base else ""

    def read_base(cid: str, size: int, offset: int, length: int) -> bytes:
        return FileReader(hub, CID.decode(cid)).read(offset, length)

    def put_blocks(items: Iterable[tuple[str, bytes]]) -> None:
        for cid, data in items:
            hub.put(CID.decode(cid), data)  # verified against the CID

    def ingest(fd: int, ranges: Iterable[tuple[int, int] | None]) -> list[tuple[str, int]]:
        return LocalIngest(hub_store[1], {}).send(fd, ranges)

    store = DirtyStore(tmp_path_factory.mktemp("dirty"), read_base)
    pipes = LeafPipes(store, put_blocks, minimum=CHUNK, early=early,
                      base_leaves=lambda cid: FileReader(hub, CID.decode(cid)).raw_leaves(),
                      ingest=ingest if local else None)
    try:
        rec = store.new("f", base_cid, len(base), 0o644, 0)
        model = bytearray(base)
        reached = False  # a write left the file at the pipe's minimum size or more
        for kind, off, n, byte in ops:
            if kind == "w":
                data = random.Random(byte * 1_000_003 + off).randbytes(n)  # chunks differ
                written = store.write(rec, off, data)
                pipes.wrote(rec, off, written)
                reached = reached or rec.size >= CHUNK
                if off > len(model):
                    model += bytes(off - len(model))
                model[off : off + n] = data
            elif kind == "t":
                store.truncate(rec, off)
                pipes.truncated(rec, off)
                del model[off:]
                model += bytes(off - len(model))
            else:
                time.sleep(0.05)  # let the sender thread catch up (or not): both must work
        pipe = pipes.get(rec)
        want = import_file(io.BytesIO(bytes(model)), MemoryBlockstore())
        assert (pipe is not None) == reached
        if pipe is None:
            return
        root, size, _now = pipe.finish()
        assert size == len(model)
        assert root.cid == want.cid
        # every block of the DAG is there
        assert FileReader(hub, root.cid).read(0, len(model) + 1) == bytes(model)
    finally:
        store.close()


def test_a_chunk_written_again_and_again_is_not_sent_on_every_write(tmp_path) -> None:  # noqa: ANN001
    """A hot chunk (a database's header page) is re-sent only once left alone (QUIET), not
    hashed and sent on every write; the upload still gets its last content."""
    hub = MemoryBlockstore()
    sends: list[str] = []

    def put_blocks(items: Iterable[tuple[str, bytes]]) -> None:
        for cid, data in items:
            hub.put(CID.decode(cid), data)
            sends.append(cid)

    store = DirtyStore(tmp_path / "dirty", lambda *a: b"")
    pipes = LeafPipes(store, put_blocks, minimum=CHUNK)
    try:
        rec = store.new("f", "", 0, 0o644, 0)
        model = bytearray(b"\1" * (4 * CHUNK))
        pipes.wrote(rec, 0, store.write(rec, 0, bytes(model)))
        deadline = time.monotonic() + 30
        while pipes.early_bytes < 4 * CHUNK:  # the four new chunks go at once
            assert time.monotonic() < deadline, sends
            time.sleep(0.01)
        before = len(sends)
        for i in range(300):
            data = i.to_bytes(2, "big")
            pipes.wrote(rec, 100, store.write(rec, 100, data))
            model[100:102] = data
            time.sleep(0.002)  # a writer that keeps at it (never quiet for QUIET seconds)
        assert len(sends) - before <= 3, len(sends) - before  # not 300
        root, size, _now = pipes.get(rec).finish()
        assert root.cid == import_file(io.BytesIO(bytes(model)), MemoryBlockstore()).cid
        assert size == 4 * CHUNK
    finally:
        store.close()


def test_a_small_change_to_a_file_with_a_base_sends_one_leaf(tmp_path) -> None:  # noqa: ANN001
    """A delta: 10 bytes changed in a 9-chunk file of the bucket send the one changed leaf and
    the root node; every other leaf is the bucket version's."""
    hub = MemoryBlockstore()
    base = os.urandom(9 * CHUNK + 1000)
    base_cid = str(import_file(io.BytesIO(base), hub).cid)
    sent: list[int] = []

    def put_blocks(items: Iterable[tuple[str, bytes]]) -> None:
        for cid, data in items:
            hub.put(CID.decode(cid), data)
            sent.append(len(data))

    store = DirtyStore(tmp_path / "dirty", lambda cid, size, off, n: base[off : off + n])
    pipes = LeafPipes(store, put_blocks, minimum=CHUNK, early=False,
                      base_leaves=lambda cid: FileReader(hub, CID.decode(cid)).raw_leaves())
    try:
        rec = store.new("f", base_cid, len(base), 0o644, 0)
        pipes.wrote(rec, 3 * CHUNK + 7, store.write(rec, 3 * CHUNK + 7, b"0123456789"))
        model = bytearray(base)
        model[3 * CHUNK + 7 : 3 * CHUNK + 17] = b"0123456789"
        root, size, now = pipes.get(rec).finish()
        assert root.cid == import_file(io.BytesIO(bytes(model)), MemoryBlockstore()).cid
        assert size == len(model)
        assert sorted(sent)[-1] == CHUNK and len(sent) == 2, sent  # the leaf and the root
        assert now == CHUNK
    finally:
        store.close()
