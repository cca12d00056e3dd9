"""Reading and editing UnixFS directory trees by path.

Paths are bucket-relative strings separated by ``/``; a leading ``/`` is ignored and ``''`` is
the root. Every edit returns a new root and rewrites only the directory nodes on the path to
the edited entry (plus, in a HAMT directory, the shards on the name's hash path). Edited
directories keep their CID version and their Data bytes (so mode/mtime survive); directories
created on the way are CIDv1. A flat directory that grows past the sharding threshold becomes
a HAMT, and a HAMT that shrinks to or below it becomes flat again, so an edited tree has the
same CIDs as ``ipfs add -r`` of the same content.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

from bucketfs.ipfs import dagpb, hamt
from bucketfs.ipfs.blockstore import Blockstore
from bucketfs.ipfs.cid import CID, DAG_PB, RAW
from bucketfs.ipfs.dagpb import PBLink, PBNode
from bucketfs.ipfs.importer import HAMT_THRESHOLD, make_directory
from bucketfs.ipfs.unixfs import DataType, UnixFSData, UnixTime, decode_data

Kind = Literal["file", "dir", "symlink"]


class PathError(ValueError):
    """Base of the path errors below."""


class InvalidPath(PathError):
    """A path with an empty, ``.`` or ``..`` component, or an empty path where a name is due."""


class PathNotFound(PathError, LookupError):
    """Nothing at the path; the message uses the IPFS resolver wording."""


class NotADirectory(PathError):
    """A path component that is a file or symlink where a directory is needed."""


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """What a node is: kind, logical size (file bytes, symlink target length, 0 for dirs),
    cumulative size, symlink target, and UnixFS 1.5 mode/mtime when present."""

    cid: CID
    kind: Kind
    size: int
    tsize: int
    target: str | None = None
    mode: int | None = None
    mtime: UnixTime | None = None


@dataclass(frozen=True, slots=True)
class Entry:
    """One directory entry. ``name`` is decoded with ``os.fsdecode`` (surrogateescape)."""

    name: str
    cid: CID
    tsize: int


def split_path(path: str) -> list[bytes]:
    """``'/a/b/'`` → ``[b'a', b'b']``; ``''`` and ``'/'`` → ``[]``."""
    stripped = path.lstrip("/")
    if stripped.endswith("/"):
        stripped = stripped[:-1]
    if not stripped:
        return []
    parts = stripped.split("/")
    for p in parts:
        if p in ("", ".", ".."):
            raise InvalidPath(f"invalid path {path!r}: empty, '.' or '..' component")
        if "\0" in p:
            raise InvalidPath(f"invalid path {path!r}: NUL byte in a name")
    return [os.fsencode(p) for p in parts]


def _name(b: bytes) -> str:
    return os.fsdecode(b)


# --- loading ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Dir:
    cid: CID
    node: PBNode
    ufs: UnixFSData

    @property
    def sharded(self) -> bool:
        return self.ufs.type == DataType.HAMTShard


def _load_dir(store: Blockstore, cid: CID, path_for_error: str = "") -> _Dir:
    if cid.codec != DAG_PB:
        raise NotADirectory(f"{path_for_error or cid} is not a directory")
    node = dagpb.decode(store.get(cid))
    ufs = decode_data(node.data or b"")
    if ufs.type not in (DataType.Directory, DataType.HAMTShard):
        raise NotADirectory(f"{path_for_error or cid} is not a directory")
    return _Dir(cid, node, ufs)


def _node_tsize(node: PBNode, block_len: int) -> int:
    return block_len + sum(link.tsize or 0 for link in node.links)


def stat(store: Blockstore, cid: CID) -> NodeInfo:
    """Describe the node at ``cid`` (fetches and verifies one block).

    A raw block's size comes from the store's ``block_size`` when it has one, so stat of a
    raw file does not read and hash up to a whole chunk; its bytes are verified when read.
    """
    if cid.codec == RAW:
        block_size = getattr(store, "block_size", None)
        n = block_size(cid) if block_size is not None else len(store.get(cid))
        return NodeInfo(cid, "file", n, n)
    block = store.get(cid)
    if cid.codec != DAG_PB:
        raise NotADirectory(f"{cid}: unsupported codec {cid.codec:#x}")
    node = dagpb.decode(block)
    if node.data is None:
        raise PathError(f"{cid} is not a UnixFS node (no Data)")
    ufs = decode_data(node.data)
    tsize = _node_tsize(node, len(block))
    meta = {"mode": ufs.mode, "mtime": ufs.mtime}
    if ufs.type in (DataType.Directory, DataType.HAMTShard):
        return NodeInfo(cid, "dir", 0, tsize, **meta)
    if ufs.type == DataType.Symlink:
        target = _name(ufs.data or b"")
        return NodeInfo(cid, "symlink", len(ufs.data or b""), tsize, target, **meta)
    if ufs.type in (DataType.File, DataType.Raw):
        size = ufs.filesize
        if size is None:
            size = len(ufs.data or b"") + sum(ufs.blocksizes)
        return NodeInfo(cid, "file", size, tsize, **meta)
    raise PathError(f"{cid} is a UnixFS {ufs.type.name} node, which bucketfs does not handle")


def _iter_links(store: Blockstore, d: _Dir) -> list[tuple[bytes, CID, int]]:
    if d.sharded:
        return list(hamt.iter_entries(store, d.node, d.cid))
    return [(link.name or b"", link.cid, link.tsize or 0) for link in d.node.links]


def list_dir(store: Blockstore, cid: CID) -> list[Entry]:
    """The entries of a flat or HAMT directory, sorted by name bytes."""
    d = _load_dir(store, cid)
    items = _iter_links(store, d)
    if d.sharded:
        items.sort(key=lambda e: e[0])
    return [Entry(_name(n), c, t) for n, c, t in items]


def _lookup(store: Blockstore, d: _Dir, name: bytes) -> PBLink | None:
    if d.sharded:
        return hamt.lookup(store, d.node, name)
    for link in d.node.links:
        if link.name == name:
            return link
    return None


def lookup(store: Blockstore, dir_cid: CID, name: str) -> Entry | None:
    """One entry of a directory by name, or None (HAMT lookups fetch only the hash path)."""
    link = _lookup(store, _load_dir(store, dir_cid), os.fsencode(name))
    return None if link is None else Entry(name, link.cid, link.tsize or 0)


def resolve_entry(store: Blockstore, root: CID, path: str) -> Entry:
    """Like :func:`resolve`, also returning the Tsize recorded in the parent link."""
    cid = root
    tsize: int | None = None
    comps = split_path(path)
    for name in comps:
        if cid.codec != DAG_PB:
            raise PathNotFound(f'no link named "{_name(name)}" under {cid}')
        node = dagpb.decode(store.get(cid))
        ufs = decode_data(node.data or b"")
        link = None
        if ufs.type in (DataType.Directory, DataType.HAMTShard):
            link = _lookup(store, _Dir(cid, node, ufs), name)
        if link is None:
            raise PathNotFound(f'no link named "{_name(name)}" under {cid}')
        cid, tsize = link.cid, link.tsize or 0
    if tsize is None:
        tsize = stat(store, root).tsize
    return Entry(_name(comps[-1]) if comps else "", cid, tsize)


def resolve(store: Blockstore, root: CID, path: str) -> CID:
    """The CID at ``path`` under ``root``; raises :class:`PathNotFound` with the IPFS text
    ``no link named "<name>" under <cid>``."""
    return resolve_entry(store, root, path).cid


# --- editing ---------------------------------------------------------------------------------


def _write_flat(store: Blockstore, d: _Dir, links: list[PBLink]) -> tuple[CID, int]:
    """Write a flat directory with ``links``, converting to a HAMT above the threshold."""
    estimate = sum(len(link.name or b"") + len(link.cid.buffer) for link in links)
    if estimate > HAMT_THRESHOLD:
        entries = [(link.name or b"", link.cid, link.tsize or 0) for link in links]
        return hamt.build(store, entries, d.cid.version)
    node = PBNode(tuple(links), d.node.data)
    block = dagpb.encode(node)
    cid = CID.of_dagpb(block, d.cid.version)
    store.put(cid, block, trusted=True)
    return cid, _node_tsize(node, len(block))


def _put_entry(store: Blockstore, d: _Dir, name: bytes, cid: CID, tsize: int) -> tuple[CID, int]:
    if d.sharded:
        return hamt.insert(store, d.node, d.cid.version, name, cid, tsize)
    links = list(d.node.links)
    new = PBLink(cid, name, tsize)
    for i, link in enumerate(links):
        if link.name == name:
            links[i] = new
            break
    else:
        at = next((i for i, lk in enumerate(links) if (lk.name or b"") > name), len(links))
        links.insert(at, new)
    return _write_flat(store, d, links)


def _maybe_unshard(store: Blockstore, version: int, cid: CID, tsize: int) -> tuple[CID, int]:
    """A HAMT root whose entries fit under the threshold again becomes a flat directory."""
    node = dagpb.decode(store.get(cid))
    entries: list[tuple[bytes, CID, int]] = []
    total = 0
    for e in hamt.iter_entries(store, node, cid):
        total += len(e[0]) + len(e[1].buffer)
        if total > HAMT_THRESHOLD:
            return cid, tsize  # still big: stop walking early
        entries.append(e)
    res = make_directory(entries, store, version)
    return res.cid, res.tsize


def _drop_entry(store: Blockstore, d: _Dir, name: bytes, path: str) -> tuple[CID, int]:
    if d.sharded:
        res = hamt.remove(store, d.node, d.cid.version, name)
        if res is None:
            raise PathNotFound(f"cannot remove {path!r}: no link by that name")
        return _maybe_unshard(store, d.cid.version, res[0], res[1])
    links = [link for link in d.node.links if link.name != name]
    if len(links) == len(d.node.links):
        raise PathNotFound(f"cannot remove {path!r}: no link by that name")
    return _write_flat(store, d, links)


def _empty_dir_obj() -> _Dir:
    data = b"\x08\x01"
    block = dagpb.encode(PBNode((), data))
    return _Dir(CID.of_dagpb(block, 1), PBNode((), data), UnixFSData(DataType.Directory))


def _set(
    store: Blockstore,
    dir_cid: CID | None,
    comps: list[bytes],
    done: list[bytes],
    cid: CID,
    tsize: int,
) -> tuple[CID, int]:
    shown = "/".join(_name(c) for c in done) or "/"
    d = _empty_dir_obj() if dir_cid is None else _load_dir(store, dir_cid, shown)
    name = comps[0]
    if len(comps) == 1:
        return _put_entry(store, d, name, cid, tsize)
    existing = _lookup(store, d, name)
    child_cid, child_tsize = _set(
        store, existing.cid if existing else None, comps[1:], done + [name], cid, tsize
    )
    return _put_entry(store, d, name, child_cid, child_tsize)


def set_entry_sized(
    store: Blockstore, root: CID, path: str, cid: CID, tsize: int
) -> tuple[CID, int]:
    """:func:`set_entry`, also returning the new root's cumulative size."""
    comps = split_path(path)
    if not comps:
        raise InvalidPath("cannot set the root itself: the path must name an entry")
    return _set(store, root, comps, [], cid, tsize)


