"""Bad input: each gets the right status and a clear message, changes nothing, and the hub
keeps serving (checked after every case)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import grpc
import pytest
from hub_helpers import Api
from hubproc import Hub

from bucketfs import keys
from bucketfs.pb import bucketsd_pb2 as pb
from bucketfs.pb import fs_pb2

pytestmark = pytest.mark.timeout(180)

Code = grpc.StatusCode
SEED_MSG = "paths containing .textileseed are not allowed"


@pytest.fixture
def bucket(api: Api) -> Iterator[tuple[Api, str, str]]:
    """A bucket with one file; yields (api, key, root path) and checks nothing changed after."""
    key = api.create().root.key
    api.push(key, "dir/file", b"content")
    root = api.root(key).path
    yield api, key, root
    assert api.root(key).path == root, "bad input changed the bucket"
    assert api.pull(key, "dir/file") == b"content", "the hub stopped serving"


def _fails(fn, code: Code, text: str | None = None, contains: str | None = None) -> str:
    with pytest.raises(grpc.RpcError) as err:
        fn()
    assert err.value.code() == code, err.value.details()
    details = err.value.details()
    if text is not None:
        assert details == text
    if contains is not None:
        assert contains in details
    return details


BAD_PATHS = [
    ("../escape", "'..'"),
    ("dir/../../x", "'..'"),
    ("a\0b", "NUL"),
    ("x" * 200 + "/" + "y/" * 2000, "longer than 4096 bytes"),
    ("n" * 256, "longer than 255 bytes"),
]


@pytest.mark.parametrize(("path", "why"), BAD_PATHS)
def test_bad_paths_rejected_everywhere(bucket: tuple[Api, str, str], path: str, why: str) -> None:
    api, key, _ = bucket
    bad = Code.INVALID_ARGUMENT
    _fails(lambda: api.push(key, path, b"x"), bad, contains=why)
    _fails(lambda: api.push_paths(key, [(path, b"x"), (path, b"")]), bad, contains=why)
    _fails(lambda: api.ls(key, path), bad, contains=why)
    _fails(lambda: api.pull(key, path), bad, contains=why)
    _fails(lambda: api.call("RemovePath", pb.RemovePathRequest(key=key, path=path)), bad)
    req = pb.MovePathRequest(key=key, from_path="dir/file", to_path=path)
    _fails(lambda: api.call("MovePath", req), bad)
    _fails(lambda: api.fscall("Mkdir", fs_pb2.MkdirRequest(key=key, path=path)), bad)


def test_textileseed_rejected_with_spec_message(bucket: tuple[Api, str, str]) -> None:
    api, key, _ = bucket
    unk = Code.UNKNOWN
    _fails(lambda: api.push(key, "a/.textileseed", b"x"), unk, SEED_MSG)
    _fails(lambda: api.push(key, ".textileseed", b"x"), unk, SEED_MSG)
    req = pb.MovePathRequest(key=key, from_path=".textileseed", to_path="x")
    _fails(lambda: api.call("MovePath", req), unk, SEED_MSG)
    req2 = pb.RemovePathRequest(key=key, path=".textileseed")
    _fails(lambda: api.call("RemovePath", req2), unk, SEED_MSG)
    req3 = pb.PushPathAccessRolesRequest(key=key, path=".textileseed", roles={"*": 1})
    _fails(lambda: api.call("PushPathAccessRoles", req3), unk, SEED_MSG)
    # ListPath and PullPath only clean the path (spec 5.4): the seed can be read.
    assert len(api.pull(key, ".textileseed")) == 32


def test_thread_and_bucket_errors(bucket: tuple[Api, str, str]) -> None:
    api, key, _ = bucket
    stub = api.buckets
    _fails(lambda: stub.Root(pb.RootRequest(key=key), timeout=30), Code.UNKNOWN, "db required")
    garbage = [("x-textile-thread", "not-a-thread")]
    _fails(
        lambda: stub.List(pb.ListRequest(), metadata=garbage, timeout=30),
        Code.UNKNOWN,
        "db required",
    )
    other = [("x-textile-thread", keys.thread_id_to_string(keys.new_thread_id()))]
    _fails(
        lambda: stub.Root(pb.RootRequest(key=key), metadata=other, timeout=30),
        Code.NOT_FOUND,
        contains="thread not found",
    )
    missing = "bafzbeiapnychqz2ucjr3gv7xj52lfe3ktbbpmifr5rhnjmoafwkef4mwem"
    _fails(lambda: api.root(missing), Code.UNKNOWN, contains="instance not found")
    _fails(lambda: api.push(missing, "f", b"x"), Code.UNKNOWN, contains="instance not found")
    _fails(lambda: api.ls(key, "nope"), Code.UNKNOWN, contains='no link named "nope"')


def test_stream_protocol_errors(bucket: tuple[Api, str, str]) -> None:
    api, key, _ = bucket

    def chunk_first():
        yield pb.PushPathRequest(chunk=b"data")

    _fails(
        lambda: list(api.buckets.PushPath(chunk_first(), metadata=api.md, timeout=30)),
        Code.UNKNOWN,
        "push bucket path header is required",
    )

    def two_headers():
        h = pb.PushPathRequest.Header(key=key, path="f")
        yield pb.PushPathRequest(header=h)
        yield pb.PushPathRequest(header=h)

    _fails(
        lambda: list(api.buckets.PushPath(two_headers(), metadata=api.md, timeout=30)),
        Code.UNKNOWN,
        "invalid request",
    )
    # An empty stream ends with OK and no response (spec 5.6).
    assert list(api.buckets.PushPath(iter(()), metadata=api.md, timeout=30)) == []


@pytest.mark.parametrize("mib", [5, 70])
def test_oversized_message(bucket: tuple[Api, str, str], mib: int) -> None:
    # 5 MiB is over the 4 MiB request limit the services enforce; 70 MiB is also over the
    # transport's limit, where gRPC itself fails the call.
    api, key, _ = bucket
    size = mib * 1024 * 1024
    for _ in range(3):
        _fails(lambda: api.push(key, "big", b"x" * size, chunk=size), Code.RESOURCE_EXHAUSTED)
        _fails(
            lambda: api.push_paths(key, [("big", b"x" * size), ("big", b"")]),
            Code.RESOURCE_EXHAUSTED,
        )
    assert "big" not in api.names(key)


def test_push_cancelled_mid_stream(bucket: tuple[Api, str, str]) -> None:
    api, key, _ = bucket

    class Broken(Exception):
        pass

    def reqs():
        yield pb.PushPathRequest(header=pb.PushPathRequest.Header(key=key, path="dir/file"))
        for _ in range(20):
            yield pb.PushPathRequest(chunk=os.urandom(65536))
        raise Broken("client gave up")

    with pytest.raises((grpc.RpcError, Broken)):
        list(api.buckets.PushPath(reqs(), metadata=api.md, timeout=60))

    def paths_reqs():
        yield pb.PushPathsRequest(header=pb.PushPathsRequest.Header(key=key))
        chunk = pb.PushPathsRequest.Chunk(path="dir/file", data=os.urandom(65536))
        for _ in range(20):
            yield pb.PushPathsRequest(chunk=chunk)
        raise Broken("client gave up")

    with pytest.raises((grpc.RpcError, Broken)):
        list(api.buckets.PushPaths(paths_reqs(), metadata=api.md, timeout=60))


def test_client_process_killed_mid_push(bucket: tuple[Api, str, str], hub: Hub) -> None:
    api, key, _ = bucket
    script = textwrap.dedent(
        f"""
        import os, sys, time, grpc
        from bucketfs.pb import bucketsd_pb2 as pb, bucketsd_pb2_grpc as g
        ch = grpc.insecure_channel({hub.address!r})
        def reqs():
            yield pb.PushPathRequest(header=pb.PushPathRequest.Header(key={key!r}, path="dir/file"))
            print("sending", flush=True)
            while True:
                yield pb.PushPathRequest(chunk=os.urandom(65536))
                time.sleep(0.001)
        md = [("x-textile-thread", {api.thread!r})]
        for _ in g.APIServiceStub(ch).PushPath(reqs(), metadata=md):
            pass
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, env=hub.env(), text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "sending"
        time.sleep(1.0)  # let some megabytes arrive
    finally:
        proc.kill()
        proc.wait(timeout=30)
