"""Whole-file copies of big files this mount uploaded, so reading them back needs no hub.

A file up to ``ADOPT_MAX`` is copied into the block cache after its upload (``ReadCache.adopt``).
A bigger one is not: that would write it to disk a second time. Its pages used to be in the
kernel's page cache anyway, but a write-only descriptor now bypasses that cache (see
``BucketFS.open``), so the first read after writing went to the hub. Instead, when the dirty
data file holds the whole content (no base: every chunk was written here), it is hard-linked
here under the file's CID once the upload has made the record clean, and before the dirty
store drops its own name: no byte is copied. A read of that CID is then one ``pread``.

Why a hard link is safe: a clean record is frozen (``Record.dropped``: later writes start a
new record and a new data file), so the linked bytes never change, and they are the bytes the
hub acknowledged as that CID (the hub hashed them itself, or received them from this file).

Bounded: at most ``limit`` bytes; the least recently used copy is removed first. The
directory is the index (name = CID), so copies survive a restart, oldest first by mtime —
except one still linked to a data file (a stop between the link and the drop), which is
removed: that record is dirty again after the restart and could be written in place.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import threading
from pathlib import Path

log = logging.getLogger(__name__)


class FileCopies:
    """Whole files by CID, size-bounded, least recently used evicted."""

    def __init__(self, directory: Path, limit: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._dir = directory
        self._limit = limit
        self._lock = threading.Lock()
        self._lru: collections.OrderedDict[str, int] = collections.OrderedDict()  # CID → size
        self._bytes = 0
        found = []
        with os.scandir(directory) as it:
            for e in it:
                with contextlib.suppress(FileNotFoundError):
                    st = e.stat()
                    if st.st_nlink > 1:
                        # Still a dirty file's data file too: the daemon stopped between the
                        # link and the dirty store's drop, so that record is loaded again,
                        # dirty, and may be written in place. Not a copy to trust.
                        os.unlink(e.path)
                        continue
                    found.append((st.st_mtime_ns, e.name, st.st_size))
        for _mtime, name, size in sorted(found):
            self._lru[name] = size
            self._bytes += size
        self._evict()

    def volume(self) -> int:
        """Bytes the copies hold."""
        with self._lock:
            return self._bytes

    def keep(self, cid: str, data_file: str, size: int) -> bool:
        """Keep ``data_file`` (content of ``size`` bytes, frozen) as the copy of ``cid``, by
        hard link. False when it does not fit or cannot be linked (logged): reads then go to
        the hub, as before."""
        if size > self._limit:
            return False
        try:
            os.link(data_file, self._dir / cid)
        except FileExistsError:
            pass  # the same content kept before (a CID names its bytes)
        except OSError as exc:
            log.info("not keeping a copy of %s: %s", cid, exc)
            return False
        with self._lock:
            if cid not in self._lru:
                self._lru[cid] = size
                self._bytes += size
            self._lru.move_to_end(cid)
        self._evict()
        return True

    def read(self, cid: str, size: int, offset: int, length: int) -> bytes | None:
        """Up to ``length`` bytes at ``offset`` of file ``cid`` of ``size`` bytes, or None when
        there is no copy. A data file may end before the file does (a hole at the end): the
        rest reads as zeros."""
        with self._lock:
            if cid not in self._lru:
                return None
            self._lru.move_to_end(cid)
        n = max(0, min(length, size - offset))
        try:
            fd = os.open(self._dir / cid, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:  # evicted meanwhile
            return None
        try:
            piece = os.pread(fd, n, offset)
        finally:
            os.close(fd)
        return piece + bytes(n - len(piece))

    def _evict(self) -> None:
        while True:
            with self._lock:
                if self._bytes <= self._limit or not self._lru:
                    return
                cid, size = self._lru.popitem(last=False)
                self._bytes -= size
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._dir / cid)
