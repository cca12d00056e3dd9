"""UnixFS import with the settings of ``ipfs add --cid-version=1`` (unixfs.md section 4).

Files are cut into fixed 262144-byte chunks, stored as raw leaves, and joined by a balanced
tree of dag-pb ``File`` nodes with at most 174 links. Import streams: at most one chunk plus
one pending run of links per tree level is in memory, and every block goes straight into the
store. ``cid_version=0, raw_leaves=False`` gives the plain ``ipfs add`` (CIDv0) layout, which
the test vectors use; chunk size and link count are parameters so tests get deep trees cheaply.
"""

from __future__ import annotations

import logging
import os
import stat
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from bucketfs.ipfs import dagpb, hamt
from bucketfs.ipfs.blockstore import Blockstore, FSBlockstore, WriteBehind
from bucketfs.ipfs.cid import CID
from bucketfs.ipfs.dagpb import PBLink, PBNode
from bucketfs.ipfs.unixfs import DataType, UnixFSData, UnixTime, encode_data

log = logging.getLogger(__name__)

CHUNK_SIZE = 262144
MAX_LINKS = 174
#: A directory whose links-bytes estimate is greater than this becomes a HAMT.
HAMT_THRESHOLD = 262144
#: Largest chunk Kubo accepts (2 MiB - 256): bigger leaves would not travel over bitswap.
MAX_CHUNK_SIZE = 2 * 1024 * 1024 - 256
#: Leaves hashed ahead of the tree builder when writing behind (bounds memory with WriteBehind).
_IN_FLIGHT = 32
#: Leaves per write-behind job (a 1 MiB message): fewer hand-overs between threads.
_BATCH = 4


class UnixFSImportError(ValueError):
    """Input the importer cannot represent (bad parameters, unsupported file types)."""


@dataclass(frozen=True, slots=True)
class Imported:
    """The result of an import: root CID, cumulative size (Tsize) and logical file size."""

    cid: CID
    tsize: int
    filesize: int


def _store_dagpb(store: Blockstore, node: PBNode, version: int) -> tuple[CID, int]:
    block = dagpb.encode(node)
    cid = CID.of_dagpb(block, version)
    store.put(cid, block, trusted=True)
    return cid, len(block)


class _Builder:
    """Balanced-layout tree builder fed one leaf at a time (unixfs.md 4.4).

    ``levels[i]`` holds the pending nodes of level *i*. A level is flushed into a parent only
    when a further node arrives for it, so at :meth:`finish` the root is always built there
    and can carry mode/mtime.
    """

    def __init__(self, store: Blockstore, max_links: int, version: int) -> None:
        self.store = store
        self.max_links = max_links
        self.version = version
        self.levels: list[list[Imported]] = [[]]

    def _parent(self, children: list[Imported], meta: dict[str, object] | None = None) -> Imported:
        links = tuple(PBLink(c.cid, b"", c.tsize) for c in children)
        filesize = sum(c.filesize for c in children)
        data = UnixFSData(
            DataType.File,
            filesize=filesize,
            blocksizes=tuple(c.filesize for c in children),
            **(meta or {}),  # type: ignore[arg-type]
        )
        cid, blen = _store_dagpb(self.store, PBNode(links, encode_data(data)), self.version)
        return Imported(cid, blen + sum(c.tsize for c in children), filesize)

    def push(self, item: Imported, level: int = 0) -> None:
        if level == len(self.levels):
            self.levels.append([])
        pending = self.levels[level]
        if len(pending) == self.max_links:
            self.levels[level] = []
            self.push(self._parent(pending), level + 1)
            pending = self.levels[level]
        pending.append(item)

    def finish(self, meta: dict[str, object] | None) -> Imported | None:
        """The root, or None when there is a single leaf (the caller decides what it is)."""
        i = 0
        while True:
            top = max(j for j, lv in enumerate(self.levels) if lv)
            pending = self.levels[i]
            if i == top:
                if i == 0 and len(pending) == 1:
                    return None
                return self._parent(pending, meta)
            if pending:
                self.levels[i] = []
                self.push(self._parent(pending), i + 1)
            i += 1


