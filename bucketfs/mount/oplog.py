"""The namespace journal: pending namespace operations, the last root, and a listing snapshot.

mkdir, rmdir, unlink, rename, symlink, chmod and utimens are applied to the local view at once
and written here as an :class:`Op`; the uploader replays them to the hub in order (each with the
mount's last known root as fast-forward root) and deletes each one once the hub has answered.
So namespace changes cost no round trip and work while the hub is unreachable.

The journal is one SQLite database (``<cache_dir>/<bucket key>/journal.db``) in WAL mode with
``synchronous=FULL``: a committed append is on disk before the operation returns to the kernel,
and a crash loses at most the transaction in progress (SQLite rolls it back at the next open).
Tables:

- ``ops(seq INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT)`` — one JSON :class:`Op` per pending
  operation, in the order they happened (``seq`` never repeats, so a mark compares safely);
- ``meta(key TEXT PRIMARY KEY, value TEXT)`` — ``root`` (the root of the snapshot), ``mark``
  (the highest ``seq`` the snapshot already contains), ``name`` (the bucket's name);
- ``listings(path TEXT PRIMARY KEY, body TEXT)`` — the snapshot: the mount's merged view of each
  cached directory (bucket at ``root`` plus the operations up to ``mark``), so that a mount can
  start and list what it had seen while the hub is unreachable.

The pure functions at the bottom (:func:`history`, :func:`apply`) define what a pending
operation does to a directory listing; the core uses them both to patch its cached listings
and to rebuild a listing from the hub's version plus the pending operations.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sqlite3
import threading
from dataclasses import dataclass, replace
from pathlib import Path

from bucketfs.mount.remote import RemoteItem

log = logging.getLogger(__name__)

KINDS = ("mkdir", "symlink", "remove", "rename", "setattr")


@dataclass(frozen=True)
class Op:
    """One pending namespace operation (paths are bucket-relative, local names)."""

    kind: str  # one of KINDS
    path: str  # the entry (rename: the source)
    dst: str = ""  # rename: the destination
    mode: int | None = None  # mkdir, setattr
    mtime_ns: int | None = None  # mkdir, symlink, setattr
    target: str = ""  # symlink
    rmdir: bool = False  # remove: rmdir(2) rather than unlink(2)
    item: dict | None = None  # rename: the moved entry as listed (fills the destination)
    seq: int = 0  # assigned by Journal.append

    def to_json(self) -> str:
        """The persisted form (``seq`` is the row's key, not part of the body)."""
        d = dataclasses.asdict(self)
        d.pop("seq")
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, seq: int, text: str) -> Op:
        """Parse a persisted body (ValueError/KeyError/TypeError when damaged)."""
        d = json.loads(text)
        if d.get("kind") not in KINDS:
            raise ValueError(f"unknown operation {d.get('kind')!r}")
        return cls(seq=seq, **{f.name: d[f.name] for f in dataclasses.fields(cls)
                               if f.name in d and f.name != "seq"})

    def moved_item(self, name: str) -> RemoteItem | None:
        """rename: the entry that arrives at the destination, under ``name``."""
        if not self.item:
            return None
        return RemoteItem(**{**self.item, "name": name})


@dataclass
class Snapshot:
    """What :meth:`Journal.load_snapshot` returns."""

    root: str
    mark: int
    listings: dict[str, dict[str, RemoteItem]]


