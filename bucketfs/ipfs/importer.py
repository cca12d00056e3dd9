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
_IN_FLIGHT = 4


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


def _read_chunk(stream: BinaryIO, size: int) -> bytes:
    first = stream.read(size)
    if not first or len(first) == size:
        return first or b""
    parts = [first]
    have = len(first)
    while have < size:
        more = stream.read(size - have)
        if not more:
            break
        parts.append(more)
        have += len(more)
    return b"".join(parts)


def _meta(mode: int | None, mtime: UnixTime | int | None) -> dict[str, object]:
    meta: dict[str, object] = {}
    if mode is not None:
        meta["mode"] = mode
    if mtime is not None:
        meta["mtime"] = mtime if isinstance(mtime, UnixTime) else UnixTime.from_ns(mtime)
    return meta


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
    """Import a byte stream as a UnixFS file; returns its root.

    ``raw_leaves`` defaults to ``cid_version == 1`` (Kubo's rule). ``mode`` / ``mtime``
    (UnixFS 1.5; ``mtime`` as a :class:`UnixTime` or Unix nanoseconds) are written on the root
    only, and force a dag-pb root even for a single chunk. ``write_behind`` (default: on for
    an :class:`FSBlockstore`) writes blocks on worker threads while the next chunk is hashed;
    every block is in the store when this returns.
    """
    if write_behind is None:
        write_behind = isinstance(store, FSBlockstore)
    if not write_behind:
        return _import_file(
            stream, store, chunk_size, max_links, cid_version, raw_leaves, mode, mtime
        )
    wb = WriteBehind(store)
    try:
        result = _import_file(
            stream,
            wb,
            chunk_size,
            max_links,
            cid_version,
            raw_leaves,
            mode,
            mtime,  # type: ignore[arg-type]
        )
    except BaseException:
        wb.close(commit=False)
        raise
    wb.close()
    return result


def _import_file(
    stream: BinaryIO,
    store: Blockstore,
    chunk_size: int,
    max_links: int,
    cid_version: int,
    raw_leaves: bool | None,
    mode: int | None,
    mtime: UnixTime | int | None,
) -> Imported:
    if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise UnixFSImportError(f"chunk size must be 1..{MAX_CHUNK_SIZE} bytes, not {chunk_size}")
    if max_links < 2:
        raise UnixFSImportError(f"max links must be at least 2, not {max_links}")
    if cid_version not in (0, 1):
        raise UnixFSImportError(f"CID version must be 0 or 1, not {cid_version}")
    if raw_leaves is None:
        raw_leaves = cid_version == 1
    meta = _meta(mode, mtime)
    builder = _Builder(store, max_links, cid_version)
    first: bytes | None = None  # kept only while the file may turn out to be one chunk
    futures: deque[tuple[Future[CID], int]] = deque()
    count = 0
    while True:
        chunk = _read_chunk(stream, chunk_size)
        if not chunk and count:
            break
        count += 1
        first = chunk if count == 1 else None
        if raw_leaves and isinstance(store, WriteBehind):
            # Leaves are hashed on the worker threads; results are consumed in file order.
            futures.append((store.put_raw(chunk), len(chunk)))
            while len(futures) > _IN_FLIGHT:
                fut, n = futures.popleft()
                builder.push(Imported(fut.result(), n, n))
        elif raw_leaves:
            cid = CID.of_raw(chunk)
            store.put(cid, chunk, trusted=True)
            builder.push(Imported(cid, len(chunk), len(chunk)))
        else:
            builder.push(_dagpb_leaf(store, chunk, cid_version, {}))
        if len(chunk) < chunk_size:
            break
    while futures:
        fut, n = futures.popleft()
        builder.push(Imported(fut.result(), n, n))
    root = builder.finish(meta)
    if root is not None:
        return root
    leaf = builder.levels[0][0]
    if meta and first is not None:
        return _dagpb_leaf(store, first, cid_version, meta)
    return leaf


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
