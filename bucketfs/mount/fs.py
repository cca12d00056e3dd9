"""The mount's core: a bucket as a POSIX-ish filesystem, with plain-value methods.

:class:`BucketFS` knows nothing about FUSE: :mod:`.ops` forwards each kernel request to one
method here (from a worker thread) and turns exceptions into errnos. That keeps the whole
filesystem testable without a mount.

The local view is the remote snapshot plus local state:

- **remote snapshot** — directory listings (``FS.ListDir``, one call per directory, with size,
  mode, mtime and symlink target per entry), cached per directory and tagged with the root they
  belong to. A listing is valid only while its root is the mount's current root. After a
  mutation of our own (which the hub applied fast-forward on that very root) the cached listings
  are carried over to the new root and patched in place, so our own writes cost no re-listing.
- **dirty files** — :class:`~.writeback.Record` s by path (new or edited files not yet in the
  bucket). They shadow the remote entry of the same path. Upload happens in the background
  (:mod:`.uploader`) after the last close plus ``writeback_delay``, or at once on fsync.
- **pending namespace operations** (mkdir, unlink, rmdir, rename, symlink, chmod, utimens) are
  applied to the cached listings at once and appended to the persisted journal
  (:mod:`.oplog`); the uploader replays them to the hub in order, each with the current root as
  the fast-forward root. A cached listing is always "the bucket at its root plus every pending
  operation"; a listing read from the hub gets the pending operations applied
  (:func:`.oplog.history` maps a local directory back to its path in the bucket).

Ordering: content uploads start only when no operation is pending (``_upload`` replays the
journal first), so the hub sees namespace changes and contents in an order that yields the
local tree. Operations logged while a file is being pushed only run after that push.

On "update is non-fast-forward" the mount adopts the new root (:meth:`BucketFS.adopt_root`:
compare the cached listings, tell the kernel what changed, move conflicting dirty files aside)
and retries.

Lock rules (the order is always ``_mut`` → ``_ns`` → ``Record.lock`` → ``_lock``):

- ``_mut`` serialises every mutation of the bucket (replaying operations, uploads, adopting a
  new root). It is held across network calls.
- ``_ns`` serialises local namespace changes (check, journal append, listing patch) with each
  other and with the rebuilding of listings when the root moves. A namespace change never
  waits for an upload.
- ``Record.lock`` guards one dirty file's chunks and fields (see :mod:`.writeback`).
- ``_lock`` guards the in-memory tables (inodes, listings, dirty map, handles). It is held only
  for dictionary work: no network or disk I/O under it.
"""

from __future__ import annotations

import collections
import errno
import io
import logging
import os
import socket
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Protocol

from bucketfs.client import errors as ce
from bucketfs.ipfs.blockstore import NullBlockstore
from bucketfs.ipfs.cid import CID
from bucketfs.ipfs.diff import Change
from bucketfs.ipfs.diff import diff as tree_diff
from bucketfs.ipfs.importer import import_file
from bucketfs.mount.errors import FSError
from bucketfs.mount.inodes import ROOT_INODE, InodeTable, join, parent_of
from bucketfs.mount.leafpipe import PIPE_MIN, LeafPipes, Unusable
from bucketfs.mount.oplog import Journal, Op, history, overlay
from bucketfs.mount.oplog import apply as apply_op
from bucketfs.mount.readcache import ReadCache
from bucketfs.mount.remote import Remote, RemoteItem, root_cid
from bucketfs.mount.writeback import DirtyStore, Record

log = logging.getLogger(__name__)

NAME_MAX = 255
SEED_NAME = ".textileseed"  # the bucket's seed block: hidden, never touched
DEFAULT_MODE = {"file": 0o644, "dir": 0o755, "symlink": 0o777}
TYPE_BITS = {"file": stat.S_IFREG, "dir": stat.S_IFDIR, "symlink": stat.S_IFLNK}
MAX_LISTINGS = 4096  # cached directories (each bounded by its entry count)
RELIST_MAX = 128  # directories compared when the root moves elsewhere
SAME_CHECK_MAX = 8 << 20  # files up to this size are compared by CID before a conflict copy
BATCH_MAX_FILE = 1 << 20  # dirty files up to this size are uploaded together (PushPaths)
BATCH_MAX_FILES = 500  # ... at most this many per stream
BATCH_MAX_BYTES = 32 << 20  # ... and at most this many bytes
ADOPT_MAX = 64 << 20  # uploaded files up to this size are kept in the read cache
# Writes up to this size (FUSE's largest, max_write) into a new dirty file run on the FUSE loop:
# a 1 MiB pwrite into the page cache costs less than the worker thread round trip around it
# (measured: the daemon's CPU for a 1 GiB sequential write 1.15 s -> 0.88 s, 650 -> 850 MiB/s).
WRITE_NOWAIT_MAX = 1 << 20
BATCH_WINDOW = 0.5  # seconds: small files due this soon join a batch (at most writeback_delay/2)
XATTR_CID = "user.bucketfs.cid"
XATTR_ROOT = "user.bucketfs.root"
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2


class Notifier(Protocol):
    """Where the core sends kernel cache invalidations (queued; never blocks the caller)."""

    def entry(self, parent_ino: int, name: str) -> None:
        """The kernel's entry for ``name`` in ``parent_ino`` is stale."""

    def inode(self, ino: int) -> None:
        """The attributes and cached data of ``ino`` are stale."""


class NullNotifier:
    """For use without a kernel (unit tests, tools): records nothing."""

    def entry(self, parent_ino: int, name: str) -> None:
        """Ignore."""

    def inode(self, ino: int) -> None:
        """Ignore."""


@dataclass(frozen=True)
class Attr:
    """Attributes of one entry, as the kernel gets them."""

    ino: int
    kind: str
    size: int
    mode: int  # full st_mode (type bits + permissions)
    mtime_ns: int
    uid: int
    gid: int
    target: str = ""
    cid: str = ""  # "" for dirty files (not in the bucket yet)


@dataclass
class Handle:
    """One open file."""

    ino: int
    cid: str  # the remote content at open time (clean reads use this snapshot)
    size: int
    writable: bool
    next_offset: int = -1  # end of the previous read, for sequential read-ahead
    # Whether this descriptor already moved the file's mtime. It is stamped once per write
    # session (create, O_TRUNC or the first write), not on every write: with FUSE's
    # auto_inval_data the kernel drops a file's cached pages whenever it sees a new mtime, so
    # a per-write stamp made every read after a write go through the daemon.
    stamped: bool = False
    # The kernel's page cache is bypassed for this descriptor (FOPEN_DIRECT_IO): see open().
    direct: bool = False


@dataclass
class _Dir:
    children: dict[str, RemoteItem]
    root: str


@dataclass
class Stats:
    """Counters for the status command."""

    uploads: int = 0
    uploaded_bytes: int = 0
    upload_errors: int = 0
    conflicts: int = 0
    remote_changes: int = 0
    last_sync: float = 0.0
    last_error: str = ""
    dropped_ops: int = 0  # journaled operations the bucket no longer allowed (see _send)
    conflict_paths: list[str] = field(default_factory=list)
    pushes: int = 0  # PushPath/PushPaths streams that succeeded (a batch is one)
    diffs: int = 0  # Merkle diffs of an old and a new root (remote changes)
    relisted_dirs: int = 0  # cached directories listed again because the root moved
    invalidations: int = 0  # kernel entries and inodes invalidated because the root moved
    linked: int = 0  # uploads completed from early-uploaded leaves (PutBlocks + Link)
    linked_sent_bytes: int = 0  # leaf bytes those uploads still had to send


def now_ns() -> int:
    """Wall-clock time in Unix nanoseconds."""
    return time.time_ns()


def check_name(name: str) -> None:
    """Reject names the bucket cannot hold."""
    if len(name.encode("utf-8", "surrogateescape")) > NAME_MAX:
        raise FSError(errno.ENAMETOOLONG)
    if name in ("", ".", "..") or "/" in name or "\0" in name:
        raise FSError(errno.EINVAL)
    if SEED_NAME in name:
        # The hub refuses any path containing the seed name (spec 5.4).
        raise FSError(errno.EPERM, "names containing .textileseed are reserved")


def conflict_name(name: str, host: str, when: float) -> str:
    """``report.txt`` → ``report.conflict-<host>-<UTC timestamp>.txt``."""
    stem, dot, ext = name.rpartition(".")
    if not stem:  # no extension (or a dot file): append
        stem, dot, ext = name, "", ""
    stamp = datetime.fromtimestamp(when, UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stem}.conflict-{host}-{stamp}{dot}{ext}"


