"""A full cache disk: the writer gets ENOSPC, and nothing already stored is damaged.

The cache directory is a small tmpfs mounted by the test (root only) and unmounted in finally.
"""

from __future__ import annotations

import errno
import io
import os
import subprocess
from pathlib import Path

import pytest
from mountproc import daemon_log, mounted, new_bucket

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root"),
]


def pull(client, key: str, path: str) -> bytes:  # noqa: ANN001
    out = io.BytesIO()
    client.pull_path(key, path, out)
    return out.getvalue()


def test_a_full_cache_gives_enospc_and_corrupts_nothing(
    hub, thread, client, tmp_path: Path  # noqa: ANN001
) -> None:
    _, key = new_bucket(hub, "diskfull", thread=thread)
    cache = tmp_path / "tiny"
    cache.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(cache)], check=True)
    try:
        with mounted(hub, tmp_path, key, thread=thread, cache_dir=cache,
                     writeback_delay=3600) as m:
            (m.path / "before.txt").write_bytes(b"stored before the disk filled up")
            os.mkdir(m.path / "dir")
            kept = os.urandom(1 << 20)
            (m.path / "dir" / "kept.bin").write_bytes(kept)  # dirty, in the cache only
            with pytest.raises(OSError) as e, open(m.path / "huge.bin", "wb") as f:
                for _ in range(64):
                    f.write(os.urandom(1 << 20))
                    f.flush()
            assert e.value.errno == errno.ENOSPC, daemon_log(m)[-3000:]
            # what was stored before is intact, and the mount still works once space is freed
            assert (m.path / "dir" / "kept.bin").read_bytes() == kept
            assert (m.path / "before.txt").read_bytes() == b"stored before the disk filled up"
            os.unlink(m.path / "huge.bin")
            (m.path / "after.txt").write_bytes(b"written after space was freed")
            assert m.status()["dirty_files"] == 3
        # the umount uploaded everything that was stored
        assert pull(client, key, "before.txt") == b"stored before the disk filled up"
        assert pull(client, key, "dir/kept.bin") == kept
        assert pull(client, key, "after.txt") == b"written after space was freed"
        names = {i.name for i in client.list_path(key, "").item.items}
        assert "huge.bin" not in names
        # and the journal reloads cleanly: a second mount finds nothing damaged or left over
        with mounted(hub, tmp_path, key, thread=thread, cache_dir=cache, name="again") as m:
            st = m.status()
            assert st["dirty_files"] == 0 and st["pending_ops"] == 0, st
            assert (m.path / "dir" / "kept.bin").read_bytes() == kept
            assert "damaged" not in daemon_log(m)
    finally:
        subprocess.run(["umount", str(cache)], check=False)
