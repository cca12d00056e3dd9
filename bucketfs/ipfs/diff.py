"""Merkle diff of two directory trees, descending only where CIDs differ.

Reporting rules (what the mount's reconciler relies on):

- an entry only in the new tree is ``added`` and one only in the old tree is ``removed``; for a
  whole new or removed directory only its own path is reported, not its contents;
- an entry present in both with different CIDs is ``changed``, unless both are directories,
  in which case the diff descends into them and reports what differs inside;
- a type change (file ⇄ directory ⇄ symlink) is one ``changed`` entry, never removed+added;
- CIDs that differ only in version (CIDv0 vs CIDv1 of the same block) are equal content and
  are not reported.

Paths are bucket-relative without a leading ``/``; ``''`` is the root, reported only when one
of the two roots is not a directory. HAMT shards that are identical on both sides are skipped
without being fetched.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

from bucketfs.ipfs import dagpb, hamt
from bucketfs.ipfs.blockstore import Blockstore
from bucketfs.ipfs.cid import CID, DAG_PB
from bucketfs.ipfs.dagpb import PBNode
from bucketfs.ipfs.unixfs import DataType, decode_data

ChangeKind = Literal["added", "removed", "changed"]


@dataclass(frozen=True, slots=True)
class Change:
    """One difference: the path, its kind, and the CIDs before and after (None if absent)."""

    path: str
    kind: ChangeKind
    old: CID | None
    new: CID | None


def _same(a: CID, b: CID) -> bool:
    return a == b or (a.codec == b.codec and a.multihash == b.multihash)


def _as_dir(store: Blockstore, cid: CID) -> tuple[PBNode, bool] | None:
    """(node, sharded) if ``cid`` is a directory, else None."""
    if cid.codec != DAG_PB:
        return None
    node = dagpb.decode(store.get(cid))
    if node.data is None:
        return None
    t = decode_data(node.data).type
    if t == DataType.Directory:
        return node, False
    if t == DataType.HAMTShard:
        return node, True
    return None


def _entries(store: Blockstore, node: PBNode, sharded: bool) -> dict[bytes, CID]:
    if sharded:
        return {n: c for n, c, _ in hamt.iter_entries(store, node)}
    return {link.name or b"": link.cid for link in node.links}


def _shard_entries(
    store: Blockstore, a: PBNode, b: PBNode
) -> tuple[dict[bytes, CID], dict[bytes, CID]]:
    """Entries of two HAMT shards, leaving out sub-shards whose CIDs are equal on both sides.

    Shapes are canonical, so a sub-shard at the same slot with the same CID holds the same
    entries in both trees.
    """
    la = {link.name or b"": link.cid for link in a.links}
    lb = {link.name or b"": link.cid for link in b.links}
    out_a: dict[bytes, CID] = {}
    out_b: dict[bytes, CID] = {}
    for name, cid in la.items():
        other = lb.get(name)
        if len(name) == 2:
            if other is not None and _same(cid, other):
                continue
            child_a = dagpb.decode(store.get(cid))
            if other is not None:
                child_b = dagpb.decode(store.get(other))
                sa, sb = _shard_entries(store, child_a, child_b)
                out_a.update(sa)
                out_b.update(sb)
            else:
                out_a.update((n, c) for n, c, _ in hamt.iter_entries(store, child_a, cid))
        else:
            out_a[name[2:]] = cid
    for name, cid in lb.items():
        if len(name) == 2:
            if name not in la:
                child_b = dagpb.decode(store.get(cid))
                out_b.update((n, c) for n, c, _ in hamt.iter_entries(store, child_b, cid))
        else:
            out_b[name[2:]] = cid
    # Entries that sit in both at identical positions cancel out in the caller's comparison.
    return out_a, out_b


def diff(store: Blockstore, old_root: CID, new_root: CID) -> list[Change]:
    """The changes from ``old_root`` to ``new_root``, sorted by path."""
    changes: list[Change] = []
    if _same(old_root, new_root):
        return changes
    a = _as_dir(store, old_root)
    b = _as_dir(store, new_root)
    if a is None or b is None:
        return [Change("", "changed", old_root, new_root)]
    _diff_dirs(store, "", a, b, changes)
    changes.sort(key=lambda c: c.path)
    return changes


def _diff_dirs(
    store: Blockstore,
    prefix: str,
    a: tuple[PBNode, bool],
    b: tuple[PBNode, bool],
    out: list[Change],
) -> None:
    if a[1] and b[1]:
        ea, eb = _shard_entries(store, a[0], b[0])
    else:
        ea, eb = _entries(store, *a), _entries(store, *b)
    for name, old in ea.items():
        path = prefix + os.fsdecode(name)
        new = eb.get(name)
        if new is None:
            out.append(Change(path, "removed", old, None))
        elif not _same(old, new):
            da = _as_dir(store, old)
            db = _as_dir(store, new) if da is not None else None
            if da is not None and db is not None:
                _diff_dirs(store, path + "/", da, db, out)
            else:
                out.append(Change(path, "changed", old, new))
    for name, new in eb.items():
        if name not in ea:
            out.append(Change(prefix + os.fsdecode(name), "added", None, new))