def set_entry(store: Blockstore, root: CID, path: str, cid: CID, tsize: int) -> CID:
    """Link ``cid`` (cumulative size ``tsize``) at ``path``, creating missing parent
    directories and replacing an existing entry; returns the new root CID."""
    return set_entry_sized(store, root, path, cid, tsize)[0]


def _remove(
    store: Blockstore, dir_cid: CID, comps: list[bytes], done: list[bytes], path: str
) -> tuple[CID, int]:
    name = comps[0]
    try:
        d = _load_dir(store, dir_cid)
    except NotADirectory:
        # Removing below a file: the path does not exist, said the way the resolver says it.
        raise PathNotFound(f'no link named "{_name(name)}" under {dir_cid}') from None
    if len(comps) == 1:
        return _drop_entry(store, d, name, path)
    existing = _lookup(store, d, name)
    if existing is None:
        raise PathNotFound(f'no link named "{_name(name)}" under {dir_cid}')
    child_cid, child_tsize = _remove(store, existing.cid, comps[1:], done + [name], path)
    return _put_entry(store, d, name, child_cid, child_tsize)


def remove_entry_sized(store: Blockstore, root: CID, path: str) -> tuple[CID, int]:
    """:func:`remove_entry`, also returning the new root's cumulative size."""
    comps = split_path(path)
    if not comps:
        raise InvalidPath("cannot remove the root itself: the path must name an entry")
    return _remove(store, root, comps, [], path.strip("/"))


def remove_entry(store: Blockstore, root: CID, path: str) -> CID:
    """Unlink the entry at ``path`` (file or whole directory); returns the new root CID.

    A missing final entry raises :class:`PathNotFound` ending ``no link by that name``; a
    missing parent raises it with the resolver text. Parents are kept even when emptied.
    """
    return remove_entry_sized(store, root, path)[0]
