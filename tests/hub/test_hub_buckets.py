"""The buckets service over loopback: every RPC against a real hub subprocess."""

from __future__ import annotations

import hashlib
import os

import grpc
import pytest
from hub_helpers import Api

from bucketfs.ipfs.cid import CID
from bucketfs.pb import bucketsd_pb2 as pb

pytestmark = pytest.mark.timeout(120)

Code = grpc.StatusCode
EMPTY_FILE = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
HELLO = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"  # "hello world\n"
ZEROS_262145 = "bafybeigllfqgfpqydppr6cmv56g7ax4wyhruzswvcefv6j5kj77nzttfki"


def test_create_has_seed_and_list_root(api: Api) -> None:
    created = api.create("photos")
    root = created.root
    assert root.key.startswith("bafzbei") and len(root.key) == 59
    assert root.name == "photos" and root.thread == api.thread and root.version == 1
    assert root.path.startswith("/ipfs/bafybei")
    assert len(created.seed) == 32
    assert created.seed_cid.startswith("bafkrei")
    assert set(root.path_metadata) == {"", ".textileseed"}
    listed = api.call("List", pb.ListRequest())
    assert [r.key for r in listed.roots] == [root.key]
    assert api.root(root.key).path == root.path
    items = api.ls(root.key).item
    assert items.is_dir and [i.name for i in items.items] == [".textileseed"]
    assert items.items[0].cid == created.seed_cid and items.items[0].size == 32
    assert api.pull(root.key, ".textileseed") == created.seed


def test_push_pull_and_cids_match_ipfs_add(api: Api) -> None:
    key = api.create().root.key
    events = api.push(key, "hello.txt", b"hello world\n")
    final = events[-1].event
    assert final.path == f"/ipfs/{HELLO}" and final.size == "12"
    assert final.root.path != api.create().root.path
    assert api.pull(key, "hello.txt") == b"hello world\n"
    api.push(key, "empty", b"")
    api.push(key, "a/b/zeros", b"\0" * 262145)
    listing = {i.name: i for i in api.ls(key).item.items}
    assert listing["hello.txt"].cid == HELLO and listing["empty"].cid == EMPTY_FILE
    assert listing["a"].is_dir and listing["a"].items_count == 1
    zeros = api.ls(key, "a/b").item.items[0]
    assert zeros.cid == ZEROS_262145 and zeros.size == 262249 and zeros.file_size == 262145
    assert api.pull(key, "a/b/zeros") == b"\0" * 262145
    assert api.pull(key, "empty") == b""


def test_push_sends_progress_events_while_the_upload_lasts(api: Api) -> None:
    """Progress events (spec 5.6: cumulative ``bytes``) are rate-limited, not dropped: a push
    that takes a while gets them, then the final event with the file's CID."""
    import time

    key = api.create().root.key
    pieces = [os.urandom(1 << 20) for _ in range(4)]

    def reqs():
        yield pb.PushPathRequest(header=pb.PushPathRequest.Header(key=key, path="slow.bin"))
        for piece in pieces:
            yield pb.PushPathRequest(chunk=piece)
            time.sleep(0.3)  # a slow client: longer than the hub's minimum event interval

    events = [r.event for r in api.buckets.PushPath(reqs(), metadata=api.md, timeout=60)]
    progress = [e.bytes for e in events if not e.path]
    assert progress and progress == sorted(progress) and progress[-1] <= 4 << 20
    assert events[-1].path.startswith("/ipfs/") and events[-1].bytes == 4 << 20
    assert api.pull(key, "slow.bin") == b"".join(pieces)


def test_pull_streams_32k_chunks(api: Api) -> None:
    key = api.create().root.key
    data = os.urandom(300_000)
    api.push(key, "f", data)
    chunks = [
        r.chunk
        for r in api.buckets.PullPath(pb.PullPathRequest(key=key, path="f"), metadata=api.md)
    ]
    assert max(len(c) for c in chunks) == 32768
    assert hashlib.sha256(b"".join(chunks)).digest() == hashlib.sha256(data).digest()


def test_pull_directory_fails(api: Api) -> None:
    key = api.create().root.key
    api.push(key, "d/f", b"x")
    with pytest.raises(grpc.RpcError) as err:
        api.pull(key, "d")
    assert err.value.code() == Code.UNKNOWN and err.value.details() == "node is a directory"


