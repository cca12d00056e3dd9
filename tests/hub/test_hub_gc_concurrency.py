"""Garbage collection of unreferenced blocks, and the locking rules: reads never wait for a
mutation, mutations of one bucket are serialised, other buckets are not blocked."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from hub_helpers import TIMEOUT, Api
from hubproc import running_hub

from bucketfs.hub.fsck import fsck
from bucketfs.ipfs.cid import CID
from bucketfs.pb import bucketsd_pb2 as pb

pytestmark = pytest.mark.timeout(180)


def _block_file(data_dir: Path, cid: str) -> Path:
    name = str(CID.decode(cid).to_v1())
    return data_dir / "blockstore" / "blocks" / name[-3:-1] / name


def _wait_for(predicate, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_gc_sweeps_unreferenced_blocks_only(tmp_path: Path) -> None:
    args = ["--gc-interval", "0.5", "--gc-grace", "0"]
    with running_hub(tmp_path, auth="none", extra_args=args) as hub, hub.channel() as ch:
        api = Api.new_thread(ch)
        key = api.create().root.key
        other = api.create().root.key
        gone = api.push(key, "gone.bin", os.urandom(1000))[-1].event.path.removeprefix("/ipfs/")
        kept = api.push(key, "kept.bin", os.urandom(1000))[-1].event.path.removeprefix("/ipfs/")
        shared_data = os.urandom(2000)
        api.push(other, "shared.bin", shared_data)
        shared = api.push(key, "shared.bin", shared_data)[-1].event.path.removeprefix("/ipfs/")
        api.call("RemovePath", pb.RemovePathRequest(key=key, path="gone.bin"))
        api.call("RemovePath", pb.RemovePathRequest(key=key, path="shared.bin"))
        _wait_for(lambda: not _block_file(hub.data_dir, gone).exists(), "the sweep")
        assert _block_file(hub.data_dir, kept).exists()
        assert _block_file(hub.data_dir, shared).exists()  # still in the other bucket
        assert api.pull(other, "shared.bin") == shared_data
        hub.stop()
        assert fsck(hub.data_dir).ok


def _slow_push(
    api: Api, key: str, path: str, release: threading.Event
) -> Iterator[pb.PushPathRequest]:
    yield pb.PushPathRequest(header=pb.PushPathRequest.Header(key=key, path=path))
    yield pb.PushPathRequest(chunk=b"first part ")
    # Hold the push (and the bucket's lock) open until the test has done its other calls.
    release.wait(TIMEOUT)
    yield pb.PushPathRequest(chunk=b"second part")


def test_reads_and_other_buckets_do_not_wait_for_a_push(api: Api) -> None:
    key = api.create().root.key
    other = api.create().root.key
    api.push(key, "existing", b"old")
    release = threading.Event()
    result: list[object] = []

    def push() -> None:
        try:
            result.extend(
                api.buckets.PushPath(
                    _slow_push(api, key, "slow", release), metadata=api.md, timeout=TIMEOUT
                )
            )
        except grpc.RpcError as exc:
            result.append(exc)

    t = threading.Thread(target=push)
    t.start()
    try:
        # If any of these waited for the push's lock, the push would never be released and
        # the test would time out: completing them proves reads and other buckets are free.
        assert api.pull(key, "existing") == b"old"
        assert "slow" not in api.names(key)
        api.root(key)
        api.call("List", pb.ListRequest())
        api.push(other, "independent", b"other bucket")
        assert api.pull(other, "independent") == b"other bucket"
    finally:
        release.set()
        t.join(TIMEOUT)
    assert not isinstance(result[-1], grpc.RpcError), result[-1]
    assert api.pull(key, "slow") == b"first part second part"


def test_concurrent_pushes_to_one_bucket_are_serialised(api: Api) -> None:
    key = api.create().root.key
    errors: list[Exception] = []

    def push(i: int) -> None:
        try:
            api.push(key, f"f{i}", f"content {i}".encode() * 1000)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=push, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    assert not errors
    names = api.names(key)
    assert all(f"f{i}" in names for i in range(8))  # no push lost another's update
    for i in range(8):
        assert api.pull(key, f"f{i}") == f"content {i}".encode() * 1000
