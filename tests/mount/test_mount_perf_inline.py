"""Small new files are inline: their content lives in memory and then inside their record, with
no data file, and a closed one survives ``kill -9`` of the daemon like any other.

The store-level tests need no kernel; the last one uses a real hub and a real mount.
"""

from __future__ import annotations

import io
import os
import pickle
import uuid
from pathlib import Path

import diskcache
import pytest
from mountproc import kill_daemon, mounted, new_bucket

from bucketfs.mount import writeback
from bucketfs.mount.writeback import CHUNK, INLINE_MAX, DirtyStore, KeyDisk, Record


def _no_base(cid: str, size: int, offset: int, length: int) -> bytes:
    raise AssertionError("a new file has no base to read")


def _data_files(store_dir: Path) -> list[str]:
    return sorted(os.listdir(store_dir / "data"))


@pytest.mark.parametrize("protocol", [4, 5])
def test_key_disk_builds_diskcaches_bytes(tmp_path: Path, protocol: int) -> None:
    disk = KeyDisk(str(tmp_path), pickle_protocol=protocol)
    keys = [("rec", uuid.uuid4().hex) for _ in range(20)]
    keys += [("bad-rec", "x"), ("rec", ""), ("a" * 255, "b" * 255)]
    for key in keys:
        mine, raw = disk.put(key)
        ref, ref_raw = diskcache.Disk.put(disk, key)
        assert (bytes(mine), raw) == (bytes(ref), ref_raw), key
        assert pickle.loads(bytes(mine)) == key
    # Anything else goes the usual way.
    for key in [("é", "x"), ("rec", "x", "y"), "plain", 7]:
        assert disk.put(key) == diskcache.Disk.put(disk, key)


def test_records_saved_by_plain_diskcache_load_and_drop(tmp_path: Path) -> None:
    """A cache directory written before (plain diskcache keys) works as it did."""
    store_dir = tmp_path / "dirty"
    (store_dir / "data").mkdir(parents=True)
    old = diskcache.Cache(str(store_dir), eviction_policy="none", size_limit=2**62,
                          cull_limit=0)
    rec = Record("f" * 32, "a.txt", "", 0, 0, "", 0, 0o644, 1)
    old.set(("rec", rec.file_id), rec.to_json())
    old.close()
    store = DirtyStore(store_dir, _no_base)
    try:
        (again,) = store.load_all()
        assert (again.file_id, again.path) == (rec.file_id, "a.txt")
        store.drop(again)
        assert store.load_all() == []
    finally:
        store.close()


def test_a_small_new_file_is_inline_until_it_grows(tmp_path: Path) -> None:
    store_dir = tmp_path / "dirty"
    store = DirtyStore(store_dir, _no_base)
    try:
        rec = store.new("small.txt", "", 0, 0o644, 1, expect_cid="", save=False)
        store.write(rec, 0, b"hello ")
        store.write(rec, 6, b"world")
        assert store.read(rec, 0, 100) == b"hello world"
        assert _data_files(store_dir) == []  # in memory only
        assert store.load_all() == []  # not saved before close
        store.save_if_changed(rec)  # what close(2) does
        (saved,) = store.load_all()
        assert saved.inline == bytearray(b"hello world") and saved.chunks == []

        # Growing past the inline size spills it into a data file, content intact.
        tail = os.urandom(INLINE_MAX)
        store.write(rec, 11, tail)
        assert store.read(rec, 0, 2 * INLINE_MAX) == b"hello world" + tail
        assert _data_files(store_dir) == [rec.file_id]
        assert rec.inline is None and rec.chunks == [[0, 1]]
        store.truncate(rec, 5)
        assert b"".join(store.iter_content(rec)) == b"hello"
    finally:
        store.close()
    again = DirtyStore(store_dir, _no_base)
    try:
        (loaded,) = again.load_all()
        assert loaded.inline is None and again.read(loaded, 0, 100) == b"hello"
    finally:
        again.close()


def test_truncate_and_sparse_writes_of_an_inline_file(tmp_path: Path) -> None:
    store = DirtyStore(tmp_path / "dirty", _no_base)
    try:
        rec = store.new("s", "", 0, 0o644, 1, expect_cid="", save=False)
        store.write(rec, 100, b"x")  # a hole before it reads as zeros
        assert store.read(rec, 0, 200) == bytes(100) + b"x"
        store.truncate(rec, 50)
        assert rec.size == 50 and store.read(rec, 0, 200) == bytes(50)
        store.truncate(rec, 60)
        assert store.read(rec, 0, 200) == bytes(60)
        assert rec.inline is not None  # still small: still inline
        store.truncate(rec, 2 * CHUNK)  # extending past the inline size spills it
        assert rec.inline is None and rec.size == 2 * CHUNK
        assert store.read(rec, 0, 2 * CHUNK) == bytes(2 * CHUNK)
    finally:
        store.close()


def test_the_inline_budget_sends_new_files_to_data_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writeback, "INLINE_BUDGET", 10_000)
    store_dir = tmp_path / "dirty"
    store = DirtyStore(store_dir, _no_base)
    try:
        a = store.new("a", "", 0, 0o644, 1, expect_cid="", save=False)
        b = store.new("b", "", 0, 0o644, 1, expect_cid="", save=False)
        store.write(a, 0, b"a" * 6_000)
        store.write(b, 0, b"b" * 6_000)  # over the budget: b gets a data file
        assert a.inline is not None and b.inline is None
        assert _data_files(store_dir) == [b.file_id]
        assert store.read(b, 0, 10_000) == b"b" * 6_000
        store.drop(a)  # gives its bytes back
        c = store.new("c", "", 0, 0o644, 1, expect_cid="", save=False)
        store.write(c, 0, b"c" * 6_000)
        assert c.inline is not None
    finally:
        store.close()


@pytest.mark.timeout(180)
def test_closed_small_files_survive_kill_9(hub, thread, client, tmp_path: Path) -> None:  # noqa: ANN001
    """What close() promises holds for inline files: after kill -9 of the daemon, the next
    mount with the same cache uploads every closed file, small (inline) or spilled."""
    _, key = new_bucket(hub, "inline-kill", thread=thread)
    cache = tmp_path / "cache"
    small = {f"s{i}.txt": os.urandom(i * 97) for i in range(12)}  # includes an empty file
    big = os.urandom(INLINE_MAX + 5)
    with mounted(hub, tmp_path, key, thread=thread, cache_dir=cache, writeback_delay=3600,
                 umount=False) as m:
        for name, data in small.items():
            (m.path / name).write_bytes(data)
        with open(m.path / "grown.bin", "wb") as f:  # starts inline, then spills
            f.write(big[:100])
            f.write(big[100:])
        assert m.status()["dirty_files"] == len(small) + 1
        # Only the spilled file has a data file: the small ones are inside their records.
        assert len(os.listdir(cache / key / "dirty" / "data")) == 1
        kill_daemon(m)
    with mounted(hub, tmp_path, key, thread=thread, cache_dir=cache, name="again") as m2:
        m2.wait_synced(timeout=120)
        assert (m2.path / "s5.txt").read_bytes() == small["s5.txt"]

    def pull(path: str) -> bytes:
        out = io.BytesIO()
        client.pull_path(key, path, out)
        return out.getvalue()

    for name, data in small.items():
        assert pull(name) == data, name
    assert pull("grown.bin") == big
