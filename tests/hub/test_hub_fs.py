"""The bucketfs.pb.FS service over loopback: range reads, blocks, attributes, symlinks, mkdir,
rename(2), link, remove, listing and root watching."""

from __future__ import annotations

import os
import threading

import grpc
import pytest
from hub_helpers import Api

from bucketfs.ipfs.blockstore import MemoryBlockstore
from bucketfs.ipfs.cid import CID
from bucketfs.ipfs.importer import import_bytes
from bucketfs.pb import bucketsd_pb2 as pb
from bucketfs.pb import fs_pb2

pytestmark = pytest.mark.timeout(120)

Code = grpc.StatusCode


def _read(api: Api, key: str, offset: int, length: int | None = None, **target: str) -> bytes:
    req = fs_pb2.ReadFileRequest(key=key, offset=offset, **target)
    if length is not None:
        req.length = length
    replies = list(api.fs.ReadFile(req, metadata=api.md, timeout=60))
    pos = offset
    for r in replies:
        assert r.offset == pos
        pos += len(r.data)
    return b"".join(r.data for r in replies)


def _fails(fn, code: Code, contains: str = "") -> None:
    with pytest.raises(grpc.RpcError) as err:
        fn()
    assert err.value.code() == code, err.value.details()
    assert contains in err.value.details()


def test_read_ranges_by_path_and_cid(api: Api) -> None:
    key = api.create().root.key
    data = os.urandom(700_000)
    cid = api.push(key, "f.bin", data)[-1].event.path.removeprefix("/ipfs/")
    assert _read(api, key, 0, path="f.bin") == data
    assert _read(api, key, 262_000, 1000, path="f.bin") == data[262_000:263_000]
    assert _read(api, key, 699_990, 100, path="f.bin") == data[699_990:]
    assert _read(api, key, 800_000, 10, path="f.bin") == b""
    assert _read(api, key, 5, 10, cid=cid) == data[5:15]
    first = next(
        iter(
            api.fs.ReadFile(
                fs_pb2.ReadFileRequest(key=key, path="f.bin", length=1), metadata=api.md, timeout=30
            )
        )
    )
    assert first.file_size == 700_000 and first.cid == cid
    _fails(lambda: _read(api, key, 0, path=""), Code.UNKNOWN, "node is a directory")
    _fails(lambda: _read(api, key, -1, path="f.bin"), Code.INVALID_ARGUMENT)


def test_blocks_put_link_and_get(api: Api) -> None:
    key = api.create().root.key
    local = MemoryBlockstore()
    data = os.urandom(600_000)
    imported = import_bytes(data, local)
    blocks = [(str(c), local.get(c)) for c in local.iter_cids()]
    cids = [c for c, _ in blocks]
    assert api.fscall("HasBlocks", fs_pb2.HasBlocksRequest(key=key, cids=cids)).has == [
        False
    ] * len(cids)
    reqs = (fs_pb2.Block(cid=c, data=d) for c, d in blocks)
    reply = api.fs.PutBlocks(reqs, metadata=api.md, timeout=60)
    assert reply.blocks == len(blocks) and reply.bytes == sum(len(d) for _, d in blocks)
    assert all(api.fscall("HasBlocks", fs_pb2.HasBlocksRequest(key=key, cids=cids)).has)
    got = list(api.fs.GetBlocks(fs_pb2.GetBlocksRequest(key=key, cids=cids), metadata=api.md))
    assert [(b.cid, b.data) for b in got] == blocks
    linked = api.fscall(
        "Link", fs_pb2.LinkRequest(key=key, path="x/linked", cid=str(imported.cid), mode=0o640)
    )
    assert linked.item.cid == str(imported.cid) and linked.item.mode == 0o640
    assert linked.item.file_size == 600_000
    assert linked.root.path == api.root(key).path
    assert len(linked.root.path_metadata) == 0  # the light root
    assert api.pull(key, "x/linked") == data
    bad = fs_pb2.Block(cid=cids[0], data=b"not the block")
    _fails(
        lambda: api.fs.PutBlocks(iter([bad]), metadata=api.md, timeout=30),
        Code.INVALID_ARGUMENT,
        "does not match",
    )
    missing = str(CID.of_raw(b"never stored"))
    _fails(
        lambda: list(
            api.fs.GetBlocks(fs_pb2.GetBlocksRequest(key=key, cids=[missing]), metadata=api.md)
        ),
        Code.NOT_FOUND,
    )
    _fails(
        lambda: api.fscall("Link", fs_pb2.LinkRequest(key=key, path="y", cid=missing)),
        Code.UNKNOWN,
        "not in this hub",
    )


