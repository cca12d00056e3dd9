"""Big files written through the mount are read back from the mount's own cache, not the hub.

A file too big to copy into the block cache after its upload keeps its dirty data file as a
whole-file copy (hard link, :mod:`bucketfs.mount.filecopies`), so reading it back right after
writing it costs the hub nothing — also after a remount. Real hub, real mounts; and the copy
store itself on real files (its bound and its eviction order, also across a restart).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from mountproc import mounted, new_bucket, sha256_file, wait_until

from bucketfs.mount.filecopies import FileCopies
from bucketfs.mount.fs import ADOPT_MAX

MiB = 1 << 20


def _blocks(mib: int, seed: bytes) -> Iterator[bytes]:
    for i in range(mib):
        yield hashlib.shake_256(seed + i.to_bytes(4, "big")).digest(MiB)


def _sha(blocks: Iterator[bytes]) -> str:
    h = hashlib.sha256()
    for b in blocks:
        h.update(b)
    return h.hexdigest()


def _write(path: Path, mib: int, seed: bytes) -> str:
    """``mib`` MiB of distinct blocks written through a write-only descriptor and fsynced;
    their sha256."""
    with open(path, "wb", buffering=0) as f:
        for block in _blocks(mib, seed):
            f.write(block)
        os.fsync(f.fileno())
    return _sha(_blocks(mib, seed))


@pytest.mark.timeout(300)
def test_big_file_is_read_back_without_the_hub(hub, thread, tmp_path) -> None:  # noqa: ANN001
    _, key = new_bucket(hub, "copies", thread=thread)
    mib = ADOPT_MAX // MiB + 8
    with mounted(hub, tmp_path, key, thread=thread) as m:
        f = m.path / "big.bin"
        want = _write(f, mib, b"first")
        m.wait_synced()
        cid = os.getxattr(f, "user.bucketfs.cid").decode()
        copy = m.cache_dir / key / "reads-copies" / cid
        assert copy.stat().st_size == mib * MiB
        before = m.status()["fetched_bytes"]
        assert sha256_file(f) == want
        assert m.status()["fetched_bytes"] - before < MiB  # (at most the file's root node)

        # A change makes a new version, with a base: not kept whole, read right all the same.
        with open(f, "r+b") as g:
            g.seek(5 * MiB)
            g.write(b"changed")
        m.wait_synced()
        assert os.getxattr(f, "user.bucketfs.cid").decode() != cid
        patched = (b"changed" + b[7:] if i == 5 else b
                   for i, b in enumerate(_blocks(mib, b"first")))
        assert sha256_file(f) == _sha(patched)

    # After a remount, a file written from scratch again is read from its copy.
    with mounted(hub, tmp_path, key, thread=thread) as m:
        g = m.path / "again.bin"
        want3 = _write(g, mib, b"again")
        m.wait_synced()
    with mounted(hub, tmp_path, key, thread=thread) as m:
        before = m.status()["fetched_bytes"]
        assert sha256_file(m.path / "again.bin") == want3
        assert m.status()["fetched_bytes"] - before < MiB


def _file(path: Path, size: int) -> str:
    path.write_bytes(os.urandom(size))
    return str(path)


def test_copies_are_bounded_least_recently_used_first(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    copies = FileCopies(tmp_path / "copies", limit=3000)
    for name in ("a", "b", "c"):
        assert copies.keep(name, _file(src / name, 1000), 1000)
    assert copies.read("a", 1000, 10, 5) == (src / "a").read_bytes()[10:15]  # a: most recent
    assert copies.keep("d", _file(src / "d", 1000), 1000)  # evicts b, the least recent
    assert copies.read("b", 1000, 0, 10) is None
    assert sorted(p.name for p in (tmp_path / "copies").iterdir()) == ["a", "c", "d"]
    assert copies.volume() == 3000
    assert not copies.keep("huge", _file(src / "huge", 4000), 4000)  # never fits: not kept

    # The directory is the index: a restart finds the copies (their data files dropped, as
    # the dirty store does), and a smaller bound evicts the oldest kept first.
    want_d = (src / "d").read_bytes()
    shutil.rmtree(src)
    os.utime(tmp_path / "copies" / "c", ns=(1, 1))
    again = FileCopies(tmp_path / "copies", limit=2000)
    assert again.read("c", 1000, 0, 10) is None
    assert again.read("d", 1000, 990, 100) == want_d[990:]  # short at EOF


def test_a_copy_still_linked_to_a_data_file_is_dropped_at_start(tmp_path: Path) -> None:
    # A stop between the link and the dirty store's drop: the record comes back dirty and may
    # be written in place, which would change the copy's bytes under its CID.
    copies = FileCopies(tmp_path / "copies", limit=1 << 20)
    data = _file(tmp_path / "data-file", 100)
    assert copies.keep("x", data, 100)
    again = FileCopies(tmp_path / "copies", limit=1 << 20)
    assert again.read("x", 100, 0, 10) is None
    assert not (tmp_path / "copies" / "x").exists() and Path(data).exists()
    assert again.volume() == 0


def test_a_data_file_shorter_than_the_file_reads_zeros_past_its_end(tmp_path: Path) -> None:
    copies = FileCopies(tmp_path / "copies", limit=1 << 20)
    data = _file(tmp_path / "short", 100)
    assert copies.keep("x", data, 300)  # 200 bytes of hole at the end
    assert copies.read("x", 300, 50, 1000) == Path(data).read_bytes()[50:] + bytes(200)


@pytest.mark.timeout(120)
def test_mount_raises_the_kernel_readahead(hub, thread, tmp_path) -> None:  # noqa: ANN001
    _, key = new_bucket(hub, "readahead", thread=thread)
    with mounted(hub, tmp_path, key, thread=thread, name="with space") as m:
        dev = os.stat(m.path).st_dev
        bdi = Path(f"/sys/class/bdi/{os.major(dev)}:{os.minor(dev)}/read_ahead_kb")
        # (set by the daemon right after the kernel's INIT, which may be after `mount` returns)
        wait_until(lambda: bdi.read_text().strip() == "1024", "read_ahead_kb = 1024", 30)
