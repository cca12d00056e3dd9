"""Suite-wide: a hung FUSE mount can never hang the test run.

pytest-timeout fails a test that runs too long by raising in it from a SIGALRM handler. That
handler cannot run while the test is inside a system call on a mount whose daemon does not
answer (stopped, deadlocked, or not serving yet): the kernel waits for the answer and only a
fatal signal ends that wait. So shortly before a test's timeout, this watchdog aborts the FUSE
connections of the bucketfs mounts this pytest run created (``/sys/fs/fuse/connections/N/abort``,
mounts under the run's temporary directory only). Every pending call on them then fails with
ECONNABORTED, the test gets its timeout error as usual, and its ``finally`` unmounts.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

CONNECTIONS = Path("/sys/fs/fuse/connections")


def _timeout_of(node: pytest.Item, config: pytest.Config) -> float:
    marker = node.get_closest_marker("timeout")
    if marker is not None and (marker.args or "timeout" in marker.kwargs):
        return float(marker.args[0] if marker.args else marker.kwargs["timeout"])
    try:
        return float(config.getini("timeout") or 0)
    except ValueError:
        return 0.0


def abort_mounts_under(base: str) -> list[str]:
    """Abort the FUSE connection of every bucketfs mount below ``base``; their mount points."""
    from bucketfs.mount import mountinfo

    hung = [m for m in mountinfo.mounts()
            if m.fstype == "fuse.bucketfs" and m.point.startswith(base.rstrip("/") + "/")]
    ours = False
    if hung and not any(CONNECTIONS.iterdir()):
        # fusectl is not mounted on every machine (root may mount it; unmounted again below).
        ours = subprocess.run(["mount", "-t", "fusectl", "fusectl", str(CONNECTIONS)],
                              check=False, capture_output=True).returncode == 0
    for m in hung:
        major, minor = (int(x) for x in m.dev.split(":"))
        # (named by the kernel's own dev_t encoding, not glibc's)
        abort = CONNECTIONS / str((major << 20) | minor) / "abort"
        try:
            abort.write_text("1")
        except OSError as exc:
            print(f"fuse watchdog: could not abort {m.point}: {exc}", file=sys.stderr)
    if ours:
        subprocess.run(["umount", str(CONNECTIONS)], check=False, capture_output=True)
    return [m.point for m in hung]


@pytest.fixture(autouse=True)
def _fuse_watchdog(request: pytest.FixtureRequest,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    timeout = _timeout_of(request.node, request.config)
    if timeout <= 0:
        yield
        return
    base = os.path.realpath(tmp_path_factory.getbasetemp())

    def fire() -> None:
        points = abort_mounts_under(base)
        if points:
            print(f"\nfuse watchdog: {request.node.nodeid} near its {timeout:g} s timeout; "
                  f"aborted the FUSE connections of {points}", file=sys.stderr)

    timer = threading.Timer(timeout - min(30.0, timeout * 0.2), fire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
