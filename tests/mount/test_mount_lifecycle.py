"""Mount lifecycle: unmount paths keep dirty data, reads fetch only what they need."""

from __future__ import annotations

import io
import os
import subprocess
import time

import pytest
from mountproc import mounted, new_bucket

pytestmark = pytest.mark.timeout(240)


def pull(client, key: str, path: str) -> bytes:  # noqa: ANN001
    out = io.BytesIO()
    client.pull_path(key, path, out)
    return out.getvalue()


def test_plain_fusermount_uploads_on_exit(hub, thread, client, tmp_path) -> None:  # noqa: ANN001
    _, key = new_bucket(hub, "fusermount", thread=thread)
    with mounted(hub, tmp_path, key, thread=thread, writeback_delay=3600, umount=False) as m:
        (m.path / "late.txt").write_bytes(b"uploaded by the exiting daemon")
        assert m.status()["dirty_files"] == 1
        subprocess.run(["fusermount3", "-u", str(m.path)], check=True, timeout=60)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                os.kill(m.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
    assert pull(client, key, "late.txt") == b"uploaded by the exiting daemon"


def test_lazy_umount_keeps_the_queue_for_the_next_mount(hub, thread, client, tmp_path) -> None:  # noqa: ANN001
    _, key = new_bucket(hub, "lazy", thread=thread)
    cache = tmp_path / "cache"
    with mounted(hub, tmp_path, key, thread=thread, cache_dir=cache, name="first",
                 writeback_delay=3600, umount=False) as m:
        (m.path / "queued.bin").write_bytes(b"q" * 300_000)
        m.cli("umount", "--lazy", str(m.path))
        assert "queued.bin" not in {i.name for i in client.list_path(key, "").item.items}
    # The next mount with the same cache finds the dirty file and uploads it by itself.
    with mounted(hub, tmp_path, key, thread=thread, cache_dir=cache, name="second") as m:
        assert (m.path / "queued.bin").read_bytes() == b"q" * 300_000
        m.wait_synced()
    assert pull(client, key, "queued.bin") == b"q" * 300_000


def test_a_small_read_of_a_big_cold_file_fetches_little(hub, thread, client, tmp_path) -> None:  # noqa: ANN001
    _, key = new_bucket(hub, "sparse-read", thread=thread)
    size = 64 << 20
    blob = os.urandom(1 << 20)

    class Stream(io.RawIOBase):
        """64 MiB without holding them: 1 MiB repeated, the last byte of each MiB numbered."""

        def __init__(self) -> None:
            self.pos = 0

        def readable(self) -> bool:
            return True

        def readinto(self, b) -> int:  # noqa: ANN001
            n = min(len(b), size - self.pos, (1 << 20) - self.pos % (1 << 20))
            start = self.pos % (1 << 20)
            b[:n] = blob[start : start + n]
            self.pos += n
            return n

    client.push_path(key, "big.bin", io.BufferedReader(Stream(), 1 << 20))
    with mounted(hub, tmp_path, key, thread=thread) as m:
        with open(m.path / "big.bin", "rb") as f:
            f.seek(32 << 20)
            assert f.read(4096) == blob[:4096]
        fetched = m.status()["fetched_bytes"]
        assert 0 < fetched < 2 << 20, fetched
        assert os.stat(m.path / "big.bin").st_size == size


def test_mount_errors_are_one_line(hub, thread, tmp_path) -> None:  # noqa: ANN001
    from mountproc import hub_env, run_cli

    env = hub_env(hub)
    res = run_cli(env, "mount", "no-such-bucket", str(tmp_path), "--api", hub.address,
                  "--thread", thread, check=False)
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [
        "bucketfs: no bucket 'no-such-bucket' in this thread (see `bucketfs bucket list`)"
    ]
    res = run_cli(env, "mount", "x", str(tmp_path / "missing"), "-o", "bogus", check=False)
    assert res.returncode == 2 and "unknown mount option" in res.stderr


def test_sigterm_unmounts_and_uploads(hub, thread, client, tmp_path) -> None:  # noqa: ANN001
    import signal

    _, key = new_bucket(hub, "sigterm", thread=thread)
    with mounted(hub, tmp_path, key, thread=thread, writeback_delay=3600, umount=False) as m:
        (m.path / "t.txt").write_bytes(b"before SIGTERM")
        os.kill(m.pid, signal.SIGTERM)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                os.kill(m.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        with open("/proc/self/mountinfo") as f:
            assert str(m.path) not in f.read()  # no dead mount left behind
    assert pull(client, key, "t.txt") == b"before SIGTERM"
