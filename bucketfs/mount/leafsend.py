"""How a dirty file's leaves reach the hub: by descriptor when the hub is on this host, else
their bytes over ``FS.PutBlocks``.

Local ingest (:mod:`bucketfs.client.ingest`) hands the hub a read-only descriptor of the file's
data file and the ranges of the chunks; the hub reads, hashes and stores them and answers the
CIDs. Over gRPC the mount reads and hashes every chunk and streams it, and the hub receives,
copies and hashes it again: about three times the CPU per GiB (measured: the mount's early
upload 2.2 CPU-s per GiB, the hub's PutBlocks 2.0, against the hub's 1.0 for local ingest), on
a machine where the file's writer needs the rest. The hub's answer is trusted as the hub's
storage is: the CIDs are of the bytes it read and stored.

Either way a call's result is the chunks it stored and their CIDs, of the bytes as they were
when read: the caller tells whether a write touched a chunk since (see :mod:`.leafpipe`).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator

from bucketfs.ipfs.cid import CID
from bucketfs.mount.writeback import CHUNK, DirtyStore, Record

log = logging.getLogger(__name__)

PutBlocks = Callable[[Iterable[tuple[str, bytes]]], object]
#: Local ingest: ``(fd, ranges) -> [(cid, bytes read)]``, or None when the hub offers none
#: (then nothing was taken from ``ranges``). See ``Remote.ingest_leaves``.
Ingest = Callable[[int, Iterable["tuple[int, int] | None"]], "list[tuple[str, int]] | None"]
#: Chunks to send: ``(index, length)``; None = "nothing more for now" (flush what is pending).
Items = Iterable["tuple[int, int] | None"]


class LeafSender:
    """Sends chunks of a record's data file as raw leaves (``ingest`` first, when given)."""

    def __init__(self, store: DirtyStore, put_blocks: PutBlocks,
                 ingest: Ingest | None = None) -> None:
        self._store = store
        self._put = put_blocks
        self._ingest = ingest
        self._lock = threading.Lock()
        self.local_bytes = 0  # leaf bytes the hub read itself (a statistic)

    def put_blocks(self, blocks: Iterable[tuple[str, bytes]]) -> None:
        """Blocks the mount made itself (a tree's interior nodes), over gRPC."""
        self._put(blocks)

    def send(self, rec: Record, items: Items, local: bool = True) -> dict[int, tuple[CID, int]]:
        """Store chunks of ``rec`` on the hub; returns the ones stored: index → (CID, bytes).
        Every one is durable on the hub when this returns. ``local`` False, or a hub without
        local ingest: the bytes go over gRPC. A chunk that must not be read from the data file
        alone (one with base bytes not brought in) must go with ``local`` False. Raises what
        the call raises."""
        items = iter(items)
        if local and self._ingest is not None:
            try:
                fd = self._store.open_data(rec)
            except FileNotFoundError:
                return {}  # uploaded another way, or unlinked: nothing left to send
            try:
                done = self._local(fd, items)
            finally:
                os.close(fd)
            if done is not None:
                return done
        return self._grpc(rec, items)

    def _local(self, fd: int, items: Iterator[tuple[int, int] | None]
               ) -> dict[int, tuple[CID, int]] | None:
        assert self._ingest is not None
        order: list[int] = []

        def ranges() -> Iterator[tuple[int, int] | None]:
            for item in items:
                if item is None:
                    yield None
                    continue
                idx, n = item
                order.append(idx)
                yield idx * CHUNK, n

        answer = self._ingest(fd, ranges())
        if answer is None:
            return None
        done = {idx: (CID.decode(cid), n)
                for idx, (cid, n) in zip(order, answer, strict=True) if n}
        with self._lock:
            self.local_bytes += sum(n for _cid, n in done.values())
        return done

    def _grpc(self, rec: Record, items: Iterator[tuple[int, int] | None]
              ) -> dict[int, tuple[CID, int]]:
        done: dict[int, tuple[CID, int]] = {}

        def blocks() -> Iterator[tuple[str, bytes]]:
            for item in items:
                if item is None:
                    continue
                idx, n = item
                with rec.lock:
                    if rec.dropped:
                        return  # uploaded another way, or unlinked: its data file is gone
                    data = self._store.read(rec, idx * CHUNK, n)
                cid = CID.of_raw(data)  # (an empty file's one leaf is empty too)
                done[idx] = (cid, len(data))
                yield str(cid), data

        self._put(blocks())
        return done
