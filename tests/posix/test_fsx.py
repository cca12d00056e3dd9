"""The fsx-style exerciser (tests/posix/fsx.py) on local disk and on a real mount.

The local run checks the exerciser itself (a bug there would look like a bucketfs bug); the
mount run is the real test, followed by a fresh mount and a PullPath that must both hold the
shadow's bytes. The seed is printed and part of every failure message; set
``BUCKETFS_FSX_SEED`` to replay a run.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest
from fsx import Fsx, check_file, seed_from_env
from posix_helpers import mounted, new_bucket

pytestmark = pytest.mark.timeout(300)

#: CI length: enough to cross every chunk of the 4 MiB file many times, a minute or so.
MOUNT_OPS = int(os.environ.get("BUCKETFS_FSX_OPS", "2500"))


@pytest.fixture
def seed() -> int:
    s = seed_from_env()
    print(f"fsx seed {s} (BUCKETFS_FSX_SEED={s} to replay)")
    return s


def test_fsx_local_disk(tmp_path: Path, seed: int) -> None:
    """The exerciser agrees with itself on the local filesystem (a sanity check of fsx.py)."""
    fx = Fsx(tmp_path / "fsx.bin", seed=seed)
    try:
        result = fx.run(3000)
    finally:
        fx.close()
    assert sum(result.counts[k] for k in ("write", "truncate", "read", "mapread")) > 2000
    check_file(tmp_path / "fsx.bin", fx.shadow, f"seed {seed}")


def test_fsx_on_mount_then_remount_and_hub(hub, thread, client, tmp_path: Path,  # noqa: ANN001
                                           seed: int) -> None:
    """fsx on the mount, every operation checked; then a fresh mount and PullPath agree."""
    _, key = new_bucket(hub, "fsx", thread=thread)
    with mounted(hub, tmp_path, key, thread=thread, poll=0.5, writeback_delay=0.2) as m:
        fx = Fsx(m.path / "fsx.bin", seed=seed)
        try:
            result = fx.run(MOUNT_OPS)
        finally:
            fx.close()
        assert result.counts["truncate"] and result.counts["mapread"] and result.counts["reopen"]
        m.wait_synced()
    shadow = bytes(fx.shadow)
    ctx = f"fsx seed {seed} (BUCKETFS_FSX_SEED={seed}), {MOUNT_OPS} ops"
    with mounted(hub, tmp_path, key, thread=thread, name="fresh", poll=0.5) as m2:
        assert os.stat(m2.path / "fsx.bin").st_size == len(shadow), ctx
        check_file(m2.path / "fsx.bin", shadow, ctx)
    out = io.BytesIO()
    client.pull_path(key, "fsx.bin", out)
    assert len(out.getvalue()) == len(shadow), ctx
    assert hashlib.sha256(out.getvalue()).hexdigest() == hashlib.sha256(shadow).hexdigest(), ctx
