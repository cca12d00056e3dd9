"""`mount -t fuse.bucketfs BUCKET DIR` works through the shipped mount(8) helper."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/hubproc

ROOT = Path(__file__).resolve().parents[1]
HELPER = Path("/sbin/mount.fuse.bucketfs")
BUCKETFS = Path(sys.executable).with_name("bucketfs")


@pytest.mark.timeout(180)
def test_mount_through_fstab_helper(tmp_path: Path) -> None:
    from hubproc import running_hub

    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("installing a mount(8) helper needs root")
    if HELPER.exists():
        pytest.skip(f"{HELPER} already exists; not overwriting a real installation")
    stage = tmp_path / "stage"
    subprocess.run(
        ["sh", str(ROOT / "systemd" / "install.sh"), str(BUCKETFS)],
        env=dict(os.environ, DESTDIR=str(stage)), check=True, capture_output=True,
    )
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    cli = [sys.executable, "-m", "bucketfs.cli"]
    with running_hub(tmp_path / "hub", auth="none") as hub:
        env = hub.env()
        env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
        env["BUCKETFS_API"] = hub.address
        created = subprocess.run(
            [*cli, "bucket", "create", "fstab", "--json"], env=env, capture_output=True,
            text=True, timeout=60,
        )
        assert created.returncode == 0, created.stderr
        key = json.loads(created.stdout)["root"]["key"]
        try:
            shutil.copy(stage / "sbin" / "mount.fuse.bucketfs", HELPER)
            proc = subprocess.run(
                ["mount", "-t", "fuse.bucketfs", "-o", "_netdev,nofail", key, str(mnt)],
                env=env, capture_output=True, text=True, timeout=90,
            )
            assert proc.returncode == 0, proc.stderr
            assert os.path.ismount(mnt)
            (mnt / "via-fstab.txt").write_text("mounted by mount(8)\n")
            assert (mnt / "via-fstab.txt").read_text() == "mounted by mount(8)\n"
            umount = subprocess.run(
                [*cli, "umount", str(mnt)], env=env, capture_output=True, text=True, timeout=90
            )
            assert umount.returncode == 0, umount.stderr
            assert not os.path.ismount(mnt)
            listed = subprocess.run(
                [*cli, "bucket", "ls", key], env=env, capture_output=True, text=True, timeout=60
            )
            assert "via-fstab.txt" in listed.stdout, listed.stdout + listed.stderr
        finally:
            HELPER.unlink(missing_ok=True)
            if os.path.ismount(mnt):
                subprocess.run(["fusermount3", "-uz", str(mnt)], check=False)
