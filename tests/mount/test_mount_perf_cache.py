"""The kernel keeps what it already has: reads after writes come from its page cache, and
attributes of known entries are answered without a worker thread round trip (no timings)."""

from __future__ import annotations

import os

import pytest
from hubproc import free_port
from mountproc import metric, mounted, new_bucket

MiB = 1 << 20


@pytest.mark.timeout(120)
def test_read_after_write_comes_from_the_page_cache(hub, thread, tmp_path) -> None:  # noqa: ANN001
    _, key = new_bucket(hub, "pagecache", thread=thread)
    port = free_port()
    read_bytes = 'bucketfs_bytes_total{component="mount",direction="read"}'
    block = os.urandom(MiB)
    with mounted(hub, tmp_path, key, thread=thread, metrics=f"127.0.0.1:{port}") as m:
        p = m.path / "big.bin"
        # Read-write: a write-only descriptor bypasses the page cache (direct I/O, the default
        # `direct_write`: its writes cache nothing; see test_mount_direct.py, BucketFS.open).
        with open(p, "w+b", buffering=0) as f:
            f.write(block)
            first = os.stat(p).st_mtime_ns
            for _ in range(7):
                f.write(block)
            # One mtime per write session: later writes do not move it, so the kernel
            # (auto_inval_data) has no reason to drop the pages it just cached.
            assert os.stat(p).st_mtime_ns == first
            os.fsync(f.fileno())  # in the bucket now
        assert os.stat(p).st_mtime_ns == first
        before = metric(port, read_bytes)
        for _ in range(2):
            with open(p, "rb", buffering=0) as f:
                n = 0
                while chunk := f.read(MiB):
                    assert chunk == block
                    n += len(chunk)
            assert n == 8 * MiB
        # Every byte came from the kernel's page cache: the daemon served no read.
        assert metric(port, read_bytes) == before


@pytest.mark.timeout(120)
def test_a_new_write_session_moves_mtime_and_others_see_new_content(
    hub, thread, tmp_path  # noqa: ANN001
) -> None:
    _, key = new_bucket(hub, "session", thread=thread)
    with mounted(hub, tmp_path, key, thread=thread, writeback_delay=0) as m:
        p = m.path / "f.txt"
        p.write_bytes(b"one")
        t1 = os.stat(p).st_mtime_ns
        assert p.read_bytes() == b"one"
        with open(p, "r+b", buffering=0) as f:
            f.write(b"two")
        # A new descriptor writing is a new session: mtime moves, cached pages are dropped.
        assert os.stat(p).st_mtime_ns > t1
        assert p.read_bytes() == b"two"
        m.wait_synced()
    with mounted(hub, tmp_path, key, thread=thread, name="again") as m2:
        assert (m2.path / "f.txt").read_bytes() == b"two"
