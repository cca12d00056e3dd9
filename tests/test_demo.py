"""The Quick start's main job: `bucketfs demo` starts a hub, mounts a bucket, and stops."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest


@pytest.mark.timeout(180)
def test_demo_mounts_and_stops(tmp_path: Path) -> None:
    env = dict(
        os.environ,
        HOME=str(tmp_path),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        XDG_DATA_HOME=str(tmp_path / "data"),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
    )
    env.pop("BUCKETFS_CONFIG", None)
    mnt = tmp_path / "bucketfs-demo"
    cli = [sys.executable, "-m", "bucketfs.cli"]
    try:
        proc = subprocess.run([*cli, "demo"], env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert f"is mounted at {mnt}" in proc.stdout and "demo --stop" in proc.stdout
        assert (mnt / "WELCOME.txt").read_bytes().startswith(b"Welcome to bucketfs.")
        (mnt / "hello.txt").write_text("hello\n")
        # Written through the mount, the file reaches the bucket (upload after close).
        for _ in range(60):
            ls = subprocess.run(
                [*cli, "bucket", "ls", "demo"], env=env, capture_output=True, text=True, timeout=60
            )
            if "hello.txt" in ls.stdout:
                break
            time.sleep(0.5)
        assert "hello.txt" in ls.stdout, ls.stdout + ls.stderr
    finally:
        stop = subprocess.run(
            [*cli, "demo", "--stop"], env=env, capture_output=True, text=True, timeout=120
        )
        if os.path.ismount(mnt):
            subprocess.run(["fusermount3", "-uz", str(mnt)], check=False)
    assert stop.returncode == 0, stop.stderr
    assert not os.path.ismount(mnt)
