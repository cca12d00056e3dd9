"""UnixFS HAMT-sharded directories (unixfs.md 5.2): build, look up, iterate, insert, remove.

Fanout 256: level *d* uses byte *d* of the 8-byte big-endian h1 of MurmurHash3 x64 128 (seed
0) of the entry name. A slot with one entry links to it under ``"%02X" + name``; a slot with
several entries links to a child shard under the two hex digits alone. Insert and remove touch
only the shards on the hash path of the name, and a child shard left holding a single entry is
collapsed into its parent, so the tree always equals what :func:`build` makes from the same
entries (the structure is canonical).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import mmh3

from bucketfs.ipfs import dagpb
from bucketfs.ipfs.cid import CID
from bucketfs.ipfs.dagpb import PBLink, PBNode
from bucketfs.ipfs.unixfs import DataType, UnixFSData, decode_data, encode_data

FANOUT = 256
HASH_TYPE = 0x22  # murmur3-x64-64
_MAX_DEPTH = 8  # 64 bits of hash, 8 bits per level


class HAMTError(ValueError):
    """A shard that breaks the HAMT rules, or a hash collision beyond 64 bits."""


class _Store(Protocol):
    def get(self, cid: CID) -> bytes: ...
    def put(self, cid: CID, data: bytes, *, trusted: bool = False) -> None: ...


Entry = tuple[bytes, CID, int]  # name, cid, tsize


def hash_name(name: bytes) -> bytes:
    """The 8 hash bytes that place ``name`` in the tree."""
    h1 = mmh3.hash64(name, seed=0, x64arch=True, signed=False)[0]
    return h1.to_bytes(8, "big")


def _prefix(slot: int) -> bytes:
    return b"%02X" % slot


def _slot_of(link_name: bytes) -> int:
    try:
        return int(link_name[:2], 16)
    except ValueError:
        raise HAMTError(f"HAMT link name {link_name!r} does not start with a hex slot") from None


def _write_shard(
    store: _Store, links: list[PBLink], slots: list[int], version: int
) -> tuple[CID, int]:
    bitfield = 0
    for s in slots:
        bitfield |= 1 << s
    bits = bitfield.to_bytes((bitfield.bit_length() + 7) // 8, "big")
    data = encode_data(
        UnixFSData(DataType.HAMTShard, data=bits, hash_type=HASH_TYPE, fanout=FANOUT)
    )
    block = dagpb.encode(PBNode(tuple(links), data))
    cid = CID.of_dagpb(block, version)
    store.put(cid, block, trusted=True)
    return cid, len(block) + sum(link.tsize or 0 for link in links)


def build(store: _Store, entries: list[Entry], version: int = 1, depth: int = 0) -> tuple[CID, int]:
    """Write the shard tree for ``entries`` (unique names); returns the root's (cid, tsize)."""
    if depth >= _MAX_DEPTH:
        raise HAMTError("more than 64 bits of murmur3 hash collide; cannot shard")
    by_slot: dict[int, list[Entry]] = {}
    for e in entries:
        by_slot.setdefault(hash_name(e[0])[depth], []).append(e)
    links: list[PBLink] = []
    slots = sorted(by_slot)
    for slot in slots:
        group = by_slot[slot]
        if len(group) == 1:
            name, cid, tsize = group[0]
            links.append(PBLink(cid, _prefix(slot) + name, tsize))
        else:
            child, child_tsize = build(store, group, version, depth + 1)
            links.append(PBLink(child, _prefix(slot), child_tsize))
    return _write_shard(store, links, slots, version)


def is_shard(data: UnixFSData) -> bool:
    """True for a HAMT shard node's Data."""
    return data.type == DataType.HAMTShard


def _load(store: _Store, cid: CID) -> tuple[PBNode, UnixFSData]:
    node = dagpb.decode(store.get(cid))
    if node.data is None:
        raise HAMTError(f"HAMT shard {cid} has no Data")
    ufs = decode_data(node.data)
    if ufs.type != DataType.HAMTShard:
        raise HAMTError(f"{cid} is not a HAMT shard (type {ufs.type.name})")
    _check_params(cid, ufs)
    return node, ufs


