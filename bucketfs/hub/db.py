"""The hub's SQLite database: one file, WAL mode, one connection per thread.

Readers never block each other or the writer (WAL); writes go through :meth:`Database.write`,
which runs ``BEGIN IMMEDIATE`` so a transaction either commits whole or not at all. With
``synchronous=FULL`` a commit is on disk when ``write`` returns, which is what the crash-safety
argument in ``store.py`` relies on.

Other hub modules (auth, threads, keys ...) add their own tables with
``Database.register_schema(sql)`` at import time; the SQL must be idempotent
(``CREATE TABLE IF NOT EXISTS``). Schemas registered after a Database was opened are applied
to it at once as well.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS buckets (
    key        TEXT PRIMARY KEY,
    thread     TEXT NOT NULL,
    name       TEXT NOT NULL,
    owner      TEXT NOT NULL DEFAULT '',
    version    INTEGER NOT NULL DEFAULT 1,
    link_key   TEXT NOT NULL DEFAULT '',
    root       TEXT NOT NULL,          -- root CID string; Root.path is '/ipfs/' || root
    created_at INTEGER NOT NULL,       -- Unix ns
    updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS buckets_thread ON buckets(thread);

-- Textile's per-path metadata entries (spec 5.3): roles, updated_at, file key.
CREATE TABLE IF NOT EXISTS path_meta (
    bucket     TEXT NOT NULL,
    path       TEXT NOT NULL,          -- bucket-relative, '' is the root
    updated_at INTEGER NOT NULL,
    roles      TEXT NOT NULL DEFAULT '{}',   -- JSON {pubkey or '*': role}
    file_key   TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (bucket, path)
) WITHOUT ROWID;

-- bucketfs's POSIX attributes, kept apart from path_meta because metadata entries carry
-- Textile semantics (nearest-ancestor roles) that a chmod must not change.
CREATE TABLE IF NOT EXISTS attrs (
    bucket TEXT NOT NULL,
    path   TEXT NOT NULL,
    mode   INTEGER,                    -- permission bits, NULL = never set
    mtime  INTEGER,                    -- Unix ns, NULL = never set
    PRIMARY KEY (bucket, path)
) WITHOUT ROWID;
"""


def prefix_upper_bound(prefix: str) -> str:
    """The smallest string greater than every string starting with ``prefix``.

    ``path >= prefix AND path < prefix_upper_bound(prefix)`` is an index range scan, where
    ``LIKE`` or ``substr`` would scan every row (and make pushing n files O(n²)).
    """
    if not prefix:
        raise ValueError("empty prefix")
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


class Database:
    """The hub database file; thread-safe (one sqlite3 connection per thread)."""

    _schemas: ClassVar[list[str]] = [SCHEMA]
    _open: ClassVar[weakref.WeakSet[Database]] = weakref.WeakSet()

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._closed = False
        conn = self.conn()
        conn.execute("PRAGMA journal_mode=WAL")
        for sql in list(Database._schemas):
            conn.executescript(sql)
        Database._open.add(self)

    @classmethod
    def register_schema(cls, sql: str) -> None:
        """Add idempotent DDL run on every database opened (and on those already open)."""
        if sql in cls._schemas:
            return
        cls._schemas.append(sql)
        for db in list(cls._open):
            if not db._closed:
                db.conn().executescript(sql)

    def conn(self) -> sqlite3.Connection:
        """This thread's connection (autocommit mode; use :meth:`write` for transactions)."""
        if self._closed:
            raise RuntimeError("database is closed")
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: committed if the block succeeds, rolled back if it raises."""
        conn = self.conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: every query inside sees one consistent snapshot."""
        conn = self.conn()
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    def close(self) -> None:
        """Close every connection (call once the server has stopped)."""
        self._closed = True
        with self._conns_lock:
            for conn in self._conns:
                try:
                    conn.close()
                except sqlite3.Error as exc:
                    log.warning("closing a database connection failed: %s", exc)
            self._conns.clear()
