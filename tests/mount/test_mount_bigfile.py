"""A file far larger than the daemon's memory budget: written, uploaded, read back cold."""

from __future__ import annotations

import hashlib
import os

import pytest
from mountproc import mounted, new_bucket

SIZE_MB = int(os.environ.get("BUCKETFS_BIG_MB", "2048"))
RSS_LIMIT_MB = 200


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def blocks() -> object:
    seed = b"bucketfs-big-file"
    for i in range(SIZE_MB):
        yield hashlib.shake_256(seed + i.to_bytes(4, "big")).digest(1 << 20)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_big_file_roundtrip_with_bounded_memory(hub, thread, tmp_path) -> None:  # noqa: ANN001
    _, key = new_bucket(hub, "big", thread=thread)
    want = hashlib.sha256()
    with mounted(hub, tmp_path, key, thread=thread, name="w", writeback_delay=0) as m:
        with open(m.path / "big.bin", "wb", buffering=0) as f:
            for b in blocks():
                f.write(b)
                want.update(b)
        m.wait_synced(timeout=1200)
        rss_write = peak_rss_mb(m.pid)
    with mounted(hub, tmp_path, key, thread=thread, name="r") as m:
        got = hashlib.sha256()
        with open(m.path / "big.bin", "rb", buffering=0) as f:
            while chunk := f.read(1 << 20):
                got.update(chunk)
        rss_read = peak_rss_mb(m.pid)
    assert got.hexdigest() == want.hexdigest()
    assert rss_write < RSS_LIMIT_MB, rss_write
    assert rss_read < RSS_LIMIT_MB, rss_read