def test_put_blocks_packs_raw_leaves_and_keeps_them_after_a_bad_block(hub, api: Api) -> None:  # noqa: ANN001
    """A mount's early upload sends many raw leaves per call: they go into a pack (one file,
    not one per leaf), and the leaves received before a bad block stay, as fs.proto says."""
    key = api.create().root.key
    leaves = [os.urandom(256 * 1024) for _ in range(12)]
    cids = [str(CID.of_raw(d)) for d in leaves]
    bad = fs_pb2.Block(cid=str(CID.of_raw(b"x")), data=b"not x")
    reqs = [*(fs_pb2.Block(cid=c, data=d) for c, d in zip(cids, leaves, strict=True)), bad]
    _fails(
        lambda: api.fs.PutBlocks(iter(reqs), metadata=api.md, timeout=60),
        Code.INVALID_ARGUMENT,
        "does not match",
    )
    assert all(api.fscall("HasBlocks", fs_pb2.HasBlocksRequest(key=key, cids=cids)).has)
    got = list(api.fs.GetBlocks(fs_pb2.GetBlocksRequest(key=key, cids=cids), metadata=api.md))
    assert [b.data for b in got] == leaves
    packs = list(hub.data_dir.rglob("*.pack"))
    assert len(packs) == 1, packs  # (the first few leaves of a call are block files)
    assert packs[0].stat().st_size >= 8 * 256 * 1024


def test_attrs_symlink_mkdir_and_listing(api: Api) -> None:
    key = api.create().root.key
    api.push(key, "doc.txt", b"hello", mode=0o600, mtime=1_600_000_000_123_456_789)
    item = {i.name: i for i in api.ls(key).item.items}["doc.txt"]
    assert item.mode == 0o600 and item.mtime == 1_600_000_000_123_456_789
    assert item.file_size == 5 and not item.is_symlink
    root = api.root(key).path
    reply = api.fscall(
        "SetAttr", fs_pb2.SetAttrRequest(key=key, path="doc.txt", mode=0o644, root=root)
    )
    assert reply.item.mode == 0o644 and reply.item.mtime == 1_600_000_000_123_456_789
    reply = api.fscall("Symlink", fs_pb2.SymlinkRequest(key=key, path="link", target="doc.txt"))
    assert reply.item.is_symlink and reply.item.symlink_target == "doc.txt"
    _fails(
        lambda: api.fscall("Symlink", fs_pb2.SymlinkRequest(key=key, path="link", target="x")),
        Code.ALREADY_EXISTS,
    )
    reply = api.fscall("Mkdir", fs_pb2.MkdirRequest(key=key, path="d/e", mode=0o755))
    assert reply.item.is_dir and reply.item.items_count == 0 and reply.item.mode == 0o755
    _fails(lambda: api.fscall("Mkdir", fs_pb2.MkdirRequest(key=key, path="d")), Code.ALREADY_EXISTS)
    listing = api.fscall("ListDir", fs_pb2.ListDirRequest(key=key, path=""))
    assert listing.root == api.root(key).path
    names = {i.name: i for i in listing.item.items}
    assert set(names) == {".textileseed", "d", "doc.txt", "link"}
    assert names["link"].is_symlink and names["d"].is_dir and names["doc.txt"].mode == 0o644
    _fails(
        lambda: api.fscall("SetAttr", fs_pb2.SetAttrRequest(key=key, path="doc.txt", root=root)),
        Code.FAILED_PRECONDITION,
        "non-fast-forward",
    )


