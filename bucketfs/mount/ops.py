"""The pyfuse3 adapter: translate kernel requests to :class:`~.fs.BucketFS` calls, and back.

Nothing here decides anything. Each handler decodes names, runs the core method in a worker
thread (a gRPC call must never block the trio loop, and many requests run at once), and maps
every exception through :func:`~.errors.to_errno` — pyfuse3 handlers catch only ``FUSEError``,
and anything else would end ``pyfuse3.main()`` and with it the mount.

Requests the core can answer from memory (or with a little local disk work, never the hub) go
to its ``*_nowait`` methods on the loop first, which return None when a thread is needed after
all: for those, the thread round trip cost more than the answer itself.

Kernel cache invalidations go through :class:`KernelNotifier`, a thread of its own, because
libfuse must never be asked to invalidate from inside a request handler (deadlock; field notes).
"""

from __future__ import annotations

import errno
import logging
import os
import queue
import stat
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import pyfuse3
import trio

from bucketfs import metrics
from bucketfs.mount.errors import to_errno
from bucketfs.mount.fs import Attr, BucketFS

log = logging.getLogger(__name__)

_READ_BYTES = metrics.BYTES.labels("mount", "read")
_WRITE_BYTES = metrics.BYTES.labels("mount", "write")

BLKSIZE = 262144
#: The "ok" counter and the timer of each operation answered on the loop: looked up once
#: (``labels()`` costs more than the count itself, seven times per small-file create).
_OK_METRICS: dict[str, tuple[Any, Any]] = {}
_ENOATTR = getattr(errno, "ENODATA", 61)


class KernelNotifier:
    """Queues entry/inode invalidations and sends them from a dedicated thread."""

    def __init__(self) -> None:
        self._q: queue.SimpleQueue[tuple | None] = queue.SimpleQueue()
        self.active = False  # set once the mount exists (before that there is no kernel)
        self._thread = threading.Thread(target=self._run, name="fuse-notify", daemon=True)
        self._thread.start()

    def entry(self, parent_ino: int, name: str) -> None:
        """Invalidate the kernel's entry ``name`` in ``parent_ino``."""
        if self.active and parent_ino:
            self._q.put(("entry", parent_ino, name))

    def inode(self, ino: int) -> None:
        """Invalidate the attributes and cached pages of ``ino``."""
        if self.active and ino:
            self._q.put(("inode", ino))

    def close(self) -> None:
        """Stop the thread (pending notifications are dropped: the mount is going away)."""
        self.active = False
        self._q.put(None)
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                return
            try:
                if item[0] == "entry":
                    pyfuse3.invalidate_entry(item[1], os.fsencode(item[2]))
                else:
                    pyfuse3.invalidate_inode(item[1])
            except (FileNotFoundError, OSError) as exc:
                # ENOENT: the kernel did not know the entry/inode — nothing to invalidate.
                if exc.errno != errno.ENOENT:
                    log.warning("kernel invalidation %s failed: %s", item, exc)
            except Exception:
                log.exception("kernel invalidation %s failed", item)


