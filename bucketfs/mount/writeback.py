"""The persistent dirty-file store: the cache item is the unit of durability.

A dirty file is its *base* (the remote file DAG it started from, or nothing for a new file)
overlaid with dirty chunks, cut or zero-extended to ``size``:

- data lives in fixed 256 KiB chunks aligned to the UnixFS chunk: one sparse data file per
  dirty file (``data/<file_id>``), where chunk ``i`` is the byte range ``[i*256K, (i+1)*256K)``;
  the record lists which chunks are *present* (as ranges). A present chunk is read from the data
  file (holes read as zeros); any other chunk is the base file's bytes, or zeros;
- the per-file :class:`Record` (path, base CID, visible base length, size, mode, mtime, expected
  remote CID, present chunks) lives in a non-evicting ``diskcache`` (one SQLite transaction per
  save). A chunk's data is written *before* the record that marks it present, so a crash never
  exposes a half-filled chunk as file content, and the size is saved before data beyond it;
- the first write into a chunk that is not present copies the base bytes of that chunk into the
  data file first (read-modify-write once per chunk, never again);
- base bytes are visible only below ``base_len``: a truncate lowers it, so a later extension
  reads zeros rather than resurrecting old content.

Small new files are *inline*: a file without base bytes keeps its content in memory
(``Record.inline``) while it is at most :data:`INLINE_MAX` bytes, and the content is persisted
inside the record itself (base64 in the same SQLite row) when the record is saved — at close(2)
or fsync. Creating many small files then costs no data file at all (an ext4 inode allocation,
a write and later an unlink per file were a fifth of the mount's CPU time while creating small
files) and one SQLite commit at close. The price: until its first save, a small new file's
bytes are only in the daemon's memory (a ``kill -9`` before close loses that never-closed
file; docs/durability.md). A write past :data:`INLINE_MAX`, or with the memory budget
(:data:`INLINE_BUDGET`, all inline files together) used up, *spills* the file into an ordinary
data file, data first and then the record, as for any other dirty file.

Chunk alignment with the importer's 256 KiB leaves is what lets a later version upload only the
changed leaves of a large file (the unchanged ones keep their CIDs).

Thread safety: each :class:`Record` has its own lock, held for read-modify-write of its chunks;
``gen`` counts changes so that the uploader can tell whether a file changed while it was being
pushed. The store itself (diskcache) is thread-safe.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import logging
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import diskcache

from bucketfs.ipfs.blockstore import fsync_dir

log = logging.getLogger(__name__)

CHUNK = 262144
#: While a file is being written, its record is saved at most this often (seconds); the first
#: write that gives it data and close()/fsync() always save. A crash loses at most this much of
#: an unclosed file.
SAVE_EVERY = 0.5
#: A new file's content stays inline (in memory, then in its record) up to this size. Its base64
#: form must stay under diskcache's ``min_file_size`` (32 KiB), or diskcache would write the
#: record to a file of its own — the very cost inlining avoids.
INLINE_MAX = 16384
#: Bytes of all inline files together held in memory; past it, new files get data files.
INLINE_BUDGET = 32 << 20
#: WAL pages after which a commit checkpoints by itself (SQLite's default is 1,000). A record
#: saved on the FUSE loop (a small file's, at close) must not pay for a checkpoint: with the
#: default, one save in a few hundred did, with an fsync of the WAL and of the database — a
#: third of the time of all those saves, and stalls of many milliseconds on a busy disk. The
#: background drops after each upload checkpoint instead (:meth:`DirtyStore.checkpoint`); this
#: is the safety net for when nothing is uploaded (the hub unreachable).
WAL_AUTOCHECKPOINT = 4096
#: WAL size (bytes) past which a drop checkpoints.
WAL_CHECKPOINT_AT = 4 << 20
#: Records deleted per transaction by :meth:`DirtyStore.drop_many`: the transaction holds the
#: database's write lock, and a save on the FUSE loop that finds it taken sleeps (SQLite's busy
#: handler sleeps 1, 2, 5, … ms): short transactions keep those waits short.
DROP_TXN = 64

#: Reads ``length`` bytes of a base file DAG at ``offset``: ``(cid, size, offset, length)``.
BaseReader = Callable[[str, int, int, int], bytes]


@dataclasses.dataclass
class Record:
    """What the store knows about one dirty file (persisted as JSON, except the lock/gen)."""

    file_id: str
    path: str | None  # bucket-relative; None once unlinked (kept only for open handles)
    base_cid: str  # the remote content this file started from ("" = none)
    base_size: int  # the base file's full logical size
    base_len: int  # how much of the base is still visible (lowered by truncation)
    expect_cid: str  # what we believe is at `path` in the bucket now ("" = nothing)
    size: int
    mode: int
    mtime_ns: int
    chunks: list[list[int]] = dataclasses.field(default_factory=list)  # present: [start, end)
    gen: int = 0  # bumped by every change (not persisted)
    saved_gen: int = -1  # gen at the last save (not persisted)
    saved_at: float = 0.0  # time.monotonic() of the last save (not persisted)
    saved_size: int = 0  # size at the last save (not persisted)
    dropped: bool = False  # uploaded-and-clean or discarded: writers must start a new record
    # The whole content (len == size) of an inline file, None for one with a data file.
    inline: bytearray | None = dataclasses.field(default=None, repr=False)
    charged: int = 0  # bytes of the inline budget this record holds (not persisted)
    lock: threading.RLock = dataclasses.field(default_factory=threading.RLock, repr=False)

    def has_chunk(self, idx: int) -> bool:
        """Chunk ``idx`` is in the data file (written here), not read from the base."""
        return _has(self.chunks, idx)

    def to_json(self) -> str:
        """The persisted form (an inline file's content as base64)."""
        d = {name: getattr(self, name) for name in _PERSISTED}
        if self.inline is not None:
            d["inline"] = base64.b64encode(self.inline).decode("ascii")
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Record:
        """Parse the persisted form (ValueError/KeyError/TypeError when damaged)."""
        d = json.loads(text)
        inline = d.pop("inline", None)
        rec = cls(**{name: d[name] for name in _PERSISTED if name in d})
        if inline is not None:
            rec.inline = bytearray(base64.b64decode(inline, validate=True))
            if len(rec.inline) != rec.size or rec.chunks:
                raise ValueError("inline content does not match the record")
        return rec


#: The fields :meth:`Record.to_json` writes as they are (``inline`` is encoded apart).
_PERSISTED = tuple(f.name for f in dataclasses.fields(Record)
                   if f.name not in {"lock", "gen", "dropped", "saved_gen", "saved_at",
                                      "saved_size", "inline", "charged"})


class KeyDisk(diskcache.Disk):
    """diskcache's Disk, with the database form of the store's keys built directly.

    diskcache stores a tuple key such as ``("rec", file_id)`` as its pickle, run through the
    pure-Python ``pickletools.optimize`` on every set and delete: a fifth of the cost of saving
    a small file's record at close. For a pair of short ASCII strings the optimised pickle is a
    fixed layout, built here byte for byte (``test_key_disk_builds_diskcaches_bytes`` compares
    it with diskcache's own), so caches written before read and write as they did."""

    def put(self, key: object) -> tuple[object, bool]:
        """The ``(database key, raw)`` pair of ``key`` (see :meth:`diskcache.Disk.put`)."""
        if (type(key) is tuple and len(key) == 2 and self.pickle_protocol >= 4
                and type(key[0]) is str and type(key[1]) is str
                and key[0].isascii() and key[1].isascii()
                and len(key[0]) < 256 and len(key[1]) < 256):
            a, b = key[0].encode("ascii"), key[1].encode("ascii")
            # SHORT_BINUNICODE a, SHORT_BINUNICODE b, TUPLE2, STOP — in one FRAME.
            body = b"\x8c%c%s\x8c%c%s\x86." % (len(a), a, len(b), b)
            head = b"\x80%c\x95" % self.pickle_protocol + len(body).to_bytes(8, "little")
            return sqlite3.Binary(head + body), False
        return super().put(key)


class DirtyStore:
    """Records and chunks of dirty files in one persistent, non-evicting diskcache."""

    def __init__(self, directory: Path, base_reader: BaseReader) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "data").mkdir(exist_ok=True)
        self._dir = directory
        # eviction_policy "none": dirty data must never be dropped to make room.
        self._cache = diskcache.Cache(
            str(directory), eviction_policy="none", size_limit=2**62, cull_limit=0,
            sqlite_wal_autocheckpoint=WAL_AUTOCHECKPOINT, disk=KeyDisk,
        )
        self._ckpt_lock = threading.Lock()
        self._read_base = base_reader
        self._inline_lock = threading.Lock()
        self._inline_bytes = 0  # held by inline records (bounded by INLINE_BUDGET)

    def close(self) -> None:
        """Close the underlying cache (after a last checkpoint: the next start reads less)."""
        self.checkpoint(force=True)
        self._cache.close()

    def checkpoint(self, force: bool = False) -> None:
        """Copy the SQLite write-ahead log into the database (PASSIVE: never waits for, nor
        blocks, the savers) once it has grown past :data:`WAL_CHECKPOINT_AT`, or always with
        ``force``. Called from background threads (the drops after uploads), so that the
        saves on the FUSE loop never checkpoint (see :data:`WAL_AUTOCHECKPOINT`)."""
        try:
            if not force and os.path.getsize(self._dir / "cache.db-wal") < WAL_CHECKPOINT_AT:
                return
        except FileNotFoundError:
            return
        if not self._ckpt_lock.acquire(blocking=False):
            return  # another thread is at it
        try:
            con = sqlite3.connect(self._dir / "cache.db", timeout=60)
            try:
                con.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            finally:
                con.close()
        except sqlite3.Error as exc:  # the next one (or SQLite's own, later) catches up
            log.warning("dirty store checkpoint failed: %s", exc)
        finally:
            self._ckpt_lock.release()

    # -- records -------------------------------------------------------------------------------

    def new(
        self,
        path: str,
        base_cid: str,
        base_size: int,
        mode: int,
        mtime_ns: int,
        expect_cid: str | None = None,
        save: bool = True,
    ) -> Record:
        """Create and persist a record for a file that becomes dirty now. ``save=False``
        leaves the first save to the first write or to close (:meth:`save_if_changed`): a new,
        empty file that was never closed has nothing to lose, and a create then costs no
        SQLite commit."""
        rec = Record(
            file_id=uuid.uuid4().hex,
            path=path,
            base_cid=base_cid,
            base_size=base_size,
            base_len=base_size,
            expect_cid=base_cid if expect_cid is None else expect_cid,
            size=base_size,
            mode=mode,
            mtime_ns=mtime_ns,
        )
        if base_size == 0:
            rec.inline = bytearray()  # nothing to charge yet: it grows with its writes
        if save:
            self.save(rec)
        return rec

    def _charge(self, rec: Record, n: int, force: bool = False) -> bool:
        """Make ``rec`` hold ``n`` bytes of the inline budget (more or fewer than now); False,
        and no change, when the budget has no room (the caller spills the file instead)."""
        with self._inline_lock:
            delta = n - rec.charged
            if delta > 0 and not force and self._inline_bytes + delta > INLINE_BUDGET:
                return False
            self._inline_bytes += delta
            rec.charged = n
            return True

    def _spill(self, rec: Record) -> None:
        """Move an inline file's content into a data file (``rec.lock`` held): the data first,
        then the record that marks its chunks present — a crash in between leaves the old
        inline record (or none), with an unused data file that :meth:`load_all` keeps."""
        data = rec.inline
        assert data is not None
        if data:
            fd = self._open(rec, os.O_RDWR | os.O_CREAT)
            try:
                os.pwrite(fd, data, 0)
            finally:
                os.close(fd)
            _add(rec.chunks, 0, (len(data) + CHUNK - 1) // CHUNK)
        rec.inline = None
        self._charge(rec, 0)
        self.save(rec)

    def is_inline(self, rec: Record) -> bool:
        """Whether saving ``rec`` is one SQLite commit and nothing else (no data file: an
        inline file), so cheap enough to do on the FUSE loop."""
        return rec.inline is not None

    def save(self, rec: Record) -> None:
        """Persist ``rec`` (atomically: one SQLite transaction)."""
        self._cache.set(("rec", rec.file_id), rec.to_json())
        rec.saved_gen = rec.gen
        rec.saved_at = time.monotonic()
        rec.saved_size = rec.size

    def save_many(self, recs: list[Record]) -> None:
        """Persist several records in ONE SQLite transaction (after a batch upload: one commit
        instead of one per file, and one lock hand-over with the FUSE threads' saves)."""
        with self._cache.transact(retry=True):
            for rec in recs:
                with rec.lock:
                    self.save(rec)

    def sync(self, rec: Record) -> None:
        """Make ``rec`` durable against a power cut, not only a crash (``fsync=local``).

        Order: the data file (and its directory entry) first, then the record, then the
        SQLite write-ahead log that holds the record's commit — diskcache commits with
        ``synchronous=NORMAL``, which survives a crash of this process but may roll back the
        last commits on power loss until the WAL is fsynced."""
        with rec.lock:
            path = self._data(rec)
            with contextlib.suppress(FileNotFoundError):
                fd = os.open(path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            fsync_dir(self._dir / "data")
            self.save(rec)
            for name in ("cache.db-wal", "cache.db"):
                with contextlib.suppress(FileNotFoundError):
                    fd = os.open(self._dir / name, os.O_RDONLY)
                    try:
                        os.fsync(fd)
                    finally:
                        os.close(fd)

    def save_if_changed(self, rec: Record) -> None:
        """Persist ``rec`` if anything changed since the last save (close(2) calls this)."""
        with rec.lock:
            if rec.saved_gen != rec.gen:
                self.save(rec)

    def load_all(self) -> list[Record]:
        """Every persisted record; damaged ones are set aside (renamed key) and logged."""
        out = []
        for key in list(self._cache.iterkeys()):
            if not (isinstance(key, tuple) and key[0] == "rec"):
                continue
            text = self._cache.get(key)
            try:
                rec = Record.from_json(text)
            except (ValueError, KeyError, TypeError):
                log.error("damaged dirty-file record %s set aside: %r", key, text)
                self._cache.set(("bad-rec", key[1]), text)
                self._cache.delete(key)
                continue
            if rec.chunks and not self._data(rec).exists():
                # A data file is created before any chunk is marked present, so this is a drop()
                # cut short by a crash: the file was uploaded or discarded already.
                log.warning("discarding the record of %s: its drop was interrupted", rec.path)
                self._cache.delete(key)
                continue
            if rec.inline is not None:
                self._charge(rec, len(rec.inline), force=True)  # they fitted before the restart
            out.append(rec)
        # Data files without a record (a crash between creating a record's data file and its
        # first save); a set-aside record keeps its data for inspection.
        keep = {r.file_id for r in out} | {
            k[1] for k in self._cache.iterkeys() if isinstance(k, tuple) and k[0] == "bad-rec"}
        with os.scandir(self._dir / "data") as it:
            for e in it:
                if e.name not in keep:
                    log.info("removing dirty data %s left without a record", e.name)
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(e.path)
        return out

    def drop(self, rec: Record) -> None:
        """Forget a file: its data first, then the record. Data first frees the space before
        SQLite needs some (deleting a dirty file must work on a full disk). A crash in between
        leaves a record with present chunks and no data file, which :meth:`load_all`
        recognises and discards — it must never be read (its chunks would read as zeros and
        be uploaded over the file)."""
        self._charge(rec, 0)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._data(rec))
        self._cache.delete(("rec", rec.file_id))
        self.checkpoint()

    def drop_many(self, recs: list[Record]) -> None:
        """:meth:`drop` several files: every data file first, then the records, one SQLite
        transaction per :data:`DROP_TXN` of them (the same crash rules as :meth:`drop` hold
        for each)."""
        for rec in recs:
            self._charge(rec, 0)
            if rec.inline is not None:
                continue  # no data file to remove (a spilled file is no longer inline)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._data(rec))
        for i in range(0, len(recs), DROP_TXN):
            with self._cache.transact(retry=True):
                for rec in recs[i : i + DROP_TXN]:
                    self._cache.delete(("rec", rec.file_id))
        self.checkpoint()

    def dirty_bytes(self) -> int:
        """Bytes the data files occupy on disk, plus the inline files' bytes in memory."""
        total = self._inline_bytes
        with os.scandir(self._dir / "data") as it:
            for e in it:
                with contextlib.suppress(FileNotFoundError):
                    total += e.stat().st_blocks * 512
        return total

    # -- data ----------------------------------------------------------------------------------

    def read(self, rec: Record, offset: int, length: int) -> bytes:
        """Bytes of the dirty file (base overlaid with present chunks, zeros in holes)."""
        with rec.lock:
            end = min(rec.size, offset + length)
            if offset >= end:
                return b""
            if rec.inline is not None:
                return bytes(rec.inline[offset:end])
            parts = []
            fd = self._open(rec, os.O_RDONLY | os.O_CREAT)
            try:
                pos = offset
                while pos < end:
                    idx = pos // CHUNK
                    # Extend over the run of chunks with the same source (data file or base).
                    present = _has(rec.chunks, idx)
                    stop = idx + 1
                    while stop * CHUNK < end and _has(rec.chunks, stop) == present:
                        stop += 1
                    cend = min(end, stop * CHUNK)
                    if present:
                        piece = os.pread(fd, cend - pos, pos)
                    else:
                        piece = self._base(rec, pos, cend - pos)
                    parts.append(piece + bytes(cend - pos - len(piece)))
                    pos = cend
            finally:
                os.close(fd)
            return b"".join(parts)

    def read_nowait(self, rec: Record, offset: int, length: int) -> bytes | None:
        """:meth:`read` when it needs nothing but the data file (or memory): every chunk of
        the range present, and the record not busy; else None (the caller uses :meth:`read`
        on a worker thread). Never reads the base, never waits for the lock."""
        if not rec.lock.acquire(blocking=False):
            return None
        try:
            end = min(rec.size, offset + length)
            if offset >= end:
                return b""
            if rec.inline is not None:
                return bytes(rec.inline[offset:end])
            if not _covers(rec.chunks, offset // CHUNK, (end - 1) // CHUNK + 1):
                return None
            fd = self._open(rec, os.O_RDONLY)
            try:
                piece = os.pread(fd, end - offset, offset)
            finally:
                os.close(fd)
            return piece + bytes(end - offset - len(piece))
        finally:
            rec.lock.release()

    def write(self, rec: Record, offset: int, data: bytes, mtime_ns: int | None = None) -> int:
        """Write ``data`` at ``offset`` (extending the file as needed); returns len(data).

        One record save at most, *after* the data: until then the new bytes are beyond the
        recorded size or in chunks not yet marked present, i.e. invisible — so a crash at any
        point shows either the old or the new state of each chunk, never a half-filled one.
        An inline file's write only changes memory (its record is saved at close or fsync),
        unless it spills the file into a data file.
        """
        with rec.lock:
            end = offset + len(data)
            if mtime_ns is not None:
                rec.mtime_ns = mtime_ns
            if rec.inline is not None:
                buf = rec.inline
                if end <= INLINE_MAX and self._charge(rec, max(end, len(buf))):
                    if offset > len(buf):
                        buf.extend(bytes(offset - len(buf)))
                    buf[offset:end] = data
                    rec.size = len(buf)
                    rec.gen += 1
                    return len(data)
                self._spill(rec)
            grew = end > rec.size
            if not data:
                if grew:
                    rec.size = end
                    self.save(rec)
                return 0
            fd = self._open(rec, os.O_RDWR | os.O_CREAT)
            try:
                first, last = offset // CHUNK, (end - 1) // CHUNK
                for idx in (first, last) if first != last else (first,):
                    cstart = idx * CHUNK
                    covered = offset <= cstart and end >= min(cstart + CHUNK, rec.size)
                    if not covered and not _has(rec.chunks, idx):
                        # First touch of a partly written chunk: bring in its base bytes.
                        base = self._base(rec, cstart, CHUNK)
                        if base:
                            os.pwrite(fd, base, cstart)
                os.pwrite(fd, data, offset)
            finally:
                os.close(fd)
            rec.gen += 1
            if grew:
                rec.size = end
            if (_add(rec.chunks, first, last + 1) or grew) and (
                rec.saved_gen < 0 or not rec.saved_size
                or time.monotonic() - rec.saved_at >= SAVE_EVERY
            ):
                # After the data: a chunk is never present before it is whole. At most every
                # SAVE_EVERY while a file is being written (a commit per 1 MiB write was half
                # of a sequential write's cost); close() and fsync() save whatever is left.
                self.save(rec)
            return len(data)

    def truncate(self, rec: Record, size: int) -> None:
        """Set the length; a shrink hides the base and the data beyond ``size`` for good."""
        with rec.lock:
            if rec.inline is not None:
                if size <= INLINE_MAX and self._charge(rec, max(size, len(rec.inline))):
                    buf = rec.inline
                    if size < len(buf):
                        del buf[size:]
                    else:
                        buf.extend(bytes(size - len(buf)))
                    self._charge(rec, size)
                    rec.base_len = min(rec.base_len, size)
                    rec.size = size
                    rec.gen += 1
                    self.save(rec)
                    return
                self._spill(rec)
            if size < rec.size:
                rec.base_len = min(rec.base_len, size)
                rec.size = size
                _cut(rec.chunks, (size + CHUNK - 1) // CHUNK)
                self.save(rec)
                path = self._data(rec)
                with contextlib.suppress(FileNotFoundError):
                    if os.path.getsize(path) > size:
                        os.truncate(path, size)  # the boundary chunk's tail becomes a hole
            elif size > rec.size:
                rec.size = size
                self.save(rec)
            rec.gen += 1

    def iter_content(self, rec: Record) -> Iterator[bytes]:
        """The whole file in chunk-sized pieces (for upload); memory stays at one chunk."""
        idx = 0
        while True:
            with rec.lock:
                n = min(CHUNK, rec.size - idx * CHUNK)
                if n <= 0:
                    return  # (truncated while uploading: the next upload sends the new state)
                chunk = self.read(rec, idx * CHUNK, n)
            yield chunk
            idx += 1

    def whole_data(self, rec: Record) -> str | None:
        """The path of ``rec``'s data file when it alone holds the content (no visible base,
        every chunk present: a file written from scratch), else None. For keeping a clean,
        frozen record's bytes after its upload (:class:`~.filecopies.FileCopies`)."""
        with rec.lock:
            if rec.inline is not None or (rec.base_cid and rec.base_len > 0):
                return None
            n = (rec.size + CHUNK - 1) // CHUNK
            if not n or not _covers(rec.chunks, 0, n):
                return None
            return str(self._data(rec))

    def _base(self, rec: Record, offset: int, length: int) -> bytes:
        """Visible base bytes in [offset, offset+length) (shorter or empty past base_len)."""
        n = min(length, rec.base_len - offset)
        if not rec.base_cid or n <= 0:
            return b""
        return self._read_base(rec.base_cid, rec.base_size, offset, n)

    def _data(self, rec: Record) -> Path:
        return self._dir / "data" / rec.file_id

    def _open(self, rec: Record, flags: int) -> int:
        # A string join, not _data()'s Path: it runs for every read and write, and building
        # two Path objects each time was a tenth of the event loop's own Python time during
        # a sequential write (py-spy).
        return os.open(f"{self._dir}/data/{rec.file_id}", flags, 0o600)

    def open_data(self, rec: Record) -> int:
        """A read-only descriptor of ``rec``'s data file, to hand to the hub (its chunks that
        :meth:`Record.has_chunk` are the file's bytes at their offsets; the rest are holes or
        past its end). Raises FileNotFoundError when it has none (inline, or dropped)."""
        return os.open(self._data(rec), os.O_RDONLY | os.O_CLOEXEC)


def _has(ranges: list[list[int]], idx: int) -> bool:
    return any(a <= idx < b for a, b in ranges)


def _covers(ranges: list[list[int]], start: int, stop: int) -> bool:
    """Whether chunks [start, stop) are all present (ranges are kept merged: one holds them)."""
    return any(a <= start and stop <= b for a, b in ranges)


def _add(ranges: list[list[int]], start: int, stop: int) -> bool:
    """Mark chunks [start, stop) present (merging ranges); True if anything changed."""
    if _covers(ranges, start, stop):
        return False
    merged = [start, stop]
    keep = []
    for a, b in ranges:
        if b < merged[0] or a > merged[1]:
            keep.append([a, b])
        else:
            merged = [min(a, merged[0]), max(b, merged[1])]
    keep.append(merged)
    keep.sort()
    ranges[:] = keep
    return True


def _cut(ranges: list[list[int]], stop: int) -> None:
    """Forget present chunks at and after ``stop``."""
    ranges[:] = [[a, min(b, stop)] for a, b in ranges if a < stop]
