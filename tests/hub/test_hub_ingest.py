"""Local ingest: file ranges handed to a real hub subprocess by descriptor.

The hub reads each range from the descriptor itself, stores it as a raw leaf and answers its
CID (bucketfs/hub/ingest.py, protocol in bucketfs/hub/ingestwire.py); the client is
bucketfs/client/ingest.py. Bad calls are refused with a gRPC status name and a message, and
store nothing.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from hub_helpers import Api
from hubproc import running_hub

from bucketfs.client.ingest import LocalIngest, LocalIngestError, NotReachable
from bucketfs.hub.ingestwire import address, recv_frame, send_frame
from bucketfs.ipfs.cid import CID
from bucketfs.pb import fs_pb2, fs_pb2_grpc

CHUNK = 256 * 1024


def _socket(api: Api) -> str:
    return api.fscall("LocalIngest", fs_pb2.LocalIngestRequest()).socket


def _stored(data_dir: Path) -> set[Path]:
    """Every block or pack file under the hub's data dir."""
    return {p for p in data_dir.rglob("*") if p.is_file() and "blocks" in p.parts}


def test_ranges_of_a_file_become_raw_leaves(hub, api: Api, tmp_path: Path) -> None:  # noqa: ANN001
    key = api.create().root.key
    data = os.urandom(5 * CHUNK + 1234)
    path = tmp_path / "f"
    path.write_bytes(data)
    name = _socket(api)
    assert name.startswith("bucketfs-ingest-")
    ranges = [(i * CHUNK, CHUNK) for i in range(6)] + [(10 * CHUNK, CHUNK)]
    fd = os.open(path, os.O_RDONLY)
    try:
        # A None from the iterator sends what is pending at once (a writer still writing).
        items = [*ranges[:2], None, *ranges[2:]]
        got = LocalIngest(name, dict(api.md)).send(fd, iter(items))
    finally:
        os.close(fd)
    want = [data[o : o + n] for o, n in ranges]
    assert [n for _c, n in got] == [len(w) for w in want]  # short at EOF, 0 past it
    assert got[-1] == ("", 0) and got[-2][1] == 1234
    cids = [c for c, _n in got[:-1]]
    assert cids == [str(CID.of_raw(w)) for w in want[:-1]]
    assert all(api.fscall("HasBlocks", fs_pb2.HasBlocksRequest(key=key, cids=cids)).has)
    blocks = api.fs.GetBlocks(fs_pb2.GetBlocksRequest(key=key, cids=cids), metadata=api.md)
    assert [b.data for b in blocks] == want[:-1]


def test_bad_calls_are_refused_and_store_nothing(hub, api: Api, tmp_path: Path) -> None:  # noqa: ANN001
    name = _socket(api)
    path = tmp_path / "f"
    path.write_bytes(os.urandom(3 * CHUNK))
    before = _stored(hub.data_dir)
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(LocalIngestError, match=r"INVALID_ARGUMENT.*bad range"):
            LocalIngest(name, dict(api.md)).send(fd, [(-1, CHUNK)])
        with pytest.raises(LocalIngestError, match=r"RESOURCE_EXHAUSTED"):
            LocalIngest(name, dict(api.md)).send(fd, [(0, 1 << 30)])
    finally:
        os.close(fd)
    r, w = os.pipe()  # not a regular file
    try:
        with pytest.raises(LocalIngestError, match=r"INVALID_ARGUMENT.*not a regular file"):
            LocalIngest(name, dict(api.md)).send(r, [(0, CHUNK)])
    finally:
        os.close(r)
        os.close(w)
    # No descriptor at all, and a hello of another version.
    for hello in ({"v": 1, "md": dict(api.md)}, {"v": 99, "md": dict(api.md)}):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(address(name))
            fd = os.open(path, os.O_RDONLY)
            try:
                send_frame(s, hello, fds=(fd,) if hello["v"] == 99 else ())
            finally:
                os.close(fd)
            reply, _ = recv_frame(s)
        assert reply["error"]["code"] == "INVALID_ARGUMENT", reply
    assert _stored(hub.data_dir) == before
    assert "local ingest refused" in hub.log()
    with pytest.raises(NotReachable):
        LocalIngest("bucketfs-ingest-nobody", {}).send(0, [(0, 1)])


def test_keys_mode_needs_the_same_credentials_as_put_blocks(tmp_path: Path) -> None:
    from bucketfs import config
    from bucketfs.client.buckets import BucketsClient

    with running_hub(tmp_path, auth="keys") as hub:
        cfg = config.load(hub.config, env={})
        with BucketsClient.from_config(cfg) as c:  # the account key the hub made at first start
            md = dict(c.metadata())
            name = fs_pb2_grpc.FSStub(c.channel).LocalIngest(
                fs_pb2.LocalIngestRequest(), metadata=list(md.items()), timeout=30).socket
        path = tmp_path / "f"
        data = os.urandom(CHUNK)
        path.write_bytes(data)
        before = _stored(hub.data_dir)
        fd = os.open(path, os.O_RDONLY)
        try:
            with pytest.raises(LocalIngestError, match="UNAUTHENTICATED"):
                LocalIngest(name, {}).send(fd, [(0, CHUNK)])
            assert _stored(hub.data_dir) == before
            got = LocalIngest(name, md).send(fd, [(0, CHUNK)])
        finally:
            os.close(fd)
        assert got == [(str(CID.of_raw(data)), CHUNK)]


def test_a_hub_can_turn_it_off(tmp_path: Path) -> None:
    with running_hub(tmp_path, auth="none", extra_args=["--no-local-ingest"]) as hub:
        with hub.channel() as channel:
            assert _socket(Api.new_thread(channel)) == ""