def build_file(
    leaves: Iterable[tuple[CID, int]],
    store: Blockstore,
    *,
    max_links: int = MAX_LINKS,
    cid_version: int = 1,
) -> Imported:
    """The root of a file whose raw leaves ``(cid, length)`` were made elsewhere (in file
    order): the same balanced tree :func:`import_file` builds over them with raw leaves and no
    mode/mtime. Interior nodes are put in ``store``; a single leaf is the root itself.

    For a writer that hashes and sends leaves as it goes (the mount's early upload)."""
    builder = _Builder(store, max_links, cid_version)
    for cid, n in leaves:
        builder.push(Imported(cid, n, n))
    root = builder.finish(None)
    return root if root is not None else builder.levels[0][0]


def _meta(mode: int | None, mtime: UnixTime | int | None) -> dict[str, object]:
    meta: dict[str, object] = {}
    if mode is not None:
        meta["mode"] = mode
    if mtime is not None:
        meta["mtime"] = mtime if isinstance(mtime, UnixTime) else UnixTime.from_ns(mtime)
    return meta


def _byte_view(data: object) -> bool:
    """A read-only, contiguous view of bytes (as of a received message): kept, not copied."""
    return (
        isinstance(data, memoryview)
        and data.readonly
        and data.c_contiguous
        and data.itemsize == 1
    )


