"""The shipped systemd units render and pass `systemd-analyze verify`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUCKETFS = str(Path(sys.executable).with_name("bucketfs"))


def _render(dest: Path) -> Path:
    env = dict(os.environ, DESTDIR=str(dest))
    subprocess.run(
        ["sh", str(ROOT / "systemd" / "install.sh"), BUCKETFS], env=env, check=True,
        capture_output=True,
    )
    return dest / "etc" / "systemd" / "system"


@pytest.mark.timeout(60)
def test_units_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is installed by .ci/install"
    units = _render(tmp_path)
    # A template verifies through an instance of it.
    shutil.copy(units / "bucketfs@.service", units / "bucketfs@mnt-photos.service")
    for unit in ("bucketfs-hub.service", "bucketfs@mnt-photos.service"):
        proc = subprocess.run(
            [analyze, "verify", str(units / unit)],
            env=dict(os.environ, SYSTEMD_UNIT_PATH=f"{units}:"),
            capture_output=True, text=True,
        )
        assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr


def test_rendered_units_name_the_installed_executable(tmp_path: Path) -> None:
    units = _render(tmp_path)
    hub = (units / "bucketfs-hub.service").read_text()
    assert f"ExecStart={BUCKETFS} hub" in hub
    assert "Type=notify" in hub and "ProtectSystem=strict" in hub and "NoNewPrivileges=yes" in hub
    mount = (units / "bucketfs@.service").read_text()
    assert f"ExecStop={BUCKETFS} umount %f" in mount
    helper = tmp_path / "sbin" / "mount.fuse.bucketfs"
    assert os.access(helper, os.X_OK)
    assert "@BUCKETFS@" not in helper.read_text()
