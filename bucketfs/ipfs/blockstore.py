"""Block storage: the :class:`Blockstore` protocol and three implementations.

- :class:`FSBlockstore`: one file per block on disk (layout and fsync policy in
  ``docs/blockstore.md``).
- :class:`MemoryBlockstore`: a dict, for tests and small tools.
- :class:`NullBlockstore`: discards everything (``bucketfs cid`` hashes without storing).

Blocks are keyed by their CIDv1 form, so a block put as CIDv0 is found under its CIDv1 and
vice versa (the bytes are the same). ``get`` always re-hashes and never returns bytes that do
not match the CID.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Protocol, runtime_checkable

from bucketfs.ipfs.cid import CID, IDENTITY, InvalidCID

log = logging.getLogger(__name__)


class BlockstoreError(Exception):
    """Base class of blockstore failures."""


class BlockNotFound(BlockstoreError, KeyError):
    """The store has no block for this CID."""

    def __init__(self, cid: CID) -> None:
        super().__init__(f"block not found: {cid}")
        self.cid = cid

    def __str__(self) -> str:
        return str(self.args[0])


class BlockCorrupt(BlockstoreError):
    """Bytes stored under a CID do not hash to it. Nothing from the block is returned."""

    def __init__(self, cid: CID, detail: str = "") -> None:
        msg = f"block {cid} is corrupt: its bytes do not match the CID"
        if detail:
            msg += f" ({detail})"
        super().__init__(msg)
        self.cid = cid


@runtime_checkable
class Blockstore(Protocol):
    """What every block store offers. ``put`` verifies the bytes unless ``trusted=True``."""

    def has(self, cid: CID) -> bool:
        """True if the block is stored."""
        ...

    def get(self, cid: CID) -> bytes:
        """The block's bytes, verified; raises BlockNotFound / BlockCorrupt."""
        ...

    def put(self, cid: CID, data: bytes, *, trusted: bool = False) -> None:
        """Store a block; a no-op if present. Raises BlockCorrupt if data does not match."""
        ...

    def delete(self, cid: CID) -> None:
        """Remove a block; a no-op if absent."""
        ...

    def iter_cids(self) -> Iterator[CID]:
        """Every stored block's CID (CIDv1 form)."""
        ...


def _key(cid: CID) -> CID:
    return cid.to_v1()


def _check(cid: CID, data: bytes) -> None:
    if not cid.verify(data):
        raise BlockCorrupt(cid, "refusing to store bytes that do not hash to the CID")


class MemoryBlockstore:
    """Blocks in a dict, with the time each was last put (for GC's grace period)."""

    def __init__(self) -> None:
        self._blocks: dict[CID, bytes] = {}
        self._times: dict[CID, float] = {}
        self._lock = threading.Lock()

    def has(self, cid: CID) -> bool:
        """True if the block is stored."""
        return cid.multihash[0] == IDENTITY or _key(cid) in self._blocks

    def get(self, cid: CID) -> bytes:
        """The verified block bytes."""
        if cid.multihash[0] == IDENTITY:
            return cid.digest
        try:
            data = self._blocks[_key(cid)]
        except KeyError:
            raise BlockNotFound(cid) from None
        if not cid.verify(data):
            raise BlockCorrupt(cid)
        return data

    def put(self, cid: CID, data: bytes, *, trusted: bool = False) -> None:
        """Store a block (verified unless ``trusted``)."""
        if not trusted:
            _check(cid, data)
        if cid.multihash[0] == IDENTITY:
            return
        with self._lock:
            key = _key(cid)
            self._blocks.setdefault(key, bytes(data))
            self._times[key] = time.time()

    def delete(self, cid: CID) -> None:
        """Remove a block if present."""
        with self._lock:
            self._blocks.pop(_key(cid), None)
            self._times.pop(_key(cid), None)

    def iter_cids(self) -> Iterator[CID]:
        """A snapshot of the stored CIDs."""
        with self._lock:
            keys = list(self._blocks)
        return iter(keys)

    def block_size(self, cid: CID) -> int:
        """Stored length of a block without reading or verifying it."""
        try:
            return len(self._blocks[_key(cid)])
        except KeyError:
            raise BlockNotFound(cid) from None

    def put_time(self, cid: CID) -> float | None:
        """When the block was last put (``None`` if absent)."""
        return self._times.get(_key(cid))

    def corrupt_for_test(self, cid: CID, data: bytes) -> None:
        """Overwrite a block's bytes without checking (tests of corruption handling)."""
        self._blocks[_key(cid)] = data

    def __len__(self) -> int:
        return len(self._blocks)