def _text(raw: bytes) -> str:
    """A name or symlink target from the kernel as the bucket's string. Bucket paths are
    UTF-8, so one that is not cannot exist there: EILSEQ (as on ZFS with utf8only). Decoding
    with surrogate escapes instead let a file be created locally that no upload could ever
    send (and that held up every unmount)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        log.debug("%r is not UTF-8 → EILSEQ", raw)
        raise pyfuse3.FUSEError(errno.EILSEQ) from None


def _name(raw: bytes) -> str:
    """A directory entry name: :func:`_text`, after the length check (which Linux does
    first: a name too long is ENAMETOOLONG whatever its bytes)."""
    if len(raw) > 255:
        raise pyfuse3.FUSEError(errno.ENAMETOOLONG)
    return _text(raw)


def _fuse_error(fn: Callable[..., Any], args: tuple, exc: Exception) -> pyfuse3.FUSEError:
    """The FUSE error for ``exc`` raised by core method ``fn``, logged (unexpected ones with
    their traceback, by :func:`to_errno`)."""
    err = to_errno(exc)
    log.debug("%s%r → %s (%s)", getattr(fn, "__name__", fn), args,
              errno.errorcode.get(err, err), exc)
    return pyfuse3.FUSEError(err)


class Ops(pyfuse3.Operations):
    """pyfuse3 operations over a :class:`BucketFS`."""

    enable_writeback_cache = False  # measured: no gain for sequential writes (field notes)

    def __init__(self, fs: BucketFS, ttl: float = 1.0, threads: int = 16) -> None:
        super().__init__()
        self.fs = fs
        self.ttl = ttl
        self._limiter = trio.CapacityLimiter(threads)
        self._dirs: dict[int, list[tuple[str, Attr]]] = {}
        self._next_dir = 1

    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            with metrics.timed("mount", getattr(fn, "__name__", "op")):
                return await trio.to_thread.run_sync(
                    lambda: fn(*args, **kwargs), limiter=self._limiter
                )
        except pyfuse3.FUSEError:
            raise
        except Exception as exc:
            raise _fuse_error(fn, args, exc) from None

    def _now(self, op: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a core ``*_nowait`` method on the loop: its result (None = "needs a thread"),
        counted in the metrics like :meth:`_call` when it answered; errors become errnos."""
        start = time.perf_counter()
        try:
            out = fn(*args)
        except Exception as exc:
            metrics.OPS.labels("mount", op, type(exc).__name__).inc()
            raise _fuse_error(fn, args, exc) from None
        if out is not None:
            ok = _OK_METRICS.get(op)
            if ok is None:
                ok = _OK_METRICS[op] = (metrics.OPS.labels("mount", op, "ok"),
                                        metrics.OP_SECONDS.labels("mount", op))
            ok[0].inc()
            ok[1].observe(time.perf_counter() - start)
        return out

    def _entry(self, a: Attr) -> pyfuse3.EntryAttributes:
        e = pyfuse3.EntryAttributes()
        e.st_ino = a.ino
        e.generation = 0
        e.entry_timeout = self.ttl
        e.attr_timeout = self.ttl
        e.st_mode = a.mode
        # Directories: 1, the "unknown" of find's link counting (as on btrfs). The classic
        # 2 + subdirectories would need a listing per stat; a constant 2 tells find that
        # there are no subdirectories.
        e.st_nlink = 1
        e.st_uid = a.uid
        e.st_gid = a.gid
        e.st_rdev = 0
        e.st_size = a.size
        e.st_blksize = BLKSIZE
        e.st_blocks = (a.size + 511) // 512
        e.st_atime_ns = a.mtime_ns
        e.st_mtime_ns = a.mtime_ns
        e.st_ctime_ns = a.mtime_ns
        return e

    # -- namespace -----------------------------------------------------------------------------

    async def lookup(self, parent_inode: int, name: bytes, ctx: Any = None) -> Any:
        # Answered on the loop when the parent's listing is in memory (no thread round trip).
        text = _name(name)
        try:
            attr = self._now("lookup", self.fs.lookup_nowait, parent_inode, text)
            if attr is None:
                attr = await self._call(self.fs.lookup, parent_inode, text)
        except pyfuse3.FUSEError as exc:
            if exc.errno != errno.ENOENT:
                raise
            return self._negative()
        return self._entry(attr)

    def _negative(self) -> pyfuse3.EntryAttributes:
        """"No such entry", cached by the kernel for the entry TTL like a positive answer
        (ENOENT raised instead would be cached not at all): programs that probe for the same
        missing names again and again (compilers, git, shells' PATH search) ask us once per
        TTL. A name that appears in the bucket meanwhile is invalidated by the reconciler
        like any changed name (``test_a_missing_name_pushed_elsewhere_shows_up``); one
        created through this mount replaces the kernel's negative entry itself."""
        e = pyfuse3.EntryAttributes()
        e.st_ino = 0
        e.entry_timeout = self.ttl
        return e

    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        for ino, count in inode_list:
            try:
                self.fs.forget(ino, count)  # dictionary work only: safe on the loop
            except Exception:
                log.exception("forget(%d) failed", ino)

    async def getattr(self, inode: int, ctx: Any = None) -> Any:
        # Known attributes are answered on the loop: no worker thread round trip.
        attr = self._now("getattr", self.fs.getattr_nowait, inode)
        if attr is not None:
            return self._entry(attr)
        return self._entry(await self._call(self.fs.getattr, inode))

    async def setattr(self, inode: int, attr: Any, fields: Any, fh: Any, ctx: Any) -> Any:
        kw: dict[str, Any] = {}
        if fields.update_mode:
            kw["mode"] = stat.S_IMODE(attr.st_mode)
        if fields.update_size:
            kw["size"] = attr.st_size
        if fields.update_mtime:
            kw["mtime_ns"] = attr.st_mtime_ns
        if fields.update_uid:
            kw["uid"] = attr.st_uid
        if fields.update_gid:
            kw["gid"] = attr.st_gid
        # atime is not stored (the bucket has no field for it); accepting it is harmless.
        return self._entry(await self._call(self.fs.setattr, inode, **kw))

    async def readlink(self, inode: int, ctx: Any) -> bytes:
        return os.fsencode(await self._call(self.fs.readlink, inode))

    async def mknod(self, parent_inode: int, name: bytes, mode: int, rdev: int, ctx: Any) -> Any:
        if not stat.S_ISREG(mode):
            raise pyfuse3.FUSEError(errno.EPERM)  # no devices, fifos or sockets in a bucket
        fh, attr = await self._call(self.fs.create, parent_inode, _name(name), mode)
        await self._call(self.fs.flush, fh)  # mknod has no close(): persist the record now
        await self._call(self.fs.release, fh)
        return self._entry(attr)

    async def mkdir(self, parent_inode: int, name: bytes, mode: int, ctx: Any) -> Any:
        return self._entry(
            await self._call(self.fs.mkdir, parent_inode, _name(name), mode)
        )

    async def unlink(self, parent_inode: int, name: bytes, ctx: Any) -> None:
        await self._call(self.fs.unlink, parent_inode, _name(name))

    async def rmdir(self, parent_inode: int, name: bytes, ctx: Any) -> None:
        await self._call(self.fs.rmdir, parent_inode, _name(name))

    async def symlink(self, parent_inode: int, name: bytes, target: bytes, ctx: Any) -> Any:
        return self._entry(await self._call(
            self.fs.symlink, parent_inode, _name(name), _text(target)))

    async def rename(
        self, parent_inode_old: int, name_old: bytes, parent_inode_new: int, name_new: bytes,
        flags: int, ctx: Any,
    ) -> None:
        await self._call(
            self.fs.rename, parent_inode_old, _name(name_old),
            parent_inode_new, _name(name_new), flags,
        )

    async def link(self, inode: int, new_parent_inode: int, new_name: bytes, ctx: Any) -> Any:
        await self._call(self.fs.link)

    # -- files ---------------------------------------------------------------------------------

    async def open(self, inode: int, flags: int, ctx: Any) -> Any:
        write = (flags & os.O_ACCMODE) != os.O_RDONLY
        write_only = (flags & os.O_ACCMODE) == os.O_WRONLY
        fh, keep = await self._call(self.fs.open, inode, write, bool(flags & os.O_TRUNC),
                                    write_only=write_only)
        return pyfuse3.FileInfo(fh=fh, keep_cache=keep, direct_io=self.fs.is_direct(fh))

    async def create(
        self, parent_inode: int, name: bytes, mode: int, flags: int, ctx: Any
    ) -> Any:
        # Answered on the loop when the parent's listing is in memory (no I/O at all).
        text = _name(name)
        write_only = (flags & os.O_ACCMODE) == os.O_WRONLY
        done = self._now("create", self.fs.create_nowait, parent_inode, text, mode, write_only)
        if done is None:
            done = await self._call(self.fs.create, parent_inode, text, mode, write_only)
        fh, attr = done
        return pyfuse3.FileInfo(fh=fh, direct_io=self.fs.is_direct(fh)), self._entry(attr)

    async def read(self, fh: int, off: int, size: int) -> bytes:
        data = self._now("read", self.fs.read_nowait, fh, off, size)
        if data is None:
            data = await self._call(self.fs.read, fh, off, size)
        _READ_BYTES.inc(len(data))
        return data

    async def write(self, fh: int, off: int, buf: bytes) -> int:
        # A small write into a new file costs less than a worker thread round trip: done on
        # the loop (local disk only, never the hub; see BucketFS.write_nowait).
        written = self._now("write", self.fs.write_nowait, fh, off, buf)
        if written is None:
            written = await self._call(self.fs.write, fh, off, buf)
        _WRITE_BYTES.inc(written)
        return written

    async def flush(self, fh: int) -> None:
        # Most closes have nothing left to save (the write already saved the record): answer
        # those on the loop, sparing a worker thread round trip per small-file create.
        if self._now("flush", lambda: self.fs.flush_nowait(fh) or None):
            return
        await self._call(self.fs.flush, fh)

    async def release(self, fh: int) -> None:
        # Dictionary work only (and a rare discard of an unlinked file's data): done on the
        # loop, which saves a thread round trip per close — a fifth of a small-file create.
        try:
            self.fs.release(fh)
        except Exception as exc:
            raise pyfuse3.FUSEError(to_errno(exc)) from None

    async def fsync(self, fh: int, datasync: bool) -> None:
        await self._call(self.fs.fsync, fh)

    # -- directories ---------------------------------------------------------------------------

    async def opendir(self, inode: int, ctx: Any) -> int:
        entries = await self._call(self.fs.readdir, inode)
        fh = self._next_dir
        self._next_dir += 1
        self._dirs[fh] = entries
        return fh

    async def readdir(self, fh: int, start_id: int, token: Any) -> None:
        entries = self._dirs.get(fh, [])
        for i in range(start_id, len(entries)):
            name, attr = entries[i]
            if not pyfuse3.readdir_reply(token, os.fsencode(name), self._entry(attr), i + 1):
                break
            try:
                self.fs.count_lookup(attr.ino)  # readdirplus took a reference
            except Exception:
                log.exception("count_lookup(%d) failed", attr.ino)

    async def releasedir(self, fh: int) -> None:
        entries = self._dirs.pop(fh, None)
        if entries:
            try:
                self.fs.release_entries([a.ino for _, a in entries])  # dictionary work only
            except Exception:
                log.exception("release_entries failed")

    async def fsyncdir(self, fh: int, datasync: bool) -> None:
        return None  # namespace changes are applied to the hub synchronously

    # -- misc ----------------------------------------------------------------------------------

    async def statfs(self, ctx: Any) -> Any:
        s = pyfuse3.StatvfsData()
        for key, value in self.fs.statfs().items():
            setattr(s, key, value)
        return s

    async def getxattr(self, inode: int, name: bytes, ctx: Any) -> bytes:
        if not name.startswith(b"user.bucketfs."):
            # None stored (ours are the only ones). The kernel asks for security.capability
            # before every write: answered on the loop, without a worker thread round trip.
            raise pyfuse3.FUSEError(_ENOATTR)
        return await self._call(self.fs.getxattr, inode, os.fsdecode(name))

    async def listxattr(self, inode: int, ctx: Any) -> Any:
        return [os.fsencode(n) for n in await self._call(self.fs.listxattr, inode)]

    async def setxattr(self, inode: int, name: bytes, value: bytes, ctx: Any) -> None:
        # Ours are read-only; others cannot be stored in the bucket, so refuse explicitly.
        raise pyfuse3.FUSEError(
            errno.EPERM if name.startswith(b"user.bucketfs.") else errno.ENOTSUP
        )

    async def removexattr(self, inode: int, name: bytes, ctx: Any) -> None:
        raise pyfuse3.FUSEError(
            errno.EPERM if name.startswith(b"user.bucketfs.") else errno.ENOTSUP
        )