def _check_params(cid: CID, ufs: UnixFSData) -> None:
    if ufs.fanout != FANOUT or ufs.hash_type != HASH_TYPE:
        raise HAMTError(
            f"HAMT shard {cid} uses fanout {ufs.fanout} / hash {ufs.hash_type}; "
            f"only fanout {FANOUT} with murmur3-x64-64 is supported"
        )


def iter_entries(store: _Store, node: PBNode, cid: CID | None = None) -> Iterator[Entry]:
    """Every entry under a shard node, in slot order (child shards fetched as needed)."""
    for link in node.links:
        name = link.name or b""
        if len(name) == 2:
            child, _ = _load(store, link.cid)
            yield from iter_entries(store, child, link.cid)
        elif len(name) > 2:
            yield name[2:], link.cid, link.tsize or 0
        else:
            raise HAMTError(f"HAMT shard {cid} has a link with a bad name {name!r}")


def lookup(store: _Store, node: PBNode, name: bytes, depth: int = 0) -> PBLink | None:
    """The entry link for ``name`` (with its real name), or None."""
    h = hash_name(name)
    while True:
        if depth >= _MAX_DEPTH:
            raise HAMTError("HAMT deeper than its 64-bit hash allows (malformed shard tree)")
        prefix = _prefix(h[depth])
        for link in node.links:
            lname = link.name or b""
            if lname[:2] != prefix:
                continue
            if len(lname) == 2:
                node, _ = _load(store, link.cid)
                depth += 1
                break
            if lname[2:] == name:
                return PBLink(link.cid, name, link.tsize)
        else:
            return None


def _links_and_slots(node: PBNode) -> tuple[list[PBLink], list[int]]:
    links = list(node.links)
    return links, [_slot_of(link.name or b"") for link in links]


def insert(
    store: _Store, node: PBNode, version: int, name: bytes, cid: CID, tsize: int, depth: int = 0
) -> tuple[CID, int]:
    """Add or replace ``name`` in the shard ``node``; returns the new shard's (cid, tsize)."""
    slot = hash_name(name)[depth]
    prefix = _prefix(slot)
    links, slots = _links_and_slots(node)
    new_link = PBLink(cid, prefix + name, tsize)
    for i, link in enumerate(links):
        if slots[i] != slot:
            continue
        lname = link.name or b""
        if len(lname) == 2:
            child, _ = _load(store, link.cid)
            ccid, ctsize = insert(store, child, version, name, cid, tsize, depth + 1)
            links[i] = PBLink(ccid, prefix, ctsize)
        elif lname[2:] == name:
            links[i] = new_link
        else:
            # Two names now share this slot: they move into a child shard one level down.
            pair = [(lname[2:], link.cid, link.tsize or 0), (name, cid, tsize)]
            ccid, ctsize = build(store, pair, version, depth + 1)
            links[i] = PBLink(ccid, prefix, ctsize)
        return _write_shard(store, links, slots, version)
    at = next((i for i, s in enumerate(slots) if s > slot), len(slots))
    links.insert(at, new_link)
    slots.insert(at, slot)
    return _write_shard(store, links, slots, version)


def remove(
    store: _Store, node: PBNode, version: int, name: bytes, depth: int = 0
) -> tuple[CID, int, PBNode] | None:
    """Remove ``name``; returns the new shard (cid, tsize, node) or None if it is absent."""
    slot = hash_name(name)[depth]
    prefix = _prefix(slot)
    links, slots = _links_and_slots(node)
    for i, link in enumerate(links):
        if slots[i] != slot:
            continue
        lname = link.name or b""
        if len(lname) == 2:
            child, _ = _load(store, link.cid)
            res = remove(store, child, version, name, depth + 1)
            if res is None:
                return None
            ccid, ctsize, cnode = res
            only = cnode.links[0] if len(cnode.links) == 1 else None
            if only is not None and len(only.name or b"") > 2:
                # A child holding one entry is pulled up, as boxo does, keeping the canonical
                # shape; entries re-take this level's slot prefix.
                links[i] = PBLink(only.cid, prefix + (only.name or b"")[2:], only.tsize)
            else:
                links[i] = PBLink(ccid, prefix, ctsize)
        elif lname[2:] == name:
            del links[i]
            del slots[i]
        else:
            return None
        cid, tsize = _write_shard(store, links, slots, version)
        return cid, tsize, PBNode(tuple(links), None)
    return None
