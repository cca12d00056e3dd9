"""The persistent dirty-file store: the cache item is the unit of durability.

A dirty file is its *base* (the remote file DAG it started from, or nothing for a new file)
overlaid with dirty chunks, cut or zero-extended to ``size``:

- data lives in fixed 256 KiB chunks aligned to the UnixFS chunk, keyed ``(file_id, index)``, in a
  non-evicting ``diskcache`` under the cache directory; a chunk holds the bytes of its range up
  to its own length, and anything past that (up to ``size``) reads as zeros (sparse holes);
- the per-file :class:`Record` (path, base CID, visible base length, size, mode, mtime, expected
  remote CID) is saved *before* the data that depends on it, and each save is one SQLite
  transaction, so the store never holds chunks that no record describes as part of the file;
- base bytes are visible only below ``base_len``: a truncate lowers it, so a later extension
  reads zeros rather than resurrecting old content.

Chunk alignment with the importer's 256 KiB leaves is what lets a later version upload only the
changed leaves of a large file (the unchanged ones keep their CIDs).

Thread safety: each :class:`Record` has its own lock, held for read-modify-write of its chunks;
``gen`` counts changes so that the uploader can tell whether a file changed while it was being
pushed. The store itself (diskcache) is thread-safe.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import diskcache

log = logging.getLogger(__name__)

CHUNK = 262144

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
    gen: int = 0  # bumped by every change (not persisted)
    dropped: bool = False  # uploaded-and-clean or discarded: writers must start a new record
    lock: threading.RLock = dataclasses.field(default_factory=threading.RLock, repr=False)

    def to_json(self) -> str:
        """The persisted form."""
        skip = {"lock", "gen", "dropped"}
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in skip}
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Record:
        """Parse the persisted form (ValueError/KeyError/TypeError when damaged)."""
        d = json.loads(text)
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d})


class DirtyStore:
    """Records and chunks of dirty files in one persistent, non-evicting diskcache."""

    def __init__(self, directory: Path, base_reader: BaseReader) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        # eviction_policy "none": dirty data must never be dropped to make room.
        self._cache = diskcache.Cache(
            str(directory), eviction_policy="none", size_limit=2**62, cull_limit=0
        )
        self._read_base = base_reader

    def close(self) -> None:
        """Close the underlying cache."""
        self._cache.close()

    # -- records -------------------------------------------------------------------------------

    def new(
        self,
        path: str,
        base_cid: str,
        base_size: int,
        mode: int,
        mtime_ns: int,
        expect_cid: str | None = None,
    ) -> Record:
        """Create and persist a record for a file that becomes dirty now."""
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
        self.save(rec)
        return rec

    def save(self, rec: Record) -> None:
        """Persist ``rec`` (atomically: one SQLite transaction)."""
        self._cache.set(("rec", rec.file_id), rec.to_json())

    def load_all(self) -> list[Record]:
        """Every persisted record; damaged ones are set aside (renamed key) and logged."""
        out = []
        for key in list(self._cache.iterkeys()):
            if not (isinstance(key, tuple) and key[0] == "rec"):
                continue
            text = self._cache.get(key)
            try:
                out.append(Record.from_json(text))
            except (ValueError, KeyError, TypeError):
                log.error("damaged dirty-file record %s set aside: %r", key, text)
                self._cache.set(("bad-rec", key[1]), text)
                self._cache.delete(key)
        return out

    def drop(self, rec: Record) -> None:
        """Forget a file: its chunks first, then the record (a crash in between leaves a record
        whose missing chunks read as base data or zeros, never chunks without a record)."""
        for idx in range((rec.size + CHUNK - 1) // CHUNK):
            self._cache.delete(("chunk", rec.file_id, idx))
        self._cache.delete(("rec", rec.file_id))

    def dirty_bytes(self) -> int:
        """Bytes on disk (chunks and records)."""
        return self._cache.volume()

    # -- data ----------------------------------------------------------------------------------

    def read(self, rec: Record, offset: int, length: int) -> bytes:
        """Bytes of the dirty file (base overlaid with chunks, zeros in holes)."""
        with rec.lock:
            end = min(rec.size, offset + length)
            parts = []
            pos = offset
            while pos < end:
                idx = pos // CHUNK
                cend = min(end, (idx + 1) * CHUNK)
                chunk = self._chunk(rec, idx)
                lo, hi = pos - idx * CHUNK, cend - idx * CHUNK
                piece = chunk[lo:hi]
                parts.append(piece + bytes(hi - lo - len(piece)))
                pos = cend
            return b"".join(parts)

    def write(self, rec: Record, offset: int, data: bytes) -> int:
        """Write ``data`` at ``offset`` (extending the file as needed); returns len(data)."""
        with rec.lock:
            end = offset + len(data)
            if end > rec.size:
                rec.size = end
                # Record first: a crash after this leaves zeros at the tail, never a chunk
                # beyond what the record claims.
                self.save(rec)
            pos = offset
            while pos < end:
                idx = pos // CHUNK
                cstart = idx * CHUNK
                cend = min(end, cstart + CHUNK)
                piece = data[pos - offset : cend - offset]
                if pos == cstart and cend - cstart == CHUNK:
                    new = bytes(piece)  # whole chunk: no need to read the old one
                else:
                    old = bytearray(self._chunk(rec, idx))
                    lo = pos - cstart
                    if len(old) < lo:
                        old += bytes(lo - len(old))
                    old[lo : lo + len(piece)] = piece
                    new = bytes(old)
                self._cache.set(("chunk", rec.file_id, idx), new)
                pos = cend
            rec.gen += 1
            return len(data)

    def truncate(self, rec: Record, size: int) -> None:
        """Set the length; a shrink hides the base beyond ``size`` and zeros the chunk tail."""
        with rec.lock:
            if size < rec.size:
                idx = size // CHUNK
                last = (rec.size + CHUNK - 1) // CHUNK
                rec.base_len = min(rec.base_len, size)
                rec.size = size
                self.save(rec)
                # Whole chunks past the end go; the boundary chunk keeps only its head.
                for i in range(idx + 1 if size % CHUNK else idx, last):
                    self._cache.delete(("chunk", rec.file_id, i))
                if size % CHUNK:
                    key = ("chunk", rec.file_id, idx)
                    old = self._cache.get(key)
                    if old is not None:
                        self._cache.set(key, old[: size - idx * CHUNK])
            elif size > rec.size:
                rec.size = size
                self.save(rec)
            rec.gen += 1

    def iter_content(self, rec: Record) -> Iterator[bytes]:
        """The whole file in chunk-sized pieces (for upload); memory stays at one chunk."""
        size = rec.size
        for idx in range((size + CHUNK - 1) // CHUNK):
            with rec.lock:
                n = min(CHUNK, rec.size - idx * CHUNK)
                if n <= 0:
                    return  # truncated while uploading; the next upload sends the new state
                chunk = self._chunk(rec, idx)[:n]
            yield chunk + bytes(n - len(chunk))

    def _chunk(self, rec: Record, idx: int) -> bytes:
        """The current bytes of chunk ``idx`` (may be shorter than the chunk; rest is zeros)."""
        data = self._cache.get(("chunk", rec.file_id, idx))
        if data is not None:
            return data
        start = idx * CHUNK
        if rec.base_cid and start < rec.base_len:
            n = min(CHUNK, rec.base_len - start)
            return self._read_base(rec.base_cid, rec.base_size, start, n)
        return b""