def test_fast_forward_conflict(api: Api) -> None:
    key = api.create().root.key
    old = api.root(key).path
    first = api.push(key, "a", b"1", root=old)[-1].event.root.path
    with pytest.raises(grpc.RpcError) as err:
        api.push(key, "b", b"2", root=old)
    assert err.value.code() == Code.FAILED_PRECONDITION
    assert err.value.details() == "update is non-fast-forward"
    assert api.root(key).path == first
    with pytest.raises(grpc.RpcError) as err:
        api.call("RemovePath", pb.RemovePathRequest(key=key, path="a", root=old))
    assert err.value.code() == Code.FAILED_PRECONDITION
    assert "a" in api.names(key)


def test_push_paths_interleaved(api: Api) -> None:
    key = api.create().root.key
    a, b = os.urandom(5000), os.urandom(7000)
    chunks = [
        ("x/a", a[:1024]),
        ("y/b", b[:1024]),
        ("x/a", a[1024:]),
        ("y/b", b[1024:4000]),
        ("x/a", b""),
        ("y/b", b[4000:]),
        ("y/b", b""),
        ("empty", b""),
    ]
    responses = api.push_paths(key, chunks)
    assert [r.path for r in responses] == ["x/a", "y/b", "empty"]
    assert responses[-1].cid == EMPTY_FILE
    final = api.root(key)
    assert responses[-1].root.path == final.path
    # Per-file responses carry only their own metadata entry, not the whole map (linear cost).
    assert all(set(r.root.path_metadata) == {r.path} for r in responses)
    assert api.pull(key, "x/a") == a and api.pull(key, "y/b") == b
    assert {"x/a", "y/b", "empty"} <= set(final.path_metadata)


def test_push_paths_errors(api: Api) -> None:
    key = api.create().root.key
    before = api.root(key).path
    with pytest.raises(grpc.RpcError) as err:
        api.push_paths(key, [("a/.textileseed", b"1")])
    assert err.value.details() == "parsing path: paths containing .textileseed are not allowed"
    with pytest.raises(grpc.RpcError) as err:
        api.push_paths(key, [("open", b"never closed")])
    assert "unfinished" in err.value.details()
    assert api.root(key).path == before  # nothing completed, nothing saved
    # Spec 5.6: files completed before an error are saved; the call still fails.
    with pytest.raises(grpc.RpcError) as err:
        api.push_paths(key, [("ok", b"1"), ("ok", b""), ("half", b"x"), ("ok", b"again")])
    assert "writing chunk" in err.value.details()
    assert api.pull(key, "ok") == b"1" and "half" not in api.names(key)


def test_set_path_move_remove(api: Api) -> None:
    key = api.create().root.key
    api.push(key, "a.jpg", b"img")
    api.push(key, "b/keep", b"k")
    api.push(key, "c/inner", b"i")
    empty_dir = "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354"
    api.call("SetPath", pb.SetPathRequest(key=key, path="emptydir", cid=empty_dir))
    assert api.ls(key, "emptydir").item.items_count == 0
    api.call("MovePath", pb.MovePathRequest(key=key, from_path="a.jpg", to_path="b"))
    assert sorted(api.names(key, "b")) == ["a.jpg", "keep"]
    api.call("MovePath", pb.MovePathRequest(key=key, from_path="c", to_path="b"))
    assert api.names(key, "b/c") == ["inner"]
    with pytest.raises(grpc.RpcError) as err:
        api.call("MovePath", pb.MovePathRequest(key=key, from_path="", to_path="x"))
    assert err.value.details() == "source is root directory"
    with pytest.raises(grpc.RpcError) as err:
        api.call("MovePath", pb.MovePathRequest(key=key, from_path="b", to_path="b/keep"))
    assert err.value.details() == "not a directory"
    removed = api.call("RemovePath", pb.RemovePathRequest(key=key, path="b/c"))
    assert removed.root.path == api.root(key).path
    assert "c" not in api.names(key, "b")
    with pytest.raises(grpc.RpcError) as err:
        api.call("RemovePath", pb.RemovePathRequest(key=key, path="b/c"))
    assert err.value.details().endswith("no link by that name")
    with pytest.raises(grpc.RpcError) as err:
        api.call("SetPath", pb.SetPathRequest(key=key, path="x", cid="notacid"))
    assert err.value.details().startswith("invalid remote cid: ")


