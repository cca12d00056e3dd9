"""``kill -9`` of the hub during pushes: after a restart every bucket is at its old root or its
new root, the consistency check (bucketfs.hub.fsck) finds nothing broken, and the hub works."""

from __future__ import annotations

import hashlib
import os
import threading
import time

import grpc
import pytest
from hub_helpers import Api
from hubproc import Hub

from bucketfs.hub.fsck import fsck

pytestmark = pytest.mark.timeout(300)

FILE_SIZE = 24 * 1024 * 1024


def _data(seed: int, size: int) -> bytes:
    # Deterministic and incompressible enough: blocks differ, so the DAG is realistic.
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}-{counter}".encode()).digest() * 1024
        counter += 1
    return bytes(out[:size])


def _push_in_background(api: Api, key: str, data: bytes) -> threading.Thread:
    def run() -> None:
        try:
            api.push(key, "big.bin", data, chunk=256 * 1024)
        except grpc.RpcError:
            pass  # the hub was killed under us: expected

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def _push_many_in_background(api: Api, key: str, n: int) -> threading.Thread:
    def run() -> None:
        chunks = []
        for i in range(n):
            chunks += [(f"many/f{i:05d}", f"file {i}".encode()), (f"many/f{i:05d}", b"")]
        try:
            api.push_paths(key, chunks)
        except grpc.RpcError:
            pass

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


@pytest.mark.parametrize("delay", [0.3, 1.0, 2.5, 6.0])
def test_kill_during_push_leaves_old_or_new_root(hub: Hub, api: Api, delay: float) -> None:
    key = api.create().root.key
    api.push(key, "keep.txt", b"kept")
    old = api.root(key).path
    data = _data(int(delay * 10), FILE_SIZE)
    big = _push_in_background(api, key, data)
    many = _push_many_in_background(api, key, 3000)
    time.sleep(delay)
    hub.kill()
    big.join(timeout=60)
    many.join(timeout=60)

    report = fsck(hub.data_dir)
    assert report.ok, report.problems
    assert report.buckets == 1

    hub.start()
    with hub.channel() as channel:
        again = Api(channel, api.thread)
        now = again.root(key).path
        names = again.names(key)
        assert "keep.txt" in names
        if "big.bin" in names:
            # The push committed: the file must be complete and exact.
            assert now != old
            got = again.pull(key, "big.bin")
            assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
        if "many" in names:
            assert len(again.names(key, "many")) == 3000  # PushPaths saves once, all or nothing
        if "big.bin" not in names and "many" not in names:
            assert now == old
        # And the hub accepts new writes on top of whatever root it is at.
        again.push(key, "after.txt", b"after", root=now)
        assert again.pull(key, "after.txt") == b"after"
    hub.stop()
    report = fsck(hub.data_dir)
    assert report.ok, report.problems


def test_fsck_detects_missing_and_corrupt_blocks(hub: Hub, api: Api) -> None:
    key = api.create().root.key
    api.push(key, "a", os.urandom(300_000))
    root_path = api.root(key).path
    hub.stop()
    assert fsck(hub.data_dir).ok
    blocks = sorted((hub.data_dir / "blockstore" / "blocks").rglob("bafk*"))
    leaf = next(b for b in blocks if b.stat().st_size == 262144)
    leaf.write_bytes(b"\0" * 262144)
    victim = next(b for b in blocks if b.stat().st_size == 32)  # the seed
    victim.unlink()
    report = fsck(hub.data_dir)
    assert not report.ok
    text = "\n".join(report.problems)
    assert "does not match its CID" in text and "is missing" in text
    assert root_path  # the bucket row itself was untouched