class FileImporter:
    """Push-style UnixFS file import: :meth:`write` bytes as they arrive, :meth:`finish`.

    The same DAG as :func:`import_file` (which is a loop over this). Whole chunks are sliced
    out of the written buffers without copying; with write-behind, each leaf is hashed and
    stored on a worker thread while the caller goes on receiving, and ``write`` blocks once
    enough leaves are in flight, so memory stays bounded by a few chunks. After an error, or
    to abandon the import, call :meth:`abort`.
    """

    def __init__(
        self,
        store: Blockstore,
        *,
        chunk_size: int = CHUNK_SIZE,
        max_links: int = MAX_LINKS,
        cid_version: int = 1,
        raw_leaves: bool | None = None,
        mode: int | None = None,
        mtime: UnixTime | int | None = None,
        write_behind: bool | None = None,
    ) -> None:
        if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
            raise UnixFSImportError(
                f"chunk size must be 1..{MAX_CHUNK_SIZE} bytes, not {chunk_size}"
            )
        if max_links < 2:
            raise UnixFSImportError(f"max links must be at least 2, not {max_links}")
        if cid_version not in (0, 1):
            raise UnixFSImportError(f"CID version must be 0 or 1, not {cid_version}")
        if write_behind is None:
            write_behind = isinstance(store, FSBlockstore)
        self.chunk_size = chunk_size
        self.version = cid_version
        self.raw_leaves = cid_version == 1 if raw_leaves is None else raw_leaves
        self.meta = _meta(mode, mtime)
        self._wb = WriteBehind(store) if write_behind else None
        self._store: Blockstore = self._wb if self._wb is not None else store  # type: ignore[assignment]
        self._builder = _Builder(self._store, max_links, cid_version)
        self._pending = bytearray()  # the start of the next chunk
        self._futures: deque[tuple[Future[list[CID]], list[int]]] = deque()
        self._in_flight = 0  # leaves queued on the write-behind threads
        self._count = 0
        self._first: bytes | memoryview | None = None  # kept while the file may be one chunk
        self._done = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Add the next bytes of the file (a read-only view is kept, not copied: the
        bytes under it must not change)."""
        if not isinstance(data, bytes) and not _byte_view(data):
            data = bytes(data)  # the leaves below are views of it: it must not change
        view = memoryview(data)
        size = self.chunk_size
        batch: list[bytes | memoryview] = []
        if self._pending:
            take = size - len(self._pending)
            self._pending += view[:take]
            view = view[take:]
            if len(self._pending) < size:
                return
            batch.append(bytes(self._pending))
            self._pending = bytearray()
        while len(view) >= size:
            batch.append(view[:size])
            view = view[size:]
            if len(batch) == _BATCH:
                self._leaves(batch)
                batch = []
        if batch:
            self._leaves(batch)
        if view:
            self._pending += view

    def _leaves(self, chunks: list[bytes | memoryview]) -> None:
        """The next leaves of the file, in order."""
        self._first = chunks[0] if self._count == 0 else None
        self._count += len(chunks)
        if self.raw_leaves and self._wb is not None:
            # Hashed and stored on the worker threads, a few leaves per job; the results are
            # consumed in file order.
            self._futures.append((self._wb.put_raw_many(chunks), [len(c) for c in chunks]))
            self._in_flight += len(chunks)
            while self._in_flight > _IN_FLIGHT:
                self._collect()
            return
        for chunk in chunks:
            n = len(chunk)
            if self.raw_leaves:
                cid = CID.of_raw(chunk)
                self._store.put(cid, chunk, trusted=True)  # type: ignore[arg-type]
                self._builder.push(Imported(cid, n, n))
            else:
                self._builder.push(_dagpb_leaf(self._store, bytes(chunk), self.version, {}))

    def _collect(self) -> None:
        """Wait for the oldest job of leaves and add them to the tree."""
        fut, sizes = self._futures.popleft()
        self._in_flight -= len(sizes)
        for cid, n in zip(fut.result(), sizes, strict=True):
            self._builder.push(Imported(cid, n, n))

    def finish(self) -> Imported:
        """End the file; returns its root once every block is in the store."""
        if self._done:
            raise UnixFSImportError("import already finished")
        if self._pending or not self._count:  # the short last chunk, or the empty file
            chunk, self._pending = bytes(self._pending), bytearray()
            self._leaves([chunk])
        while self._futures:
            self._collect()
        root = self._builder.finish(self.meta)
        if root is None:
            leaf = self._builder.levels[0][0]
            if self.meta and self._first is not None:
                root = _dagpb_leaf(self._store, bytes(self._first), self.version, self.meta)
            else:
                root = leaf
        self._done = True
        if self._wb is not None:
            self._wb.close()
        return root

    def abort(self) -> None:
        """Abandon the import: wait for queued writes and drop the unfinished pack."""
        if self._done:
            return
        self._done = True
        self._futures.clear()
        if self._wb is not None:
            try:
                self._wb.close(commit=False)
            except Exception as exc:  # the import already failed; this is its cause or echo
                log.warning("abandoned import: a block write had failed: %s", exc)


def import_file(
    stream: BinaryIO,
    store: Blockstore,
    *,
    chunk_size: int = CHUNK_SIZE,
    max_links: int = MAX_LINKS,
    cid_version: int = 1,
    raw_leaves: bool | None = None,
    mode: int | None = None,
    mtime: UnixTime | int | None = None,
    write_behind: bool | None = None,
) -> Imported:
    """Import a byte stream (read to EOF) as a UnixFS file; returns its root.

    ``raw_leaves`` defaults to ``cid_version == 1`` (Kubo's rule). ``mode`` / ``mtime``
    (UnixFS 1.5; ``mtime`` as a :class:`UnixTime` or Unix nanoseconds) are written on the root
    only, and force a dag-pb root even for a single chunk. ``write_behind`` (default: on for
    an :class:`FSBlockstore`) writes blocks on worker threads while the next chunk is hashed;
    every block is in the store when this returns.
    """
    imp = FileImporter(
        store,
        chunk_size=chunk_size,
        max_links=max_links,
        cid_version=cid_version,
        raw_leaves=raw_leaves,
        mode=mode,
        mtime=mtime,
        write_behind=write_behind,
    )
    try:
        while True:
            data = stream.read(max(chunk_size, 1 << 20))
            if not data:
                break
            imp.write(data)
        return imp.finish()
    except BaseException:
        imp.abort()
        raise


def _dagpb_leaf(store: Blockstore, chunk: bytes, version: int, meta: dict[str, object]) -> Imported:
    data = UnixFSData(
        DataType.File,
        data=chunk or None,
        filesize=len(chunk),
        **meta,  # type: ignore[arg-type]
    )
    cid, blen = _store_dagpb(store, PBNode((), encode_data(data)), version)
    return Imported(cid, blen, len(chunk))


def import_bytes(data: bytes, store: Blockstore, **options: object) -> Imported:
    """Import an in-memory byte string (same options as :func:`import_file`)."""
    import io

    return import_file(io.BytesIO(data), store, **options)  # type: ignore[arg-type]


def import_symlink(
    target: str | bytes, store: Blockstore, cid_version: int = 1, **meta: object
) -> Imported:
    """A symlink node (``08 04 12 <len> <target>``); ``filesize`` is the target's length."""
    raw = os.fsencode(target) if isinstance(target, str) else bytes(target)
    data = UnixFSData(DataType.Symlink, data=raw, **_meta(meta.get("mode"), meta.get("mtime")))  # type: ignore[arg-type]
    cid, blen = _store_dagpb(store, PBNode((), encode_data(data)), cid_version)
    return Imported(cid, blen, len(raw))


def empty_dir(store: Blockstore, cid_version: int = 1) -> Imported:
    """The empty UnixFS directory (``08 01``)."""
    return make_directory([], store, cid_version)


def links_size_estimate(entries: Iterable[tuple[bytes, CID, int]]) -> int:
    """Kubo's default sharding estimate: sum of name length plus binary CID length."""
    return sum(len(name) + len(cid.buffer) for name, cid, _ in entries)


def make_directory(
    entries: Iterable[tuple[bytes, CID, int]],
    store: Blockstore,
    cid_version: int = 1,
    *,
    mode: int | None = None,
    mtime: UnixTime | int | None = None,
    shard_threshold: int = HAMT_THRESHOLD,
) -> Imported:
    """Write a directory of ``(name, cid, tsize)`` entries: flat, or a HAMT when the
    links-bytes estimate is greater than ``shard_threshold`` (Kubo's
    ``Import.UnixFSHAMTDirectorySizeThreshold``; tests use 1 to force sharding).

    Names must be unique, non-empty and free of ``/``. ``filesize`` of the result is 0.
    """
    items = sorted(entries, key=lambda e: e[0])
    for i, (name, _, _) in enumerate(items):
        if not name or b"/" in name:
            raise UnixFSImportError(f"invalid directory entry name {name!r}")
        if i and items[i - 1][0] == name:
            raise UnixFSImportError(f"duplicate directory entry name {name!r}")
    if links_size_estimate(items) > shard_threshold and mode is None and mtime is None:
        cid, tsize = hamt.build(store, items, cid_version)
        return Imported(cid, tsize, 0)
    links = tuple(PBLink(cid, name, tsize) for name, cid, tsize in items)
    data = encode_data(UnixFSData(DataType.Directory, **_meta(mode, mtime)))  # type: ignore[arg-type]
    cid, blen = _store_dagpb(store, PBNode(links, data), cid_version)
    return Imported(cid, blen + sum(e[2] for e in items), 0)


OnEntry = Callable[[str, Imported], None]


def import_tree(
    path: str | os.PathLike[str],
    store: Blockstore,
    hidden: bool = False,
    *,
    on_entry: OnEntry | None = None,
    cid_version: int = 1,
    raw_leaves: bool | None = None,
    chunk_size: int = CHUNK_SIZE,
    max_links: int = MAX_LINKS,
    shard_threshold: int = HAMT_THRESHOLD,
) -> Imported:
    """Import a file, symlink or directory tree like ``ipfs add -r``.

    Names beginning with ``.`` below ``path`` are skipped unless ``hidden``; symlinks (also
    ``path`` itself) become symlink nodes; empty directories are kept. ``on_entry(relpath,
    imported)`` is called for every node after its children, ``relpath`` starting with the
    basename of ``path`` (what ``ipfs add`` prints). Sockets, FIFOs and devices are rejected.
    """
    opts = {
        "cid_version": cid_version,
        "raw_leaves": raw_leaves,
        "chunk_size": chunk_size,
        "max_links": max_links,
    }
    root = Path(path)
    name = root.name or str(root)
    return _import_path(root, name, store, hidden, on_entry, opts, shard_threshold)


def _import_path(
    p: Path,
    rel: str,
    store: Blockstore,
    hidden: bool,
    on_entry: OnEntry | None,
    opts: dict[str, object],
    shard_threshold: int,
) -> Imported:
    st = p.lstat()
    if stat.S_ISLNK(st.st_mode):
        res = import_symlink(os.readlink(p), store, int(opts["cid_version"]))  # type: ignore[call-overload]
    elif stat.S_ISREG(st.st_mode):
        with open(p, "rb") as f:
            res = import_file(f, store, **opts)  # type: ignore[arg-type]
    elif stat.S_ISDIR(st.st_mode):
        entries: list[tuple[bytes, CID, int]] = []
        with os.scandir(p) as it:
            names = sorted((e.name for e in it), key=os.fsencode)
        for child in names:
            if not hidden and child.startswith("."):
                continue
            sub = _import_path(
                p / child, f"{rel}/{child}", store, hidden, on_entry, opts, shard_threshold
            )
            entries.append((os.fsencode(child), sub.cid, sub.tsize))
        version = int(opts["cid_version"])  # type: ignore[call-overload]
        res = make_directory(entries, store, version, shard_threshold=shard_threshold)
    else:
        raise UnixFSImportError(f"unsupported file type (not a file, directory or symlink): {p}")
    if on_entry is not None:
        on_entry(rel, res)
    return res
