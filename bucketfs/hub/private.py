"""Private (encrypted) buckets: directory nodes, file keys and re-encryption (spec section 7).

A private bucket has a link key (``Bucket.link_key``) and file keys (``Meta.key`` of path
metadata entries; the ``""`` entry holds the default). Both are 64 random bytes, stored as
standard base64 strings like Textile's instance JSON.

- Directories (:class:`PrivateDirs`): each directory is encoded as a plain CIDv1 dag-pb
  directory, encrypted with the link key, and stored as a dag-pb node with *no links* whose
  UnixFS Data is ``{Type: File, Data: ciphertext, filesize: len(ciphertext)}``. The tree shape
  is therefore invisible in the blockstore; the garbage collector and fsck reach the children
  through :func:`live_nodes`, which decrypts.
- Files: the plaintext is encrypted with the path's file key (nearest entry with a key) and
  the ciphertext is imported like any file, so a file's CID is that of its ciphertext DAG.

The decrypted directory nodes are never stored (their names are plaintext); decoded entries
are kept in a bounded in-memory cache keyed by the encrypted node's CID.
"""

from __future__ import annotations

import base64
import io
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from bucketfs.hub import dcrypto
from bucketfs.hub.errors import unknown
from bucketfs.hub.listing import NodeFacts, inspect
from bucketfs.hub.store import Meta
from bucketfs.hub.tree import DIR_DATA, Entries, PlainDirs, dir_entries
from bucketfs.ipfs import dagpb
from bucketfs.ipfs.blockstore import BlockCorrupt, BlockNotFound, Blockstore
from bucketfs.ipfs.cid import CID, DAG_PB
from bucketfs.ipfs.importer import CHUNK_SIZE, Imported, import_file
from bucketfs.ipfs.reader import FileReader
from bucketfs.ipfs.unixfs import DataType, UnixFSData, decode_data, encode_data


def key_text(key: bytes) -> str:
    """A key as Textile stores it (standard base64 with padding)."""
    return base64.b64encode(key).decode("ascii")


def key_bytes(text: str) -> bytes:
    """The 64 key bytes of a stored key string."""
    return base64.b64decode(text)


def file_key(meta: Mapping[str, Meta], path: str) -> bytes:
    """The effective file key of bucket path ``path``: the nearest entry (itself or an
    ancestor) that has a key (spec 7.1; entries without a key are skipped)."""
    p = path
    while True:
        m = meta.get(p)
        if m is not None and m.key:
            return key_bytes(m.key)
        if not p:
            raise ValueError("private bucket has no root file key")
        p = p.rpartition("/")[0]


@dataclass(frozen=True, slots=True)
class _Decoded:
    entries: Entries | None  # None: the node is not an encrypted directory
    plain_cid: CID | None  # CID of the decrypted directory node (what ListPath shows)


_CACHE_MAX = 20_000  # decrypted directories kept (each holds its entries)
_cache: OrderedDict[tuple[CID, bytes], _Decoded] = OrderedDict()
_cache_lock = threading.Lock()


def _remember(key: tuple[CID, bytes], value: _Decoded) -> None:
    with _cache_lock:
        _cache[key] = value
        _cache.move_to_end(key)
        while len(_cache) > _CACHE_MAX:
            _cache.popitem(last=False)


def dirs_of(link_key: str) -> PrivateDirs:
    """The directory codec of a private bucket with this stored link key."""
    return PrivateDirs(key_bytes(link_key))


