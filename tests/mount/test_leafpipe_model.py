"""The early upload's bookkeeping against a reference model (no FUSE, no hub).

A real :class:`DirtyStore` record gets random writes and truncates while its
:class:`LeafPipe` sends chunks on its own thread into a real :class:`MemoryBlockstore`
(which verifies every block against its CID, as the hub does). At the end, the root that
``finish()`` returns must be the importer's root of the model bytes (so: the CID ``ipfs add
--cid-version=1`` gives), and every block of that DAG must be in the store. The end-to-end
path through a mount and a real hub is in test_mount_leafpipe.py.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterable

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

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


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(ops=ops)
# Sent chunks cut by a truncate, then brought back as a hole by a growing truncate: they must
# read as zeros, not as what was sent before the cut.
@example(ops=[("w", 0, 8 * CHUNK, 1), ("pause", 0, 0, 0), ("t", 2 * CHUNK + 5, 0, 0),
              ("t", 8 * CHUNK, 0, 0)])
# A chunk rewritten after it was sent.
@example(ops=[("w", 0, 4 * CHUNK, 1), ("pause", 0, 0, 0), ("w", CHUNK + 9, 10, 2)])
def test_finish_gives_the_importers_root_of_the_model(tmp_path_factory, ops) -> None:  # noqa: ANN001
    store = DirtyStore(tmp_path_factory.mktemp("dirty"), lambda *a: b"")
    blocks = MemoryBlockstore()

    def put_blocks(items: Iterable[tuple[str, bytes]]) -> None:
        for cid, data in items:
            blocks.put(CID.decode(cid), data)  # verified against the CID

    pipes = LeafPipes(store, put_blocks, minimum=CHUNK)
    try:
        rec = store.new("f", "", 0, 0o644, 0)
        model = bytearray()
        for kind, off, n, byte in ops:
            if kind == "w":
                data = bytes([byte]) * n
                written = store.write(rec, off, data)
                pipes.wrote(rec, off, written)
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
        if pipe is None:  # never reached the minimum size
            assert len(model) < CHUNK or all(k != "w" for k, *_ in ops)
            return
        root, size = pipe.finish()
        assert size == len(model)
        assert root.cid == want.cid
        # every block of the DAG is there
        assert FileReader(blocks, root.cid).read(0, len(model) + 1) == bytes(model)
    finally:
        store.close()
