"""Small files closed around the same time go up together: one PushPaths stream, one new root.

No timings: the status counts push streams, and the bucket is checked file by file (content,
mode, mtime), also when one file of the batch is in conflict with a change made elsewhere.
"""

from __future__ import annotations

import io
import os

import pytest
from mountproc import mounted, new_bucket, wait_until

N = 60


def _pull(client, key: str, path: str) -> bytes:  # noqa: ANN001
    out = io.BytesIO()
    client.pull_path(key, path, out)
    return out.getvalue()


@pytest.mark.timeout(120)
def test_small_files_are_uploaded_in_one_stream(hub, thread, client, tmp_path) -> None:  # noqa: ANN001
    _, key = new_bucket(hub, "batch", thread=thread)
    # A write-back delay long enough that every file is due at about the same moment.
    with mounted(hub, tmp_path, key, thread=thread, writeback_delay=3) as m:
        (m.path / "d").mkdir()
        for i in range(N):
            (m.path / "d" / f"f{i:03d}").write_bytes(b"content %d" % i)
        os.chmod(m.path / "d" / "f007", 0o600)
        os.utime(m.path / "d" / "f008", ns=(1_600_000_000_000_000_000,) * 2)
        (m.path / "d" / "empty").write_bytes(b"")
        before = m.status()
        st = m.wait_synced()
        pushes = st["pushes"] - before["pushes"]
        assert st["uploads"] - before["uploads"] == N + 1, st
        # One stream (two if the delay expired around a boundary), never one per file.
        assert 1 <= pushes <= 3, st
    listing = {it.name: it for it in client.list_dir(key, "d").item.items}
    assert len(listing) == N + 1
    assert listing["f007"].mode & 0o777 == 0o600
    assert listing["f008"].mtime == 1_600_000_000_000_000_000
    assert listing["empty"].file_size == 0
    for i in (0, 7, N - 1):
        assert _pull(client, key, f"d/f{i:03d}") == b"content %d" % i


@pytest.mark.timeout(120)
def test_a_conflict_inside_a_batch_keeps_both_versions(
    hub, thread, client, tmp_path  # noqa: ANN001
) -> None:
    _, key = new_bucket(hub, "batch-conflict", thread=thread)
    client.push_path(key, "c.txt", io.BytesIO(b"version 0"))
    with mounted(hub, tmp_path, key, thread=thread, writeback_delay=3, poll=0.5) as m:
        assert (m.path / "c.txt").read_bytes() == b"version 0"
        (m.path / "c.txt").write_bytes(b"local edit")
        for i in range(10):
            (m.path / f"n{i}").write_bytes(b"new %d" % i)
        client.push_path(key, "c.txt", io.BytesIO(b"remote edit"))  # while c.txt is dirty
        st = m.wait_synced()
        assert st["conflicts"] == 1, st
        wait_until(lambda: (m.path / "c.txt").read_bytes() == b"remote edit", "the remote version")
    names = {it.name for it in client.list_dir(key, "").item.items}
    copies = [n for n in names if n.startswith("c.conflict-")]
    assert len(copies) == 1, names
    assert _pull(client, key, copies[0]) == b"local edit"
    assert _pull(client, key, "c.txt") == b"remote edit"
    assert {f"n{i}" for i in range(10)} <= names


@pytest.mark.timeout(120)
def test_the_same_content_arriving_elsewhere_is_not_a_conflict(
    hub, thread, client, tmp_path  # noqa: ANN001
) -> None:
    # What a batch whose answer was lost looks like: the bucket already has the local bytes.
    _, key = new_bucket(hub, "same-content", thread=thread)
    with mounted(hub, tmp_path, key, thread=thread, writeback_delay=3, poll=0.5) as m:
        (m.path / "s.txt").write_bytes(b"identical bytes")
        client.push_path(key, "s.txt", io.BytesIO(b"identical bytes"))
        st = m.wait_synced()
        assert st["conflicts"] == 0, st
        assert (m.path / "s.txt").read_bytes() == b"identical bytes"
    names = {it.name for it in client.list_dir(key, "").item.items}
    assert not [n for n in names if ".conflict-" in n], names


def test_batches_group_small_files_within_limits() -> None:
    from bucketfs.mount.fs import BATCH_MAX_BYTES, BATCH_MAX_FILE, BATCH_MAX_FILES
    from bucketfs.mount.uploader import batches
    from bucketfs.mount.writeback import Record

    def rec(i: int, size: int) -> Record:
        return Record(f"id{i}", f"p{i}", "", 0, 0, "", size, 0o644, 0)

    small = [rec(i, 4096) for i in range(BATCH_MAX_FILES + 10)]
    big = rec(-1, BATCH_MAX_FILE + 1)
    out = list(batches([*small[:5], big, *small[5:]]))
    # Small files in streams of at most BATCH_MAX_FILES, in order; the big file on its own.
    assert [len(b) for b in out] == [BATCH_MAX_FILES, 10, 1]
    assert out[-1] == [big]
    assert [r.path for b in out[:2] for r in b] == [r.path for r in small]
    # The byte bound: 1 MiB files fill a stream up to BATCH_MAX_BYTES.
    mib = [rec(i, BATCH_MAX_FILE) for i in range(BATCH_MAX_BYTES // BATCH_MAX_FILE + 1)]
    assert [len(b) for b in batches(mib)] == [BATCH_MAX_BYTES // BATCH_MAX_FILE, 1]