def test_links_roles_archives_and_remove(api: Api) -> None:
    key = api.create().root.key
    links = api.call("Links", pb.LinksRequest(key=key))
    assert links.url.endswith(f"/thread/{api.thread}/buckets/{key}")
    assert links.ipns.endswith(f"/ipns/{key}")
    api.push(key, "doc", b"d")
    assert api.call("Links", pb.LinksRequest(key=key, path="doc")).url.endswith(f"{key}/doc")
    with pytest.raises(grpc.RpcError) as err:
        api.call("Links", pb.LinksRequest(key=key, path="missing"))
    assert err.value.code() == Code.UNKNOWN
    who = "bbaareiadued3746occ7b24g5ddtuxqezm7snmme3uugv6ho4qzsbevjrxa"
    api.call(
        "PushPathAccessRoles", pb.PushPathAccessRolesRequest(key=key, path="doc", roles={who: 2})
    )
    got = api.call("PullPathAccessRoles", pb.PullPathAccessRolesRequest(key=key, path="doc"))
    assert dict(got.roles) == {who: 2}
    for method, req in [
        ("Archive", pb.ArchiveRequest(key=key)),
        ("Archives", pb.ArchivesRequest(key=key)),
        ("DefaultArchiveConfig", pb.DefaultArchiveConfigRequest(key=key)),
        ("SetDefaultArchiveConfig", pb.SetDefaultArchiveConfigRequest(key=key)),
    ]:
        with pytest.raises(grpc.RpcError) as err:
            api.call(method, req)
        assert err.value.code() == Code.UNKNOWN
        assert err.value.details() == "archiving feature is disabled"
    api.call("Remove", pb.RemoveRequest(key=key))
    with pytest.raises(grpc.RpcError) as err:
        api.root(key)
    assert "instance not found" in err.value.details()


def test_ipfs_path_rpcs(api: Api) -> None:
    key = api.create().root.key
    api.push(key, "d/f", b"hello world\n")
    root = api.root(key).path
    item = api.buckets.ListIpfsPath(pb.ListIpfsPathRequest(path=root + "/d"), timeout=30).item
    assert [i.cid for i in item.items] == [HELLO]
    pulled = api.buckets.PullIpfsPath(pb.PullIpfsPathRequest(path=f"/ipfs/{HELLO}"), timeout=30)
    assert b"".join(r.chunk for r in pulled) == b"hello world\n"


def test_archive_watch_disabled(api: Api) -> None:
    key = api.create().root.key
    stream = api.buckets.ArchiveWatch(pb.ArchiveWatchRequest(key=key), metadata=api.md)
    with pytest.raises(grpc.RpcError) as err:
        list(stream)
    assert err.value.details() == "archiving feature is disabled"


def test_create_bootstrap_and_set_root(api: Api) -> None:
    src = api.create().root.key
    api.push(src, "a/one", b"1")
    api.push(src, "two", b"2")
    src_root = api.root(src).path.removeprefix("/ipfs/")
    boot = api.call("Create", pb.CreateRequest(name="copy", bootstrap_cid=src_root))
    key = boot.root.key
    assert sorted(api.names(key)) == [".textileseed", "a", "two"]
    assert api.pull(key, "a/one") == b"1"
    assert api.pull(key, ".textileseed") == boot.seed  # a new seed replaced the copied one
    with pytest.raises(grpc.RpcError) as err:
        api.call("Create", pb.CreateRequest(bootstrap_cid="garbage"))
    assert err.value.details().startswith("invalid bootstrap cid: ")
    # A private bucket bootstrapped from the same DAG re-encrypts it (spec 5.6 Create).
    secret = api.call("Create", pb.CreateRequest(bootstrap_cid=src_root, private=True)).root
    assert sorted(api.names(secret.key)) == [".textileseed", "a", "two"]
    assert api.pull(secret.key, "a/one") == b"1" and secret.link_key
    # SetPath at the root replaces the whole tree (plus a new seed), keeping the metadata.
    who = "bbaareiadued3746occ7b24g5ddtuxqezm7snmme3uugv6ho4qzsbevjrxa"
    roles = pb.PushPathAccessRolesRequest(key=key, path="", roles={who: 1})
    api.call("PushPathAccessRoles", roles)
    a_cid = api.ls(src, "a").item.cid
    api.call("SetPath", pb.SetPathRequest(key=key, path="", cid=a_cid))
    assert sorted(api.names(key)) == [".textileseed", "one"]
    assert len(api.pull(key, ".textileseed")) == 32
    assert dict(api.root(key).path_metadata[""].roles) == {who: 1}


def test_unknown_cids_are_not_found(api: Api) -> None:
    missing = str(CID.of_raw(b"never stored in this hub"))
    for call in (
        lambda: list(api.buckets.PullIpfsPath(pb.PullIpfsPathRequest(path=f"/ipfs/{missing}"))),
        lambda: api.buckets.ListIpfsPath(pb.ListIpfsPathRequest(path=f"/ipfs/{missing}")),
    ):
        with pytest.raises(grpc.RpcError) as err:
            call()
        assert err.value.code() == Code.NOT_FOUND
        assert missing in err.value.details()
