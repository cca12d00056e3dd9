"""Bucket storage: SQLite rows for buckets and path metadata, blocks in the blockstore.

Crash safety (spec of issue 4: "a crash at any instant leaves each bucket at its old root or
its new root"): a mutation writes all its new blocks first (each atomically: temp file, then
rename), then :meth:`HubStore.commit` makes them durable with one ``syncfs(2)`` of the data
filesystem and updates the bucket row and its metadata in one SQLite transaction
(``synchronous=FULL``). The row is the only pointer to the root, so until that transaction
commits the bucket is at its old root, and after it at the new one; blocks written by an
unfinished mutation are unreferenced and the garbage collector removes them later.

Why one syncfs instead of an fsync per block: pushing 1,000 small files cost 3 ms per file with
per-block fsyncs (one journal commit each) and a fraction of that with one syncfs per commit.
The price is that after a power loss (not a process crash: the page cache survives ``kill -9``)
a block written after the last sync may be torn, and a later push of the same content would
find the file present and reuse it. So each sync records its start time in ``synced-at``, the
file ``running`` marks a hub that has not stopped cleanly, and a start after an unclean stop
verifies every block written since the last sync and deletes the torn ones (:meth:`recover`).

Concurrency: reads never lock (SQLite WAL snapshots; blocks are immutable). Mutations of one
bucket hold that bucket's lock for the whole call (spec 5.5), and every mutation also holds
the shared side of the GC gate, so a sweep never runs while a DAG is half built.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from bucketfs.hub.db import Database, prefix_upper_bound
from bucketfs.hub.errors import NON_FAST_FORWARD, HubError, not_found, unknown
from bucketfs.hub.paths import parent_of
from bucketfs.hub.tree import PLAIN, PlainDirs, TreeEditor
from bucketfs.ipfs.blockstore import BlockCorrupt, BlockNotFound, FSBlockstore, PackWriter
from bucketfs.ipfs.cid import CID

log = logging.getLogger(__name__)

SEED_NAME = ".textileseed"


def now_ns() -> int:
    """Unix time in nanoseconds (the unit of every timestamp in the protocol)."""
    return time.time_ns()


@dataclass
class Meta:
    """A Textile path metadata entry (spec 5.3)."""

    updated_at: int
    roles: dict[str, int] = field(default_factory=dict)
    key: str = ""


@dataclass(frozen=True)
class Bucket:
    """One bucket row."""

    key: str
    thread: str
    name: str
    owner: str
    version: int
    link_key: str
    root: str  # root CID string
    created_at: int
    updated_at: int

    @property
    def path(self) -> str:
        """``/ipfs/<root cid>``, the string the fast-forward check compares."""
        return f"/ipfs/{self.root}"

    @property
    def root_cid(self) -> CID:
        """The root as a CID."""
        return CID.decode(self.root)


class Changes:
    """Metadata and attribute edits a mutation applies in its commit transaction, in order."""

    def __init__(self) -> None:
        self.ops: list[tuple] = []

    def set_meta(
        self, path: str, updated_at: int, roles: dict[str, int] | None = None, key: str = ""
    ) -> None:
        """Textile's SetMetadataAtPath: overwrite roles if given, the file key if non-empty,
        always updated_at."""
        self.ops.append(("set_meta", path, updated_at, roles))
        if key:
            self.set_key(path, key)

    def set_key(self, path: str, key: str) -> None:
        """Replace the file key of the existing entry at ``path`` (private key rotation)."""
        self.ops.append(("set_key", path, key))

    def unset_meta(self, path: str) -> None:
        """Delete the entry at exactly ``path``."""
        self.ops.append(("unset_meta", path))

    def unset_meta_prefix(self, prefix: str) -> None:
        """Textile's UnsetMetadataWithPrefix (plain string prefix)."""
        self.ops.append(("unset_meta_prefix", prefix))

    def set_attrs(self, path: str, mode: int | None, mtime: int | None) -> None:
        """Record bucketfs attributes; a None value keeps what is stored."""
        if mode is not None or mtime is not None:
            self.ops.append(("set_attrs", path, mode, mtime))

    def clear_mtime(self, path: str) -> None:
        """Forget an explicit mtime (the entry's metadata updated_at becomes its mtime)."""
        self.ops.append(("clear_mtime", path))

    def drop_attrs(self, path: str, subtree: bool = True) -> None:
        """Forget the attributes of ``path`` (and, by default, of everything under it)."""
        self.ops.append(("drop_attrs", path, subtree))

    def drop_attrs_below(self, path: str) -> None:
        """Forget the attributes of everything under ``path`` (not of ``path`` itself)."""
        self.ops.append(("drop_attrs_below", path))

    def move_meta(self, src: str, dst: str) -> None:
        """Move the metadata entries of ``src`` and its subtree to ``dst`` (dst's are dropped)."""
        self.ops.append(("move", "path_meta", src, dst))

    def move_attrs(self, src: str, dst: str) -> None:
        """Move the attributes of ``src`` and its subtree to ``dst`` (dst's are dropped first)."""
        self.ops.append(("move_attrs", src, dst))