class PrivateDirs(PlainDirs):
    """Directory storage of a private bucket: every directory node encrypted (spec 7.3)."""

    def __init__(self, link_key: bytes) -> None:
        self.link_key = link_key

    def _decode(self, store: Blockstore, cid: CID) -> _Decoded:
        ck = (cid, self.link_key)
        with _cache_lock:
            hit = _cache.get(ck)
        if hit is not None:
            return hit
        out = _Decoded(None, None)
        if cid.codec == DAG_PB:
            node = dagpb.decode(store.get(cid))
            # spec 7.3 decryptNode: a node with links, or whose UnixFS Data is absent, is a
            # file; otherwise the Data bytes are an encrypted directory.
            if not node.links and node.data is not None:
                data = decode_data(node.data).data
                if data:
                    try:
                        plain = dcrypto.decrypt(self.link_key, data)
                        dir_node = dagpb.decode(plain)
                        if dir_node.data is not None and (
                            decode_data(dir_node.data).type == DataType.Directory
                        ):
                            entries = {
                                (link.name or b"").decode("utf-8", "surrogateescape"): (
                                    link.cid,
                                    link.tsize or 0,
                                )
                                for link in dir_node.links
                            }
                            out = _Decoded(entries, CID.of_dagpb(plain, 1))
                    except ValueError:
                        pass  # not a directory under this key: a file (spec 7.3)
        _remember(ck, out)
        return out

    def entries(self, store: Blockstore, cid: CID) -> Entries | None:
        """The decrypted entries of the directory node ``cid``, or None for a file."""
        return self._decode(store, cid).entries

    def plain_cid(self, store: Blockstore, cid: CID) -> CID:
        """The CID ListPath reports: the decrypted node's for a directory, else ``cid``."""
        return self._decode(store, cid).plain_cid or cid

    def store_dir(
        self, store: Blockstore, links: list[dagpb.PBLink], version: int
    ) -> tuple[CID, int]:
        """Encrypt and store a directory; the stored node has no links, so its cumulative size
        is its own block length. Every private directory is CIDv1 (spec 9)."""
        plain = dagpb.encode(dagpb.PBNode(links=tuple(links), data=DIR_DATA))
        ct = dcrypto.encrypt(self.link_key, plain)
        data = encode_data(UnixFSData(type=DataType.File, data=ct, filesize=len(ct)))
        block = dagpb.encode(dagpb.PBNode(links=(), data=data))
        cid = CID.of_dagpb(block, 1)
        store.put(cid, block, trusted=True)
        entries = {
            (link.name or b"").decode("utf-8", "surrogateescape"): (link.cid, link.tsize or 0)
            for link in links
        }
        _remember((cid, self.link_key), _Decoded(entries, CID.of_dagpb(plain, 1)))
        return cid, len(block)

    def tsize(self, store: Blockstore, cid: CID, entries: Entries) -> int:
        """An encrypted directory node has no links: its cumulative size is its block."""
        return len(store.get(cid))

    def facts(self, store: Blockstore, cid: CID) -> NodeFacts:
        """Kind and logical size of a node as the bucket's owner sees it."""
        entries = self.entries(store, cid)
        if entries is not None:
            return NodeFacts("dir", 0, len(entries), "", len(store.get(cid)))
        f = inspect(store, cid)
        plain_size = max(0, f.file_size - dcrypto.OVERHEAD)
        return NodeFacts("file", plain_size, 0, "", f.tsize)


def live_nodes(store: Blockstore, root: CID, link_key: bytes) -> Iterator[CID]:
    """Every node of a private bucket the plain DAG walk cannot see: the encrypted directory
    nodes and the roots of the (ciphertext) file DAGs under them. The GC and fsck mark from
    these; file DAGs are ordinary UnixFS below their roots."""
    dirs = PrivateDirs(link_key)
    stack = [root]
    while stack:
        cid = stack.pop()
        yield cid
        try:
            entries = dirs.entries(store, cid)
        except (BlockNotFound, BlockCorrupt):
            continue  # the marker that reads it reports the missing or corrupt block
        if entries is not None:
            stack.extend(c for c, _ in entries.values())


