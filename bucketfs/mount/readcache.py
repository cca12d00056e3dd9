"""Reading remote file content: verified blocks, fetched only as needed, with read-ahead.

A read of ``[offset, offset+length)`` of the file DAG ``cid`` goes through
:class:`~bucketfs.ipfs.reader.FileReader` over a :class:`~.blockcache.RemoteBlockstore`, so only
the blocks the range needs are fetched, and every block is verified against its CID. Content is
addressed by CID, so nothing cached ever goes stale — it is only evicted (LRU, ``cache_size``).

Sequential readers get read-ahead: the leaf CIDs of the next ``readahead`` chunks are found from
the (cached) internal nodes and fetched in one ``GetBlocks`` call in the background, refilled
when half of the window is used — the hub sees few large calls, not one per 256 KiB leaf.

Files this mount uploads are chunked exactly as the hub's importer chunks them (256 KiB raw
leaves), so :meth:`ReadCache.adopt` files the uploaded chunks under their leaf CIDs: reading
back what this mount wrote fetches only the small internal nodes from the hub. A bigger file
written here from scratch is kept whole instead, by hard link (:mod:`.filecopies`): a quarter
of ``size_limit`` holds such copies, the rest the blocks.

Lock rule: ``_lock`` guards only the in-memory dicts; no network or disk I/O under it.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bucketfs.ipfs.cid import CID, RAW
from bucketfs.ipfs.reader import FileReader
from bucketfs.mount.blockcache import RemoteBlockstore
from bucketfs.mount.filecopies import FileCopies
from bucketfs.mount.remote import Remote

log = logging.getLogger(__name__)

CHUNK = 262144
READERS = 16  # open FileReaders (each caches up to 4 parsed nodes: at most 16 MiB)


class ReadCache:
    """Range reads of remote file DAGs through a verified, bounded block cache."""

    def __init__(
        self, remote: Remote, directory: Path, size_limit: int, readahead: int = 16
    ) -> None:
        copies = size_limit // 4
        self.blocks = RemoteBlockstore(remote, directory, size_limit - copies)
        self.copies = FileCopies(directory.with_name(directory.name + "-copies"), copies)
        self._readahead = readahead
        self._lock = threading.Lock()
        self._readers: collections.OrderedDict[str, FileReader] = collections.OrderedDict()
        self._ahead: dict[str, int] = {}  # per CID: the last chunk read-ahead has scheduled
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="readahead")

    @property
    def fetched_bytes(self) -> int:
        """Verified bytes received from the hub (for status and tests)."""
        return self.blocks.fetched_bytes

    def close(self) -> None:
        """Stop read-ahead and close the disk cache."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.blocks.close()

    def volume(self) -> int:
        """Bytes the disk cache holds."""
        return self.blocks.volume() + self.copies.volume()

    def read(self, cid: str, size: int, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes at ``offset`` of the file ``cid`` (fewer at EOF)."""
        local = self.read_local(cid, size, offset, length)
        if local is not None:
            return local
        return self._reader(cid).read(offset, min(length, size - offset))

    def read_local(self, cid: str, size: int, offset: int, length: int) -> bytes | None:
        """:meth:`read` when a whole-file copy has the bytes (one ``pread``), else None."""
        if length <= 0 or offset >= size:
            return b""
        return self.copies.read(cid, size, offset, length)

    def keep_copy(self, cid: str, data_file: str | None, size: int) -> None:
        """Keep the frozen ``data_file`` of a file just uploaded as ``cid`` (see
        :mod:`.filecopies`); None (not whole) keeps nothing."""
        if data_file is not None:
            self.copies.keep(cid, data_file, size)

    def prefetch(self, cid: str, size: int, offset: int) -> None:
        """Sequential read-ahead from byte ``offset`` (see the module docstring)."""
        nchunks = (size + CHUNK - 1) // CHUNK
        idx = offset // CHUNK
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
        self._pool.submit(self._prefetch, cid, start * CHUNK, stop * CHUNK)

    def adopt(self, cid: str, chunks: Iterator[bytes], done: Callable[[], None]) -> None:
        """In the background, cache the chunks of content we just uploaded as the raw leaves
        the hub made of them, then call ``done``."""

        def run() -> None:
            try:
                for chunk in chunks:
                    # Keyed by its own hash: correct whatever the hub's chunking was.
                    self.blocks.put(CID.of_raw(chunk), chunk, trusted=True)
            except Exception:  # only a cache warm-up: the hub has the data
                log.warning("could not keep uploaded %s in the read cache", cid, exc_info=True)
            finally:
                done()

        self._pool.submit(run)

    def adopt_many(self, files: list[Iterator[bytes]], done: Callable[[], None]) -> None:
        """:meth:`adopt` for the small files of one batch upload: all their chunks in one
        cache transaction, then ``done`` once (bounded: a batch holds at most a few MiB)."""

        def blocks() -> Iterator[tuple[CID, bytes]]:
            for chunks in files:
                for chunk in chunks:
                    yield CID.of_raw(chunk), chunk

        def run() -> None:
            try:
                self.blocks.put_many(blocks())
            except Exception:  # only a cache warm-up: the hub has the data
                log.warning("could not keep %d uploaded files in the read cache", len(files),
                            exc_info=True)
            finally:
                done()

        self._pool.submit(run)

    def raw_leaves(self, cid: str) -> list[tuple[CID, int]] | None:
        """The raw leaves of file ``cid`` in order, or None (see ``FileReader.raw_leaves``);
        its interior nodes are fetched and verified, its leaves are not."""
        return self._reader(cid).raw_leaves()

    # -- internals -----------------------------------------------------------------------------

    def _reader(self, cid: str) -> FileReader:
        with self._lock:
            r = self._readers.get(cid)
            if r is not None:
                self._readers.move_to_end(cid)
                return r
        r = FileReader(self.blocks, CID.decode(cid), cache_blocks=4)
        with self._lock:
            self._readers[cid] = r
            while len(self._readers) > READERS:
                self._readers.popitem(last=False)
        return r

    def _prefetch(self, cid: str, start: int, stop: int) -> None:
        try:
            leaves = _leaves(self._reader(cid), start, stop)
            missing = [c for c in leaves if not self.blocks.has(c)]
            if missing:
                self.blocks.fetch(missing)
        except Exception:  # read-ahead is a hint: log, and let the real read fetch
            log.warning("read-ahead of %s [%d, %d) failed", cid, start, stop, exc_info=True)


def _leaves(reader: FileReader, start: int, stop: int) -> list[CID]:
    """CIDs of the raw leaves under ``[start, stop)``; internal nodes are fetched (small),
    raw leaves are not."""
    out: list[CID] = []

    def walk(cid: CID, lo_base: int, node: tuple) -> None:
        _inline, children, sizes, _total = node
        pos = lo_base + len(_inline)
        for child, size in zip(children, sizes, strict=True):
            lo, hi = pos, pos + size
            pos = hi
            if hi <= start:
                continue
            if lo >= stop:
                break
            if child.codec == RAW:
                out.append(child)
            else:
                walk(child, lo, reader._node(child))  # noqa: SLF001 - same project, parsed cache

    walk(reader.cid, 0, reader._node(reader.cid))  # noqa: SLF001
    return out