def test_rename_semantics(api: Api) -> None:
    key = api.create().root.key
    api.push(key, "a", b"A", mode=0o600)
    api.push(key, "b", b"B")
    api.push(key, "dir/x", b"X")
    api.fscall("Mkdir", fs_pb2.MkdirRequest(key=key, path="empty"))

    def rename(src: str, dst: str, flags: int = 0) -> fs_pb2.MutationReply:
        return api.fscall(
            "Rename", fs_pb2.RenameRequest(key=key, from_path=src, to_path=dst, flags=flags)
        )

    reply = rename("a", "b")  # replaces a file, keeps attributes with the moved file
    assert reply.item.name == "b" and reply.item.mode == 0o600
    assert api.pull(key, "b") == b"A" and "a" not in api.names(key)
    _fails(lambda: rename("b", "dir"), Code.FAILED_PRECONDITION, "is a directory")
    _fails(lambda: rename("dir", "b"), Code.FAILED_PRECONDITION, "not a directory")
    api.push(key, "c", b"C")
    _fails(lambda: rename("b", "c", fs_pb2.RENAME_NOREPLACE), Code.ALREADY_EXISTS)
    rename("b", "c", fs_pb2.RENAME_EXCHANGE)
    assert api.pull(key, "b") == b"C" and api.pull(key, "c") == b"A"
    assert {i.name: i.mode for i in api.ls(key).item.items}["c"] == 0o600
    rename("dir", "empty")  # a directory replaces an empty directory
    assert api.names(key, "empty") == ["x"] and "dir" not in api.names(key)
    api.fscall("Mkdir", fs_pb2.MkdirRequest(key=key, path="full/sub"))
    _fails(lambda: rename("empty", "full"), Code.FAILED_PRECONDITION, "directory not empty")
    _fails(lambda: rename("empty", "empty/inside"), Code.INVALID_ARGUMENT)
    _fails(lambda: rename("nope", "z"), Code.NOT_FOUND)
    _fails(lambda: rename("c", "nodir/z"), Code.NOT_FOUND)


def test_remove_unlink_and_rmdir(api: Api) -> None:
    key = api.create().root.key
    api.push(key, "f", b"1")
    api.push(key, "d/g", b"2")
    api.fscall("Mkdir", fs_pb2.MkdirRequest(key=key, path="e"))

    def rm(path: str, rmdir: bool = False) -> fs_pb2.MutationReply:
        return api.fscall("Remove", fs_pb2.RemoveRequest(key=key, path=path, rmdir=rmdir))

    _fails(lambda: rm("d"), Code.FAILED_PRECONDITION, "is a directory")
    _fails(lambda: rm("d", True), Code.FAILED_PRECONDITION, "directory not empty")
    _fails(lambda: rm("f", True), Code.FAILED_PRECONDITION, "not a directory")
    _fails(lambda: rm("missing"), Code.NOT_FOUND)
    reply = rm("f")
    assert reply.root.path == api.root(key).path and not reply.HasField("item")
    rm("e", True)
    assert sorted(api.names(key)) == [".textileseed", "d"]


def test_watch_root_reports_current_then_changes(api: Api) -> None:
    key = api.create().root.key
    stream = api.fs.WatchRoot(fs_pb2.WatchRootRequest(key=key), metadata=api.md, timeout=60)
    first = next(stream)
    assert first.path == api.root(key).path
    seen: list[fs_pb2.WatchRootReply] = []
    got_two = threading.Event()

    def consume() -> None:
        for ev in stream:
            seen.append(ev)
            if len(seen) == 2:
                got_two.set()
                return

    t = threading.Thread(target=consume, daemon=True)
    t.start()
    api.push(key, "one", b"1")
    after_one = api.root(key).path
    api.push(key, "two", b"2")
    assert got_two.wait(30)
    assert seen[0].path == after_one and seen[1].path == api.root(key).path
    stream.cancel()
    t.join(timeout=10)


def test_rename_moves_metadata_and_attributes(api: Api) -> None:
    key = api.create().root.key
    api.push(key, "dir/inner", b"i", mode=0o640)
    who = "bbaareiadued3746occ7b24g5ddtuxqezm7snmme3uugv6ho4qzsbevjrxa"
    api.call(
        "PushPathAccessRoles", pb.PushPathAccessRolesRequest(key=key, path="dir", roles={who: 2})
    )
    api.fscall("Rename", fs_pb2.RenameRequest(key=key, from_path="dir", to_path="moved"))
    meta = api.root(key).path_metadata
    assert dict(meta["moved"].roles) == {who: 2} and "moved/inner" in meta
    assert "dir" not in meta and "dir/inner" not in meta
    inner = api.ls(key, "moved").item.items[0]
    assert inner.name == "inner" and inner.mode == 0o640