class BucketFS:
    """The filesystem core. Every public method is blocking and thread-safe."""

    def __init__(
        self,
        remote: Remote,
        store: DirtyStore,
        reads: ReadCache,
        *,
        journal: Journal,
        cache_size: int = 0,
        writeback_delay: float = 1.0,
        fsync_local: bool = False,
        early_upload: int = PIPE_MIN,
        local_ingest: bool = True,
        direct_write: bool = True,
        read_only: bool = False,
        notifier: Notifier | None = None,
        uid: int | None = None,
        gid: int | None = None,
        hostname: str | None = None,
    ) -> None:
        self.remote = remote
        self.store = store
        self.reads = reads
        # Big new files send their leaves while being written (fsync then waits for the tail),
        # by descriptor when the hub runs on this host.
        self.pipes = LeafPipes(store, remote.put_blocks, early_upload, reads.raw_leaves,
                               ingest=remote.ingest_leaves if local_ingest else None)
        self.writeback_delay = writeback_delay
        self.direct_write = direct_write
        self.fsync_local = fsync_local
        self.read_only = read_only
        self.notifier: Notifier = notifier or NullNotifier()
        self.uid = os.getuid() if uid is None else uid
        self.gid = os.getgid() if gid is None else gid
        self.hostname = (hostname or socket.gethostname()).split(".")[0] or "host"
        self.stats = Stats()
        self.root = ""
        # updated_at of the newest bucket state this mount has taken in (see check_remote)
        self._seen_updated_at = 0
        self.journal = journal
        self.cache_size = cache_size
        self.started_offline = False
        self._ns = threading.RLock()
        self._ops: list[Op] = []  # pending operations, oldest first (mirror of the journal)
        self._op_count = 0  # operations logged by this run (tells a push that ops arrived)
        self._last_seq = 0  # highest journal seq in the cached listings (snapshot mark)
        self._uploading: dict | None = None  # the push in progress: path, size, sent
        self._snap_changed = False
        self._mut = threading.RLock()
        self._lock = threading.RLock()
        self._inodes = InodeTable()
        self._listings: collections.OrderedDict[str, _Dir] = collections.OrderedDict()
        self._dirty: dict[str, Record] = {}
        self._orphans: dict[int, Record] = {}  # unlinked dirty files still open, by inode
        self._handles: dict[int, Handle] = {}
        self._open: collections.Counter[int] = collections.Counter()
        self._direct: collections.Counter[int] = collections.Counter()  # direct fhs per ino
        self._due: dict[str, float] = {}  # file_id → upload time (after the last close)
        self._next_fh = 1
        self._seen_cid: dict[int, str] = {}  # CID at the last open, per inode (page cache)
        self._start_ns = now_ns()
        self.work = threading.Condition()  # notified when an upload becomes due

    # -- start-up ------------------------------------------------------------------------------

    def start(self) -> None:
        """Read the bucket root and re-queue the dirty files and operations a previous run
        left behind. With the hub unreachable, start from the persisted snapshot instead."""
        self._ops = self.journal.pending()
        self._last_seq = self._ops[-1].seq if self._ops else 0
        try:
            self.root, self._seen_updated_at = self.remote.root_info()
        except ce.HubUnavailable as exc:
            snap = self.journal.load_snapshot()
            if snap is None:
                raise
            log.warning("hub unreachable (%s); starting offline from the state saved at "
                        "root %s", exc, snap.root)
            self.started_offline = True
            self.root = snap.root
            with self._lock:
                for path, children in snap.listings.items():
                    self._listings[path] = _Dir(children, snap.root)
                for op in self._ops:
                    if op.seq > snap.mark:
                        self._patch(op)
        if self._ops:
            log.info("%d namespace operations from the last run wait for the hub",
                     len(self._ops))
        for rec in self.store.load_all():
            if rec.path is None:
                self.store.drop(rec)  # unlinked while open when the last run ended
                continue
            with self._lock:
                self._dirty[rec.path] = rec
                ino = self._inodes.ensure(rec.path)
                self._inodes.pin(ino)
                self._due[rec.file_id] = 0.0
            log.info("re-queued dirty file %s (%d bytes) from the cache", rec.path, rec.size)

    # -- namespace reads -----------------------------------------------------------------------

    def lookup(self, parent_ino: int, name: str) -> Attr:
        """The entry ``name`` in directory ``parent_ino`` (raises ENOENT); counts a lookup."""
        if len(name.encode("utf-8", "surrogateescape")) > NAME_MAX:
            raise FSError(errno.ENAMETOOLONG)
        parent = self._dir_path(parent_ino)
        if name == SEED_NAME:
            raise FSError(errno.ENOENT)
        path = join(parent, name)
        entry = self._entry(path)
        if entry is None:
            raise FSError(errno.ENOENT)
        with self._lock:
            ino = self._inodes.lookup(path)
        return self._attr(ino, entry)

    def getattr(self, ino: int) -> Attr:
        """Attributes of ``ino``."""
        with self._lock:
            try:
                path = self._inodes.path(ino)
            except KeyError:
                raise FSError(errno.ENOENT) from None
            orphan = self._orphans.get(ino)
        if path is None:
            if orphan is not None:
                return self._attr(ino, orphan)
            raise FSError(errno.ENOENT)
        entry = self._entry(path)
        if entry is None:
            raise FSError(errno.ENOENT)
        return self._attr(ino, entry)

    def getattr_nowait(self, ino: int) -> Attr | None:
        """:meth:`getattr` answered from memory, or None when that needs a listing (I/O).

        For the pyfuse3 adapter, which calls this on its event loop: it spares the worker
        thread round trip that most getattr calls (the kernel asks after every write and at
        every TTL expiry) would otherwise cost. Only ``_lock`` is taken, held by others only
        for dictionary work."""
        with self._lock:
            try:
                path = self._inodes.path(ino)
            except KeyError:
                return None
            if path is None:
                orphan = self._orphans.get(ino)
                return None if orphan is None else self._attr(ino, orphan)
            entry = self._cached_entry(path)
            return None if entry is None else self._attr(ino, entry)

    def lookup_nowait(self, parent_ino: int, name: str) -> Attr | None:
        """:meth:`lookup` answered from memory, or None when that needs I/O. Raises ENOENT
        when the cached listing shows that ``name`` does not exist (the first step of every
        create)."""
        if len(name.encode("utf-8", "surrogateescape")) > NAME_MAX or name == SEED_NAME:
            return None  # the slow path gives the right errno
        with self._lock:
            found = self._memory_child(parent_ino, name)
            if found is None:
                return None
            path, d = found
            entry = self._dirty.get(path) or d.children.get(name)
            if entry is None:
                raise FSError(errno.ENOENT)
            return self._attr(self._inodes.lookup(path), entry)

    def _memory_dir(self, ino: int) -> tuple[str, _Dir] | None:
        """Directory ``ino``'s path and listing when both are in memory at the current root
        (``_lock`` held); None when unknown or not a directory: the slow path decides."""
        try:
            path = self._inodes.path(ino)
        except KeyError:
            return None
        if path is None:
            return None
        entry = self._cached_entry(path)
        if not isinstance(entry, RemoteItem) or entry.kind != "dir":
            return None
        d = self._listings.get(path)
        if d is None or d.root != self.root:
            return None
        return path, d

    def _memory_child(self, parent_ino: int, name: str) -> tuple[str, _Dir] | None:
        """The path of ``name`` in directory ``parent_ino`` and that directory's listing, when
        the listing is in memory (see :meth:`_memory_dir`; ``_lock`` held)."""
        found = self._memory_dir(parent_ino)
        return None if found is None else (join(found[0], name), found[1])

    def _cached_entry(self, path: str) -> RemoteItem | Record | None:
        """:meth:`_entry` from memory only (``_lock`` held); None when not known."""
        if path == "":
            return RemoteItem("", "", "dir", 0, 0, 0)
        rec = self._dirty.get(path)
        if rec is not None:
            return rec
        parent, _, name = path.rpartition("/")
        d = self._listings.get(parent)
        if d is None or d.root != self.root:
            return None
        return d.children.get(name)

    def readdir(self, ino: int) -> list[tuple[str, Attr]]:
        """Every entry of directory ``ino`` with attributes (no lookup counted: see
        :meth:`count_lookup`).

        Each entry's inode is pinned until :meth:`release_entries`: the kernel may take a
        reference to any of them (readdirplus) long after this listing, and an unpinned row
        with no lookups can be dropped meanwhile (an upload finishing unpins its file), which
        would leave the kernel holding an inode number we no longer know (ENOENT on it)."""
        path = self._dir_path(ino)
        children = self._children(path)
        with self._lock:
            merged: dict[str, RemoteItem | Record] = dict(children)
            merged.pop(SEED_NAME, None)
            for p, rec in self._dirty.items():
                if parent_of(p) == path and p:
                    merged[p.rpartition("/")[2]] = rec
            out = []
            for name in sorted(merged):
                child_ino = self._inodes.ensure(join(path, name))
                self._inodes.pin(child_ino)
                out.append((name, self._attr(child_ino, merged[name])))
        return out

    def release_entries(self, inos: list[int]) -> None:
        """Undo the pins of a :meth:`readdir` listing (the directory handle is closed)."""
        with self._lock:
            for ino in inos:
                self._inodes.unpin(ino)

    def count_lookup(self, ino: int) -> None:
        """The kernel took a reference to ``ino`` through readdirplus (pinned by the listing,
        so the row exists; counted even if the entry was unlinked since: the kernel will
        forget it all the same)."""
        with self._lock:
            self._inodes.ref(ino)

    def forget(self, ino: int, count: int) -> None:
        """The kernel dropped ``count`` references to ``ino``."""
        with self._lock:
            self._inodes.forget(ino, count)

    def readlink(self, ino: int) -> str:
        """The target of a symlink."""
        attr = self.getattr(ino)
        if attr.kind != "symlink":
            raise FSError(errno.EINVAL)
        return attr.target

    def statfs(self) -> dict[str, int]:
        """Filesystem numbers: a bucket has no fixed capacity, so report a large one."""
        bsize = 4096
        total = 1 << 40  # 4 PiB in 4 KiB blocks: "plenty", like other remote mounts
        return {
            "f_bsize": bsize,
            "f_frsize": bsize,
            "f_blocks": total,
            "f_bfree": total,
            "f_bavail": total,
            "f_files": 1 << 32,
            "f_ffree": 1 << 32,
            "f_favail": 1 << 32,
            "f_namemax": NAME_MAX,
        }

    def getxattr(self, ino: int, name: str) -> bytes:
        """``user.bucketfs.cid`` (any clean entry) and ``user.bucketfs.root`` (mount root)."""
        if name == XATTR_ROOT and ino == ROOT_INODE:
            return self.root.rsplit("/", 1)[-1].encode()
        if name != XATTR_CID:
            raise FSError(_ENOATTR)
        attr = self.getattr(ino)
        if ino == ROOT_INODE:
            return self.root.rsplit("/", 1)[-1].encode()
        if not attr.cid and attr.kind == "dir":
            # Directory CIDs change with every write below them; ask the hub for the current one.
            with self._lock:
                path = self._inodes.path(ino)
            if path is None:
                raise FSError(errno.ENOENT)
            return self.remote.list_dir(path).item.cid.encode()
        if not attr.cid:
            raise FSError(_ENOATTR)  # a dirty file has no CID until it is uploaded
        return attr.cid.encode()

    def listxattr(self, ino: int) -> list[str]:
        """The xattr names of ``ino``."""
        self.getattr(ino)
        return [XATTR_CID, XATTR_ROOT] if ino == ROOT_INODE else [XATTR_CID]

    # -- files ---------------------------------------------------------------------------------

    def open(
        self, ino: int, write: bool, truncate: bool = False, stamped: bool = False,
        write_only: bool = False,
    ) -> tuple[int, bool]:
        """Open ``ino``; returns ``(fh, keep_cache)``. ``stamped``: the caller just set the
        file's mtime (create), so its first write need not move it again.

        ``write_only`` (O_WRONLY) with no other descriptor of the file open gets a *direct*
        descriptor (:meth:`is_direct`): the kernel passes its writes to us straight from the
        writer's buffer instead of copying them into its page cache first, which was the
        writer's own copy of every byte and, on this kind of VM, the page cache's memory to
        allocate (measured: 1 GiB written sequentially, the writer's CPU 0.45 -> 0.07 s, this
        daemon's 1.8-2.5 -> 0.9-1.0 s; docs/benchmarks.md). ``direct_write`` False (the
        ``nodirect_write`` option) turns this off. Such a descriptor cannot read (O_WRONLY) nor be
        mmapped, so only other descriptors could see stale cached pages; to rule that out the
        kernel drops the file's cached pages at this open (keep_cache False), and every
        descriptor opened while a direct one is open is direct as well (reads through it go to
        us, uncached), so no page is cached again before the last direct one is closed."""
        if write and self.read_only:
            raise FSError(errno.EROFS)
        attr = self.getattr(ino)
        if attr.kind == "dir":
            raise FSError(errno.EISDIR)
        with self._lock:
            fh = self._next_fh
            self._next_fh += 1
            direct = (self.direct_write and write and write_only and not self._open[ino]
                      ) or self._direct[ino] > 0
            self._handles[fh] = Handle(ino, attr.cid, attr.size, write,
                                       stamped=stamped or truncate, direct=direct)
            self._open[ino] += 1
            if direct:
                self._direct[ino] += 1
            self._inodes.pin(ino)
            # The kernel may keep its cached pages only if the content is the one it saw at
            # the previous open (same CID); dirty files are written through us, so also fine.
            keep = self._seen_cid.get(ino) == attr.cid and not direct
            self._seen_cid[ino] = attr.cid
        if truncate:
            self.setattr(ino, size=0)
        return fh, keep

    def create(
        self, parent_ino: int, name: str, mode: int, write_only: bool = False
    ) -> tuple[int, Attr]:
        """Create an empty file and open it for writing; returns ``(fh, attr)``.
        ``write_only``: opened O_WRONLY (a direct descriptor: see :meth:`open`)."""
        if self.read_only:
            raise FSError(errno.EROFS)
        check_name(name)
        parent = self._dir_path(parent_ino)
        path = join(parent, name)
        # No _mut here: a create is local, and waiting behind an upload in progress made
        # creating many small files 10x slower. The listing is read first (maybe from the
        # hub), then the dirty map is checked and updated atomically under _lock.
        if self._remote_entry(path) is not None:
            raise FSError(errno.EEXIST)
        return self._create_at(path, mode, write_only)

    def create_nowait(
        self, parent_ino: int, name: str, mode: int, write_only: bool = False
    ) -> tuple[int, Attr] | None:
        """:meth:`create` answered from memory (no I/O at all: the record is saved at the
        first write or at close), or None when the parent's listing is not in memory.

        For the pyfuse3 adapter, which calls this on its event loop: creating many small files
        is then one worker thread round trip per file (the write), not two."""
        if self.read_only:
            raise FSError(errno.EROFS)
        check_name(name)
        with self._lock:
            found = self._memory_child(parent_ino, name)
            if found is None:
                return None
            path, d = found
            if name in d.children or path in self._dirty:
                raise FSError(errno.EEXIST)
        return self._create_at(path, mode, write_only)

    def is_direct(self, fh: int) -> bool:
        """Whether descriptor ``fh`` bypasses the kernel's page cache (see :meth:`open`)."""
        with self._lock:
            h = self._handles.get(fh)
            return h is not None and h.direct

    def _create_at(self, path: str, mode: int, write_only: bool = False) -> tuple[int, Attr]:
        """The second half of :meth:`create`, once ``path`` is known not to exist remotely
        (memory only: the record is saved at the first write or at close)."""
        rec = self.store.new(path, "", 0, mode & 0o7777, now_ns(), expect_cid="", save=False)
        with self._lock:
            if path in self._dirty:
                lost = True
            else:
                lost = False
                self._dirty[path] = rec
                ino = self._inodes.lookup(path)
                self._inodes.pin(ino)
        if lost:
            raise FSError(errno.EEXIST)  # (rec was never saved: nothing to drop)
        fh, _ = self.open(ino, write=True, stamped=True, write_only=write_only)
        return fh, self._attr(ino, rec)

    def read(self, fh: int, offset: int, length: int) -> bytes:
        """Read from an open file."""
        h = self._handle(fh)
        rec = self._record_of(h.ino)
        if rec is not None:
            return self.store.read(rec, offset, length)
        if offset == h.next_offset or offset == 0:
            # Sequential: schedule read-ahead first, so the hub is busy while we wait.
            self.reads.prefetch(h.cid, h.size, offset)
        data = self.reads.read(h.cid, h.size, offset, length)
        h.next_offset = offset + len(data)
        return data

    def read_nowait(self, fh: int, offset: int, length: int) -> bytes | None:
        """:meth:`read` of bytes that are all in a dirty file's data file (or memory) or in a
        whole-file copy (:mod:`.filecopies`), done at once; None when it needs more (a base or
        a remote block to read, a busy record).
        For the pyfuse3 adapter, which calls this on its event loop: a worker thread round
        trip per read cost more than the read itself."""
        h = self._handle(fh)
        rec = self._record_of(h.ino)
        if rec is None:
            return self.reads.read_local(h.cid, h.size, offset, length)
        return self.store.read_nowait(rec, offset, length)

    def write(self, fh: int, offset: int, data: bytes) -> int:
        """Write to an open file (it becomes dirty)."""
        h = self._handle(fh)
        if not h.writable:
            raise FSError(errno.EBADF)
        for _attempt in range(100):
            rec = self._record_for_write(h.ino)
            with rec.lock:
                if rec.dropped:
                    continue  # just uploaded and cleaned: start a new record on the new base
                return self._write_locked(h, rec, offset, data)
        raise FSError(errno.EIO, "could not get a stable dirty record")

    def write_nowait(self, fh: int, offset: int, data: bytes) -> int | None:
        """:meth:`write` of up to 1 MiB into a dirty file without a base (a new file, or one
        truncated to zero), done at once — memory only for a small new file (its content is
        inline until close: see :mod:`.writeback`), else local disk and one SQLite commit at
        most; never the hub (no base bytes to bring in), never ``_mut`` — or None when it
        needs more (a clean file becomes dirty, a base to read, a big write, or the record is
        busy: an upload is reading it or fsync=local is syncing it).

        For the pyfuse3 adapter, which calls this on its event loop: the write of a small new
        file is then answered without a worker thread round trip (measured: about 20% more
        small-file creates per second)."""
        if len(data) > WRITE_NOWAIT_MAX:
            return None
        h = self._handle(fh)
        if not h.writable:
            raise FSError(errno.EBADF)
        rec = self._record_of(h.ino)
        if rec is None or not rec.lock.acquire(blocking=False):
            return None
        try:
            if rec.dropped or (rec.base_cid and rec.base_len > 0):
                return None
            return self._write_locked(h, rec, offset, data)
        finally:
            rec.lock.release()

    def _write_locked(self, h: Handle, rec: Record, offset: int, data: bytes) -> int:
        """The write itself (``rec.lock`` held): the mtime stamped once per write session, the
        bytes into the dirty store, the early upload told."""
        stamp = None if h.stamped else now_ns()
        h.stamped = True
        written = self.store.write(rec, offset, data, mtime_ns=stamp)
        self.pipes.wrote(rec, offset, written)
        return written

    def flush(self, fh: int) -> None:
        """close(2) of one descriptor: make the record's metadata durable."""
        h = self._handle(fh)
        rec = self._record_of(h.ino)
        if rec is not None:
            self.store.save_if_changed(rec)

    def flush_nowait(self, fh: int) -> bool:
        """:meth:`flush` done at once (True) when it has nothing to save, or when the save is
        one SQLite commit and nothing else (a small new file's record, its content inline);
        False when it needs more (call :meth:`flush`). Raises EBADF for an unknown handle."""
        h = self._handle(fh)
        rec = self._record_of(h.ino)
        if rec is None or rec.saved_gen == rec.gen:
            return True
        if not self.store.is_inline(rec) or not rec.lock.acquire(blocking=False):
            return False  # a data file to deal with, or busy (an upload reading it)
        try:
            self.store.save_if_changed(rec)
        finally:
            rec.lock.release()
        return True

    def release(self, fh: int) -> None:
        """The last descriptor of ``fh`` is gone: schedule the upload after the delay."""
        with self._lock:
            h = self._handles.pop(fh, None)
            if h is None:
                return
            self._open[h.ino] -= 1
            if h.direct:
                self._direct[h.ino] -= 1
                if self._direct[h.ino] <= 0:
                    del self._direct[h.ino]
            last = self._open[h.ino] <= 0
            if last:
                del self._open[h.ino]
            orphan = self._orphans.pop(h.ino, None) if last else None
            rec = None
            try:
                path = self._inodes.path(h.ino)
            except KeyError:
                path = None
            if path is not None:
                rec = self._dirty.get(path)
            if rec is not None and last:
                self._due[rec.file_id] = time.monotonic() + self.writeback_delay
            self._inodes.unpin(h.ino)
        if orphan is not None:
            self._discard(orphan)  # unlinked while open: nothing to upload
        if rec is not None and last:
            with self.work:
                self.work.notify_all()

    def fsync(self, fh: int) -> None:
        """Make the file durable: in the bucket (default) or in the local cache (fsync=local)."""
        h = self._handle(fh)
        rec = self._record_of(h.ino)
        if rec is None:
            return
        if self.fsync_local:
            self.store.sync(rec)  # data, record and SQLite log on disk: survives a power cut
            return
        with rec.lock:
            self.store.save(rec)
        with self._mut:
            self._upload(rec)

    # -- attribute changes ---------------------------------------------------------------------

    def setattr(
        self,
        ino: int,
        *,
        mode: int | None = None,
        size: int | None = None,
        mtime_ns: int | None = None,
        uid: int | None = None,
        gid: int | None = None,
    ) -> Attr:
        """chmod / truncate / utimens / chown (to ourselves only)."""
        if (uid is not None and uid != self.uid) or (gid is not None and gid != self.gid):
            # The bucket stores no owners: accepting this would silently lose it.
            raise FSError(errno.EPERM, "the bucket has no owners; chown is not supported")
        if mode is None and size is None and mtime_ns is None:
            return self.getattr(ino)
        if self.read_only:
            raise FSError(errno.EROFS)
        attr = self.getattr(ino)
        if size is not None:
            if attr.kind == "dir":
                raise FSError(errno.EISDIR)
            if size < 0:
                raise FSError(errno.EINVAL)
            for _attempt in range(100):
                rec = self._record_for_write(ino)
                with rec.lock:
                    if rec.dropped:
                        continue
                    self.store.truncate(rec, size)
                    self.pipes.truncated(rec, size)
                    rec.mtime_ns = now_ns() if mtime_ns is None else mtime_ns
                    self.store.save(rec)
                    break
            else:
                raise FSError(errno.EIO, "could not get a stable dirty record")
            self._schedule_if_closed(ino, rec)
        rec = self._record_of(ino)
        if rec is not None and (mode is not None or mtime_ns is not None):
            with rec.lock:
                if mode is not None:
                    rec.mode = mode & 0o7777
                if mtime_ns is not None:
                    rec.mtime_ns = mtime_ns
                rec.gen += 1  # an upload in flight carries the old values: stay dirty
                self.store.save(rec)
            self._schedule_if_closed(ino, rec)
        elif rec is None and (mode is not None or mtime_ns is not None):
            path = self._path(ino)
            with self._ns:
                self._log(Op("setattr", path, mode=None if mode is None else mode & 0o7777,
                             mtime_ns=mtime_ns))
        return self.getattr(ino)

    # -- namespace changes ---------------------------------------------------------------------

    def mkdir(self, parent_ino: int, name: str, mode: int) -> Attr:
        """Create a directory (journaled; the uploader makes it in the bucket)."""
        return self._make(parent_ino, name, lambda p: Op(
            "mkdir", p, mode=mode & 0o7777, mtime_ns=now_ns()))

    def symlink(self, parent_ino: int, name: str, target: str) -> Attr:
        """Create a symlink (journaled; a UnixFS symlink node in the bucket)."""
        return self._make(parent_ino, name, lambda p: Op(
            "symlink", p, target=target, mtime_ns=now_ns()))

    def unlink(self, parent_ino: int, name: str) -> None:
        """Remove a file or symlink."""
        self._remove(parent_ino, name, rmdir=False)

    def rmdir(self, parent_ino: int, name: str) -> None:
        """Remove an empty directory."""
        self._remove(parent_ino, name, rmdir=True)

    def link(self) -> None:
        """Hard links: a UnixFS DAG has no link counts to keep, so refuse explicitly."""
        raise FSError(errno.EPERM, "hard links are not supported")

    def rename(self, p_old: int, n_old: str, p_new: int, n_new: str, flags: int = 0) -> None:
        """rename(2)/renameat2(2) of files and whole directories."""
        if self.read_only:
            raise FSError(errno.EROFS)
        check_name(n_new)
        if flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE) or flags == (
            RENAME_NOREPLACE | RENAME_EXCHANGE
        ):
            raise FSError(errno.EINVAL)
        src = join(self._dir_path(p_old), n_old)
        dst = join(self._dir_path(p_new), n_new)
        if flags & RENAME_EXCHANGE:
            # Not journaled (rare, and both entries must be clean): the hub must be reachable,
            # and every pending operation goes first so that the paths mean the same there.
            with self._mut:
                self._replay()
                with self._ns:
                    self._rename(src, dst, n_old, flags)
        else:
            with self._ns:
                self._rename(src, dst, n_old, flags)
        self.notifier.entry(self._ino_or_zero(parent_of(src)), n_old)

    def _rename(self, src: str, dst: str, n_old: str, flags: int) -> None:
        """rename() with ``_ns`` held (and ``_mut`` for RENAME_EXCHANGE)."""
        s = self._entry(src)
        if s is None or n_old == SEED_NAME:
            raise FSError(errno.ENOENT)
        d = self._entry(dst)
        if src == dst:
            return
        if dst.startswith(src + "/") or (flags & RENAME_EXCHANGE and src.startswith(dst + "/")):
            raise FSError(errno.EINVAL)
        if flags & RENAME_EXCHANGE:
            self._exchange(src, dst, d)
            return
        if d is not None:
            if flags & RENAME_NOREPLACE:
                raise FSError(errno.EEXIST)
            d_kind = _kind(d)
            if d_kind == "dir":
                if _kind(s) != "dir":
                    raise FSError(errno.EISDIR)
                if self._nonempty(dst):
                    raise FSError(errno.ENOTEMPTY)
            elif _kind(s) == "dir":
                raise FSError(errno.ENOTDIR)
        src_remote = self._remote_entry(src)
        dst_remote = self._remote_entry(dst)
        if src_remote is not None:
            self._log(Op("rename", src, dst=dst, item=asdict(src_remote)))
        elif dst_remote is not None:
            # Only a local (never uploaded) file moves; its upload will replace dst, which
            # is what we now expect to find there.
            s.expect_cid = dst_remote.cid  # type: ignore[union-attr]
        with self._lock:
            replaced = self._dirty.get(dst)
        if replaced is not None and replaced is not s:
            self._forget_record(replaced, dst)
        elif d is not None and not isinstance(d, Record):
            self._orphan_if_open(dst, d)
        self._move_records(src, dst)
        with self._lock:
            self._inodes.rename(src, dst)

    # -- uploads (called by the uploader thread and by fsync/flush_all) -------------------------

    def due_uploads(self, now: float) -> tuple[list[Record], float | None]:
        """Dirty files whose upload is due, and when the next one will be.

        Once one file is due, small files due within the next ``batch_window`` seconds come
        along (a little early), so that files closed around the same time share one PushPaths
        stream instead of trickling out one stream each."""
        ready, later, nxt = [], [], None
        with self._lock:
            for rec in list(self._dirty.values()):
                t = self._due.get(rec.file_id)
                if t is None:
                    continue  # still open (or never closed): upload on close or fsync
                if t <= now:
                    ready.append(rec)
                else:
                    later.append((t, rec))
            window = now + min(BATCH_WINDOW, self.writeback_delay / 2)
            for t, rec in later:
                if ready and t <= window and rec.size <= BATCH_MAX_FILE:
                    ready.append(rec)  # joins the batch a little early
                elif nxt is None or t < nxt:
                    nxt = t
        return ready, nxt

    def upload(self, rec: Record) -> None:
        """Push one dirty file now (blocking; raises client errors for the caller to retry)."""
        with self._mut:
            self._upload(rec)

    def upload_many(self, recs: list[Record]) -> None:
        """Push several dirty files in one ``PushPaths`` stream (blocking; raises client
        errors for the caller to retry)."""
        with self._mut:
            self._upload_many(recs)

    def replay(self) -> None:
        """Send every pending namespace operation to the hub, in order (blocking; raises
        client errors for the caller to retry later)."""
        with self._mut:
            self._replay()

    def pending_ops(self) -> list[Op]:
        """Namespace operations the hub has not applied yet, oldest first."""
        with self._lock:
            return list(self._ops)

    def save_snapshot(self, force: bool = False) -> None:
        """Persist the root and the cached listings (for a start while the hub is down)."""
        with self._lock:
            if not (self._snap_changed or force):
                return
            root, mark = self.root, self._last_seq
            listings = {p: d.children for p, d in self._listings.items() if d.root == root}
            self._snap_changed = False
        try:
            self.journal.save_snapshot(root, mark, listings)
        except Exception:
            with self._lock:
                self._snap_changed = True  # try again next time
            raise

    def retry_later(self, rec: Record, delay: float) -> None:
        """Re-schedule a failed upload."""
        with self._lock:
            if rec.file_id in self._due:
                self._due[rec.file_id] = time.monotonic() + delay

    def retry_now(self, file_ids: list[str]) -> None:
        """Make the failed uploads of ``file_ids`` due at once (the hub is back)."""
        now = time.monotonic()
        with self._lock:
            for file_id in file_ids:
                if file_id in self._due:
                    self._due[file_id] = min(self._due[file_id], now)

    def dirty_records(self) -> list[Record]:
        """All files not in the bucket yet."""
        with self._lock:
            return list(self._dirty.values())

    def status(self) -> dict:
        """A snapshot for ``bucketfs umount``/``status``."""
        cache_bytes = self.reads.volume()  # disk I/O: outside _lock
        with self._lock:
            recs = list(self._dirty.values())
            up = dict(self._uploading) if self._uploading else None
            queue = []
            for r in recs:
                if up is not None and r.path in up["paths"]:
                    # (for a PushPaths batch, "sent" is the whole stream's progress)
                    state, sent = "uploading", up["sent"]
                elif self._due.get(r.file_id) is None:
                    state, sent = "open", 0
                else:
                    state, sent = "waiting", 0
                queue.append({"path": r.path, "size": r.size, "sent": sent, "state": state})
            ops = [{"op": o.kind, "path": o.path, **({"to": o.dst} if o.dst else {})}
                   for o in self._ops[:100]]
            return {
                "bucket": self.remote.key,
                "root": self.root,
                "online": self.remote.online,
                "last_contact": self.remote.last_contact,
                "started_offline": self.started_offline,
                "dirty_files": len(recs),
                "dirty_bytes": sum(r.size for r in recs),
                "queue": queue,
                "pending_ops": len(self._ops),
                "ops": ops,
                "cache_limit": self.cache_size,
                "uploads": self.stats.uploads,
                "upload_errors": self.stats.upload_errors,
                "last_error": self.stats.last_error,
                "last_sync": self.stats.last_sync,
                "conflicts": self.stats.conflicts,
                "dropped_ops": self.stats.dropped_ops,
                "conflict_paths": list(self.stats.conflict_paths),
                "remote_changes": self.stats.remote_changes,
                "pushes": self.stats.pushes,
                "diffs": self.stats.diffs,
                "relisted_dirs": self.stats.relisted_dirs,
                "invalidations": self.stats.invalidations,
                "fetched_bytes": self.reads.fetched_bytes,
                "uploaded_bytes": self.stats.uploaded_bytes,
                "early_upload_bytes": self.pipes.early_bytes,
                "linked_uploads": self.stats.linked,
                "linked_sent_bytes": self.stats.linked_sent_bytes,
                "local_ingest_bytes": self.pipes.sender.local_bytes,
                "read_cache_bytes": cache_bytes,
                "inodes": len(self._inodes),
                "open_files": len(self._handles),
            }

    # -- remote changes ------------------------------------------------------------------------

    def known_updated_at(self) -> int:
        """``updated_at`` of the newest bucket state this mount knows (its own or adopted)."""
        return max(self._seen_updated_at, self.remote.own_updated_at)

    def check_remote(self) -> bool:
        """Poll the bucket root once; adopt it if it moved. Returns True if it changed."""
        new, updated = self.remote.root_info()
        if new == self.root and updated <= self.known_updated_at():
            return False
        with self._mut:
            # Read the root again now that none of our own mutations is in flight: the first
            # read may be a root that our uploader has since moved past (a WatchRoot event of
            # our own push), and adopting it would take the bucket back in time — the files
            # pushed since would vanish from listings and the next push would fail as
            # non-fast-forward (measured: 124 such adoptions for 250 files copied by cp -a).
            new, updated = self.remote.root_info()
            known = self.known_updated_at()
            self._seen_updated_at = max(known, updated)
            if new != self.root:
                self.adopt_root(new)
            elif updated > known:
                # A chmod or utime elsewhere (FS.SetAttr) changes only the bucket's metadata,
                # not its root CID, so no Merkle diff can see it: compare the cached listings.
                log.info("bucket metadata changed elsewhere at root %s", new)
                with self._ns:
                    self._adopt_root(new, None)
            else:
                return False
        return True

    def adopt_root(self, new_root: str) -> None:
        """The bucket moved to ``new_root`` by someone else's hand (call with ``_mut`` held).

        A Merkle diff of the old and new roots (:func:`bucketfs.ipfs.diff.diff`, over the
        verified block cache: it descends only into directories whose CIDs differ) says which
        paths changed. Only the cached directories on those paths are listed again; the others
        are the same at the new root and are kept. Only the kernel entries that changed are
        invalidated. Dirty files whose remote version changed under them are moved aside as
        conflict copies. Without a usable diff (pending namespace operations, a block the hub
        no longer has) every cached directory is compared instead, as before.
        """
        changes = self._tree_diff(self.root, new_root)  # network I/O: before _ns
        with self._ns:
            self._adopt_root(new_root, changes)

    def _tree_diff(self, old_root: str, new_root: str) -> list[Change] | None:
        """The Merkle diff from ``old_root`` to ``new_root``, or None when it cannot be used."""
        with self._lock:
            if self._ops:
                # Cached listings are keyed by local paths, which pending renames make differ
                # from bucket paths: compare listings instead (rare: remote change + local ops).
                return None
        if not old_root or not new_root:
            return None
        try:
            old_cid = CID.decode(root_cid(old_root))
            new_cid = CID.decode(root_cid(new_root))
            changes = tree_diff(self.reads.blocks, old_cid, new_cid)
        except Exception as exc:  # e.g. the old root's blocks are gone from the hub
            log.info("no Merkle diff of %s → %s (%s); comparing cached listings instead",
                     old_root, new_root, exc)
            return None
        with self._lock:
            self.stats.diffs += 1
        log.debug("Merkle diff %s → %s: %d changes", old_root, new_root, len(changes))
        return changes

    def _adopt_root(self, new_root: str, changes: list[Change] | None = None) -> None:
        old_root = self.root
        with self._lock:
            ops = list(self._ops)
            if ops:
                changes = None  # logged since the diff was taken: see _tree_diff
            dirs = [p for p, d in self._listings.items() if d.root == old_root]
            if changes is not None:
                # A directory is listed again only if its CID changed: it is an ancestor of a
                # change, or at or under a path that was removed or replaced. Any other cached
                # directory has the same CID, so the same listing, at the new root.
                touched: set[str] = set()
                gone = [c.path for c in changes if c.kind != "added"]
                for c in changes:
                    p = c.path
                    while p:
                        p = parent_of(p)
                        touched.add(p)
                changed = {p for p in dirs if p in touched or any(_under(p, g) for g in gone)}
                keep = [p for p in dirs if p not in changed]
                dirs = [p for p in dirs if p in changed]  # (in use order, for RELIST_MAX)
            else:
                keep = []
            # Re-list only the most recently used directories; older ones are simply dropped
            # (the kernel forgets their entries within the TTL, and they are re-read on use).
            for p in dirs[:-RELIST_MAX]:
                del self._listings[p]
            dirs = dirs[-RELIST_MAX:]
        fresh: dict[str, dict[str, RemoteItem] | None] = {}
        for path in dirs:
            try:
                fresh[path] = self._merged(path, ops)[0]
            except (ce.NotFound, ce.InvalidArgument):
                fresh[path] = None
            except ce.ClientError as exc:
                raise FSError(errno.EIO, f"listing {path!r} at the new root: {exc}") from exc
        notes: set[tuple[int, str]] = set()
        inos: set[int] = set()
        with self._lock:
            self.root = new_root
            self._snap_changed = True
            if new_root != old_root:
                self.stats.remote_changes += 1
            self.stats.relisted_dirs += len(dirs)
            for p in keep:
                d = self._listings.get(p)
                if d is not None and d.root == old_root:
                    d.root = new_root
            compared: set[str] = set()
            for path in dirs:
                old = self._listings.get(path)
                new = fresh[path]
                if new is None:
                    self._listings.pop(path, None)
                    continue
                if old is None:
                    continue  # evicted meanwhile: read again on use
                compared.add(path)
                dir_ino = self._inodes.get(path)
                for name in set(old.children) | set(new):
                    a, b = old.children.get(name), new.get(name)
                    if _same(a, b):
                        continue
                    child = join(path, name)
                    if dir_ino is not None:
                        notes.add((dir_ino, name))
                    cino = self._inodes.get(child)
                    if cino is not None:
                        inos.add(cino)
                self._listings[path] = _Dir(new, new_root)
            for c in changes or []:
                # Changes in directories whose listing is not cached (evicted, or never read
                # whole): the kernel may still hold their entries from earlier lookups.
                parent = parent_of(c.path)
                if parent in compared or not c.path:
                    continue
                dir_ino = self._inodes.get(parent)
                if dir_ino is not None:
                    notes.add((dir_ino, c.path.rpartition("/")[2]))
                cino = self._inodes.get(c.path)
                if cino is not None:
                    inos.add(cino)
            self.stats.invalidations += len(notes) + len(inos)
        for dir_ino, name in sorted(notes):
            self.notifier.entry(dir_ino, name)
        for ino in sorted(inos):
            self.notifier.inode(ino)
        self._find_conflicts()

    # -- internals: entries --------------------------------------------------------------------

    def _entry(self, path: str) -> RemoteItem | Record | None:
        """The merged view of ``path``: a dirty record, a remote item, or None."""
        if path == "":
            return RemoteItem("", "", "dir", 0, 0, 0)
        with self._lock:
            rec = self._dirty.get(path)
        if rec is not None:
            return rec
        return self._remote_entry(path)

    def _remote_entry(self, path: str) -> RemoteItem | None:
        if path == "":
            return RemoteItem("", "", "dir", 0, 0, 0)
        parent, _, name = path.rpartition("/")
        try:
            children = self._children(parent)
        except FSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                return None
            raise
        return children.get(name)

    def _children(self, path: str) -> dict[str, RemoteItem]:
        """The remote listing of directory ``path`` at the current root (cached)."""
        with self._lock:
            d = self._listings.get(path)
            if d is not None and d.root == self.root:
                self._listings.move_to_end(path)
                return d.children
            root = self.root
            ops = list(self._ops)
            count = self._op_count
        if path and not self._parent_has_dir(path):
            # A local-only parent chain (or none): the hub has nothing to list.
            raise FSError(errno.ENOENT)
        try:
            children, listed_at = self._merged(path, ops)
        except ce.NotFound:
            raise FSError(errno.ENOENT) from None
        except ce.InvalidArgument:
            raise FSError(errno.ENOTDIR) from None
        with self._lock:
            # Cache only a listing of the root we are at (a newer one is the reconciler's job)
            # that has every pending operation applied.
            if (listed_at or root) == self.root == root and self._op_count == count:
                self._listings[path] = _Dir(children, root)
                self._listings.move_to_end(path)
                self._snap_changed = True
                while len(self._listings) > MAX_LISTINGS:
                    self._listings.popitem(last=False)
        return children

    def _parent_has_dir(self, path: str) -> bool:
        """Whether ``path``'s parent listing (if cached) shows it as a directory."""
        parent, _, name = path.rpartition("/")
        with self._lock:
            d = self._listings.get(parent)
            if d is None or d.root != self.root:
                return True  # unknown: ask the hub
            item = d.children.get(name)
        return item is not None and item.kind == "dir"

    def _nonempty(self, path: str) -> bool:
        children = self._children(path)
        if any(n != SEED_NAME for n in children):
            return True
        with self._lock:
            return any(parent_of(p) == path for p in self._dirty)

    def _attr(self, ino: int, entry: RemoteItem | Record) -> Attr:
        if isinstance(entry, Record):
            kind, size, mode, mtime, target, cid = (
                "file", entry.size, entry.mode, entry.mtime_ns, "", "")
        else:
            kind, size, mode, mtime, target, cid = (
                entry.kind, entry.size, entry.mode, entry.mtime_ns, entry.target, entry.cid)
            if kind == "symlink":
                size = len(target.encode())
        return Attr(
            ino=ino,
            kind=kind,
            size=size,
            mode=TYPE_BITS[kind] | (mode or DEFAULT_MODE[kind]),
            mtime_ns=mtime or self._start_ns,
            uid=self.uid,
            gid=self.gid,
            target=target,
            cid=cid,
        )

    def _dir_path(self, ino: int) -> str:
        path = self._path(ino)
        if ino != ROOT_INODE:
            entry = self._entry(path)
            if entry is None:
                raise FSError(errno.ENOENT)
            if _kind(entry) != "dir":
                raise FSError(errno.ENOTDIR)
        return path

    def _path(self, ino: int) -> str:
        with self._lock:
            try:
                path = self._inodes.path(ino)
            except KeyError:
                raise FSError(errno.ENOENT) from None
        if path is None:
            raise FSError(errno.ENOENT)
        return path

    def _ino_or_zero(self, path: str) -> int:
        with self._lock:
            return self._inodes.get(path) or 0

    def _handle(self, fh: int) -> Handle:
        with self._lock:
            h = self._handles.get(fh)
        if h is None:
            raise FSError(errno.EBADF)
        return h

    # -- internals: dirty records --------------------------------------------------------------

    def _record_of(self, ino: int) -> Record | None:
        with self._lock:
            orphan = self._orphans.get(ino)
            if orphan is not None:
                return orphan
            try:
                path = self._inodes.path(ino)
            except KeyError:
                return None
            return None if path is None else self._dirty.get(path)

    def _record_for_write(self, ino: int) -> Record:
        """The dirty record of ``ino``, created from its remote version if it is clean."""
        rec = self._record_of(ino)
        if rec is not None:
            return rec
        path = self._path(ino)
        with self._mut:
            rec = self._record_of(ino)
            if rec is not None:
                return rec
            item = self._remote_entry(path)
            if item is None:
                raise FSError(errno.ENOENT)
            if item.kind != "file":
                raise FSError(errno.EISDIR if item.kind == "dir" else errno.EINVAL)
            rec = self.store.new(path, item.cid, item.size, item.mode or 0o644,
                                 item.mtime_ns or self._start_ns)
            with self._lock:
                self._dirty[path] = rec
                self._inodes.pin(ino)
            return rec

    def _schedule_if_closed(self, ino: int, rec: Record) -> None:
        with self._lock:
            if self._open.get(ino, 0) <= 0:
                self._due[rec.file_id] = time.monotonic() + self.writeback_delay
        with self.work:
            self.work.notify_all()

    def _forget_record(self, rec: Record, path: str) -> None:
        """``rec`` (at ``path``) is replaced or unlinked: keep it only for open handles."""
        with self._lock:
            if self._dirty.get(path) is rec:
                del self._dirty[path]
            self._due.pop(rec.file_id, None)
            ino = self._inodes.get(path)
            still_open = ino is not None and self._open.get(ino, 0) > 0
            if still_open:
                # Open handles keep reading and writing it; it is discarded at the last close.
                self._orphans[ino] = rec
            rec.path = None
            if ino is not None:
                self._inodes.unpin(ino)
        if not still_open:
            self._discard(rec)
            return
        with rec.lock:
            if not rec.dropped:
                # Path-less on disk too: after a crash before the last close, the start-up
                # drops it instead of uploading a deleted file under its old name.
                self.store.save(rec)

    def _orphan_if_open(self, path: str, item: RemoteItem) -> None:
        """A clean file unlinked or replaced while open lives on for its open descriptors,
        as on a local disk: it becomes an orphan record based on its CID, which takes their
        writes and is discarded at the last close (without one, the descriptors' writes,
        fstat and ftruncate found no path and failed with ENOENT)."""
        if item.kind != "file":
            return
        with self._lock:
            ino = self._inodes.get(path)
            if ino is None or self._open.get(ino, 0) <= 0 or ino in self._orphans:
                return
        # Saved with no path from the start: a crash before the last close must not bring
        # the file back under its old name (the start-up drops path-less records).
        rec = self.store.new(None, item.cid, item.size,  # type: ignore[arg-type]
                             item.mode or DEFAULT_MODE["file"], item.mtime_ns or self._start_ns)
        with self._lock:
            self._orphans[ino] = rec

    def _discard(self, rec: Record) -> None:
        with rec.lock:
            rec.dropped = True
            self.store.drop(rec)
        self.pipes.drop(rec)

    def _move_records(self, src: str, dst: str) -> None:
        with self._lock:
            moved = [
                (p, r) for p, r in self._dirty.items() if p == src or p.startswith(src + "/")
            ]
            for p, _ in moved:
                del self._dirty[p]
            for p, r in moved:
                r.path = dst + p[len(src) :]
                self._dirty[r.path] = r
        for _, r in moved:
            with r.lock:
                self.store.save(r)

    def _upload(self, rec: Record) -> None:
        """Push ``rec`` (``_mut`` held). Retries after adopting a newer root."""
        self._upload_many([rec])

    def _upload_many(self, recs: list[Record]) -> None:
        """Push ``recs`` (``_mut`` held): one file with ``PushPath``, several in ONE
        ``PushPaths`` stream (one new root, one fast-forward check). Retries after adopting a
        newer root, which first moves conflicting files aside.

        Every pending namespace operation is replayed first, and the paths are read while none
        is pending (under ``_ns``, so not in the middle of a rename): the local paths are then
        the same paths in the bucket."""
        for _attempt in range(8):
            while True:
                self._replay()
                with self._ns, self._lock:
                    if self._ops:
                        continue  # more arrived meanwhile: they go first too
                    # Unlinked, replaced or already uploaded records drop out.
                    batch = [(r, r.path, r.gen, r.mode, r.mtime_ns) for r in recs
                             if r.path is not None and self._dirty.get(r.path) is r]
                    if not batch:
                        return
                    ops_at = self._op_count
                    progress = {"path": batch[0][1], "size": sum(b[0].size for b in batch),
                                "sent": 0, "paths": [b[1] for b in batch]}
                    self._uploading = progress
                    break
            sent = {b[1]: 0 for b in batch}

            def content(rec: Record, path: str, progress: dict = progress, sent: dict = sent):  # noqa: ANN202
                for chunk in self.store.iter_content(rec):
                    progress["sent"] += len(chunk)
                    sent[path] += len(chunk)
                    yield chunk

            root = self.root
            linked = False
            try:
                if len(batch) == 1:
                    rec, path, _gen, mode, mtime = batch[0]
                    piped = self._push_piped(rec, path, root, mode, mtime, progress)
                    linked = piped is not None
                    if piped is None:
                        piped = self.remote.push_file(path, content(rec, path), root, mode, mtime)
                    else:
                        sent[path] = piped[2]
                    new_root, cid = piped[:2]
                    cids = {path: cid}
                else:
                    new_root, cids = self.remote.push_files(
                        [(p, content(r, p), mode, mtime) for r, p, _g, mode, mtime in batch],
                        root)
            except ce.NonFastForward:
                log.info("bucket changed under the upload of %s%s; rebasing", batch[0][1],
                         f" and {len(batch) - 1} more" if len(batch) > 1 else "")
                self.adopt_root(self.remote.root())
                continue
            finally:
                self._uploading = None
            with self._lock:
                ops_moved = self._op_count != ops_at
                self.stats.pushes += not linked
            items = {p: RemoteItem(p.rpartition("/")[2], cids[p], "file", sent[p], mode, mtime)
                     for _r, p, _g, mode, mtime in batch}

            def patch(items: dict = items, moved: bool = ops_moved, batch: list = batch) -> None:
                for r, p, *_ in batch:
                    if not moved:
                        self._set_child(p, items[p])
                        continue
                    # Operations logged during the push may have moved or removed this path
                    # locally: rebuild the parent's listing (bucket + pending operations) on
                    # use.
                    self._listings.pop(parent_of(p), None)
                    if r.path is not None:
                        self._listings.pop(parent_of(r.path), None)

            self._apply_own(new_root, patch)
            clean = [rec for rec, path, gen, _mode, _mtime in batch
                     if self._uploaded(rec, path, gen, cids[path], sent[path])]
            if not clean:
                return
            # Until a clean record is dropped (in the background), a crash re-queues it: with
            # the new expect_cid saved, that costs one identical upload, not a false conflict
            # copy. Its chunks are the new CID's chunks (same 256 KiB alignment as the
            # importer): keep them as read cache, then free the dirty store. For a batch, each
            # step is one SQLite transaction for all files, not one per file.
            # An inline file (small, its content in memory: see .writeback) is dropped at once:
            # the adoption reads it from memory, so saving it first would only be a second
            # SQLite write for it (a crash before the drop is handled like any other: the
            # re-upload finds the same content in the bucket, no conflict copy).
            inline = [rec for rec in clean if self.store.is_inline(rec)]
            if inline:
                self.store.drop_many(inline)
            if len(clean) == 1 and inline:
                rec = clean[0]
                self.reads.adopt(rec.expect_cid, self.store.iter_content(rec), lambda: None)
            elif len(clean) == 1:
                rec = clean[0]
                self.store.save(rec)
                # A big file is not copied: that would write it to disk a second time right
                # after the upload, competing with whatever runs next. Its data file is kept
                # (hard link) when it holds the whole content; the hub serves it otherwise.
                if rec.size > ADOPT_MAX:
                    self.reads.keep_copy(rec.expect_cid, self.store.whole_data(rec), rec.size)
                chunks = self.store.iter_content(rec) if rec.size <= ADOPT_MAX else iter(())
                self.reads.adopt(rec.expect_cid, chunks, lambda rec=rec: self.store.drop(rec))
            else:
                files = [rec for rec in clean if not self.store.is_inline(rec)]
                self.store.save_many(files)
                self.reads.adopt_many([self.store.iter_content(r) for r in clean],
                                      lambda files=files: self.store.drop_many(files))
            return
        raise FSError(errno.ESTALE, f"{recs[0].path}: the bucket keeps changing; upload postponed")

    def _push_piped(
        self, rec: Record, path: str, root: str, mode: int, mtime: int, progress: dict
    ) -> tuple[str, str, int] | None:
        """Upload ``rec`` by its early-uploaded leaves (:mod:`~bucketfs.mount.leafpipe`):
        the missing blocks, then ``FS.Link``. Returns ``(new root, file cid, size)``, or None
        when the file has no usable pipe, or its pipe could not complete (logged): the caller
        then pushes the whole file. A non-fast-forward answer and an unreachable hub are
        raised as they would be for a push."""
        pipe = self.pipes.get(rec)
        if pipe is None:
            return None
        try:
            progress["sent"] = 0

            def count(n: int) -> None:
                progress["sent"] += n

            tree, size, sent_now = pipe.finish(count)
            new_root, item = self.remote.link(path, str(tree.cid), root, mode, mtime)
        except (ce.NonFastForward, ce.HubUnavailable):
            raise
        except (ce.ClientError, Unusable) as exc:
            log.warning("early-uploaded blocks of %s not usable (%s); pushing it whole",
                        path, exc)
            self.pipes.drop(rec)
            return None
        with self._lock:
            self.stats.linked += 1
            self.stats.linked_sent_bytes += sent_now
        return new_root, item.cid or str(tree.cid), size

    def _uploaded(self, rec: Record, path: str, gen: int, cid: str, size: int) -> bool:
        """The bucket has ``rec``'s content of generation ``gen`` at ``path`` as ``cid``.
        Returns True when the record is clean now (the caller saves and drops it)."""
        with rec.lock, self._lock:
            rec.expect_cid = cid
            self.stats.uploads += 1
            self.stats.uploaded_bytes += size
            self.stats.last_sync = time.time()
            log.debug("uploaded %s (%d bytes) → %s", path, size, cid)
            if rec.gen != gen or self._dirty.get(path) is not rec:
                self.store.save(rec)  # changed while pushing: stays dirty
                return False
            # Clean now: the bucket holds exactly this content.
            del self._dirty[path]
            self._due.pop(rec.file_id, None)
            rec.dropped = True
            self.pipes.drop(rec)
            ino = self._inodes.get(path)
            if ino is not None:
                self._inodes.unpin(ino)
                # The kernel's pages came through us: they are this CID's content.
                self._seen_cid[ino] = cid
                for h in self._handles.values():
                    if h.ino == ino:
                        h.cid, h.size = cid, size
            return True

    def _find_conflicts(self) -> None:
        """Dirty files whose remote version changed since we based on it: move them aside."""
        with self._lock:
            recs = list(self._dirty.items())
        for path, rec in recs:
            remote = self._remote_entry(path)
            remote_cid = remote.cid if remote is not None else ""
            if remote_cid == rec.expect_cid:
                continue
            if remote is None and rec.expect_cid:
                # Deleted remotely while edited here: keep the local version under its name.
                rec.expect_cid = ""
                continue
            if remote is not None and self._holds(rec, remote):
                # The bucket already has exactly the local content: our own push whose answer
                # was lost (a PushPaths stream that failed after the hub saved part of it, or
                # a hub that stopped after its commit). Not a conflict; the record stays dirty
                # and its next upload is a no-op.
                rec.expect_cid = remote.cid
                continue
            when = time.time()
            name = conflict_name(path.rpartition("/")[2], self.hostname, when)
            new_path = join(parent_of(path), name)
            log.warning(
                "conflict: %s changed in the bucket while it had local edits; "
                "the local version is kept as %s", path, new_path)
            with self._lock:
                self.stats.conflicts += 1
                self.stats.conflict_paths.append(new_path)
                rec.expect_cid = ""
                ino = self._inodes.get(path)
            self._move_records(path, new_path)
            with self._lock:
                self._inodes.rename(path, new_path)
                self._due[rec.file_id] = 0.0
            parent_ino = self._ino_or_zero(parent_of(path))
            if parent_ino:
                self.notifier.entry(parent_ino, path.rpartition("/")[2])
                self.notifier.entry(parent_ino, name)
            if ino is not None:
                self.notifier.inode(ino)
        with self.work:
            self.work.notify_all()

    def _holds(self, rec: Record, remote: RemoteItem) -> bool:
        """Whether the bucket's file ``remote`` has the same content as ``rec`` (checked by
        importing the local content as the hub does, for files up to SAME_CHECK_MAX only)."""
        if remote.kind != "file" or remote.size != rec.size or rec.size > SAME_CHECK_MAX:
            return False
        try:
            data = b"".join(self.store.iter_content(rec))
            return str(import_file(io.BytesIO(data), NullBlockstore()).cid) == remote.cid
        except Exception as exc:  # cannot tell: treat it as a conflict (keeps both copies)
            log.warning("could not compare %s with the bucket's version: %s", rec.path, exc)
            return False

    # -- internals: the namespace journal -------------------------------------------------------

    def _log(self, op: Op) -> None:
        """Persist ``op`` in the journal, then show it in the local view (``_ns`` held)."""
        op = self.journal.append(op)  # committed and fsynced: the change survives a crash
        with self._lock:
            self._ops.append(op)
            self._op_count += 1
            self._last_seq = op.seq
            self._patch(op)
            self._snap_changed = True
        with self.work:
            self.work.notify_all()

    def _patch(self, op: Op) -> None:
        """Apply ``op`` to the cached listings (``_lock`` held)."""
        if op.kind == "rename":
            self._move_entry(op.path, op.dst, op.moved_item(op.dst.rpartition("/")[2]))
            return
        parent = parent_of(op.path)
        d = self._listings.get(parent)
        if d is not None and d.root == self.root and op.path:
            children = dict(d.children)  # copy-on-write: readers may hold the old dict
            apply_op(op, parent, parent, children)
            d.children = children
        if op.kind == "remove":
            self._drop_listings(op.path)
        elif op.kind == "mkdir":
            self._listings[op.path] = _Dir({}, self.root)

    def _replay(self) -> None:
        """Send the pending operations to the hub, oldest first (``_mut`` held)."""
        while True:
            with self._lock:
                if not self._ops:
                    return
                op = self._ops[0]
            self._send(op)

    def _send(self, op: Op) -> None:
        for _attempt in range(8):
            try:
                new_root = self._call(op, self.root)
            except ce.NonFastForward:
                log.info("bucket changed before %s %s could be applied; rebasing",
                         op.kind, op.path)
                self.adopt_root(self.remote.root())
                continue
            except (ce.NotFound, ce.AlreadyExists, ce.FailedPrecondition,
                    ce.InvalidArgument) as exc:
                # The bucket changed elsewhere so that the operation no longer applies (or the
                # hub applied it just before a crash made us forget that it had): keep the
                # bucket's version, drop the operation, and re-read the bucket.
                log.warning("%s %s no longer applies to the bucket (%s); dropped",
                            op.kind, op.path, exc)
                self.stats.dropped_ops += 1
                self._op_done(op, None)
                self.adopt_root(self.remote.root())
                return
            self._op_done(op, new_root)
            return
        raise FSError(errno.ESTALE, "the bucket keeps changing")

    def _call(self, op: Op, root: str) -> str:
        """The hub call for ``op``; returns the new root."""
        r = self.remote
        if op.kind == "mkdir":
            return r.mkdir(op.path, root, op.mode or 0o755, op.mtime_ns or now_ns())[0]
        if op.kind == "symlink":
            return r.symlink(op.path, op.target, root, op.mtime_ns or now_ns())[0]
        if op.kind == "remove":
            return r.remove(op.path, root, rmdir=op.rmdir)
        if op.kind == "rename":
            return r.rename(op.path, op.dst, 0, root)
        return r.set_attr(op.path, root, op.mode, op.mtime_ns)[0]

    def _op_done(self, op: Op, new_root: str | None) -> None:
        """The hub applied ``op`` (moving the root to ``new_root``), or it was dropped."""
        with self._lock:
            if self._ops and self._ops[0].seq == op.seq:
                self._ops.pop(0)
            if new_root is not None:
                # The cached listings already showed this operation: only their root moves.
                old = self.root
                for d in self._listings.values():
                    if d.root == old:
                        d.root = new_root
                self.root = new_root
                self.stats.last_sync = time.time()
            self._snap_changed = True
        self.journal.done(op.seq)

    def _merged(self, path: str, ops: list[Op]) -> tuple[dict[str, RemoteItem], str | None]:
        """Directory ``path`` as the bucket lists it plus ``ops``, and the root the bucket's
        part was read at (None when ``ops`` created the directory). Raises ce.NotFound."""
        start, paths = history(ops, path)
        if start:
            return overlay(ops, path, None, start, paths), None
        listing = self.remote.list_dir(paths[0])
        return overlay(ops, path, listing.children, 0, paths), listing.root

    # -- internals: own mutations --------------------------------------------------------------

    def _mutate(self, call: Callable[[str], tuple]) -> tuple:
        """Run ``call(root)`` against the hub, adopting a newer root and retrying on NFF."""
        for _attempt in range(8):
            try:
                return call(self.root)
            except ce.NonFastForward:
                self.adopt_root(self.remote.root())
        raise FSError(errno.ESTALE, "the bucket keeps changing")

    def _apply_own(self, new_root: str, patch: Callable[[], None]) -> None:
        """Our own mutation moved the root: carry the cached listings over and patch them."""
        with self._lock:
            old_root = self.root
            for d in self._listings.values():
                if d.root == old_root:
                    d.root = new_root
            self.root = new_root
            self._snap_changed = True
            patch()

    def _set_child(self, path: str, item: RemoteItem | None) -> None:
        parent, _, name = path.rpartition("/")
        d = self._listings.get(parent)
        if d is None or d.root != self.root:
            return
        children = dict(d.children)
        if item is None:
            children.pop(name, None)
            self._drop_listings(path)
        else:
            children[name] = replace(item, name=name)
        d.children = children

    def _drop_listings(self, path: str) -> None:
        for p in [p for p in self._listings if p == path or p.startswith(path + "/")]:
            del self._listings[p]

    def _move_entry(self, src: str, dst: str, item: RemoteItem) -> None:
        moved = {
            p: d for p, d in self._listings.items() if p == src or p.startswith(src + "/")
        }
        self._drop_listings(dst)
        for p in moved:
            del self._listings[p]
        self._set_child(src, None)
        self._set_child(dst, item)
        for p, d in moved.items():
            self._listings[dst + p[len(src) :]] = d

    def _exchange(self, src: str, dst: str, d: RemoteItem | Record | None) -> None:
        if d is None:
            raise FSError(errno.ENOENT)
        with self._lock:
            busy = any(
                p == x or p.startswith(x + "/") for p in self._dirty for x in (src, dst)
            )
        if busy:
            # Swapping entries whose new content is not in the bucket yet would need both
            # uploads to land atomically; refuse rather than half-do it.
            raise FSError(errno.EINVAL, "RENAME_EXCHANGE of files with unsynced changes")
        a, b = self._remote_entry(src), self._remote_entry(dst)
        new_root, _ = self._mutate(
            lambda root: (self.remote.rename(src, dst, RENAME_EXCHANGE, root), None)
        )

        def patch() -> None:
            moved_a = {p: x for p, x in self._listings.items() if _under(p, src)}
            moved_b = {p: x for p, x in self._listings.items() if _under(p, dst)}
            for p in list(moved_a) + list(moved_b):
                self._listings.pop(p, None)
            self._set_child(src, b)
            self._set_child(dst, a)
            for p, x in moved_a.items():
                self._listings[dst + p[len(src):]] = x
            for p, x in moved_b.items():
                self._listings[src + p[len(dst):]] = x
            self._inodes.exchange(src, dst)

        self._apply_own(new_root, patch)

    def _make(self, parent_ino: int, name: str, make_op: Callable[[str], Op]) -> Attr:
        if self.read_only:
            raise FSError(errno.EROFS)
        check_name(name)
        path = join(self._dir_path(parent_ino), name)
        with self._ns:
            if self._entry(path) is not None:
                raise FSError(errno.EEXIST)
            op = make_op(path)
            self._log(op)
            with self._lock:
                ino = self._inodes.lookup(path)
        kind = "dir" if op.kind == "mkdir" else "symlink"
        item = RemoteItem(name, "", kind, 0, op.mode or 0, op.mtime_ns or 0, op.target)
        return self._attr(ino, item)

    def _remove(self, parent_ino: int, name: str, rmdir: bool) -> None:
        if self.read_only:
            raise FSError(errno.EROFS)
        if len(name.encode("utf-8", "surrogateescape")) > NAME_MAX:
            raise FSError(errno.ENAMETOOLONG)
        path = join(self._dir_path(parent_ino), name)
        with self._ns:
            entry = self._entry(path)
            if entry is None or name == SEED_NAME:
                raise FSError(errno.ENOENT)
            kind = _kind(entry)
            if rmdir and kind != "dir":
                raise FSError(errno.ENOTDIR)
            if not rmdir and kind == "dir":
                raise FSError(errno.EISDIR)
            if rmdir and self._nonempty(path):
                raise FSError(errno.ENOTEMPTY)
            if isinstance(entry, Record):
                self._forget_record(entry, path)
            else:
                self._orphan_if_open(path, entry)
            if self._remote_entry(path) is not None:
                self._log(Op("remove", path, rmdir=rmdir))
            with self._lock:
                self._inodes.unlink(path)


_ENOATTR = getattr(errno, "ENODATA", 61)


def _kind(entry: RemoteItem | Record) -> str:
    return "file" if isinstance(entry, Record) else entry.kind


def _same(a: RemoteItem | None, b: RemoteItem | None) -> bool:
    """Whether the kernel's view of an entry is still right (dir CIDs are ignored: they change
    with any write below and say nothing about the entry itself)."""
    if a is None or b is None:
        return a is b
    if a.kind != b.kind or a.mode != b.mode or a.mtime_ns != b.mtime_ns:
        return False
    return a.kind == "dir" or (a.cid == b.cid and a.target == b.target)


def _under(path: str, top: str) -> bool:
    """``path`` is ``top`` or inside it."""
    return path == top or path.startswith(top + "/")