class NullBlockstore:
    """Accepts and discards every block: used to compute CIDs without storing anything."""

    def has(self, cid: CID) -> bool:
        """Always False: nothing is kept."""
        return False

    def get(self, cid: CID) -> bytes:
        """Always raises BlockNotFound (identity CIDs excepted)."""
        if cid.multihash[0] == IDENTITY:
            return cid.digest
        raise BlockNotFound(cid)

    def put(self, cid: CID, data: bytes, *, trusted: bool = False) -> None:
        """Discard the block."""

    def delete(self, cid: CID) -> None:
        """Nothing to delete."""

    def iter_cids(self) -> Iterator[CID]:
        """Empty."""
        return iter(())


class FSBlockstore:
    """One file per block under ``root/blocks/<shard>/<cidv1>``.

    ``<shard>`` is the next-to-last two characters of the base32 CIDv1 (Kubo flatfs
    ``next-to-last/2``), giving up to 1024 evenly filled directories. Writes go to a temp file
    in the shard directory and are renamed into place, so a reader never sees a partial block.

    fsync policy (``fsync=True``): each block's file data is fsynced before its rename, so a
    block that is visible after a crash has all its bytes. The directory entries are made
    durable in batch by :meth:`sync`, which fsyncs every shard directory touched since the last
    call: callers invoke it once at a commit point (for instance before publishing a new root)
    instead of paying a directory fsync per block. ``fsync=False`` skips both (tests, scratch
    stores, benchmarks of the hashing path).
    """

    _TMP = ".tmp-"

    def __init__(self, root: Path | str, fsync: bool = True) -> None:
        self.root = Path(root)
        self.blocks_dir = self.root / "blocks"
        self.fsync = fsync
        self.blocks_dir.mkdir(parents=True, exist_ok=True)
        self._dirty: set[Path] = set()
        self._made: set[str] = set()
        self._lock = threading.Lock()
        self._counter = 0

    def path_for(self, cid: CID) -> Path:
        """The file that holds (or would hold) this block."""
        name = str(_key(cid))
        return self.blocks_dir / name[-3:-1] / name

    def has(self, cid: CID) -> bool:
        """True if the block file exists."""
        if cid.multihash[0] == IDENTITY:
            return True
        return self.path_for(cid).exists()

    def get(self, cid: CID) -> bytes:
        """Read and verify the block; raises BlockNotFound / BlockCorrupt naming the CID."""
        if cid.multihash[0] == IDENTITY:
            return cid.digest
        path = self.path_for(cid)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise BlockNotFound(cid) from None
        if not cid.verify(data):
            log.error("corrupt block %s at %s", cid, path)
            raise BlockCorrupt(cid, f"file {path}")
        return data

    def _tmp_name(self, shard: Path) -> Path:
        with self._lock:
            self._counter += 1
            n = self._counter
        return shard / f"{self._TMP}{os.getpid()}-{threading.get_ident()}-{n}"

    def put(self, cid: CID, data: bytes | memoryview, *, trusted: bool = False) -> None:
        """Store a block atomically; a present block only gets its mtime refreshed.

        Refreshing the mtime is what keeps a concurrent GC from sweeping a block that a new
        DAG just started to reference again (see :mod:`bucketfs.ipfs.gc`).
        """
        if not trusted:
            _check(cid, data)
        if cid.multihash[0] == IDENTITY:
            return
        path = self.path_for(cid)
        try:
            os.utime(path)
            return
        except FileNotFoundError:
            pass
        shard = path.parent
        if shard.name not in self._made:
            shard.mkdir(exist_ok=True)
            self._made.add(shard.name)
        tmp = self._tmp_name(shard)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if self.fsync:
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            _unlink_quiet(tmp)
            raise
        os.close(fd)
        try:
            os.replace(tmp, path)
        except BaseException:
            _unlink_quiet(tmp)
            raise
        if self.fsync:
            with self._lock:
                self._dirty.add(shard)

    def sync(self) -> None:
        """fsync every shard directory written since the last call (and the blocks dir)."""
        with self._lock:
            dirty, self._dirty = self._dirty, set()
        if not dirty:
            return
        for d in sorted(dirty) + [self.blocks_dir]:
            fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def delete(self, cid: CID) -> None:
        """Remove the block file if present."""
        _unlink_quiet(self.path_for(cid))

    def iter_cids(self) -> Iterator[CID]:
        """Walk the shard directories; temp files and foreign names are skipped (logged)."""
        for shard in sorted(os.scandir(self.blocks_dir), key=lambda e: e.name):
            if not shard.is_dir():
                continue
            for entry in os.scandir(shard.path):
                if entry.name.startswith(self._TMP):
                    continue
                try:
                    yield CID.decode(entry.name)
                except InvalidCID:
                    log.warning("ignoring stray file in blockstore: %s", entry.path)

    def block_size(self, cid: CID) -> int:
        """Stored length of a block (one stat, no read, no verification)."""
        try:
            return self.path_for(cid).stat().st_size
        except FileNotFoundError:
            raise BlockNotFound(cid) from None

    def put_time(self, cid: CID) -> float | None:
        """mtime of the block file: when it was last written or re-put."""
        try:
            return self.path_for(cid).stat().st_mtime
        except FileNotFoundError:
            return None

    def delete_if_older(self, cid: CID, cutoff: float) -> int:
        """Delete the block unless it was put at or after ``cutoff``; returns bytes freed.

        The file is first renamed aside and its mtime checked again, so a ``put`` racing
        with the sweep either refreshes the mtime before the rename (the block is restored)
        or finds no file and writes a fresh copy.
        """
        path = self.path_for(cid)
        aside = self._tmp_name(path.parent)
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            return 0
        st = os.stat(aside)
        if st.st_mtime >= cutoff:
            os.replace(aside, path)
            return 0
        os.unlink(aside)
        return st.st_size

    def clean_temp(self, older_than: float = 3600.0) -> int:
        """Remove temp files left by crashed writers; returns how many were removed."""
        cutoff = time.time() - older_than
        removed = 0
        for shard in os.scandir(self.blocks_dir):
            if not shard.is_dir():
                continue
            for entry in os.scandir(shard.path):
                if entry.name.startswith(self._TMP) and entry.stat().st_mtime < cutoff:
                    _unlink_quiet(Path(entry.path))
                    removed += 1
        return removed


