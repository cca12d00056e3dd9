"""kill -9 of the mount daemon, and a hub killed mid-upload: nothing closed or fsynced is lost,
nothing half-written or duplicated reaches the bucket, and the dead mount point is cleaned.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import threading
import time
from pathlib import Path

import pytest
from hubproc import running_hub
from mountproc import kill_daemon, mounted, new_bucket

pytestmark = pytest.mark.timeout(600)

MiB = 1 << 20


def pattern(i: int) -> bytes:
    """The i-th MiB of a test file: recognisable, different per MiB."""
    return hashlib.sha256(str(i).encode()).digest() * (MiB // 32)


def sha_of_pull(client, key: str, path: str) -> tuple[str, int]:  # noqa: ANN001
    h = hashlib.sha256()

    class Sink(io.RawIOBase):
        n = 0

        def writable(self) -> bool:
            return True

        def write(self, b) -> int:  # noqa: ANN001
            h.update(b)
            Sink.n += len(b)
            return len(b)

    client.pull_path(key, path, Sink())
    return h.hexdigest(), Sink.n


def names(client, key: str) -> set[str]:  # noqa: ANN001
    return {i.name for i in client.list_path(key, "").item.items} - {".textileseed"}


def assert_dead(path: Path) -> None:
    with pytest.raises(OSError) as e:
        os.stat(path)
    assert e.value.errno == errno.ENOTCONN  # "Transport endpoint is not connected"


def wait_uploading(m, path: str, timeout: float = 120) -> None:  # noqa: ANN001
    """Until the daemon reports the upload of ``path`` in progress with some bytes sent."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for q in m.status()["queue"]:
            if q["path"] == path and q["state"] == "uploading" and q["sent"] > 0:
                return
        time.sleep(0.01)
    raise AssertionError(f"the upload of {path} never showed as in progress: {m.status()}")


def test_kill_9_during_a_large_write(hub, thread, client, tmp_path: Path) -> None:  # noqa: ANN001
    _, key = new_bucket(hub, "kill-write", thread=thread)
    cache = tmp_path / "cache"
    closed = hashlib.sha256()
    with mounted(hub, tmp_path, key, thread=thread, cache_dir=cache,
                 writeback_delay=3600, umount=False) as m:
        with open(m.path / "closed.bin", "wb") as f:
            for i in range(24):
                f.write(pattern(i))
                closed.update(pattern(i))
        f = open(m.path / "synced.bin", "wb")  # noqa: SIM115 - still open at the crash
        f.write(b"fsynced, never closed before the crash")
        f.flush()
        os.fsync(f.fileno())  # default mode: in the bucket on return
        written = 0
        stop = threading.Event()

        def writer() -> None:
            nonlocal written
            with contextlib.suppress(OSError), open(m.path / "half.bin", "wb") as g:
                i = 0
                while not stop.is_set():
                    g.write(pattern(i)[: 300_000])  # crosses chunk boundaries
                    written += 300_000
                    i += 1

        t = threading.Thread(target=writer)
        t.start()
        while written < 16 * MiB:
            time.sleep(0.01)
        kill_daemon(m)
        stop.set()
        t.join(timeout=60)
        with contextlib.suppress(OSError):
            f.close()  # ENOTCONN: the daemon is gone
        assert_dead(m.path)

        # The next mount on the same mount point and cache cleans the dead mount up and
        # uploads everything that was closed or fsynced.
        with mounted(hub, tmp_path, key, thread=thread, cache_dir=cache) as m2:
            assert m2.path == m.path
            m2.wait_synced(timeout=300)
    assert sha_of_pull(client, key, "closed.bin") == (closed.hexdigest(), 24 * MiB)
    with io.BytesIO() as out:
        client.pull_path(key, "synced.bin", out)
        assert out.getvalue() == b"fsynced, never closed before the crash"
    # half.bin was never closed: whatever of it reached the bucket is a prefix of what was
    # written (the kernel splits writes into FUSE requests of its own size) — every byte is
    # one the program wrote, at its place: no half-filled chunk, no zeros, no garbage.
    if "half.bin" in names(client, key):
        out = io.BytesIO()
        client.pull_path(key, "half.bin", out)
        data = out.getvalue()
        # The write() in progress at the kill may have reached the daemon in part (the kernel
        # hands it over in requests of its own size) before `written` counted it.
        assert 0 < len(data) <= written + 300_000
        for i in range(0, len(data), 300_000):
            piece = data[i:i + 300_000]
            assert piece == pattern(i // 300_000)[:len(piece)], i


def test_kill_9_during_an_upload(hub, thread, client, tmp_path: Path) -> None:  # noqa: ANN001
    _, key = new_bucket(hub, "kill-upload", thread=thread)
    cache = tmp_path / "cache"
    want = hashlib.sha256()
    # early_upload=0: the whole file goes up in one PushPath after close, which is what this
    # kills in the middle (test_mount_leafpipe.py kills a mount whose leaves went up early).
    with mounted(hub, tmp_path, key, thread=thread, cache_dir=cache, writeback_delay=0,
                 early_upload=0, umount=False) as m:
        with open(m.path / "big.bin", "wb") as f:
            for i in range(160):
                f.write(pattern(i))
                want.update(pattern(i))
        wait_uploading(m, "big.bin")
        kill_daemon(m)
        assert_dead(m.path)
        with mounted(hub, tmp_path, key, thread=thread, cache_dir=cache) as m2:
            m2.wait_synced(timeout=300)
    assert names(client, key) == {"big.bin"}  # no partial or second copy
    assert sha_of_pull(client, key, "big.bin") == (want.hexdigest(), 160 * MiB)


def test_hub_killed_and_restarted_mid_upload(tmp_path: Path) -> None:
    from bucketfs.client.buckets import BucketsClient

    with running_hub(tmp_path / "hub") as hub:
        thread, key = new_bucket(hub, "hub-restart")
        want = hashlib.sha256()
        with mounted(hub, tmp_path, key, thread=thread, writeback_delay=0, hub_timeout=5,
                     early_upload=0) as m:  # one long PushPath to kill the hub in
            (m.path / "small.txt").write_bytes(b"before")
            m.wait_synced()
            with open(m.path / "big.bin", "wb") as f:
                for i in range(160):
                    f.write(pattern(i))
                    want.update(pattern(i))
            wait_uploading(m, "big.bin")
            hub.kill()  # SIGKILL: a crash in the middle of the push
            hub.start()
            st = m.wait_synced(timeout=300)
            assert st["upload_errors"] >= 1, st  # the push did fail and was started again
        with BucketsClient(hub.address) as c:
            c = c.with_thread(thread)
            assert names(c, key) == {"big.bin", "small.txt"}
            assert sha_of_pull(c, key, "big.bin") == (want.hexdigest(), 160 * MiB)
