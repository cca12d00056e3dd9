"""Describing nodes to clients: ``PathItem`` and ``Root`` messages (spec 5.6 ListPath).

``PathItem.size`` is the cumulative DAG size (Textile's meaning); bucketfs's extension fields
carry what a file system needs: ``file_size`` (logical bytes), ``mode``, ``mtime`` (ns; the
recorded mtime, else the nearest metadata entry's ``updated_at``), ``is_symlink`` and
``symlink_target``. Each child costs one block read (its type and size live in its own block),
which is what ``ipfs ls`` does too.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from bucketfs.hub.paths import join
from bucketfs.hub.store import Bucket, Meta
from bucketfs.ipfs import dagpb, hamt
from bucketfs.ipfs.blockstore import Blockstore
from bucketfs.ipfs.cid import CID, DAG_PB, RAW
from bucketfs.ipfs.unixfs import DataType, decode_data
from bucketfs.pb import bucketsd_pb2 as pb


@dataclass(frozen=True, slots=True)
class NodeFacts:
    """What one block says about a node."""

    kind: str  # 'file' | 'dir' | 'symlink'
    file_size: int  # logical bytes (0 for directories)
    count: int  # named links of a directory
    target: str  # symlink target
    tsize: int  # cumulative size computed from the block (block + links)


_FACTS_MAX = 100_000
_facts: OrderedDict[CID, NodeFacts] = OrderedDict()
_facts_lock = threading.Lock()


def inspect(store: Blockstore, cid: CID) -> NodeFacts:
    """Classify the node at ``cid`` (one block read); raises ValueError for non-UnixFS nodes.

    Results are cached by CID in a bounded LRU: a CID names immutable content, so its facts
    never change, and listing a large directory again (``ls -l`` on a mount) then reads no
    child block. A block that is missing is not cached (it may arrive later).
    """
    with _facts_lock:
        hit = _facts.get(cid)
        if hit is not None:
            _facts.move_to_end(cid)
            return hit
    facts = _inspect(store, cid)
    with _facts_lock:
        _facts[cid] = facts
        if len(_facts) > _FACTS_MAX:
            _facts.popitem(last=False)
    return facts


def _inspect(store: Blockstore, cid: CID) -> NodeFacts:
    block = store.get(cid)
    if cid.codec == RAW:
        return NodeFacts("file", len(block), 0, "", len(block))
    if cid.codec != DAG_PB:
        raise ValueError(f"{cid}: unsupported codec {cid.codec:#x}")
    node = dagpb.decode(block)
    tsize = len(block) + sum(link.tsize or 0 for link in node.links)
    if node.data is None:
        raise ValueError(f"{cid} is not a UnixFS node")
    ufs = decode_data(node.data)
    if ufs.type == DataType.Directory:
        return NodeFacts("dir", 0, len(node.links), "", tsize)
    if ufs.type == DataType.HAMTShard:
        count = sum(1 for _ in hamt.iter_entries(store, node, cid))
        return NodeFacts("dir", 0, count, "", tsize)
    if ufs.type == DataType.Symlink:
        return NodeFacts("symlink", len(ufs.data or b""), 0, os.fsdecode(ufs.data or b""), tsize)
    size = ufs.filesize
    if size is None:
        size = len(ufs.data or b"") + sum(ufs.blocksizes)
    return NodeFacts("file", size, 0, "", tsize)


def meta_pb(m: Meta) -> pb.Metadata:
    """A metadata entry as a protobuf message."""
    return pb.Metadata(roles=dict(m.roles), updated_at=m.updated_at, key=m.key)


def nearest(meta: Mapping[str, Meta], path: str) -> Meta | None:
    """Nearest-ancestor metadata lookup over an in-memory map."""
    p = path
    while True:
        m = meta.get(p)
        if m is not None:
            return m
        if not p:
            return None
        p = p.rpartition("/")[0]


def root_pb(bucket: Bucket, meta: Mapping[str, Meta] | None) -> pb.Root:
    """``Root`` for a bucket; ``meta`` None leaves path_metadata out (bucketfs's light form)."""
    root = pb.Root(
        key=bucket.key,
        name=bucket.name,
        path=bucket.path,
        created_at=bucket.created_at,
        updated_at=bucket.updated_at,
        thread=bucket.thread,
        owner=bucket.owner,
        version=bucket.version,
        link_key=bucket.link_key,
        archives=pb.Archives(current=pb.Archive()),
    )
    if meta is not None:
        top = meta.get("")
        if top is not None:
            root.metadata.CopyFrom(meta_pb(top))
        for p, m in meta.items():
            root.path_metadata[p].CopyFrom(meta_pb(m))
    return root


def _fill(
    item: pb.PathItem,
    facts: NodeFacts,
    attrs: tuple[int | None, int | None],
    meta: Meta | None,
) -> None:
    item.is_dir = facts.kind == "dir"
    item.items_count = facts.count
    item.file_size = facts.file_size
    item.is_symlink = facts.kind == "symlink"
    item.symlink_target = facts.target
    mode, mtime = attrs
    item.mode = mode or 0
    if mtime is not None:
        item.mtime = mtime
    elif meta is not None:
        item.mtime = meta.updated_at
    if meta is not None:
        item.metadata.CopyFrom(meta_pb(meta))


class PrivateView(Protocol):
    """What listing needs from a private bucket's directory codec (``private.PrivateDirs``)."""

    def entries(self, store: Blockstore, cid: CID) -> Mapping[str, tuple[CID, int]] | None: ...
    def plain_cid(self, store: Blockstore, cid: CID) -> CID: ...
    def facts(self, store: Blockstore, cid: CID) -> NodeFacts: ...


def path_item(
    store: Blockstore,
    cid: CID,
    tsize: int | None,
    name: str,
    ipfs_path: str,
    rel: str | None,
    meta: Mapping[str, Meta] | None,
    attrs: Mapping[str, tuple[int | None, int | None]] | None,
    children: bool,
    private: PrivateView | None = None,
) -> pb.PathItem:
    """The PathItem for the node ``cid`` at bucket path ``rel`` (None outside a bucket).

    ``tsize`` is the size recorded in the parent link (None: computed from the block).
    With ``children``, one level of entries is listed (sub-directories not expanded).
    ``private``: the bucket is encrypted; directories are decrypted, their CIDs are those of
    the decrypted nodes, and file sizes are plaintext sizes (spec 5.6 ListPath).
    """
    facts = private.facts(store, cid) if private else inspect(store, cid)
    shown = private.plain_cid(store, cid) if private else cid
    item = pb.PathItem(cid=str(shown), name=name, path=ipfs_path, size=tsize or facts.tsize)
    if tsize is None:
        item.size = facts.tsize
    m = nearest(meta, rel) if (meta is not None and rel is not None) else None
    a = attrs.get(rel, (None, None)) if (attrs is not None and rel is not None) else (None, None)
    _fill(item, facts, a, m)
    if children and facts.kind == "dir":
        for entry_name, entry_cid, entry_tsize in _children(store, cid, private):
            child_rel = join(rel, entry_name) if rel is not None else None
            child_facts = private.facts(store, entry_cid) if private else inspect(store, entry_cid)
            child_cid = private.plain_cid(store, entry_cid) if private else entry_cid
            child = pb.PathItem(
                cid=str(child_cid),
                name=entry_name,
                path=f"{ipfs_path}/{entry_name}",
                size=entry_tsize,
            )
            cm = nearest(meta, child_rel) if (meta is not None and child_rel is not None) else m
            ca = (None, None)
            if attrs is not None and child_rel is not None:
                ca = attrs.get(child_rel, (None, None))
            _fill(child, child_facts, ca, cm)
            item.items.append(child)
    return item


def _children(
    store: Blockstore, cid: CID, private: PrivateView | None
) -> Iterator[tuple[str, CID, int]]:
    """(name, CID, Tsize) of each entry of the directory ``cid``, in link order."""
    if private is not None:
        for entry_name, (c, t) in (private.entries(store, cid) or {}).items():
            yield entry_name, c, t
        return
    from bucketfs.ipfs import dirs  # flat and HAMT listing

    for entry in dirs.list_dir(store, cid):
        yield entry.name, entry.cid, entry.tsize
