"""The reconciler's Merkle diff: a change elsewhere re-lists and invalidates only what changed.

A bucket of 1,000 files plus two small directories is mounted and fully seen by the kernel
(every entry looked up, both directories listed); then the CLI pushes one file. The status
counters show one diff, only the directories on the changed path listed again, and a handful
of kernel invalidations — not one per cached entry.
"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import pytest
from mountproc import mounted, new_bucket

N = 1000
WAIT = 30.0


def _wait_for(m, path: Path, data: bytes) -> dict:  # noqa: ANN001
    deadline = time.monotonic() + WAIT
    while True:
        try:
            if path.read_bytes() == data:
                return m.status()
        except FileNotFoundError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} never showed {data!r}: {m.status()}")
        time.sleep(0.1)


def _look_at_everything(root: Path) -> None:
    """What `ls -lR` does: the kernel learns every entry and inode."""
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            os.lstat(os.path.join(dirpath, name))


@pytest.mark.timeout(180)
def test_one_push_into_a_big_bucket_invalidates_a_handful(
    hub, thread, client, tmp_path  # noqa: ANN001
) -> None:
    _, key = new_bucket(hub, "diff", thread=thread)
    files = [(f"f{i:04d}", io.BytesIO(b"%d" % i)) for i in range(N)]
    files += [("a/x", io.BytesIO(b"a")), ("b/y", io.BytesIO(b"b"))]
    client.push_paths(key, files)
    with mounted(hub, tmp_path, key, thread=thread, poll=0.5) as m:
        _look_at_everything(m.path)
        assert (m.path / "f0007").read_bytes() == b"7"
        before = m.status()

        # 1. A new top-level file: only the bucket root's listing changed.
        (tmp_path / "new.txt").write_bytes(b"pushed by the CLI")
        m.cli("bucket", "push", key, str(tmp_path / "new.txt"), "new.txt",
              "--api", hub.address, "--thread", thread)
        after = _wait_for(m, m.path / "new.txt", b"pushed by the CLI")
        assert after["diffs"] > before["diffs"], after
        # The root directory is listed again; "a" and "b" have the same CIDs and are kept.
        assert after["relisted_dirs"] - before["relisted_dirs"] == 1, after
        # new.txt's entry (and the root inode at most), not 1,000 entries.
        assert 1 <= after["invalidations"] - before["invalidations"] <= 4, after
        assert sorted(os.listdir(m.path / "a")) == ["x"]

        # 2. A file replaced inside "a": the root and "a" are listed again, never "b".
        (tmp_path / "x2").write_bytes(b"new x")
        m.cli("bucket", "push", key, str(tmp_path / "x2"), "a/x",
              "--api", hub.address, "--thread", thread)
        st = _wait_for(m, m.path / "a" / "x", b"new x")
        assert st["relisted_dirs"] - after["relisted_dirs"] == 2, st
        assert 1 <= st["invalidations"] - after["invalidations"] <= 4, st
        assert (m.path / "b" / "y").read_bytes() == b"b"
        assert len(os.listdir(m.path)) == N + 3  # f*, a, b, new.txt (the seed is hidden)


@pytest.mark.timeout(120)
def test_removal_and_type_change_elsewhere_show_up(
    hub, thread, client, tmp_path  # noqa: ANN001
) -> None:
    _, key = new_bucket(hub, "diff2", thread=thread)
    client.push_paths(key, [("d/inner/z", io.BytesIO(b"z")), ("keep", io.BytesIO(b"k"))])
    with mounted(hub, tmp_path, key, thread=thread, poll=0.5) as m:
        _look_at_everything(m.path)
        assert (m.path / "d" / "inner" / "z").read_bytes() == b"z"
        # Elsewhere: the whole directory d goes, and a file named d arrives in its place.
        m.cli("bucket", "rm", key, "d", "--api", hub.address, "--thread", thread)
        (tmp_path / "d").write_bytes(b"now a file")
        m.cli("bucket", "push", key, str(tmp_path / "d"), "d",
              "--api", hub.address, "--thread", thread)
        st = _wait_for(m, m.path / "d", b"now a file")
        assert st["diffs"] >= 1, st
        assert not (m.path / "d").is_dir()
        assert (m.path / "keep").read_bytes() == b"k"
