"""Memory stays bounded whatever the file size: the hub's peak RSS after pushing and pulling a
file larger than that bound (PushPath, PushPaths, PullPath, FS.ReadFile)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
from hub_helpers import TIMEOUT, Api
from hubproc import Hub

from bucketfs.pb import bucketsd_pb2 as pb
from bucketfs.pb import fs_pb2

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]

MiB = 1024 * 1024
SIZE = 320 * MiB
BOUND = 240 * MiB  # well below the file size: the file is never held whole


def _chunks() -> Iterator[bytes]:
    for i in range(SIZE // MiB):
        yield hashlib.sha256(str(i).encode()).digest() * (MiB // 32)


def _peak_rss(hub: Hub) -> int:
    assert hub.proc is not None
    with open(f"/proc/{hub.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def test_large_file_memory_is_bounded(hub: Hub, api: Api) -> None:
    key = api.create().root.key
    expected = hashlib.sha256()
    for c in _chunks():
        expected.update(c)

    def push_path() -> Iterator[pb.PushPathRequest]:
        yield pb.PushPathRequest(header=pb.PushPathRequest.Header(key=key, path="one"))
        for c in _chunks():
            yield pb.PushPathRequest(chunk=c)

    list(api.buckets.PushPath(push_path(), metadata=api.md, timeout=TIMEOUT * 4))
    api.push_paths(key, _paths_gen())  # a generator: the test never holds the file either
    for path in ("one", "two"):
        got = hashlib.sha256()
        stream = api.buckets.PullPath(pb.PullPathRequest(key=key, path=path), metadata=api.md)
        for r in stream:
            got.update(r.chunk)
        assert got.digest() == expected.digest()
    got = hashlib.sha256()
    for r in api.fs.ReadFile(fs_pb2.ReadFileRequest(key=key, path="two"), metadata=api.md):
        got.update(r.data)
    assert got.digest() == expected.digest()
    peak = _peak_rss(hub)
    print(f"hub peak RSS {peak / MiB:.0f} MiB")
    assert peak < BOUND, f"hub peak RSS {peak / MiB:.0f} MiB"


def _paths_gen() -> Iterator[tuple[str, bytes]]:
    for c in _chunks():
        yield ("two", c)
    yield ("two", b"")
