"""`-o metrics=HOST:PORT` serves the mount's Prometheus metrics."""

from __future__ import annotations

import os
import socket
import urllib.request

import pytest
from mountproc import mounted, new_bucket


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(120)
def test_mount_metrics_endpoint(hub, thread, tmp_path) -> None:  # noqa: ANN001
    _, key = new_bucket(hub, "metrics", thread=thread)
    port = _free_port()
    with mounted(
        hub, tmp_path, key, thread=thread, writeback_delay=3600, metrics=f"127.0.0.1:{port}"
    ) as m:
        (m.path / "counted.bin").write_bytes(b"x" * 5000)
        assert (m.path / "counted.bin").read_bytes() == b"x" * 5000
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
        text = body.decode()
    assert 'bucketfs_ops_total{component="mount",op="write",result="ok"}' in text
    assert 'bucketfs_bytes_total{component="mount",direction="write"} 5000.0' in text
    # The file is still dirty (long write-back delay): the queue gauges say so.
    assert "bucketfs_upload_queue_files 1.0" in text
    assert "bucketfs_upload_queue_bytes 5000.0" in text
    assert 'bucketfs_cache_bytes{cache="read"}' in text
    assert 'bucketfs_hub_transfer_bytes{direction="down"}' in text


@pytest.mark.timeout(120)
def test_mount_metrics_count_uploaded_bytes(hub, thread, tmp_path) -> None:  # noqa: ANN001
    _, key = new_bucket(hub, "metrics-up", thread=thread)
    port = _free_port()
    with mounted(
        hub, tmp_path, key, thread=thread, writeback_delay=0, metrics=f"127.0.0.1:{port}"
    ) as m:
        with open(m.path / "up.bin", "wb") as f:
            f.write(b"y" * 7000)
            f.flush()
            os.fsync(f.fileno())  # returns once the hub has the file
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
    assert 'bucketfs_hub_transfer_bytes{direction="up"} 7000.0' in text.decode()
