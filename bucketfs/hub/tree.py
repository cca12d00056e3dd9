"""In-memory editing of a bucket's directory tree, written out once per commit.

Textile edits the DAG one link at a time, re-encoding and storing every directory on the path
to the root for each file; pushing n files into one directory then costs O(n²) bytes.
:class:`TreeEditor` instead loads the directories it touches, applies any number of edits to
plain dicts, and :meth:`TreeEditor.flush` encodes and stores each changed directory once.

Directories are plain UnixFS directories (Data ``08 01``, links sorted by name bytes, link
Tsize = the child's cumulative size). An edited directory keeps its CID version; directories
the editor creates are CIDv1. A HAMT-sharded directory that gets edited is rewritten as a plain
directory (same entries, so the same listing; Textile's own edits never create shards).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from bucketfs.hub.errors import HubError, unknown
from bucketfs.ipfs import dagpb
from bucketfs.ipfs.blockstore import Blockstore
from bucketfs.ipfs.cid import CID, DAG_PB
from bucketfs.ipfs.unixfs import DataType, decode_data

DIR_DATA = b"\x08\x01"  # UnixFS Data {Type: Directory}


@dataclass(slots=True)
class Ref:
    """A child that the editor has not opened: a CID and its cumulative size."""

    cid: CID
    tsize: int


class Dir:
    """A directory being edited: ``entries`` maps names to :class:`Ref` or :class:`Dir`."""

    __slots__ = ("cid", "tsize", "version", "entries", "dirty")

    def __init__(self, entries: dict[str, Ref | Dir], cid: CID | None, tsize: int, version: int):
        self.entries = entries
        self.cid = cid  # None while dirty
        self.tsize = tsize
        self.version = version
        self.dirty = cid is None


Node = Ref | Dir


Entries = dict[str, tuple[CID, int]]

# Decoded directories by CID. A CID names immutable content, so an entry never goes stale;
# the cache only saves re-decoding large directories (10,000 links cost ~50 ms in Python)
# on every edit, listing or path resolution. Bounded by the total number of links held.
_CACHE_MAX_LINKS = 200_000  # roughly 40 MB of names and CIDs at most
_cache: OrderedDict[CID, Entries | None] = OrderedDict()
_cache_links = 0
_cache_lock = threading.Lock()


def dir_entries(store: Blockstore, cid: CID) -> Entries | None:
    """The entries of the directory at ``cid`` (name -> (CID, Tsize), in link order), or None
    if the node is not a directory. The dict is shared: callers must not modify it."""
    global _cache_links
    with _cache_lock:
        if cid in _cache:
            _cache.move_to_end(cid)
            return _cache[cid]
    entries = _decode_dir(store, cid)
    size = len(entries) if entries else 0
    with _cache_lock:
        if cid not in _cache and size <= _CACHE_MAX_LINKS:
            _cache[cid] = entries
            _cache_links += size
            while _cache_links > _CACHE_MAX_LINKS:
                _, old = _cache.popitem(last=False)
                _cache_links -= len(old) if old else 0
    return entries


def _decode_dir(store: Blockstore, cid: CID) -> Entries | None:
    if cid.codec != DAG_PB:
        return None
    node = dagpb.decode(store.get(cid))
    if node.data is None:
        return None
    info = decode_data(node.data)
    if info.type == DataType.Directory:
        return {
            (link.name or b"").decode("utf-8", "surrogateescape"): (link.cid, link.tsize or 0)
            for link in node.links
        }
    if info.type == DataType.HAMTShard:
        from bucketfs.ipfs import dirs  # the HAMT walk lives in the ipfs layer

        out: Entries = {}
        for entry in dirs.list_dir(store, cid):
            name = entry.name
            if isinstance(name, bytes):
                name = name.decode("utf-8", "surrogateescape")
            out[name] = (entry.cid, entry.tsize)
        return out
    return None


class PlainDirs:
    """How a public bucket stores directories: plain UnixFS directory nodes.

    A private bucket uses :class:`bucketfs.hub.private.PrivateDirs` instead, which has the
    same three methods; the editor, resolver and listing only go through them.
    """

    def entries(self, store: Blockstore, cid: CID) -> Entries | None:
        """The entries of the directory at ``cid``, or None if it is not a directory."""
        return dir_entries(store, cid)

    def store_dir(
        self, store: Blockstore, links: list[dagpb.PBLink], version: int
    ) -> tuple[CID, int]:
        """Encode and store a directory with ``links`` (sorted); returns (CID, cumulative size)."""
        block = dagpb.encode(dagpb.PBNode(links=tuple(links), data=DIR_DATA))
        cid = CID.of_dagpb(block, version=version)
        store.put(cid, block, trusted=True)
        return cid, len(block) + sum(link.tsize or 0 for link in links)

    def tsize(self, store: Blockstore, cid: CID, entries: Entries) -> int:
        """The cumulative size of the stored directory ``cid`` with ``entries``."""
        return len(store.get(cid)) + sum(t for _, t in entries.values())


PLAIN = PlainDirs()


def resolve(
    store: Blockstore, root: CID, path: str, dirs: PlainDirs = PLAIN
) -> tuple[CID, int | None]:
    """The CID at bucket path ``path`` under ``root`` and the Tsize its parent link records
    (None for the root itself); a missing name raises UNKNOWN with the IPFS resolver text
    ``no link named "<name>" under <cid>``."""
    if not path:
        return root, None
    cid, tsize = root, 0
    for name in path.split("/"):
        entries = dirs.entries(store, cid)
        found = entries.get(name) if entries is not None else None
        if found is None:
            raise unknown(f'no link named "{name}" under {cid}')
        cid, tsize = found
    return cid, tsize


def not_a_directory(path: str) -> HubError:
    """The error for a path component that is a file (Textile's MovePath text)."""
    return unknown("not a directory" if not path else f"not a directory: {path}")


class TreeEditor:
    """Edits the tree under one root; nothing reaches the store before :meth:`flush`."""

    def __init__(self, store: Blockstore, root: CID, dirs: PlainDirs = PLAIN) -> None:
        self.store = store
        self.dirs = dirs
        entries = dirs.entries(store, root)
        if entries is None:
            raise unknown(f"bucket root {root} is not a directory")
        self.root = self._make_dir(entries, root, dirs.tsize(store, root, entries))

    @staticmethod
    def _make_dir(entries: Entries, cid: CID | None, tsize: int) -> Dir:
        version = cid.version if cid is not None else 1
        return Dir({name: Ref(c, t) for name, (c, t) in entries.items()}, cid, tsize, version)

    def _open(self, parent: Dir, name: str) -> Dir | None:
        """The child ``name`` of ``parent`` as an editable Dir (None if it is not one)."""
        child = parent.entries[name]
        if isinstance(child, Dir):
            return child
        entries = self.dirs.entries(self.store, child.cid)
        if entries is None:
            return None
        d = self._make_dir(entries, child.cid, child.tsize)
        parent.entries[name] = d
        return d

    def _walk(self, path: str, create: bool) -> tuple[Dir, str] | None:
        """The parent Dir of ``path`` and the last name; None if a parent is missing."""
        parts = path.split("/")
        d = self.root
        for i, name in enumerate(parts[:-1]):
            if name not in d.entries:
                if not create:
                    return None
                d.entries[name] = Dir({}, None, 0, 1)
                self._touch(d)
            sub = self._open(d, name)
            if sub is None:
                raise not_a_directory("/".join(parts[: i + 1]))
            d = sub
        return d, parts[-1]

    def _touch(self, d: Dir) -> None:
        d.dirty = True
        d.cid = None

    def _mark_path(self, path: str) -> None:
        # Every directory from the root to the edited entry's parent changes.
        d = self.root
        self._touch(d)
        for name in path.split("/")[:-1]:
            child = d.entries[name]
            assert isinstance(child, Dir)
            self._touch(child)
            d = child

    def get(self, path: str) -> Node | None:
        """The node at ``path`` ("" = root), or None if it does not exist."""
        if not path:
            return self.root
        try:
            found = self._walk(path, create=False)
        except HubError:
            return None
        if found is None:
            return None
        parent, name = found
        return parent.entries.get(name)

    def is_dir(self, node: Node) -> bool:
        """True if ``node`` is a directory."""
        return isinstance(node, Dir) or self.dirs.entries(self.store, node.cid) is not None

    def open_dir(self, path: str) -> Dir | None:
        """The directory at ``path`` opened for editing, or None if it is not a directory."""
        if not path:
            return self.root
        found = self._walk(path, create=False)
        if found is None:
            return None
        parent, name = found
        if name not in parent.entries:
            return None
        return self._open(parent, name)

    def set(self, path: str, node: Node) -> None:
        """Put ``node`` at ``path``, creating parent directories and replacing any entry."""
        if not path:
            raise unknown("cannot replace the bucket root this way")
        found = self._walk(path, create=True)
        assert found is not None
        parent, name = found
        parent.entries[name] = node
        self._mark_path(path)

    def set_cid(self, path: str, cid: CID, tsize: int) -> None:
        """Link the DAG ``cid`` (cumulative size ``tsize``) at ``path``."""
        self.set(path, Ref(cid, tsize))

    def remove(self, path: str) -> Node:
        """Unlink ``path`` and return what was there; parents stay even if they become empty.

        A missing entry raises UNKNOWN ending ``no link by that name`` (spec 5.6 RemovePath,
        the suffix the Go client ignores).
        """
        found = self._walk(path, create=False) if path else None
        if found is None or found[1] not in found[0].entries:
            raise unknown(f"could not remove {path!r}: no link by that name")
        parent, name = found
        node = parent.entries.pop(name)
        self._mark_path(path)
        return node

    def mkdir(self, path: str) -> None:
        """An empty directory at ``path`` (parents created); the caller checks for existence."""
        self.set(path, Dir({}, None, 0, 1))

    def flush(self) -> tuple[CID, int]:
        """Encode and store every changed directory, bottom-up; returns (root CID, tsize)."""
        # Iterative post-order walk: a path may be 2048 components deep, past the recursion limit.
        stack: list[tuple[Dir, bool]] = [(self.root, False)]
        while stack:
            d, children_done = stack.pop()
            if not d.dirty:
                continue
            if not children_done:
                stack.append((d, True))
                stack.extend((c, False) for c in d.entries.values() if isinstance(c, Dir))
                continue
            self._encode(d)
        assert self.root.cid is not None
        return self.root.cid, self.root.tsize

    def _encode(self, d: Dir) -> None:
        links = []
        for name in sorted(d.entries, key=lambda n: n.encode("utf-8", "surrogateescape")):
            child = d.entries[name]
            assert child.cid is not None, "children are flushed first"
            raw = name.encode("utf-8", "surrogateescape")
            links.append(dagpb.PBLink(child.cid, raw, child.tsize))
        d.cid, d.tsize = self.dirs.store_dir(self.store, links, d.version)
        d.dirty = False

    @classmethod
    def empty(cls, store: Blockstore, dirs: PlainDirs = PLAIN) -> TreeEditor:
        """An editor on a new, empty CIDv1 root directory (nothing stored until flush)."""
        editor = cls.__new__(cls)
        editor.store = store
        editor.dirs = dirs
        editor.root = Dir({}, None, 0, 1)
        return editor


def new_root(
    store: Blockstore, seed: CID, seed_size: int, dirs: PlainDirs = PLAIN
) -> tuple[CID, int]:
    """A CIDv1 root directory holding only ``.textileseed`` (spec 5.6 Create)."""
    editor = TreeEditor.empty(store, dirs)
    editor.set_cid(".textileseed", seed, seed_size)
    return editor.flush()
