"""The metrics endpoint serves Prometheus text with the documented names."""

from __future__ import annotations

import socket
import urllib.request

import pytest

from bucketfs import metrics
from bucketfs.errors import UserError


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(30)
def test_metrics_endpoint_serves_counters() -> None:
    port = _free_port()
    metrics.serve(f"127.0.0.1:{port}")
    with metrics.timed("test", "probe"):
        metrics.BYTES.labels("test", "up").inc(1234)
    with pytest.raises(ValueError), metrics.timed("test", "fails"):
        raise ValueError("boom")
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    assert 'bucketfs_ops_total{component="test",op="probe",result="ok"} 1.0' in body
    assert 'bucketfs_ops_total{component="test",op="fails",result="ValueError"} 1.0' in body
    assert 'bucketfs_bytes_total{component="test",direction="up"} 1234.0' in body
    assert "bucketfs_op_seconds_bucket" in body


@pytest.mark.parametrize("bad", ["nope", "host:", "host:99999", "host:x"])
def test_bad_listen_address_is_user_error(bad: str) -> None:
    with pytest.raises(UserError):
        metrics.parse_listen(bad)
