"""Reading remote file content: a content-addressed chunk cache with read-ahead.

File content is addressed by the file DAG's CID, which never changes meaning, so cached data is
never stale and needs no invalidation — only eviction. Data is cached in 256 KiB chunks aligned
to the UnixFS chunk size (``(cid, index)`` → bytes) in a size-bounded LRU ``diskcache``, with a
few recent chunks in memory so that two 128 KiB kernel reads of one chunk cost one disk read.

A miss fetches only the chunks the read needs, with one ``FS.ReadFile`` range call. When a
handle reads sequentially, the next ``readahead`` chunks are fetched in the background (one
range call), so a streaming reader rarely waits for the hub. Concurrent requests for the same
chunk share one fetch.

Lock rule: ``_lock`` guards only the in-memory dicts; no network or disk I/O happens under it.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import diskcache

from bucketfs.mount.remote import Remote

log = logging.getLogger(__name__)

CHUNK = 262144
MEMORY_CHUNKS = 64  # 16 MiB of hot chunks in memory (a read-ahead window fits 4 times)


class ReadCache:
    """Chunked reads of remote file DAGs through a bounded LRU disk cache."""

    def __init__(
        self, remote: Remote, directory: Path, size_limit: int, readahead: int = 16
    ) -> None:
        self._remote = remote
        self._disk = diskcache.Cache(
            str(directory),
            size_limit=size_limit,
            eviction_policy="least-recently-used",
            cull_limit=64,
        )
        self._readahead = readahead
        self._lock = threading.Lock()
        self._mem: collections.OrderedDict[tuple[str, int], bytes] = collections.OrderedDict()
        self._inflight: dict[tuple[str, int], threading.Event] = {}
        self._ahead: dict[str, int] = {}  # per CID: the last chunk read-ahead has scheduled
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="readahead")
        self.fetched_bytes = 0  # bytes received from the hub (for status and tests)

    def close(self) -> None:
        """Stop read-ahead and close the disk cache."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._disk.close()

    def volume(self) -> int:
        """Bytes the disk cache holds."""
        return self._disk.volume()

    def read(self, cid: str, size: int, offset: int, length: int) -> bytes:
        """``length`` bytes at ``offset`` of the file ``cid`` whose logical size is ``size``."""
        end = min(size, offset + length)
        if offset >= end:
            return b""
        first, last = offset // CHUNK, (end - 1) // CHUNK
        parts = []
        for idx in range(first, last + 1):
            data = self.chunk(cid, size, idx)
            lo = max(offset, idx * CHUNK) - idx * CHUNK
            hi = min(end, (idx + 1) * CHUNK) - idx * CHUNK
            piece = data[lo:hi]
            if len(piece) < hi - lo:  # a short chunk from the hub: never return garbage
                piece += bytes(hi - lo - len(piece))
            parts.append(piece)
        return b"".join(parts)

    def prefetch(self, cid: str, size: int, after: int) -> None:
        """Sequential read-ahead: keep ``readahead`` chunks past byte ``after`` on the way.

        The window is refilled in one range call when less than half of it is left, so the hub
        sees few large reads instead of one call per chunk (per-call overhead dominated).
        """
        nchunks = (size + CHUNK - 1) // CHUNK
        idx = after // CHUNK
        with self._lock:
            ahead = self._ahead.get(cid, -1)
            if ahead >= nchunks - 1 or ahead - idx > self._readahead // 2:
                return
            start = max(ahead + 1, idx + 1)
            stop = min(nchunks, idx + 1 + self._readahead)
            if start >= stop:
                return
            self._ahead[cid] = stop - 1
            if len(self._ahead) > 1024:
                self._ahead.clear()  # a hint table, not state: bounded by forgetting
        self._pool.submit(self._prefetch, cid, size, start, stop)

    def chunk(self, cid: str, size: int, idx: int) -> bytes:
        """Chunk ``idx`` of ``cid``, from memory, disk or the hub (in that order)."""
        key = (cid, idx)
        while True:
            with self._lock:
                data = self._mem.get(key)
                if data is not None:
                    self._mem.move_to_end(key)
                    return data
                waiting = self._inflight.get(key)
            if waiting is not None:
                waiting.wait(timeout=120)
                # The fetch may have failed; loop and fetch ourselves if it is still missing.
                with self._lock:
                    if key in self._mem:
                        continue
            data = self._disk.get(_dkey(cid, idx))
            if data is not None:
                self._remember(key, data)
                return data
            self._fetch(cid, size, idx, idx + 1)
            with self._lock:
                data = self._mem.get(key)
            if data is not None:
                return data
            raise OSError(5, f"chunk {idx} of {cid} missing after fetch")

    def adopt(self, cid: str, chunks: Iterator[bytes], done: Callable[[], None]) -> None:
        """In the background, file the chunks of content we just uploaded under its CID (so
        reading back what this mount wrote never goes to the hub), then call ``done``."""

        def run() -> None:
            try:
                for idx, data in enumerate(chunks):
                    self._disk.set(_dkey(cid, idx), data)
            except Exception:  # only a cache warm-up: the hub has the data
                log.warning("could not keep uploaded %s in the read cache", cid, exc_info=True)
            finally:
                done()

        self._pool.submit(run)

    # -- internals -----------------------------------------------------------------------------

    def _prefetch(self, cid: str, size: int, start: int, stop: int) -> None:
        try:
            # Skip chunks already on disk; fetch from the first missing one.
            while start < stop and _dkey(cid, start) in self._disk:
                start += 1
            if start < stop:
                self._fetch(cid, size, start, stop)
        except Exception:  # read-ahead is a hint: log, and let the real read retry
            log.warning("read-ahead of %s chunks %d-%d failed", cid, start, stop, exc_info=True)

    def _fetch(self, cid: str, size: int, start: int, stop: int) -> None:
        """Fetch chunks [start, stop) with one range call; store each one as it completes."""
        events: dict[int, threading.Event] = {}
        with self._lock:
            for idx in range(start, stop):
                if (cid, idx) not in self._inflight:
                    ev = threading.Event()
                    self._inflight[(cid, idx)] = ev
                    events[idx] = ev
        if not events:
            return
        lo, hi = min(events), max(events) + 1
        try:
            buf = bytearray()
            idx = lo
            pos = lo * CHUNK
            for off, data in self._remote.read_file(cid, pos, (hi - lo) * CHUNK):
                if off != pos + len(buf):
                    raise OSError(5, f"hub sent offset {off}, expected {pos + len(buf)}")
                buf += data
                self.fetched_bytes += len(data)
                while len(buf) >= CHUNK and idx < hi:
                    self._store(cid, idx, bytes(buf[:CHUNK]), events)
                    del buf[:CHUNK]
                    pos += CHUNK
                    idx += 1
            # The last chunk of the file is short; anything else short means EOF moved.
            if idx < hi and (buf or idx * CHUNK < size):
                self._store(cid, idx, bytes(buf), events)
                idx += 1
        finally:
            with self._lock:
                for i, ev in events.items():
                    self._inflight.pop((cid, i), None)
                    ev.set()

    def _store(self, cid: str, idx: int, data: bytes, events: dict[int, threading.Event]) -> None:
        # Memory first and wake the waiting reader; the disk copy is for later re-reads.
        self._remember((cid, idx), data)
        ev = events.get(idx)
        if ev is not None:
            with self._lock:
                self._inflight.pop((cid, idx), None)
            ev.set()
        self._disk.set(_dkey(cid, idx), data)

    def _remember(self, key: tuple[str, int], data: bytes) -> None:
        with self._lock:
            self._mem[key] = data
            self._mem.move_to_end(key)
            while len(self._mem) > MEMORY_CHUNKS:
                self._mem.popitem(last=False)


def _dkey(cid: str, idx: int) -> str:
    return f"{cid}:{idx}"
