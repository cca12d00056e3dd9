"""Hub unreachable: the mount keeps working from its cache and journal, and catches up later.

Each test runs its own hub (they stop and restart it) and real FUSE mounts.
"""

from __future__ import annotations

import errno
import io
import json
import os
import signal
import stat
import sys
import time
from pathlib import Path

import pytest
from hubproc import running_hub
from mountproc import daemon_log, mounted, new_bucket, run_cli

pytestmark = pytest.mark.timeout(300)


def pull(client, key: str, path: str) -> bytes:  # noqa: ANN001
    out = io.BytesIO()
    client.pull_path(key, path, out)
    return out.getvalue()


def names(client, key: str, path: str = "") -> set[str]:  # noqa: ANN001
    return {i.name for i in client.list_path(key, path).item.items} - {".textileseed"}


def status_cli(env: dict[str, str], *args: str, check: bool = True):  # noqa: ANN201
    """``bucketfs status ARGS`` as a user runs it."""
    import subprocess

    return subprocess.run([sys.executable, "-m", "bucketfs.cli", "status", *args], env=env,
                          capture_output=True, text=True, timeout=240, check=check)


def test_the_hub_stopped_before_the_mount_starts(tmp_path: Path) -> None:
    from bucketfs.client.buckets import BucketsClient

    with running_hub(tmp_path / "hub") as hub:
        thread, key = new_bucket(hub, "offline-start")
        with BucketsClient(hub.address) as c:
            c.with_thread(thread).push_path(key, "cold.bin", io.BytesIO(b"never read" * 1000))
        cache = tmp_path / "cache"
        with mounted(hub, tmp_path, key, thread=thread, cache_dir=cache, name="first") as m:
            (m.path / "kept.txt").write_bytes(b"read while offline")
            os.mkdir(m.path / "docs")
            (m.path / "docs" / "a.txt").write_bytes(b"a")
            assert "cold.bin" in os.listdir(m.path)  # listed, never read
            m.wait_synced()
            assert (m.path / "kept.txt").read_bytes() == b"read while offline"
        hub.stop()

        # The mount starts from what the cache directory holds.
        with mounted(hub, tmp_path, key, thread=thread, cache_dir=cache, name="second",
                     hub_timeout=3) as m:
            st = m.status()
            assert st["started_offline"] and not st["online"], st
            assert sorted(os.listdir(m.path)) == ["cold.bin", "docs", "kept.txt"]
            assert (m.path / "kept.txt").read_bytes() == b"read while offline"
            # data that was never fetched: EIO (bounded by hub_timeout, never a hang)
            with pytest.raises(OSError) as e:
                (m.path / "cold.bin").read_bytes()
            assert e.value.errno == errno.EIO
            # writes and namespace changes work offline
            (m.path / "new.txt").write_bytes(b"written offline")
            os.mkdir(m.path / "made")
            os.rename(m.path / "kept.txt", m.path / "made" / "moved.txt")
            os.rename(m.path / "docs", m.path / "papers")
            os.chmod(m.path / "papers" / "a.txt", 0o600)
            os.symlink("made/moved.txt", m.path / "link")
            os.unlink(m.path / "cold.bin")
            assert sorted(os.listdir(m.path)) == ["link", "made", "new.txt", "papers"]
            assert (m.path / "made" / "moved.txt").read_bytes() == b"read while offline"
            st = m.status()
            assert st["pending_ops"] >= 6 and st["dirty_files"] == 1, st
            # `status --wait` with a deadline: one line, exit 1, while the hub is down
            res = status_cli(m.env, str(m.path), "--wait", "--timeout", "1", check=False)
            assert res.returncode == 1 and res.stderr.count("\n") == 1, res.stderr

            hub.start()  # same address and data dir: uploads resume by themselves
            res = status_cli(m.env, str(m.path), "--wait", "--json")
            final = json.loads(res.stdout)
            assert final["online"] and final["pending_ops"] == 0 and final["dirty_files"] == 0

        with BucketsClient(hub.address) as c:
            c = c.with_thread(thread)
            assert names(c, key) == {"link", "made", "new.txt", "papers"}
            assert pull(c, key, "new.txt") == b"written offline"
            assert pull(c, key, "made/moved.txt") == b"read while offline"
            assert pull(c, key, "papers/a.txt") == b"a"
            items = {i.name: i for i in c.list_path(key, "papers").item.items}
            assert items["a.txt"].mode & 0o777 == 0o600
            links = {i.name: i for i in c.list_path(key, "").item.items}
            assert links["link"].is_symlink and links["link"].symlink_target == "made/moved.txt"


