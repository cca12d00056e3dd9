"""A remote blockstore: the ``bucketfs.ipfs`` Blockstore protocol over ``FS.GetBlocks``.

Every block fetched from the hub is verified against its CID before anyone sees it, then kept
in a size-bounded LRU ``diskcache`` keyed by CID (content-addressed: never stale) and in a small
memory LRU. :class:`~bucketfs.ipfs.reader.FileReader` on top of it reads exactly the blocks a
byte range needs. :meth:`RemoteBlockstore.fetch` gets many blocks in one call (read-ahead).

Lock rule: ``_lock`` guards only the in-memory dicts; no network or disk I/O under it.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

import diskcache

from bucketfs.client import errors as ce
from bucketfs.ipfs.blockstore import BlockCorrupt, BlockNotFound
from bucketfs.ipfs.cid import CID
from bucketfs.mount.remote import Remote

log = logging.getLogger(__name__)

MEMORY_BLOCKS = 64  # 16 MiB of 256 KiB leaves


class RemoteBlockstore:
    """Blocks of one bucket's hub, cached and verified."""

    def __init__(self, remote: Remote, directory: Path, size_limit: int) -> None:
        self._remote = remote
        self._disk = diskcache.Cache(
            str(directory), size_limit=size_limit, eviction_policy="least-recently-used",
            cull_limit=64,
        )
        self._lock = threading.Lock()
        self._mem: collections.OrderedDict[str, bytes] = collections.OrderedDict()
        self._inflight: dict[str, threading.Event] = {}
        self.fetched_bytes = 0  # verified bytes received from the hub

    def close(self) -> None:
        """Close the disk cache."""
        self._disk.close()

    def volume(self) -> int:
        """Bytes on disk."""
        return self._disk.volume()

    # -- the Blockstore protocol ---------------------------------------------------------------

    def has(self, cid: CID) -> bool:
        """Whether the block is cached locally (never asks the hub)."""
        key = str(cid)
        with self._lock:
            if key in self._mem:
                return True
        return key in self._disk

    def get(self, cid: CID) -> bytes:
        """The block, from memory, disk or the hub (verified); BlockNotFound if the hub lacks it."""
        key = str(cid)
        for _attempt in range(3):
            with self._lock:
                data = self._mem.get(key)
                if data is not None:
                    self._mem.move_to_end(key)
                    return data
                waiting = self._inflight.get(key)
            if waiting is not None:
                waiting.wait(timeout=120)
                continue
            data = self._disk.get(key)
            if data is not None:
                self._remember(key, data)
                return data
            self.fetch([cid])
        with self._lock:
            data = self._mem.get(key)
        if data is None:
            data = self._disk.get(key)
        if data is None:
            raise BlockNotFound(cid)
        return data

    def put(self, cid: CID, data: bytes, *, trusted: bool = False) -> None:
        """Cache a block we produced ourselves (verified unless ``trusted``)."""
        if not trusted and not cid.verify(data):
            raise BlockCorrupt(cid)
        self._disk.set(str(cid), data)

    def put_many(self, blocks: Iterable[tuple[CID, bytes]]) -> None:
        """Cache blocks we produced ourselves (trusted), in ONE SQLite transaction."""
        with self._disk.transact(retry=True):
            for cid, data in blocks:
                self._disk.set(str(cid), data)

    def delete(self, cid: CID) -> None:
        """Drop a block from the cache."""
        with self._lock:
            self._mem.pop(str(cid), None)
        self._disk.delete(str(cid))

    def iter_cids(self) -> Iterator[CID]:
        """The CIDs cached on disk."""
        for key in self._disk.iterkeys():
            yield CID.decode(key)

    # -- batch fetch ---------------------------------------------------------------------------

    def fetch(self, cids: Iterable[CID]) -> None:
        """Fetch the given blocks that are not cached, in one GetBlocks call; verify each."""
        wanted: dict[str, threading.Event] = {}
        with self._lock:
            for cid in cids:
                key = str(cid)
                if key in self._mem or key in self._inflight or key in wanted:
                    continue
                wanted[key] = threading.Event()
        wanted = {k: ev for k, ev in wanted.items() if k not in self._disk}
        if not wanted:
            return
        with self._lock:
            for k, ev in list(wanted.items()):
                if k in self._inflight:
                    del wanted[k]
                else:
                    self._inflight[k] = ev
        try:
            if wanted:
                self._fetch(list(wanted))
        finally:
            with self._lock:
                for k, ev in wanted.items():
                    self._inflight.pop(k, None)
                    ev.set()

    def _fetch(self, keys: list[str]) -> None:
        try:
            for key, data in self._remote.get_blocks(keys):
                cid = CID.decode(key)
                if not cid.verify(data):
                    # Never cache or return bytes that do not hash to their name.
                    raise BlockCorrupt(cid, "the hub sent a block that does not match its CID")
                self.fetched_bytes += len(data)
                self._remember(key, data)
                with self._lock:
                    ev = self._inflight.pop(key, None)
                if ev is not None:
                    ev.set()
                self._disk.set(key, data)
        except ce.NotFound as exc:
            raise BlockNotFound(CID.decode(keys[0])) from exc

    def _remember(self, key: str, data: bytes) -> None:
        with self._lock:
            self._mem[key] = data
            self._mem.move_to_end(key)
            while len(self._mem) > MEMORY_BLOCKS:
                self._mem.popitem(last=False)