def dirs_for(bucket: Bucket) -> PlainDirs:
    """How ``bucket`` stores its directories: plain, or encrypted with its link key."""
    if not bucket.link_key:
        return PLAIN
    from bucketfs.hub.private import PrivateDirs, key_bytes  # noqa: PLC0415 - imports store

    return PrivateDirs(key_bytes(bucket.link_key))


def live_roots(conn: object, blocks: FSBlockstore) -> list[CID]:
    """The CIDs a garbage collector or fsck marks from: every bucket root, plus, for private
    buckets, every node under the root (their directory nodes have no links to follow)."""
    from bucketfs.hub.private import key_bytes, live_nodes  # noqa: PLC0415 - imports store

    roots: list[CID] = []
    rows = conn.execute("SELECT root, link_key FROM buckets").fetchall()  # type: ignore[attr-defined]
    for root, link_key in rows:
        cid = CID.decode(root)
        if link_key:
            roots.extend(live_nodes(blocks, cid, key_bytes(link_key)))
        else:
            roots.append(cid)
    return roots


def _prefix_clause(prefix: str) -> tuple[str, tuple[str, str]]:
    return "path >= ? AND path < ?", (prefix, prefix_upper_bound(prefix))


class _GCGate:
    """Many mutations or one sweep at a time (a minimal readers-writer lock).

    A sweep that waits is writer-preferring: from the moment it waits, new mutations wait
    behind it, so a hub that is never idle still gets collected (writes pause for one sweep).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._active = 0
        self._sweeping = False
        self._waiting_sweeps = 0

    @contextmanager
    def mutation(self) -> Iterator[None]:
        with self._cond:
            while self._sweeping or self._waiting_sweeps:
                self._cond.wait()
            self._active += 1
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1
                self._cond.notify_all()

    @contextmanager
    def sweep(self, wait: bool) -> Iterator[bool]:
        """Yields True when the sweep may run (no mutation in flight), else False.

        Without ``wait`` a busy gate yields False at once; with it, the sweep waits for the
        mutations in flight and holds new ones back meanwhile.
        """
        with self._cond:
            busy = not wait and (self._active > 0 or self._sweeping)
            if not busy:
                self._waiting_sweeps += 1
                try:
                    while self._active or self._sweeping:
                        self._cond.wait()
                finally:
                    self._waiting_sweeps -= 1
                self._sweeping = True
        if busy:
            yield False
            return
        try:
            yield True
        finally:
            with self._cond:
                self._sweeping = False
                self._cond.notify_all()


CREATE, SAVE, DELETE = "create", "save", "delete"
GC_MAX_SKIPS = 3


@dataclass(frozen=True)
class RootEvent:
    """A change of a bucket, as WatchRoot and threads Listen report it."""

    key: str
    path: str
    updated_at: int
    removed: bool = False
    thread: str = ""
    action: str = SAVE


class HubStore:
    """Everything the services need to read and change buckets."""

    def __init__(
        self,
        data_dir: Path,
        *,
        gc_interval: float = 600.0,
        gc_grace: float = 3600.0,
        fsync: bool = True,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.db = Database(self.data_dir / "hub.db")
        # Nothing is fsynced as it is written; durable() syncs what was, before a commit.
        self.blocks = FSBlockstore(self.data_dir / "blockstore", fsync=False, track=fsync)
        self.fsync = fsync
        self._synced_marker = self.data_dir / "synced-at"
        self._running_marker = self.data_dir / "running"
        self.gc_interval = gc_interval
        self.gc_grace = gc_grace
        #: Set by the server when the threads module is present: thread id -> exists.
        self.thread_exists: Callable[[str], bool] | None = None
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._gate = _GCGate()
        self._watchers: dict[str, set[queue.Queue[RootEvent]]] = {}
        self._watch_lock = threading.Lock()
        self._stop = threading.Event()
        self._gc_thread: threading.Thread | None = None

    # -- life cycle ---------------------------------------------------------------------------

    def durable(self) -> None:
        """Make every block written so far durable (call before committing a root to them)."""
        if not self.fsync:
            return
        # fsyncs of the files written since the last call, or one syncfs when there were
        # many (small-file pushes). `synced` is the time before which every block is durable.
        synced = self.blocks.sync_written(
            time.time(), fallback=lambda: _syncfs(self.blocks.blocks_dir)
        )
        try:
            self._synced_marker.touch()
            os.utime(self._synced_marker, (synced, synced))
        except OSError as exc:  # only makes a later recovery check more blocks
            log.warning("cannot update %s: %s", self._synced_marker, exc)

    def recover(self) -> int:
        """After an unclean stop: delete torn blocks written since the last sync.

        Returns how many blocks were deleted. Blocks written (or re-put) after the last sync
        started are read and verified against their CID; nothing else is touched.
        """
        try:
            cutoff = self._synced_marker.stat().st_mtime - 2.0  # coarse timestamp granularity
        except FileNotFoundError:
            cutoff = 0.0  # never synced: check everything
        removed = checked = 0
        self.blocks.clean_temp(older_than=0.0)
        for shard in os.scandir(self.blocks.blocks_dir):
            if not shard.is_dir():
                continue
            for entry in os.scandir(shard.path):
                try:
                    if entry.stat().st_mtime < cutoff:
                        continue
                    cid = CID.decode(entry.name)
                except (OSError, ValueError):
                    continue
                checked += 1
                try:
                    self.blocks.get(cid)
                except BlockCorrupt:
                    log.warning("recovery: deleting torn block %s", cid)
                    self.blocks.delete(cid)
                    removed += 1
        # Packed blocks: the index row may have reached the disk before the pack's bytes.
        for cid in self.blocks.packed_since(cutoff):
            checked += 1
            try:
                self.blocks.get(cid)
            except BlockCorrupt:
                log.warning("recovery: deleting torn packed block %s", cid)
                self.blocks.delete(cid)
                removed += 1
            except BlockNotFound:
                continue  # swept meanwhile
        log.info("recovery after an unclean stop: %d blocks checked, %d removed", checked, removed)
        return removed

    def start_gc(self) -> None:
        """Recover if needed, sweep now (nothing is in flight yet), then every ``gc_interval``."""
        if self._running_marker.exists():
            try:
                self.recover()
            except Exception:
                log.exception("recovery scan failed; continuing")
        self._running_marker.touch()
        try:
            removed = self.blocks.clean_temp()
            if removed:
                log.info("removed %d temp files left by an earlier crash", removed)
            self.collect_garbage(wait=True)
        except Exception:
            log.exception("start-up garbage collection failed")
        if self.gc_interval > 0:
            self._gc_thread = threading.Thread(target=self._gc_loop, name="hub-gc", daemon=True)
            self._gc_thread.start()

    def _gc_loop(self) -> None:
        skipped = 0
        while not self._stop.wait(self.gc_interval):
            try:
                # Try without blocking writers; after three busy intervals in a row, wait for
                # a gap (and hold new writes back) so a hub that is never idle is collected.
                stats = self.collect_garbage(wait=skipped >= GC_MAX_SKIPS)
                skipped = skipped + 1 if stats is None else 0
            except Exception:
                log.exception("garbage collection failed; retrying at the next interval")

    def close(self) -> None:
        """Stop the GC thread, end every watcher and close the database."""
        self._stop.set()
        if self._gc_thread is not None:
            self._gc_thread.join(timeout=30)
        with self._watch_lock:
            for subs in self._watchers.values():
                for q in subs:
                    try:
                        q.put_nowait(RootEvent("", "", 0, removed=True))
                    except queue.Full:
                        pass  # that watcher polls `stopping` anyway
        self.db.close()
        self.blocks.close()
        self._running_marker.unlink(missing_ok=True)

    @property
    def stopping(self) -> bool:
        """True once :meth:`close` started."""
        return self._stop.is_set()

    def collect_garbage(self, wait: bool = False) -> object | None:
        """Sweep blocks no bucket references (newer than ``gc_grace`` seconds survive).

        Returns the GC statistics, or None if mutations were in flight and ``wait`` is False.
        """
        with self._gate.sweep(wait) as may_run:
            if not may_run:
                log.debug("garbage collection skipped: mutations in flight")
                return None
            from bucketfs.ipfs import gc  # noqa: PLC0415 - only the sweep needs it

            roots = live_roots(self.db.conn(), self.blocks)
            stats = gc.collect(self.blocks, roots, grace_seconds=self.gc_grace)
            log.info("garbage collection: %s", stats)
            return stats

    # -- reads --------------------------------------------------------------------------------

    def check_thread(self, thread: str) -> None:
        """NOT_FOUND if the thread is unknown (when a thread registry is installed)."""
        if self.thread_exists is not None and not self.thread_exists(thread):
            raise not_found(f"thread not found: {thread}")

    @staticmethod
    def _row(row: object) -> Bucket:
        return Bucket(*tuple(row))  # type: ignore[arg-type]

    _COLS = "key, thread, name, owner, version, link_key, root, created_at, updated_at"

    def get_bucket(self, thread: str, key: str) -> Bucket:
        """The bucket ``key`` in ``thread``; UNKNOWN ``instance not found`` like ThreadDB."""
        self.check_thread(thread)
        row = (
            self.db.conn()
            .execute(
                f"SELECT {self._COLS} FROM buckets WHERE key = ? AND thread = ?", (key, thread)
            )
            .fetchone()
        )
        if row is None:
            raise unknown(f"instance not found: bucket {key!r} in thread {thread}")
        return self._row(row)

    def list_buckets(self, thread: str) -> list[Bucket]:
        """Every bucket of ``thread`` (oldest first)."""
        self.check_thread(thread)
        rows = self.db.conn().execute(
            f"SELECT {self._COLS} FROM buckets WHERE thread = ? ORDER BY created_at", (thread,)
        )
        return [self._row(r) for r in rows]

    def count_buckets(self, thread: str) -> int:
        """How many buckets ``thread`` holds (DeleteDB refuses a non-empty thread)."""
        row = self.db.conn().execute("SELECT count(*) FROM buckets WHERE thread = ?", (thread,))
        return int(row.fetchone()[0])

    def all_metadata(self, key: str) -> dict[str, Meta]:
        """Every path metadata entry of a bucket (Root.path_metadata)."""
        rows = self.db.conn().execute(
            "SELECT path, updated_at, roles, file_key FROM path_meta WHERE bucket = ?", (key,)
        )
        return {r[0]: Meta(r[1], json.loads(r[2]), r[3]) for r in rows}

    def metadata_at(self, key: str, path: str) -> Meta | None:
        """The entry stored exactly at ``path``."""
        r = (
            self.db.conn()
            .execute(
                "SELECT updated_at, roles, file_key FROM path_meta WHERE bucket = ? AND path = ?",
                (key, path),
            )
            .fetchone()
        )
        return Meta(r[0], json.loads(r[1]), r[2]) if r else None

    def nearest_metadata(self, key: str, path: str) -> tuple[str, Meta] | None:
        """Nearest-ancestor lookup (spec 5.3): the entry at ``path`` or its closest ancestor."""
        p = path
        while True:
            m = self.metadata_at(key, p)
            if m is not None:
                return p, m
            if not p:
                return None
            p = parent_of(p)

    def attrs(self, key: str, path: str) -> tuple[int | None, int | None]:
        """(mode, mtime) recorded for ``path``; (None, None) if never set."""
        r = (
            self.db.conn()
            .execute("SELECT mode, mtime FROM attrs WHERE bucket = ? AND path = ?", (key, path))
            .fetchone()
        )
        return (r[0], r[1]) if r else (None, None)

    def attrs_under(self, key: str, parent: str) -> dict[str, tuple[int | None, int | None]]:
        """Attributes of every recorded path strictly under ``parent`` (a directory listing)."""
        if parent:
            clause, args = _prefix_clause(parent + "/")
            rows = self.db.conn().execute(
                f"SELECT path, mode, mtime FROM attrs WHERE bucket = ? AND {clause}",
                (key, *args),
            )
        else:
            rows = self.db.conn().execute(
                "SELECT path, mode, mtime FROM attrs WHERE bucket = ?", (key,)
            )
        return {r[0]: (r[1], r[2]) for r in rows}

    # -- mutations ----------------------------------------------------------------------------

    def bucket_lock(self, key: str) -> threading.Lock:
        """The lock serialising mutations of bucket ``key`` (spec 5.5)."""
        with self._locks_guard:
            lock = self._locks.get(key)
            if lock is None:
                lock = self._locks[key] = threading.Lock()
            return lock

    @contextmanager
    def mutation(self, thread: str, key: str, root: str = "") -> Iterator[Bucket]:
        """Lock bucket ``key``, load it and check the fast-forward ``root`` (spec 6).

        Yields the bucket as loaded under the lock. Blocks written inside are protected from
        the garbage collector until the block exits.
        """
        with self._gate.mutation(), self.bucket_lock(key):
            bucket = self.get_bucket(thread, key)
            if root and root != bucket.path:
                raise HubError(grpc.StatusCode.FAILED_PRECONDITION, NON_FAST_FORWARD)
            yield bucket

    def mutation_gate(self) -> contextlib.AbstractContextManager[None]:
        """Hold off the garbage collector (for block writes outside a bucket mutation)."""
        return self._gate.mutation()

    @contextmanager
    def loose_blocks(self) -> Iterator[PackWriter]:
        """A pack for blocks no root references yet (``FS.PutBlocks``, local ingest), under
        the mutation gate: the garbage collector's grace period keeps them until a ``Link``.
        Raw leaves go into the one pack (one file create and one fsync per call, not per 256
        KiB leaf). The pack is closed even when the block raises (the blocks stored before an
        error are kept, as fs.proto says); everything is made durable when it returns."""
        with self.mutation_gate():
            pack = self.blocks.pack_writer()
            try:
                yield pack
            finally:
                pack.close()
            self.durable()

    def editor(self, bucket: Bucket) -> TreeEditor:
        """A tree editor on the bucket's current root (encrypting directories if private)."""
        return TreeEditor(self.blocks, bucket.root_cid, dirs_for(bucket))

    def commit(
        self, bucket: Bucket, new_root: CID | None, changes: Changes, updated_at: int | None = None
    ) -> Bucket:
        """Make the new root and metadata durable in one transaction; returns the new row.

        Call with the bucket's mutation held, after every block of ``new_root`` was put.
        ``new_root`` None keeps the root (a metadata-only change).
        """
        ts = updated_at if updated_at is not None else now_ns()
        root = str(new_root) if new_root is not None else bucket.root
        # Blocks become durable before the row that references them (a metadata-only change
        # references no new block).
        if root != bucket.root:
            self.durable()
        with self.db.write() as conn:
            conn.execute(
                "UPDATE buckets SET root = ?, updated_at = ? WHERE key = ?",
                (root, ts, bucket.key),
            )
            self._apply(conn, bucket.key, changes)
        new = Bucket(
            bucket.key, bucket.thread, bucket.name, bucket.owner, bucket.version,
            bucket.link_key, root, bucket.created_at, ts,
        )  # fmt: skip
        self._notify(RootEvent(bucket.key, new.path, ts, thread=bucket.thread))
        return new

    @staticmethod
    def _apply(conn: object, key: str, changes: Changes) -> None:
        ex = conn.execute  # type: ignore[attr-defined]
        for op in changes.ops:
            kind = op[0]
            if kind == "set_meta":
                _, path, ts, roles = op
                cur = ex(
                    "SELECT roles FROM path_meta WHERE bucket = ? AND path = ?", (key, path)
                ).fetchone()
                if cur is None:
                    ex(
                        "INSERT INTO path_meta(bucket, path, updated_at, roles) VALUES (?,?,?,?)",
                        (key, path, ts, json.dumps(roles or {})),
                    )
                elif roles is not None:
                    ex(
                        "UPDATE path_meta SET updated_at = ?, roles = ? "
                        "WHERE bucket = ? AND path = ?",
                        (ts, json.dumps(roles), key, path),
                    )
                else:
                    ex(
                        "UPDATE path_meta SET updated_at = ? WHERE bucket = ? AND path = ?",
                        (ts, key, path),
                    )
            elif kind == "set_key":
                ex(
                    "UPDATE path_meta SET file_key = ? WHERE bucket = ? AND path = ?",
                    (op[2], key, op[1]),
                )
            elif kind == "unset_meta":
                ex("DELETE FROM path_meta WHERE bucket = ? AND path = ?", (key, op[1]))
            elif kind == "unset_meta_prefix":
                prefix = op[1]
                if prefix:
                    clause, args = _prefix_clause(prefix)
                    ex(f"DELETE FROM path_meta WHERE bucket = ? AND {clause}", (key, *args))
                else:
                    ex("DELETE FROM path_meta WHERE bucket = ?", (key,))
            elif kind == "set_attrs":
                _, path, mode, mtime = op
                ex(
                    "INSERT INTO attrs(bucket, path, mode, mtime) VALUES (?,?,?,?) "
                    "ON CONFLICT(bucket, path) DO UPDATE SET "
                    "mode = coalesce(excluded.mode, mode), mtime = coalesce(excluded.mtime, mtime)",
                    (key, path, mode, mtime),
                )
            elif kind == "clear_mtime":
                ex("UPDATE attrs SET mtime = NULL WHERE bucket = ? AND path = ?", (key, op[1]))
            elif kind == "drop_attrs":
                _, path, subtree = op
                ex("DELETE FROM attrs WHERE bucket = ? AND path = ?", (key, path))
                if subtree and path:
                    clause, args = _prefix_clause(path + "/")
                    ex(f"DELETE FROM attrs WHERE bucket = ? AND {clause}", (key, *args))
                elif subtree:
                    ex("DELETE FROM attrs WHERE bucket = ?", (key,))
            elif kind == "drop_attrs_below":
                clause, args = _prefix_clause(op[1] + "/")
                ex(f"DELETE FROM attrs WHERE bucket = ? AND {clause}", (key, *args))
            elif kind in ("move_attrs", "move"):
                table, src, dst = ("attrs", op[1], op[2]) if kind == "move_attrs" else op[1:]
                # Drop what the destination had, then re-key src and its subtree.
                ex(f"DELETE FROM {table} WHERE bucket = ? AND path = ?", (key, dst))
                clause, args = _prefix_clause(dst + "/")
                ex(f"DELETE FROM {table} WHERE bucket = ? AND {clause}", (key, *args))
                ex(f"UPDATE {table} SET path = ? WHERE bucket = ? AND path = ?", (dst, key, src))
                clause, args = _prefix_clause(src + "/")
                ex(
                    f"UPDATE {table} SET path = ? || substr(path, ?) "
                    f"WHERE bucket = ? AND {clause}",
                    (dst + "/", len(src) + 2, key, *args),
                )
            else:  # pragma: no cover - a programming error
                raise AssertionError(f"unknown change {kind}")

    def create_bucket(
        self,
        thread: str,
        key: str,
        name: str,
        owner: str,
        root: CID,
        meta: dict[str, Meta],
        link_key: str = "",
    ) -> Bucket:
        """Insert a new bucket row with its metadata (blocks already put); a non-empty
        ``link_key`` makes it private."""
        ts = now_ns()
        self.durable()
        with self.db.write() as conn:
            conn.execute(
                f"INSERT INTO buckets({self._COLS}) VALUES (?,?,?,?,?,?,?,?,?)",
                (key, thread, name, owner, 1, link_key, str(root), ts, ts),
            )
            conn.executemany(
                "INSERT INTO path_meta(bucket, path, updated_at, roles, file_key) "
                "VALUES (?,?,?,?,?)",
                [(key, p, m.updated_at, json.dumps(m.roles), m.key) for p, m in meta.items()],
            )
        bucket = Bucket(key, thread, name, owner, 1, link_key, str(root), ts, ts)
        self._notify(RootEvent(key, bucket.path, ts, thread=thread, action=CREATE))
        return bucket

    def delete_bucket(self, bucket: Bucket) -> None:
        """Delete the row and its metadata; its blocks become garbage."""
        with self.db.write() as conn:
            conn.execute("DELETE FROM buckets WHERE key = ?", (bucket.key,))
            conn.execute("DELETE FROM path_meta WHERE bucket = ?", (bucket.key,))
            conn.execute("DELETE FROM attrs WHERE bucket = ?", (bucket.key,))
        self._notify(
            RootEvent(bucket.key, "", now_ns(), removed=True, thread=bucket.thread, action=DELETE)
        )

    # -- change notification ------------------------------------------------------------------

    @contextmanager
    def watch_thread(self, thread: str) -> Iterator[queue.Queue[RootEvent]]:
        """Subscribe to changes of every bucket of ``thread`` while the block runs."""
        with self.watch("thread:" + thread) as q:
            yield q

    @contextmanager
    def watch(self, key: str) -> Iterator[queue.Queue[RootEvent]]:
        """Subscribe to root changes of bucket ``key`` while the block runs."""
        q: queue.Queue[RootEvent] = queue.Queue(maxsize=64)
        with self._watch_lock:
            self._watchers.setdefault(key, set()).add(q)
        try:
            yield q
        finally:
            with self._watch_lock:
                subs = self._watchers.get(key)
                if subs is not None:
                    subs.discard(q)
                    if not subs:
                        del self._watchers[key]

    def _notify(self, event: RootEvent) -> None:
        with self._watch_lock:
            subs = list(self._watchers.get(event.key, ()))
            subs += self._watchers.get("thread:" + event.thread, ())
        for q in subs:
            try:
                q.put_nowait(event)
            except queue.Full:
                # A slow watcher only needs the latest root: drop its oldest event.
                try:
                    q.get_nowait()
                except queue.Empty:
                    pass
                try:
                    q.put_nowait(event)
                except queue.Full:
                    log.warning("watcher of %s is not keeping up; event dropped", event.key)


def _load_syncfs() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.syncfs
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


_SYNCFS = _load_syncfs()


def _syncfs(path: Path) -> None:
    """syncfs(2) on the filesystem holding ``path`` (sync(2) where syncfs is missing)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if _SYNCFS is not None and _SYNCFS(fd) == 0:
            return
        os.sync()
    finally:
        os.close(fd)


def data_dir_default() -> Path:
    """The default data directory (XDG data dir)."""
    import platformdirs

    return Path(platformdirs.user_data_dir("bucketfs")) / "hub"
