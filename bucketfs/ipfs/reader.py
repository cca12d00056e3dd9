"""Range reads of UnixFS files, fetching only the blocks a range needs.

A file root is a raw block, a dag-pb ``File`` leaf (data inline, as in CIDv0 files) or a tree
of ``File`` nodes whose ``blocksizes`` say how many file bytes sit under each child; a node may
also carry inline data before its children (old trickle layouts). The store verifies every
block against its CID, and each block's length is checked against what its parent promised,
so a malformed or corrupted DAG raises instead of returning wrong bytes.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator

from bucketfs.ipfs import dagpb
from bucketfs.ipfs.blockstore import Blockstore
from bucketfs.ipfs.cid import CID, DAG_PB, RAW
from bucketfs.ipfs.dagpb import PBNode
from bucketfs.ipfs.unixfs import DataType, UnixFSData, decode_data


class NotAFile(ValueError):
    """The CID is a directory, symlink or other non-file node."""


class MalformedFile(ValueError):
    """A file DAG whose sizes do not add up; names the offending CID."""


_FileNode = tuple[bytes, tuple[CID, ...], tuple[int, ...], int]  # inline, children, sizes, total


def _parse(cid: CID, block: bytes) -> _FileNode:
    """Turn a block into (inline data, child CIDs, child file sizes, logical size)."""
    if cid.codec == RAW:
        return block, (), (), len(block)
    if cid.codec != DAG_PB:
        raise NotAFile(f"{cid} is not a UnixFS file (codec {cid.codec:#x})")
    node: PBNode = dagpb.decode(block)
    if node.data is None:
        raise NotAFile(f"{cid} has no UnixFS data")
    ufs: UnixFSData = decode_data(node.data)
    if ufs.type not in (DataType.File, DataType.Raw):
        raise NotAFile(f"{cid} is a UnixFS {ufs.type.name}, not a file")
    inline = ufs.data or b""
    if len(node.links) != len(ufs.blocksizes):
        raise MalformedFile(f"{cid}: {len(node.links)} links but {len(ufs.blocksizes)} blocksizes")
    total = len(inline) + sum(ufs.blocksizes)
    if ufs.filesize is not None and ufs.filesize != total:
        raise MalformedFile(f"{cid}: filesize {ufs.filesize} but data+blocksizes {total}")
    return inline, tuple(link.cid for link in node.links), ufs.blocksizes, total


class FileReader:
    """Reads byte ranges of the UnixFS file at ``cid``.

    A small cache of parsed nodes (internal nodes and the last leaves) makes sequential reads
    smaller than a chunk, like FUSE's 128 KiB reads, fetch each leaf once. Memory stays bounded
    by ``cache_blocks`` blocks.
    """

    def __init__(self, store: Blockstore, cid: CID, cache_blocks: int = 8) -> None:
        self.store = store
        self.cid = cid
        self._cache: OrderedDict[CID, _FileNode] = OrderedDict()
        self._cache_blocks = max(1, cache_blocks)
        self._root = self._node(cid)
        #: The logical length of the file in bytes.
        self.size = self._root[3]

    def _node(self, cid: CID) -> _FileNode:
        hit = self._cache.get(cid)
        if hit is not None:
            self._cache.move_to_end(cid)
            return hit
        parsed = _parse(cid, self.store.get(cid))
        self._cache[cid] = parsed
        if len(self._cache) > self._cache_blocks:
            self._cache.popitem(last=False)
        return parsed

    def raw_leaves(self) -> list[tuple[CID, int]] | None:
        """Every leaf of the file in order as ``(cid, length)``, when all of them are raw
        blocks and nothing is inline (what ``ipfs add --cid-version=1`` and the hub make);
        None otherwise. Interior nodes are read, leaves are not."""
        out: list[tuple[CID, int]] = []

        def walk(cid: CID, node: _FileNode) -> bool:
            inline, children, sizes, _total = node
            if inline:
                return False
            for child, size in zip(children, sizes, strict=True):
                if child.codec == RAW:
                    out.append((child, size))
                elif not walk(child, self._node(child)):
                    return False
            return True

        if self.cid.codec == RAW:
            return [(self.cid, self.size)]
        return out if walk(self.cid, self._root) else None

    def read(self, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes from ``offset`` (fewer at end of file, b"" past it)."""
        return b"".join(self.iter_range(offset, length))

    def iter_range(self, offset: int, length: int) -> Iterator[bytes]:
        """The bytes of ``[offset, offset+length)`` as a stream of pieces (clipped to EOF)."""
        if offset < 0 or length < 0:
            raise ValueError(f"offset and length must be >= 0 (got {offset}, {length})")
        end = min(self.size, offset + length)
        if offset >= end:
            return
        yield from self._walk(self.cid, self._root, offset, end, self.size)

    def _walk(
        self, cid: CID, node: _FileNode, start: int, end: int, expect: int
    ) -> Iterator[bytes]:
        inline, children, sizes, total = node
        if total != expect:
            raise MalformedFile(f"{cid}: holds {total} file bytes, its parent says {expect}")
        pos = 0
        if inline:
            if start < len(inline):
                yield inline[start : min(end, len(inline))]
            pos = len(inline)
        for child, size in zip(children, sizes, strict=True):
            lo, hi = pos, pos + size
            pos = hi
            if hi <= start:
                continue
            if lo >= end:
                break
            yield from self._walk(
                child, self._node(child), max(start, lo) - lo, min(end, hi) - lo, size
            )