class _PiecesReader(io.RawIOBase):
    """A read-only file object over an iterator of byte pieces (feeds ``import_file``)."""

    def __init__(self, pieces: Iterator[bytes]) -> None:
        super().__init__()
        self._pieces = pieces
        self._buf = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, out: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buf:
            piece = next(self._pieces, None)
            if piece is None:
                return 0
            self._buf = memoryview(piece)
        n = min(len(out), len(self._buf))
        out[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def encrypted_pieces(key: bytes, plain: Iterator[bytes]) -> Iterator[bytes]:
    """The dcrypto stream of ``plain``, piece by piece."""
    enc = dcrypto.Encryptor(key)
    yield enc.header()
    for piece in plain:
        yield enc.update(piece)
    yield enc.finalize()


def import_encrypted(store: Blockstore, key: bytes, plain: Iterator[bytes]) -> Imported:
    """Encrypt a plaintext stream with ``key`` and import the ciphertext as a UnixFS file."""
    reader = io.BufferedReader(_PiecesReader(encrypted_pieces(key, plain)), CHUNK_SIZE)
    return import_file(reader, store)  # type: ignore[arg-type]


def plain_pieces(store: Blockstore, cid: CID, key: bytes) -> Iterator[bytes]:
    """The plaintext of the encrypted file DAG ``cid`` (MAC checked before the first byte)."""
    reader = FileReader(store, cid)
    size = reader.size
    return dcrypto.decrypt_pieces(key, lambda: reader.iter_range(0, size), size)


def _store_entries(
    store: Blockstore, dirs: PrivateDirs, entries: Mapping[str, tuple[CID, int]]
) -> tuple[CID, int]:
    links = [
        dagpb.PBLink(c, name.encode("utf-8", "surrogateescape"), t)
        for name, (c, t) in sorted(
            entries.items(), key=lambda kv: kv[0].encode("utf-8", "surrogateescape")
        )
    ]
    return dirs.store_dir(store, links, 1)


KeyOf = Callable[[str], bytes]


def encrypt_dag(
    store: Blockstore, dirs: PrivateDirs, cid: CID, path: str, key_of: KeyOf
) -> tuple[CID, int]:
    """Encrypt a plain UnixFS DAG placed at bucket path ``path`` of a private bucket (SetPath,
    Create with a bootstrap CID): each file with its path's key, each directory with the link
    key. Returns (CID, Tsize). Streams every file."""
    entries = dir_entries(store, cid)
    if entries is None:
        kind = inspect(store, cid).kind
        if kind != "file":
            raise unknown(f"cannot encrypt a {kind} ({cid}): private buckets hold files only")
        reader = FileReader(store, cid)
        done = import_encrypted(store, key_of(path), reader.iter_range(0, reader.size))
        return done.cid, done.tsize
    out = {
        name: encrypt_dag(store, dirs, c, _join(path, name), key_of)
        for name, (c, _) in entries.items()
    }
    return _store_entries(store, dirs, out)


def reencrypt(
    store: Blockstore, dirs: PrivateDirs, cid: CID, old_path: str, new_path: str,
    old_key: KeyOf, new_key: KeyOf,
) -> tuple[CID, int] | None:  # fmt: skip
    """Re-encrypt the files of the private sub-DAG ``cid`` whose effective key changes when it
    moves from ``old_path`` to ``new_path`` (or when keys rotate: same path, new keys).

    Returns the new (CID, Tsize), or None when no file's key changes (nothing to do).
    Streams each file: plaintext never sits in memory or in the blockstore.
    """
    entries = dirs.entries(store, cid)
    if entries is None:
        k_old, k_new = old_key(old_path), new_key(new_path)
        if k_old == k_new:
            return None
        done = import_encrypted(store, k_new, plain_pieces(store, cid, k_old))
        return done.cid, done.tsize
    changed = False
    out: dict[str, tuple[CID, int]] = {}
    for name, (c, t) in entries.items():
        sub = reencrypt(
            store, dirs, c, _join(old_path, name), _join(new_path, name), old_key, new_key
        )
        changed = changed or sub is not None
        out[name] = sub if sub is not None else (c, t)
    return _store_entries(store, dirs, out) if changed else None


def _join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


def keys_of(meta: Mapping[str, Meta]) -> KeyOf:
    """``file_key`` over a fixed metadata map."""
    return lambda path: file_key(meta, path)