class Journal:
    """The persisted op log, last root and listing snapshot of one mount (thread-safe)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so each method is exactly one
        # transaction and nothing is left open between calls.
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: the WAL is fsynced at every commit, so an acknowledged operation survives a
        # power cut, not only a crash of this process.
        self._db.execute("PRAGMA synchronous=FULL")
        with self._tx():
            self._db.execute("CREATE TABLE IF NOT EXISTS ops "
                             "(seq INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL)")
            self._db.execute("CREATE TABLE IF NOT EXISTS meta "
                             "(key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            self._db.execute("CREATE TABLE IF NOT EXISTS listings "
                             "(path TEXT PRIMARY KEY, body TEXT NOT NULL)")
            self._db.execute("CREATE TABLE IF NOT EXISTS bad_ops "
                             "(seq INTEGER PRIMARY KEY, body TEXT NOT NULL)")

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    # -- the op log ----------------------------------------------------------------------------

    def append(self, op: Op) -> Op:
        """Persist ``op`` (committed and fsynced on return); returns it with its ``seq``."""
        with self._lock, self._tx():
            cur = self._db.execute("INSERT INTO ops (body) VALUES (?)", (op.to_json(),))
            seq = int(cur.lastrowid or 0)
        return replace(op, seq=seq)

    def pending(self) -> list[Op]:
        """Every pending operation, oldest first; a damaged row is set aside and logged."""
        out = []
        with self._lock:
            rows = self._db.execute("SELECT seq, body FROM ops ORDER BY seq").fetchall()
        for seq, body in rows:
            try:
                out.append(Op.from_json(seq, body))
            except (ValueError, KeyError, TypeError):
                log.error("damaged journal entry %d set aside: %r", seq, body)
                with self._lock, self._tx():
                    self._db.execute("INSERT OR REPLACE INTO bad_ops VALUES (?, ?)", (seq, body))
                    self._db.execute("DELETE FROM ops WHERE seq = ?", (seq,))
        return out

    def done(self, seq: int) -> None:
        """The hub has applied operation ``seq``: forget it."""
        with self._lock, self._tx():
            self._db.execute("DELETE FROM ops WHERE seq = ?", (seq,))

    # -- metadata and the listing snapshot -----------------------------------------------------

    def get(self, key: str) -> str | None:
        """A ``meta`` value."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set(self, key: str, value: str) -> None:
        """Set a ``meta`` value."""
        with self._lock, self._tx():
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def save_snapshot(
        self, root: str, mark: int, listings: dict[str, dict[str, RemoteItem]]
    ) -> None:
        """Replace the snapshot (one transaction: the old one stays whole until it commits)."""
        rows = [(p, json.dumps([dataclasses.astuple(i) for i in children.values()]))
                for p, children in listings.items()]
        with self._lock, self._tx():
            self._db.execute("DELETE FROM listings")
            self._db.executemany("INSERT INTO listings VALUES (?, ?)", rows)
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('root', ?)", (root,))
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('mark', ?)", (str(mark),))

    def load_snapshot(self) -> Snapshot | None:
        """The last saved snapshot, or None if there is none."""
        root, mark = self.get("root"), self.get("mark")
        if not root or mark is None:
            return None
        with self._lock:
            rows = self._db.execute("SELECT path, body FROM listings").fetchall()
        listings = {}
        for path, body in rows:
            items = [RemoteItem(*t) for t in json.loads(body)]
            listings[path] = {i.name: i for i in items}
        return Snapshot(root, int(mark), listings)

    def _tx(self):  # noqa: ANN202 - a context manager
        return _Transaction(self._db)


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT, or ROLLBACK when the body raised."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, exc, tb) -> None:  # noqa: ANN001
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")


# -- what an operation does to a directory listing ----------------------------------------------


def under(path: str, top: str) -> bool:
    """``path`` is ``top`` or inside it (``""`` is the bucket root, above everything)."""
    return top == "" or path == top or path.startswith(top + "/")


def split(path: str) -> tuple[str, str]:
    """``a/b/c`` → ``("a/b", "c")``."""
    parent, _, name = path.rpartition("/")
    return parent, name


def history(ops: list[Op], path: str) -> tuple[int, list[str]]:
    """Where local directory ``path`` was before each pending operation.

    Returns ``(start, paths)`` with ``paths[i]`` the directory's path before ``ops[i]`` for
    ``start <= i <= len(ops)`` (``paths[len(ops)] == path``). ``start == 0`` means the directory
    comes from the bucket, at ``paths[0]``; otherwise ``ops[start - 1]`` created it (or its
    parent), so it starts empty.
    """
    n = len(ops)
    paths = [""] * (n + 1)
    paths[n] = path
    p = path
    for i in range(n - 1, -1, -1):
        op = ops[i]
        if op.kind in ("mkdir", "symlink") and p and under(p, op.path):
            return i + 1, paths
        if op.kind == "rename" and p and under(p, op.dst):
            p = op.path + p[len(op.dst):]
        paths[i] = p
    return 0, paths


def apply(op: Op, before: str, after: str, children: dict[str, RemoteItem]) -> None:
    """Apply ``op`` to the listing of one directory, in place.

    ``before``/``after``: that directory's path before and after the operation (they differ
    only when the operation renames the directory or one of its ancestors).
    """
    if op.kind == "rename":
        sp, sn = split(op.path)
        dp, dn = split(op.dst)
        moved = children.pop(sn, None) if sp == before else None
        if dp == after:
            item = replace(moved, name=dn) if moved is not None else op.moved_item(dn)
            if item is not None:
                children[dn] = item
            else:
                children.pop(dn, None)
        return
    parent, name = split(op.path)
    if op.kind == "remove":
        if parent == before:
            children.pop(name, None)
    elif parent != after:
        return
    elif op.kind == "mkdir":
        children[name] = RemoteItem(name, "", "dir", 0, op.mode or 0, op.mtime_ns or 0)
    elif op.kind == "symlink":
        children[name] = RemoteItem(name, "", "symlink", 0, 0, op.mtime_ns or 0, op.target)
    elif op.kind == "setattr" and name in children:
        old = children[name]
        children[name] = replace(
            old,
            mode=old.mode if op.mode is None else op.mode,
            mtime_ns=old.mtime_ns if op.mtime_ns is None else op.mtime_ns,
        )


def overlay(ops: list[Op], path: str, base: dict[str, RemoteItem] | None,
            start: int, paths: list[str]) -> dict[str, RemoteItem]:
    """The listing of ``path`` after ``ops``: ``base`` (the bucket's listing of ``paths[0]``,
    ignored unless ``start == 0``) with ``ops[start:]`` applied (see :func:`history`)."""
    children = dict(base or {}) if start == 0 else {}
    for i in range(start, len(ops)):
        apply(ops[i], paths[i], paths[i + 1], children)
    return children
