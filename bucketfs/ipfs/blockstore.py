"""Block storage: the :class:`Blockstore` protocol and three implementations.

- :class:`FSBlockstore`: one file per block on disk, plus pack files that hold the raw leaves
  of a large import (layout and fsync policy in ``docs/blockstore.md``).
- :class:`MemoryBlockstore`: a dict, for tests and small tools.
- :class:`NullBlockstore`: discards everything (``bucketfs cid`` hashes without storing).

Blocks are keyed by their CIDv1 form, so a block put as CIDv0 is found under its CIDv1 and
vice versa (the bytes are the same). ``get`` always re-hashes and never returns bytes that do
not match the CID.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
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

    Packs: :meth:`pack_writer` appends the blocks of one import to a single file under
    ``root/packs/`` and records each block's place in ``root/packs/index.db`` (SQLite) when it
    is closed; one file create per import instead of one per 256 KiB leaf, which dominated the
    cost of a large push. Every method below serves packed blocks as well as block files.
    """

    _TMP = ".tmp-"
    PACK_SUFFIX = ".pack"

    #: With ``track=True``: above this many block files written between two
    #: :meth:`sync_written` calls, one filesystem-wide sync is cheaper than an fsync each.
    TRACK_LIMIT = 512

    def __init__(self, root: Path | str, fsync: bool = True, *, track: bool = False) -> None:
        """``track=True`` (with ``fsync=False``): nothing is fsynced as it is written, but
        the store remembers what was, so that :meth:`sync_written` can make exactly that
        durable at the caller's commit point (the hub's)."""
        self.root = Path(root)
        self.track = track
        self._written: set[str] = set()  # block files since the last sync_written()
        self._written_dirs: set[Path] = set()
        self._overflow = False
        self._inflight: dict[int, float] = {}  # puts in progress: token -> start time
        self._next_token = 0
        self._durable_lock = threading.Lock()
        self.blocks_dir = self.root / "blocks"
        self.packs_dir = self.root / "packs"
        self._blocks_str = str(self.blocks_dir)
        self.fsync = fsync
        self.blocks_dir.mkdir(parents=True, exist_ok=True)
        self._dirty: set[Path] = set()
        self._made: set[str] = set()
        self._lock = threading.Lock()
        self._counter = 0
        self._index_lock = threading.Lock()
        self._index: sqlite3.Connection | None = None
        if (self.packs_dir / INDEX_NAME).exists():
            self._open_index()

    # -- the pack index ---------------------------------------------------------------------

    def _open_index(self) -> sqlite3.Connection:
        """The index connection, created on first use (a store without packs has no index)."""
        with self._index_lock:
            if self._index is None:
                self.packs_dir.mkdir(exist_ok=True)
                conn = sqlite3.connect(
                    self.packs_dir / INDEX_NAME,
                    isolation_level=None,
                    check_same_thread=False,
                    timeout=60,
                )
                conn.execute("PRAGMA journal_mode=WAL")
                # fsync=False: the caller makes the whole filesystem durable (the hub's
                # syncfs) before it publishes a root that references these blocks.
                conn.execute(f"PRAGMA synchronous={'FULL' if self.fsync else 'OFF'}")
                conn.executescript(_INDEX_SCHEMA)
                self._index = conn
            return self._index

    def _index_if_any(self) -> sqlite3.Connection | None:
        """The index, also when another store object (or process) created it after this one
        was opened; None while the store has no packs."""
        if self._index is None and (self.packs_dir / INDEX_NAME).exists():
            return self._open_index()
        return self._index

    def _packed(self, cid: CID) -> tuple[str, int, int] | None:
        """(pack file name, offset, length) of a packed block, else None."""
        conn = self._index_if_any()
        if conn is None:
            return None
        with self._index_lock:
            row = conn.execute(
                "SELECT pack, off, len FROM packed WHERE cid = ?", (_key(cid).buffer,)
            ).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    def _refresh_packed(self, cid: CID) -> bool:
        """Refresh a packed block's put time; False if it is not packed (or was just swept)."""
        if self._packed(cid) is None:
            return False
        conn = self._index
        assert conn is not None  # opened by _packed
        with self._index_lock:
            cur = conn.execute(
                "UPDATE packed SET put_time = ? WHERE cid = ?", (time.time(), _key(cid).buffer)
            )
        return cur.rowcount > 0

    def _present(self, cid: CID) -> bool:
        """Refresh the put time of a stored block (file or packed); False if absent."""
        try:
            os.utime(self._file(cid))
            return True
        except FileNotFoundError:
            return self._refresh_packed(cid)

    def _add_packed(
        self, pack: str, entries: list[tuple[bytes, int, int]], durable: bool = False
    ) -> None:
        """Index a pack's blocks in one transaction (committed with an fsync if ``durable``:
        put-time refreshes and GC deletes need none, so the connection's default may be
        OFF)."""
        conn = self._open_index()
        now = time.time()
        with self._index_lock:
            if durable and not self.fsync:
                conn.execute("PRAGMA synchronous=FULL")
            try:
                self._insert_packed(conn, pack, entries, now)
            finally:
                if durable and not self.fsync:
                    conn.execute("PRAGMA synchronous=OFF")

    @staticmethod
    def _insert_packed(
        conn: sqlite3.Connection, pack: str, entries: list[tuple[bytes, int, int]], now: float
    ) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            # A block another writer packed meanwhile keeps its place (its put time is
            # refreshed, as a re-put of a block file refreshes its mtime); ours stays as
            # dead bytes in this pack until the pack is deleted.
            conn.executemany(
                "INSERT INTO packed(cid, pack, off, len, put_time) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(cid) DO UPDATE SET put_time = excluded.put_time",
                [(k, pack, off, n, now) for k, off, n in entries],
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _drop_packed(self, cid: CID, cutoff: float | None) -> int:
        """Remove a packed block (only if put before ``cutoff``, when given); bytes freed."""
        conn = self._index_if_any()
        if conn is None:
            return 0
        key = _key(cid).buffer
        with self._index_lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute(
                    "SELECT pack, off, len, put_time FROM packed WHERE cid = ?", (key,)
                ).fetchone()
                if row is None or (cutoff is not None and row[3] >= cutoff):
                    conn.execute("COMMIT")
                    return 0
                conn.execute("DELETE FROM packed WHERE cid = ?", (key,))
                last = (
                    conn.execute("SELECT 1 FROM packed WHERE pack = ? LIMIT 1", (row[0],))
                    .fetchone() is None
                )  # fmt: skip
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        pack_path = self.packs_dir / row[0]
        if last:
            _unlink_quiet(pack_path)
        else:
            _punch_hole(pack_path, row[1], row[2])
        return int(row[2])

    def pack_writer(self) -> PackWriter:
        """A writer that appends blocks to one new pack file (see :class:`PackWriter`)."""
        return PackWriter(self)

    def packed_since(self, cutoff: float) -> list[CID]:
        """Packed blocks put at or after ``cutoff`` (what a crash recovery must verify)."""
        conn = self._index_if_any()
        if conn is None:
            return []
        with self._index_lock:
            rows = conn.execute(
                "SELECT cid FROM packed WHERE put_time >= ?", (cutoff,)
            ).fetchall()
        return [CID.from_bytes(r[0]) for r in rows]

    def close(self) -> None:
        """Close the pack index (the store may still be used: it is reopened on demand)."""
        with self._index_lock:
            if self._index is not None:
                self._index.close()
                self._index = None

    def path_for(self, cid: CID) -> Path:
        """The file that holds (or would hold) this block."""
        return Path(self._file(cid))

    def _file(self, cid: CID) -> str:
        # A plain string: pathlib's joins cost more than the rest of a packed put.
        name = str(_key(cid))
        return f"{self._blocks_str}/{name[-3:-1]}/{name}"

    def has(self, cid: CID) -> bool:
        """True if the block file exists."""
        if cid.multihash[0] == IDENTITY:
            return True
        return os.path.exists(self._file(cid)) or self._packed(cid) is not None

    def get(self, cid: CID) -> bytes:
        """Read and verify the block; raises BlockNotFound / BlockCorrupt naming the CID."""
        if cid.multihash[0] == IDENTITY:
            return cid.digest
        path = self.path_for(cid)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            data, path = self._read_packed(cid)
        if not cid.verify(data):
            log.error("corrupt block %s at %s", cid, path)
            raise BlockCorrupt(cid, f"file {path}")
        return data

    def _read_packed(self, cid: CID) -> tuple[bytes, Path]:
        where = self._packed(cid)
        if where is None:
            raise BlockNotFound(cid)
        pack, off, n = where
        path = self.packs_dir / pack
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:  # swept between the lookup and the open
            raise BlockNotFound(cid) from None
        try:
            parts = []
            while n > 0:
                piece = os.pread(fd, n, off)
                if not piece:
                    break  # a short pack (torn by a crash): the hash check reports it
                parts.append(piece)
                off += len(piece)
                n -= len(piece)
        finally:
            os.close(fd)
        return (parts[0] if len(parts) == 1 else b"".join(parts)), path

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
        if not self.track:
            self._put_file(cid, data)
            return
        with self._lock:
            token = self._next_token = self._next_token + 1
            self._inflight[token] = time.time()
        written: tuple[str, Path] | None = None
        try:
            written = self._put_file(cid, data)
        finally:
            with self._lock:  # recorded and no longer in flight at once (see sync_written)
                del self._inflight[token]
                if written is not None:
                    self._record(*written)

    def _record(self, file: str | None, directory: Path) -> None:
        """Remember a written file and directory for :meth:`sync_written` (``_lock`` held)."""
        if self._overflow:
            return
        if file is not None:
            self._written.add(file)
        self._written_dirs.add(directory)
        if len(self._written) > self.TRACK_LIMIT:
            self._overflow = True
            self._written.clear()
            self._written_dirs.clear()

    def _put_file(self, cid: CID, data: bytes | memoryview) -> tuple[str, Path] | None:
        """Write a block file; returns (its path, its directory) if it was written."""
        path = self.path_for(cid)
        if self._present(cid):
            return None
        shard = path.parent
        if shard.name not in self._made:
            shard.mkdir(exist_ok=True)
            self._made.add(shard.name)
            if self.track:
                with self._lock:
                    self._record(None, self.blocks_dir)  # the new shard's entry
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
        return str(path), shard

    def sync_written(self, started: float, fallback: Callable[[], None]) -> float:
        """Make every block written so far durable (``track=True`` stores); returns the time
        before which every block is now on disk (for a crash recovery's cut-off).

        fsyncs the block files and directories written since the last call, or runs
        ``fallback`` (a filesystem-wide sync) when there were more than ``TRACK_LIMIT``
        files. Packs are already durable (their writer fsyncs them when it closes). Unlike a
        ``syncfs``, this does not also write out other programs' data that happens to be on
        the same filesystem. Calls are serialized, so a call that finds nothing left to sync
        returns only once an earlier call has finished syncing what it took. A put still in
        progress is synced by a later call: the returned time is not after its start.
        """
        with self._durable_lock:
            with self._lock:
                files, self._written = self._written, set()
                dirs, self._written_dirs = self._written_dirs, set()
                overflow, self._overflow = self._overflow, False
                oldest = min(self._inflight.values(), default=started)
            if overflow:
                fallback()
                return min(started, oldest)
            for name in sorted(files):
                try:
                    fd = os.open(name, os.O_RDONLY)
                except FileNotFoundError:  # swept by GC meanwhile: nothing to keep
                    continue
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            for d in sorted(dirs):
                fsync_dir(d)
            return min(started, oldest)

    def sync(self) -> None:
        """fsync every directory written since the last call: shard directories (and
        ``blocks/``), ``packs/`` after a pack was added (and the root once it was created)."""
        with self._lock:
            dirty, self._dirty = self._dirty, set()
        if not dirty:
            return
        dirs = sorted(dirty)
        if dirty - {self.packs_dir, self.root}:  # a shard directory: blocks/ holds its entry
            dirs.append(self.blocks_dir)
        for d in dirs:
            fsync_dir(d)

    def delete(self, cid: CID) -> None:
        """Remove the block (file or packed) if present."""
        _unlink_quiet(self.path_for(cid))
        self._drop_packed(cid, None)

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
        # Packed blocks in pages, so that GC may delete while it iterates.
        last = b""
        while (conn := self._index_if_any()) is not None:
            with self._index_lock:
                rows = conn.execute(
                    "SELECT cid FROM packed WHERE cid > ? ORDER BY cid LIMIT 1000", (last,)
                ).fetchall()
            if not rows:
                return
            for (raw,) in rows:
                yield CID.from_bytes(raw)
            last = rows[-1][0]

    def block_size(self, cid: CID) -> int:
        """Stored length of a block (one stat, no read, no verification)."""
        try:
            return self.path_for(cid).stat().st_size
        except FileNotFoundError:
            where = self._packed(cid)
            if where is None:
                raise BlockNotFound(cid) from None
            return where[2]

    def put_time(self, cid: CID) -> float | None:
        """When the block was last written or re-put (a block file's mtime)."""
        try:
            return self.path_for(cid).stat().st_mtime
        except FileNotFoundError:
            pass
        conn = self._index_if_any()
        if conn is None:
            return None
        with self._index_lock:
            row = conn.execute(
                "SELECT put_time FROM packed WHERE cid = ?", (_key(cid).buffer,)
            ).fetchone()
        return None if row is None else float(row[0])

    def set_put_time(self, cid: CID, when: float) -> None:
        """Backdate or advance a block's put time (tests and tools of GC's grace period)."""
        try:
            os.utime(self.path_for(cid), (when, when))
            return
        except FileNotFoundError:
            pass
        conn = self._index_if_any()
        if conn is not None:
            with self._index_lock:
                conn.execute(
                    "UPDATE packed SET put_time = ? WHERE cid = ?", (when, _key(cid).buffer)
                )

    def corrupt_for_test(self, cid: CID, data: bytes) -> None:
        """Overwrite a block's stored bytes in place without checking (corruption tests)."""
        try:
            self.path_for(cid).write_bytes(data)
            return
        except FileNotFoundError:
            pass
        where = self._packed(cid)
        if where is None:
            raise BlockNotFound(cid)
        with open(self.packs_dir / where[0], "r+b") as f:
            f.seek(where[1])
            f.write(data[: where[2]])
            if len(data) < where[2]:  # as if torn: the index length no longer fits
                f.truncate(where[1] + len(data))

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
            # A packed block: the index row is checked and deleted in one transaction, so a
            # concurrent put either refreshed it first (kept) or finds it gone (writes anew).
            return self._drop_packed(cid, cutoff)
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
        return removed + self._clean_packs(cutoff)

    def _clean_packs(self, cutoff: float) -> int:
        """Unfinished packs, and packs no index row refers to, older than ``cutoff``."""
        if not self.packs_dir.is_dir():
            return 0
        removed = 0
        for entry in os.scandir(self.packs_dir):
            temp = entry.name.startswith(self._TMP)
            if not temp and not entry.name.endswith(self.PACK_SUFFIX):
                continue
            if entry.stat().st_mtime >= cutoff:
                continue
            conn = self._index_if_any()
            if not temp and conn is not None:
                with self._index_lock:
                    used = conn.execute(
                        "SELECT 1 FROM packed WHERE pack = ? LIMIT 1", (entry.name,)
                    ).fetchone()
                if used is not None:
                    continue
            _unlink_quiet(Path(entry.path))
            removed += 1
        return removed


def fsync_dir(path: Path) -> None:
    """fsync a directory (its entries: files created, renamed or removed in it)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink_quiet(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


INDEX_NAME = "index.db"
_INDEX_SCHEMA = """
CREATE TABLE IF NOT EXISTS packed(
    cid BLOB PRIMARY KEY,      -- binary CIDv1
    pack TEXT NOT NULL,        -- file name under packs/
    off INTEGER NOT NULL,
    len INTEGER NOT NULL,
    put_time REAL NOT NULL     -- when last written or re-put (GC's grace period)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS packed_by_pack ON packed(pack);
"""
_FALLOC_FL_KEEP_SIZE, _FALLOC_FL_PUNCH_HOLE = 0x01, 0x02


def _load_fallocate() -> object | None:
    try:
        fn = ctypes.CDLL(None, use_errno=True).fallocate
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    fn.restype = ctypes.c_int
    return fn


_FALLOCATE = _load_fallocate()


def _punch_hole(path: Path, off: int, length: int) -> None:
    """Give a deleted packed block's space back to the filesystem (where it can)."""
    if _FALLOCATE is None or length <= 0:
        return
    try:
        fd = os.open(path, os.O_WRONLY)
    except FileNotFoundError:
        return
    try:
        mode = _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE
        if _FALLOCATE(fd, mode, off, length) != 0:  # type: ignore[operator]
            err = ctypes.get_errno()
            log.debug("cannot punch a hole in %s: %s", path, os.strerror(err))
    finally:
        os.close(fd)


_SYNC_FILE_RANGE_WRITE = 2
#: Packs are handed to the disk in ranges this big as they fill (one request each, rather
#: than one per block: every request costs a virtio notification in a VM).
WRITEBACK_WINDOW = 8 << 20


def _load_sync_file_range() -> object | None:
    try:
        fn = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_SYNC_FILE_RANGE = _load_sync_file_range()


def _start_writeback(fd: int, off: int, length: int) -> None:
    """Start writing a range of a pack to disk now, without waiting for it.

    Otherwise the kernel keeps a whole large import dirty in memory (its background
    threshold is a share of RAM) and the sync at the commit point writes all of it while the
    client waits; started as each block lands, that write overlaps the rest of the upload.
    Purely a matter of timing: durability still comes from the fsync/syncfs at commit.
    """
    if _SYNC_FILE_RANGE is not None and _SYNC_FILE_RANGE(fd, off, length, _SYNC_FILE_RANGE_WRITE):  # type: ignore[operator]
        log.debug("sync_file_range: %s", os.strerror(ctypes.get_errno()))


class PackWriter:
    """Appends the blocks of one import to a single pack file.

    ``put`` may be called from several threads: each block gets its own range of the file
    (``pwrite``, which releases the GIL). Blocks become visible to the store only at
    :meth:`close`, which (with ``fsync=True`` or ``track=True``) fsyncs the pack, renames it
    into place and records every block in the index in one transaction; so a reader never
    sees a block whose bytes are not all written. :meth:`abort` throws the pack away. Call
    either only once every ``put`` has returned (``WriteBehind`` waits for its threads). A
    block already in the store (or already in this pack) is not written again; its put time
    is refreshed.

    The first ``files_first`` blocks are stored as block files: a small file gets no pack
    (a pack and its index transaction would cost more than the few files they save).
    """

    #: Blocks written as files before a pack is started (1 MiB of 256 KiB leaves).
    FILES_FIRST = 4

    def __init__(self, store: FSBlockstore, files_first: int = FILES_FIRST) -> None:
        self.store = store
        self._files_left = files_first
        self._tmp: Path | None = None
        self._fd: int | None = None
        self._closed = False
        self._size = 0
        self._entries: dict[bytes, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def _open(self) -> int:
        """Start the pack file (called with ``_lock`` held, at the first packed block)."""
        store = self.store
        if not store.packs_dir.is_dir():
            store.packs_dir.mkdir(exist_ok=True)
            with store._lock:  # the new packs/ entry in the store's root
                if store.fsync:
                    store._dirty.add(store.root)
                if store.track:
                    store._record(None, store.root)
        self._tmp = store._tmp_name(store.packs_dir)
        self._fd = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        return self._fd

    def put(self, cid: CID, data: bytes | memoryview, *, trusted: bool = False) -> None:
        """Append a block (verified unless ``trusted``)."""
        if not trusted:
            _check(cid, data)
        if cid.multihash[0] == IDENTITY or self.store._present(cid):
            return
        key = _key(cid).buffer
        n = len(data)
        with self._lock:
            if self._closed:
                raise BlockstoreError("pack writer is closed")
            as_file = self._files_left > 0
            if as_file:
                self._files_left -= 1
            else:
                if key in self._entries:
                    return
                fd = self._fd if self._fd is not None else self._open()
                off = self._size
                self._size += n
                self._entries[key] = (off, n)
        if as_file:
            self.store.put(cid, data, trusted=True)
            return
        view = memoryview(data)
        end = off + n
        while view:
            written = os.pwrite(fd, view, off)
            view = view[written:]
            off += written
        if end // WRITEBACK_WINDOW > (end - n) // WRITEBACK_WINDOW:
            # This block crossed into a new window: start writing back the one before. (A
            # block of it another thread is still writing is left to the final sync.)
            window = (end // WRITEBACK_WINDOW - 1) * WRITEBACK_WINDOW
            _start_writeback(fd, window, WRITEBACK_WINDOW)

    def close(self) -> None:
        """Make the blocks durable (``fsync`` or ``track`` stores) and visible; a no-op when
        no block went into the pack."""
        with self._lock:
            self._closed = True
            fd, self._fd = self._fd, None
        if fd is None or self._tmp is None:
            return
        store = self.store
        # A tracking store (the hub) gets durable packs too: one fsync per pack, whose
        # writeback is mostly done by now, instead of a sync of the whole filesystem.
        durable = store.fsync or store.track
        try:
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        name = f"{uuid.uuid4().hex}{FSBlockstore.PACK_SUFFIX}"
        os.replace(self._tmp, store.packs_dir / name)
        entries = [(k, off, n) for k, (off, n) in self._entries.items()]
        store._add_packed(name, entries, durable=durable)
        with store._lock:
            if store.fsync:
                store._dirty.add(store.packs_dir)
            if store.track:
                store._record(None, store.packs_dir)  # the pack's name

    def abort(self) -> None:
        """Discard the pack (the import failed; blocks written as files stay, for GC)."""
        with self._lock:
            self._closed = True
            fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
        if self._tmp is not None:
            _unlink_quiet(self._tmp)


class WriteBehind:
    """Runs a store's ``put`` calls on worker threads so hashing overlaps disk writes.

    The importer hashes on its own thread while up to ``workers`` threads write and fsync
    earlier blocks (both release the GIL). At most ``max_pending`` blocks wait in memory, so
    memory stays bounded. :meth:`close` waits for every write and re-raises the first error;
    until it returns, a block handed to ``put`` may not be in the store yet.
    """

    def __init__(self, store: Blockstore, workers: int = 2, max_pending: int = 16) -> None:
        self.store = store
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="blockwrite")
        self._slots = threading.BoundedSemaphore(max_pending)
        self._error: BaseException | None = None
        #: Raw leaves go into one pack file when the store has packs (:class:`PackWriter`).
        self._pack: PackWriter | None = (
            store.pack_writer() if isinstance(store, FSBlockstore) else None
        )

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
            (self._pack or self.store).put(cid, data, trusted=True)
            return cid
        finally:
            self._slots.release()

    def _raw_many(self, chunks: list[bytes | memoryview]) -> list[CID]:
        try:
            target = self._pack or self.store
            cids = []
            for data in chunks:
                cid = CID.of_raw(data)  # type: ignore[arg-type]
                target.put(cid, data, trusted=True)  # type: ignore[arg-type]
                cids.append(cid)
            return cids
        finally:
            self._slots.release()

    def put_raw_many(self, chunks: list[bytes | memoryview]) -> Future[list[CID]]:
        """:meth:`put_raw` for a few consecutive leaves as one job (one hand-over to a worker
        thread and one future for all of them); the future gives their CIDs in order."""
        if self._error is not None:
            raise self._error
        self._slots.acquire()
        return self._pool.submit(self._raw_many, chunks)

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

    def close(self, commit: bool = True) -> None:
        """Wait for all queued writes; raise the first failure.

        ``commit=False`` (the import failed) throws the pack of raw leaves away instead of
        adding it to the store.
        """
        self._pool.shutdown(wait=True)
        if self._pack is not None:
            if commit and self._error is None:
                self._pack.close()
            else:
                self._pack.abort()
        if self._error is not None:
            raise self._error