def _unlink_quiet(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class WriteBehind:
    """Runs a store's ``put`` calls on worker threads so hashing overlaps disk writes.

    The importer hashes on its own thread while up to ``workers`` threads write and fsync
    earlier blocks (both release the GIL). At most ``max_pending`` blocks wait in memory, so
    memory stays bounded. :meth:`close` waits for every write and re-raises the first error;
    until it returns, a block handed to ``put`` may not be in the store yet.
    """

    def __init__(self, store: Blockstore, workers: int = 2, max_pending: int = 8) -> None:
        self.store = store
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="blockwrite")
        self._slots = threading.BoundedSemaphore(max_pending)
        self._error: BaseException | None = None

    def _run(self, cid: CID, data: bytes, trusted: bool) -> None:
        try:
            self.store.put(cid, data, trusted=trusted)
        except BaseException as exc:
            log.error("background write of block %s failed: %s", cid, exc)
            if self._error is None:
                self._error = exc
        finally:
            self._slots.release()

    def _raw(self, data: bytes) -> CID:
        try:
            cid = CID.of_raw(data)
            self.store.put(cid, data, trusted=True)
            return cid
        finally:
            self._slots.release()

    def put_raw(self, data: bytes) -> Future[CID]:
        """Queue hashing *and* writing of a raw block; the future gives its CID.

        Hashing on the workers too lets two cores share the SHA-256 work of a large import.
        """
        if self._error is not None:
            raise self._error
        self._slots.acquire()
        return self._pool.submit(self._raw, data)

    def put(self, cid: CID, data: bytes, *, trusted: bool = False) -> None:
        """Queue a write (blocks while ``max_pending`` writes are outstanding)."""
        if self._error is not None:
            raise self._error
        self._slots.acquire()
        self._pool.submit(self._run, cid, data, trusted)

    def has(self, cid: CID) -> bool:
        """Delegates to the store (a queued block may not be visible yet)."""
        return self.store.has(cid)

    def get(self, cid: CID) -> bytes:
        """Delegates to the store."""
        return self.store.get(cid)

    def delete(self, cid: CID) -> None:
        """Delegates to the store."""
        self.store.delete(cid)

    def iter_cids(self) -> Iterator[CID]:
        """Delegates to the store."""
        return self.store.iter_cids()

    def close(self) -> None:
        """Wait for all queued writes; raise the first failure."""
        self._pool.shutdown(wait=True)
        if self._error is not None:
            raise self._error
