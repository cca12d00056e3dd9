"""Optional Prometheus metrics for the hub and the mount.

Metrics are always counted (prometheus_client's counters are cheap); they are only served
when ``--metrics HOST:PORT`` is given. One registry per process keeps the names stable:
``bucketfs_ops_total{component,op,result}``, ``bucketfs_op_seconds{component,op}``,
``bucketfs_bytes_total{component,direction}``, ``bucketfs_upload_queue_files``,
``bucketfs_upload_queue_bytes``, ``bucketfs_hub_transfer_bytes{direction}`` and
``bucketfs_cache_bytes{cache}``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from bucketfs.errors import UserError

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry(auto_describe=True)

OPS = Counter(
    "bucketfs_ops", "Operations handled", ["component", "op", "result"], registry=REGISTRY
)
OP_SECONDS = Histogram(
    "bucketfs_op_seconds",
    "Operation latency",
    ["component", "op"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
BYTES = Counter(
    "bucketfs_bytes", "Payload bytes moved", ["component", "direction"], registry=REGISTRY
)
QUEUE_FILES = Gauge("bucketfs_upload_queue_files", "Files waiting for upload", registry=REGISTRY)
QUEUE_BYTES = Gauge("bucketfs_upload_queue_bytes", "Dirty bytes not uploaded", registry=REGISTRY)
HUB_BYTES = Gauge(
    "bucketfs_hub_transfer_bytes", "Bytes a mount moved to/from the hub", ["direction"],
    registry=REGISTRY,
)
CACHE_BYTES = Gauge("bucketfs_cache_bytes", "Bytes held by a cache", ["cache"], registry=REGISTRY)


@contextmanager
def timed(component: str, op: str) -> Iterator[None]:
    """Count and time one operation; the result label is ``ok`` or the exception class name."""
    start = time.perf_counter()
    result = "ok"
    try:
        yield
    except BaseException as exc:
        result = type(exc).__name__
        raise
    finally:
        OPS.labels(component, op, result).inc()
        OP_SECONDS.labels(component, op).observe(time.perf_counter() - start)


def parse_listen(value: str) -> tuple[str, int]:
    """Parse ``HOST:PORT`` (or ``:PORT`` for all interfaces); raises UserError when malformed."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"invalid metrics address {value!r}: expected HOST:PORT")
    return host.strip("[]") or "0.0.0.0", int(port)


def serve(listen: str) -> None:
    """Serve ``/metrics`` on ``listen`` from a daemon thread."""
    host, port = parse_listen(listen)
    try:
        start_http_server(port, addr=host, registry=REGISTRY)
    except OSError as exc:
        raise UserError(f"cannot serve metrics on {listen}: {exc.strerror or exc}") from exc
    log.info("serving metrics", extra={"fields": {"listen": f"{host}:{port}"}})