def test_the_hub_stopped_with_writes_in_flight_then_restarted(tmp_path: Path) -> None:
    from bucketfs.client.buckets import BucketsClient

    with running_hub(tmp_path / "hub") as hub:
        thread, key = new_bucket(hub, "offline-later")
        with mounted(hub, tmp_path, key, thread=thread, writeback_delay=0, hub_timeout=3) as m:
            os.mkdir(m.path / "d")
            (m.path / "d" / "one.txt").write_bytes(b"1" * 100_000)
            m.wait_synced()
            hub.stop()
            blob = os.urandom(3 << 20)
            (m.path / "d" / "two.bin").write_bytes(blob)
            os.mkdir(m.path / "d" / "sub")
            (m.path / "d" / "sub" / "three.txt").write_bytes(b"3")
            os.rename(m.path / "d" / "one.txt", m.path / "d" / "sub" / "one.txt")
            os.utime(m.path / "d", ns=(1_600_000_000 * 10**9, 1_600_000_000 * 10**9))
            # cached data stays readable, listings too
            assert (m.path / "d" / "sub" / "one.txt").read_bytes() == b"1" * 100_000
            assert sorted(os.listdir(m.path / "d")) == ["sub", "two.bin"]
            st = m.status()
            assert st["dirty_files"] >= 2 and st["pending_ops"] >= 3, st
            deadline = time.monotonic() + 60
            while m.status()["online"]:  # the failed uploads tell the mount the hub is gone
                assert time.monotonic() < deadline, daemon_log(m)
                time.sleep(0.2)
            hub.start()
            m.wait_synced(timeout=120)
            st = m.status()
            assert st["pending_ops"] == 0 and st["online"], st
            # The first answer after the outage cut every upload's backoff short.
            assert "the hub answers again" in daemon_log(m)
        with BucketsClient(hub.address) as c:
            c = c.with_thread(thread)
            assert names(c, key, "d") == {"sub", "two.bin"}
            assert names(c, key, "d/sub") == {"one.txt", "three.txt"}
            assert pull(c, key, "d/two.bin") == blob
            assert pull(c, key, "d/sub/one.txt") == b"1" * 100_000
            d = {i.name: i for i in c.list_path(key, "").item.items}["d"]
            assert d.mtime == 1_600_000_000 * 10**9


def test_a_hung_hub_gives_eio_after_hub_timeout_and_writes_still_work(tmp_path: Path) -> None:
    from bucketfs.client.buckets import BucketsClient

    with running_hub(tmp_path / "hub") as hub:
        thread, key = new_bucket(hub, "hung")
        with BucketsClient(hub.address) as c:
            c.with_thread(thread).push_path(key, "cold.bin", io.BytesIO(os.urandom(600_000)))
        with mounted(hub, tmp_path, key, thread=thread, hub_timeout=2, nowatch=True) as m:
            assert "cold.bin" in os.listdir(m.path)
            assert hub.proc is not None
            hub.proc.send_signal(signal.SIGSTOP)  # reachable but silent: the worst case
            try:
                with pytest.raises(OSError) as e:
                    with open(m.path / "cold.bin", "rb") as f:
                        f.read(4096)
                assert e.value.errno == errno.EIO
                (m.path / "local.txt").write_bytes(b"no hub needed")
                os.mkdir(m.path / "dir")
                assert stat.S_ISDIR(os.stat(m.path / "dir").st_mode)
                assert (m.path / "local.txt").read_bytes() == b"no hub needed"
            finally:
                hub.proc.send_signal(signal.SIGCONT)
            m.wait_synced(timeout=120)
            assert len((m.path / "cold.bin").read_bytes()) == 600_000
        with BucketsClient(hub.address) as c:
            c = c.with_thread(thread)
            assert names(c, key) == {"cold.bin", "dir", "local.txt"}


def test_offline_start_without_saved_state_is_one_line(tmp_path: Path) -> None:
    with running_hub(tmp_path / "hub") as hub:
        thread, key = new_bucket(hub, "never-mounted")
        hub.stop()
        (tmp_path / "mnt").mkdir()
        res = run_cli(hub.env(), "mount", key, str(tmp_path / "mnt"), "--api", hub.address,
                      "--thread", thread, "-o", f"cache_dir={tmp_path / 'cache'}",
                      check=False, timeout=240)
        assert res.returncode == 1
        assert res.stderr.startswith("bucketfs: ") and res.stderr.count("\n") == 1, res.stderr
        assert "unreachable" in res.stderr
