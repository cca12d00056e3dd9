"""``bucketfs status``: per-mount numbers, JSON for scripts, and --wait until all is uploaded."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mountproc import mounted, new_bucket

pytestmark = pytest.mark.timeout(240)


def status_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bucketfs.cli", "status", *args], env=env,
                          capture_output=True, text=True, timeout=200)


def test_status_of_one_mount_and_of_all(hub, thread, client, tmp_path: Path) -> None:  # noqa: ANN001
    _, key = new_bucket(hub, "status", thread=thread)
    with mounted(hub, tmp_path, key, thread=thread, writeback_delay=3600) as m:
        (m.path / "queued.bin").write_bytes(b"q" * 500_000)
        os.mkdir(m.path / "d")
        res = status_cli(m.env, str(m.path), "--json")
        assert res.returncode == 0, res.stderr
        st = json.loads(res.stdout)
        assert st["bucket"] == key and st["mountpoint"] == str(m.path)
        assert st["root"].startswith("/ipfs/") and st["online"] is True
        assert st["dirty_files"] == 1 and st["dirty_bytes"] == 500_000
        assert st["queue"] == [{"path": "queued.bin", "size": 500_000, "sent": 0,
                                "state": "waiting"}]
        assert st["cache_limit"] > 0 and st["conflicts"] == 0
        assert st["read_cache_bytes"] >= 0 and st["pending_ops"] in (0, 1)
        # the mkdir reaches the bucket by itself, while the file is still held back
        deadline = time.monotonic() + 60
        while m.status()["pending_ops"] and time.monotonic() < deadline:
            time.sleep(0.05)
        in_bucket = {i.name for i in client.list_path(key, "").item.items}
        assert "d" in in_bucket and "queued.bin" not in in_bucket

        text = status_cli(m.env, str(m.path))
        assert text.returncode == 0, text.stderr
        assert f"bucket {key}" in text.stdout and "queued.bin" in text.stdout
        assert "dirty:         1 files" in text.stdout

        # no MOUNTPOINT: every bucketfs mount of this user, this one among them
        every = status_cli(m.env, "--json")
        assert every.returncode == 0, every.stderr
        assert str(m.path) in [s["mountpoint"] for s in json.loads(every.stdout)]

        # --wait with a deadline while a file is held back: exit 1 with one line
        res = status_cli(m.env, str(m.path), "--wait", "--timeout", "0.5")
        assert res.returncode == 1 and res.stderr.count("\n") == 1, res.stderr
        assert res.stderr.startswith("bucketfs: not everything was uploaded")


def test_status_wait_returns_once_everything_is_in_the_bucket(hub, thread, client,  # noqa: ANN001
                                                              tmp_path: Path) -> None:
    _, key = new_bucket(hub, "status-wait", thread=thread)
    with mounted(hub, tmp_path, key, thread=thread, writeback_delay=1) as m:
        blob = os.urandom(5 << 20)
        os.mkdir(m.path / "sub")
        (m.path / "sub" / "f.bin").write_bytes(blob)
        os.rename(m.path / "sub", m.path / "moved")
        res = status_cli(m.env, str(m.path), "--wait")
        assert res.returncode == 0, res.stderr
        # no ListPath or mount polling by the test: --wait alone says it is there
        out = io.BytesIO()
        client.pull_path(key, "moved/f.bin", out)
        assert out.getvalue() == blob
        assert "sub" not in {i.name for i in client.list_path(key, "").item.items}


def test_status_of_a_missing_mount_is_one_line(hub, tmp_path: Path) -> None:  # noqa: ANN001
    env = hub.env()
    for args in ([str(tmp_path)], [str(tmp_path), "--wait"]):
        res = status_cli(env, *args)
        assert res.returncode == 1
        assert res.stderr.startswith("bucketfs: no bucketfs mount at ")
        assert res.stderr.count("\n") == 1, res.stderr
