"""Early upload of a big file's changed leaves while it is being written, and delta uploads.

Without this, fsync (or the upload after close) of a large file streamed the whole file to the
hub only then: writing and uploading ran one after the other. A :class:`LeafPipe` sends each
256 KiB chunk of a new file to the hub as a raw leaf (``FS.PutBlocks``; the hub verifies every
block against its CID) as soon as the chunk is complete, on a thread of its own, so the upload
overlaps the writing. At upload time only the tail, the interior nodes of the UnixFS tree
(built by :func:`bucketfs.ipfs.importer.build_file`, so the CID is the one ``ipfs add
--cid-version=1`` gives) and one ``FS.Link`` remain.

Rules that keep it correct:

- A chunk's content changes only by a write or a truncate, which both tell the pipe
  (:meth:`LeafPipes.wrote`, :meth:`LeafPipes.truncated`); only chunks written here (present
  in the data file) are sent early.
- A file with base bytes (an existing file being changed) is uploaded as a delta: chunks it
  did not write keep the base file's leaves, which the hub holds already, provided the base
  is made of 256 KiB raw leaves (as the hub and ``ipfs add --cid-version=1`` make them;
  otherwise it is pushed whole). A one-byte change to a 1 GiB file sends one leaf and the
  tree's few interior nodes instead of 1 GiB.
- A chunk counts as uploaded only once the ``PutBlocks`` call that carried it returned (the
  hub made the blocks durable) and no write touched it since it was read.
- Nothing here is persisted and nothing is required: after a restart, a failed call or a
  refused ``Link`` (the hub may have collected unreferenced blocks after its grace period),
  the file is uploaded whole by ``PushPath`` as before.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable, Iterator

from bucketfs.client.errors import HubUnavailable
from bucketfs.ipfs.cid import CID
from bucketfs.ipfs.importer import Imported, build_file
from bucketfs.mount.leafsend import Ingest, LeafSender, PutBlocks
from bucketfs.mount.writeback import CHUNK, DirtyStore, Record

log = logging.getLogger(__name__)

#: Files are piped once they reach this size; smaller ones go whole (and batched) at close.
PIPE_MIN = 8 * 1024 * 1024
#: ... and up to this size: the bookkeeping is about 150 bytes per 256 KiB chunk, so a pipe of
#: this size holds ~20 MB; a bigger file is pushed whole (memory stays bounded).
PIPE_MAX = 32 * 1024**3
#: A PutBlocks call that had nothing to send for this long ends (the hub then syncs what it
#: received); the next complete chunk starts a new one. Keeps the hub's GC gate free while a
#: file is written slowly.
IDLE = 1.0

#: A PutBlocks call ends after this many bytes, and the next chunk opens a new one. The hub
#: syncs its disk at the end of every call, so a big file's blocks become durable while it is
#: still being written and fsync finds little left to flush (one call for the whole file
#: left 1-2 GiB of dirty pages for fsync to write).
CALL_BYTES = 64 * 1024 * 1024
#: A chunk sent early and written again is sent again only once it was left alone this long
#: (seconds), so a chunk rewritten all the time (a database's header page) is not hashed and
#: sent on every write; the upload sends whatever is still pending.
QUIET = 1.0
#: A waiting sender looks for new complete chunks this often (seconds). Writes do not wake it:
#: waking it on every write (a thousand times per GiB) cost the writing thread the GIL hand-offs
#: (measured: the daemon's CPU per GiB of sequential writes +25%).
POLL = 0.05

#: The raw leaves of a bucket file by CID, in order (None: not made of raw leaves).
BaseLeaves = Callable[[str], "list[tuple[CID, int]] | None"]


class Unusable(Exception):
    """The pipe cannot complete this upload (the caller pushes the file whole)."""


class _Blocks:
    """A blockstore stand-in that keeps the interior nodes :func:`build_file` makes."""

    def __init__(self) -> None:
        self.nodes: list[tuple[CID, bytes]] = []

    def put(self, cid: CID, data: bytes, *, trusted: bool = False) -> None:
        self.nodes.append((cid, data))


class LeafPipe:
    """The early upload of one dirty file (see the module docstring)."""

    def __init__(
        self, rec: Record, sender: LeafSender,
        on_sent: Callable[[int], None] = lambda n: None,
        base_leaves: BaseLeaves | None = None,
        early: bool = True,
    ) -> None:
        self._base_leaves = base_leaves
        self._early = early  # False: send nothing before finish() (tests of finish alone)
        self._pipes_bytes = on_sent  # told how many bytes each call made durable early
        self.rec = rec
        self._sender = sender
        self._cond = threading.Condition()
        # Chunks whose current content is in no call and not on the hub: the new ones in
        # _fresh (file order; may hold stale entries), those sent before and written again in
        # _again (with the time of their last write: re-sent only once quiet).
        self._pending: set[int] = set()
        self._fresh: list[int] = []
        self._again: dict[int, float] = {}
        self._sent_once: set[int] = set()
        # One dict per call not answered yet: the chunks it carries (None until answered;
        # a write to a chunk removes it: its content in the call is stale).
        self._calls: list[dict[int, tuple[CID, int] | None]] = []
        self._sending = False  # a call is reading chunks (at most one: they go in order)
        self._done: dict[int, tuple[CID, int]] = {}  # durable on the hub
        self._draining = False
        self.failed = False  # a call failed: stop early uploads (the upload sends everything)

    # -- writers -------------------------------------------------------------------------------

    def touched(self, first: int, last: int) -> None:
        """Chunks ``first..last`` changed (called after the bytes are in the data file)."""
        now = time.monotonic()
        with self._cond:
            for idx in range(first, last + 1):
                if idx in self._sent_once:
                    # Re-inserted: _again stays in order of last write, oldest first.
                    self._again.pop(idx, None)
                    self._again[idx] = now  # (a hot chunk is not sent on every write)
                elif idx not in self._pending:
                    heapq.heappush(self._fresh, idx)
                self._pending.add(idx)
                for d in self._calls:
                    d.pop(idx, None)
                self._done.pop(idx, None)
            self._kick()

    def cut(self, size: int) -> None:
        """The file was truncated to ``size``: chunks from its boundary on are void."""
        first = size // CHUNK
        with self._cond:
            for d in (*self._calls, self._done, self._again):
                for idx in [i for i in d if i >= first]:
                    del d[idx]
            self._pending = {i for i in self._pending if i < first}
            self._sent_once = {i for i in self._sent_once if i < first}

    def _next(self, take: bool) -> int | None:
        """A chunk to send now (_cond held), taken off the queues when ``take``: the first new
        chunk once complete (sequential writers: at once), else one written again and left
        alone for QUIET seconds."""
        while self._fresh:
            idx = self._fresh[0]
            if idx not in self._pending or idx in self._sent_once:
                heapq.heappop(self._fresh)  # stale: sent or cut since it was queued
                continue
            if (idx + 1) * CHUNK > self.rec.size:
                break  # the first new chunk is still being filled
            if take:
                heapq.heappop(self._fresh)
                self._pending.discard(idx)
                self._sent_once.add(idx)
            return idx
        if self._again:
            idx, at = next(iter(self._again.items()))  # the one left alone the longest
            if at <= time.monotonic() - QUIET:
                if take:
                    del self._again[idx]
                    self._pending.discard(idx)
                return idx
        return None

    def _wait_next(self) -> int | None:
        """:meth:`_next`, waiting up to IDLE for one (_cond held); None: end the call."""
        # (Long enough for a chunk written again just now to become quiet.)
        deadline = time.monotonic() + IDLE + (QUIET if self._again else 0.0)
        while True:
            idx = self._next(take=True)
            if idx is not None or self._draining or self.failed:
                return idx
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            # Look again every POLL seconds (writes do not wake the sender: see POLL).
            self._cond.wait(min(left, POLL))

    def _kick(self) -> None:
        """Start a sender when none is reading (_cond held) and something may be sent soon.
        At most two calls are open: one sending while the previous waits for the hub's sync."""
        if self._sending:
            return  # the sender looks for new chunks every POLL seconds
        if (self._early and not (self.failed or self._draining) and len(self._calls) < 2
              and (self._again or self._next(take=False) is not None)):
            self._sending = True
            threading.Thread(target=self._run, daemon=True,
                             name=f"leafpipe-{self.rec.file_id[:8]}").start()

    # -- the sender ----------------------------------------------------------------------------

    def _run(self) -> None:
        with self._cond:
            # A call is opened only with a chunk to send: each call ends with a sync on the hub.
            first = self._wait_next()
            if first is None:
                self._sending = False
                self._cond.notify_all()
                return
            carried: dict[int, tuple[CID, int] | None] = {}
            self._calls.append(carried)
        got: dict[int, tuple[CID, int]] = {}
        ok = False
        try:
            got = self._sender.send(self.rec, self._chunks(carried, first))
            ok = True
        except Exception as exc:  # the upload at close sends everything: not fatal
            log.warning("early upload of %s stopped (%s); it will be uploaded whole",
                        self.rec.path, exc)
        with self._cond:
            self._calls.remove(carried)
            if not ok:
                self._sending = False  # (the generator may not have been closed)
                self.failed = True
                for idx in carried:
                    self._pending.add(idx)
            else:
                # What the call stored, of chunks no write touched since it was taken (the
                # others were removed from `carried` and are pending again).
                stored = {idx: got[idx] for idx in carried
                          if idx in got and got[idx][1] == CHUNK}
                for idx in carried.keys() - stored.keys():  # not stored whole: send again
                    self._pending.add(idx)
                    self._again[idx] = 0.0
                self._done.update(stored)
                self._pipes_bytes(sum(n for _cid, n in stored.values()))
            self._kick()
            self._cond.notify_all()

    def _chunks(
        self, carried: dict[int, tuple[CID, int] | None], idx: int | None
    ) -> Iterator[tuple[int, int] | None]:
        """The chunks of one call, from chunk ``idx`` on, each entered in ``carried``; a None
        before waiting for more (the sender passes on what it has). It ends after CALL_BYTES,
        when idle, or when draining, and then lets the next call start at once."""
        try:
            sent = 0
            while idx is not None:
                if self.rec.dropped:
                    return  # uploaded another way, or unlinked: its data file is gone
                with self._cond:
                    if idx not in self._pending:  # (else written again since it was taken)
                        carried[idx] = None
                yield idx, CHUNK
                sent += CHUNK
                if sent >= CALL_BYTES:
                    return
                with self._cond:
                    idx = self._next(take=True)
                if idx is None:
                    yield None
                    with self._cond:
                        idx = self._wait_next()
        finally:
            with self._cond:
                self._sending = False
                self._kick()

    # -- the upload ----------------------------------------------------------------------------

    def finish(
        self, progress: Callable[[int], None] = lambda n: None
    ) -> tuple[Imported, int, int]:
        """Send what is missing (the tail, chunks never sent, the tree's interior nodes) and
        return ``(root, size, bytes sent now)``: every block of the file is durable on the
        hub. ``progress`` is told the bytes of each leaf as it is accounted for (sent now,
        before, or kept from the base). Raises :class:`Unusable` for a base it cannot reuse,
        and what the ``PutBlocks`` call raises.

        The early upload resumes afterwards if the file keeps being written."""
        drain_start = time.monotonic()
        with self._cond:
            self._draining = True
            self._cond.notify_all()
            while self._calls or self._sending:
                self._cond.wait()
            done = dict(self._done)
            pending = set(self._pending)
            self._draining = False
        base: list[tuple[CID, int]] | None = None
        if self.rec.base_len:
            try:
                base = self._base_leaves(self.rec.base_cid) if self._base_leaves else None
            except HubUnavailable:
                raise
            except Exception as exc:  # a base we cannot walk: push whole, as before
                raise Unusable(f"the leaves of {self.rec.base_cid}: {exc}") from exc
            if base is None or any(n != CHUNK for _cid, n in base[:-1]):
                raise Unusable(f"{self.rec.base_cid} is not made of {CHUNK}-byte raw leaves")
        size = self.rec.size
        count = max(1, -(-size // CHUNK))
        sizes = [min(CHUNK, size - i * CHUNK) for i in range(count)]
        leaves: list[tuple[CID, int] | None] = []
        todo: list[tuple[int, int]] = []  # (index, length) of the leaves to send now
        local: set[int] = set()  # ... of those, the ones the data file holds whole
        for idx, n in enumerate(sizes):
            have = done.get(idx)
            if have is not None and have[1] == n and idx not in pending:
                leaves.append(have)
                continue
            with self.rec.lock:  # (a chunk's state and base_len move under it)
                written = self.rec.has_chunk(idx)
                unchanged = not written and idx * CHUNK + n <= self.rec.base_len
                whole_here = written or not self.rec.base_len  # (else base bytes to overlay)
            if unchanged and base is not None and idx < len(base) and base[idx][1] == n:
                leaves.append(base[idx])  # the hub holds it: part of the bucket's version
                continue
            leaves.append(None)
            todo.append((idx, n))
            if whole_here and n:
                local.add(idx)
        progress(sum(leaf[1] for leaf in leaves if leaf is not None))
        with self._cond:  # a write from now on makes them pending again
            for idx, _n in todo:
                self._pending.discard(idx)
                self._again.pop(idx, None)
                self._sent_once.add(idx)
        started = time.monotonic()
        sent: dict[int, tuple[CID, int]] = {}
        for i in range(0, len(todo), CALL_BYTES // CHUNK):  # (progress, and syncs, per call)
            batch = todo[i : i + CALL_BYTES // CHUNK]
            got = self._sender.send(self.rec, [it for it in batch if it[0] in local])
            # What the data file did not hold whole (a hole at its end): read and sent here.
            short = [(idx, n) for idx, n in batch if got.get(idx, (None, -1))[1] != n]
            got.update(self._sender.send(self.rec, short, local=False))
            for idx, n in batch:
                if got.get(idx, (None, -1))[1] != n:
                    raise Unusable(f"chunk {idx} changed size while it was sent")
                sent[idx] = leaves[idx] = got[idx]
                progress(n)
        nodes = _Blocks()
        tree = build_file([leaf for leaf in leaves if leaf is not None], nodes)
        self._sender.put_blocks((str(cid), block) for cid, block in nodes.nodes)
        log.info("%s: %d of %d leaves were on the hub already; the rest and the tree sent in "
                 "%.2f s (draining the early upload took %.2f s)", self.rec.path,
                 count - len(sent), count, time.monotonic() - started, started - drain_start)
        with self._cond:
            for idx, leaf in sent.items():
                if idx not in self._pending:  # (a write since it was read made it pending)
                    self._done[idx] = leaf
        return tree, size, sum(n for _cid, n in sent.values())


class LeafPipes:
    """The pipes of a mount's dirty files, by record."""

    def __init__(
        self, store: DirtyStore, put_blocks: PutBlocks, minimum: int = PIPE_MIN,
        base_leaves: BaseLeaves | None = None,
        early: bool = True,
        ingest: Ingest | None = None,
    ) -> None:
        """``minimum``: the size at which a file gets a pipe (0: never); ``base_leaves``
        lists a bucket file's leaves (without it, changed files are pushed whole); ``early``
        False sends nothing before the upload (deltas only); ``ingest``: the hub's local
        ingest, tried before ``put_blocks`` for leaves (see :mod:`.leafsend`)."""
        self._base_leaves = base_leaves
        self._early = early
        self.sender = LeafSender(store, put_blocks, ingest)
        self.minimum = minimum
        self._lock = threading.Lock()
        self._pipes: dict[str, LeafPipe] = {}
        self.early_bytes = 0  # leaf bytes made durable on the hub while files were written

    def _count(self, n: int) -> None:
        with self._lock:
            self.early_bytes += n

    def wrote(self, rec: Record, offset: int, length: int) -> None:
        """``length`` bytes were written at ``offset`` (after ``DirtyStore.write``, under the
        record's lock). Cheap: called for every write, on the trio loop for small ones."""
        if length <= 0 or not self.minimum:
            return
        pipe = self._pipes.get(rec.file_id)
        if pipe is None:
            if not self.minimum <= rec.size <= PIPE_MAX:
                return
            with self._lock:
                pipe = self._pipes.get(rec.file_id)
                if pipe is None:
                    pipe = self._pipes[rec.file_id] = LeafPipe(
                        rec, self.sender, self._count, self._base_leaves,
                        self._early)
                    # Every chunk written so far is due, not only this write's.
                    for start, stop in list(rec.chunks):
                        pipe.touched(start, stop - 1)
                    return
        elif rec.size > PIPE_MAX:
            self.drop(rec)  # too big to keep track of: pushed whole
            return
        pipe.touched(offset // CHUNK, (offset + length - 1) // CHUNK)

    def truncated(self, rec: Record, size: int) -> None:
        """The record was truncated to ``size`` (a file with base bytes is never piped)."""
        pipe = self._pipes.get(rec.file_id)
        if pipe is not None:
            pipe.cut(size)

    def get(self, rec: Record) -> LeafPipe | None:
        """The pipe of ``rec`` if it has one that can complete its upload."""
        pipe = self._pipes.get(rec.file_id)
        if pipe is None or pipe.failed:
            return None
        return pipe

    def drop(self, rec: Record) -> None:
        """``rec`` is clean or gone: forget its pipe (a running call ends on its own)."""
        with self._lock:
            self._pipes.pop(rec.file_id, None)

    def __len__(self) -> int:
        return len(self._pipes)
