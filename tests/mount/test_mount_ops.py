"""Every operation of the mount, through a real FUSE mount of a real hub's bucket."""

from __future__ import annotations

import ctypes
import errno
import hashlib
import io
import os
import stat
import time
from pathlib import Path

import pytest
from mountproc import mounted, new_bucket

pytestmark = pytest.mark.timeout(240)

_libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD = -100


def renameat2(src: Path, dst: Path, flags: int) -> None:
    """renameat2(2) (not in Python's os module)."""
    if _libc.renameat2(AT_FDCWD, os.fsencode(src), AT_FDCWD, os.fsencode(dst), flags) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def errno_of(fn, *args) -> int:  # noqa: ANN001
    try:
        fn(*args)
    except OSError as exc:
        return exc.errno
    raise AssertionError(f"{fn.__name__}{args} did not fail")


@pytest.fixture(scope="module")
def bucket(hub, thread) -> str:  # noqa: ANN001
    return new_bucket(hub, "ops", thread=thread)[1]


@pytest.fixture(scope="module")
def mnt(hub, thread, bucket, tmp_path_factory):  # noqa: ANN001, ANN201
    tmp = tmp_path_factory.mktemp("m")
    with mounted(hub, tmp, bucket, thread=thread, poll=0.5, writeback_delay=0.2) as m:
        yield m


def pull(client, key: str, path: str) -> bytes:  # noqa: ANN001
    out = io.BytesIO()
    client.pull_path(key, path, out)
    return out.getvalue()


def test_write_close_reaches_the_bucket(mnt, client, bucket) -> None:  # noqa: ANN001
    data = os.urandom(600_000)
    (mnt.path / "hello.bin").write_bytes(data)
    assert (mnt.path / "hello.bin").read_bytes() == data
    mnt.wait_synced()
    names = {i.name for i in client.list_path(bucket, "").item.items}
    assert "hello.bin" in names
    assert pull(client, bucket, "hello.bin") == data
    st = os.stat(mnt.path / "hello.bin")
    assert st.st_size == len(data) and stat.S_ISREG(st.st_mode)
    cid = os.getxattr(mnt.path / "hello.bin", "user.bucketfs.cid").decode()
    assert cid == client.list_path(bucket, "hello.bin").item.cid
    root = os.getxattr(mnt.path, "user.bucketfs.root").decode()
    assert root == client.root(bucket).path.rsplit("/", 1)[1]


def test_fsync_returns_once_the_bucket_has_it(mnt, client, bucket) -> None:  # noqa: ANN001
    with open(mnt.path / "synced.txt", "wb") as f:
        f.write(b"durable")
        f.flush()
        os.fsync(f.fileno())
        # Still open, no delay passed: fsync alone must have pushed it.
        assert pull(client, bucket, "synced.txt") == b"durable"


def test_random_writes_append_sparse_truncate(mnt, client, bucket) -> None:  # noqa: ANN001
    p = mnt.path / "edit.bin"
    model = bytearray(os.urandom(700_000))
    p.write_bytes(model)
    mnt.wait_synced()  # now edit a file whose base is in the bucket
    with open(p, "r+b") as f:
        for off, n in [(5, 10), (262_140, 9), (699_990, 30), (1_500_000, 4)]:
            chunk = os.urandom(n)
            f.seek(off)
            f.write(chunk)
            if off > len(model):
                model += bytes(off - len(model))  # sparse hole reads as zeros
            model[off : off + n] = chunk
        f.truncate(1_000_000)
        del model[1_000_000:]
    with open(p, "ab") as f:
        f.write(b"tail")
    model += b"tail"
    os.truncate(p, 300_000)
    del model[300_000:]
    os.truncate(p, 400_000)  # extension after a shrink: zeros, not the old bytes
    model += bytes(100_000)
    assert p.read_bytes() == bytes(model)
    mnt.wait_synced()
    pulled = pull(client, bucket, "edit.bin")
    assert hashlib.sha256(pulled).digest() == hashlib.sha256(model).digest()


def test_directories_and_their_errors(mnt) -> None:  # noqa: ANN001
    d = mnt.path / "dir"
    os.mkdir(d, 0o750)
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o750
    (d / "f").write_text("x")
    assert errno_of(os.mkdir, d) == errno.EEXIST
    assert errno_of(os.rmdir, d) == errno.ENOTEMPTY
    assert errno_of(os.rmdir, d / "f") == errno.ENOTDIR
    assert errno_of(os.unlink, d) == errno.EISDIR
    assert errno_of(os.stat, d / "missing") == errno.ENOENT
    assert errno_of(os.mkdir, d / "f" / "sub") == errno.ENOTDIR
    assert errno_of(open, d / ("n" * 256), "w") == errno.ENAMETOOLONG
    assert errno_of(os.mkdir, d / ("n" * 256)) == errno.ENAMETOOLONG
    (d / ("n" * 255)).write_text("longest name")
    assert errno_of(os.rename, d, d / "inside") == errno.EINVAL
    assert errno_of(os.link, d / "f", d / "hard") in (errno.EPERM, errno.ENOTSUP)
    os.unlink(d / "f")
    os.unlink(d / ("n" * 255))
    os.rmdir(d)
    assert not d.exists()


def test_rename_files_dirs_and_flags(mnt, client, bucket) -> None:  # noqa: ANN001
    top = mnt.path / "ren"
    os.mkdir(top)
    (top / "a").write_text("A")
    (top / "b").write_text("B")
    os.rename(top / "a", top / "b")  # over an existing file (editors' atomic save)
    assert (top / "b").read_text() == "A" and not (top / "a").exists()
    os.makedirs(top / "d1" / "deep")
    (top / "d1" / "deep" / "f").write_text("deep")
    mnt.wait_synced()
    os.mkdir(top / "empty")
    os.rename(top / "d1", top / "empty")  # a whole directory, over an empty one
    assert (top / "empty" / "deep" / "f").read_text() == "deep"
    os.mkdir(top / "full")
    (top / "full" / "x").write_text("x")
    assert errno_of(os.rename, top / "empty", top / "full") == errno.ENOTEMPTY
    assert errno_of(os.rename, top / "b", top / "full") == errno.EISDIR
    assert errno_of(os.rename, top / "full", top / "b") == errno.ENOTDIR
    (top / "c").write_text("C")
    assert errno_of(renameat2, top / "b", top / "c", 1) == errno.EEXIST  # NOREPLACE
    mnt.wait_synced()
    renameat2(top / "b", top / "c", 2)  # EXCHANGE
    assert (top / "b").read_text() == "C" and (top / "c").read_text() == "A"
    renameat2(top / "c", top / "new", 1)
    assert (top / "new").read_text() == "A"
    mnt.wait_synced()
    listed = {i.name for i in client.list_path(bucket, "ren").item.items}
    assert listed == {"b", "new", "empty", "full"}
    assert pull(client, bucket, "ren/empty/deep/f") == b"deep"


def test_symlinks_modes_times_and_xattrs(mnt) -> None:  # noqa: ANN001
    d = mnt.path / "meta"
    os.mkdir(d)
    (d / "t.txt").write_text("target")
    os.symlink("t.txt", d / "ln")
    assert os.readlink(d / "ln") == "t.txt"
    assert (d / "ln").read_text() == "target"
    assert stat.S_ISLNK(os.lstat(d / "ln").st_mode)
    os.chmod(d / "t.txt", 0o600)
    os.utime(d / "t.txt", ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    mnt.wait_synced()
    st = os.stat(d / "t.txt")
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_mtime_ns == 1_600_000_000_000_000_000
    assert errno_of(os.chown, d / "t.txt", os.getuid() + 1, -1) in (errno.EPERM, errno.ENOTSUP)
    os.chown(d / "t.txt", os.getuid(), os.getgid())  # to ourselves: fine
    assert os.listxattr(d / "t.txt") == ["user.bucketfs.cid"]
    assert errno_of(os.setxattr, d / "t.txt", "user.bucketfs.cid", b"x") == errno.EPERM
    assert errno_of(os.setxattr, d / "t.txt", "user.other", b"x") == errno.ENOTSUP
    sv = os.statvfs(mnt.path)
    assert sv.f_namemax == 255 and sv.f_bavail > 0


def test_attributes_survive_a_remount(hub, thread, tmp_path) -> None:  # noqa: ANN001
    _, key = new_bucket(hub, "remount", thread=thread)
    with mounted(hub, tmp_path, key, thread=thread, name="one", writeback_delay=0) as m:
        (m.path / "run.sh").write_text("#!/bin/sh\n")
        os.chmod(m.path / "run.sh", 0o755)
        os.utime(m.path / "run.sh", ns=(1_500_000_000_000_000_000,) * 2)
        os.symlink("run.sh", m.path / "link")
        os.mkdir(m.path / "private", 0o700)
    with mounted(hub, tmp_path, key, thread=thread, name="two") as m:
        st = os.stat(m.path / "run.sh")
        assert stat.S_IMODE(st.st_mode) == 0o755
        assert st.st_mtime_ns == 1_500_000_000_000_000_000
        assert os.readlink(m.path / "link") == "run.sh"
        assert stat.S_IMODE(os.stat(m.path / "private").st_mode) == 0o700
        assert (m.path / "run.sh").read_text() == "#!/bin/sh\n"


def test_read_only_mount_refuses_writes(hub, thread, bucket, tmp_path) -> None:  # noqa: ANN001
    with mounted(hub, tmp_path, bucket, thread=thread, name="ro", ro=True) as m:
        assert errno_of(open, m.path / "nope", "w") == errno.EROFS
        assert errno_of(os.mkdir, m.path / "nope") == errno.EROFS


def test_unlink_while_open_and_umount_flushes(hub, thread, client, tmp_path) -> None:  # noqa: ANN001
    _, key = new_bucket(hub, "flush", thread=thread)
    with mounted(hub, tmp_path, key, thread=thread, writeback_delay=3600) as m:
        f = open(m.path / "gone", "w+b")  # noqa: SIM115
        f.write(b"temp")
        os.unlink(m.path / "gone")
        f.seek(0)
        assert f.read() == b"temp"  # the open file still works after unlink
        f.close()
        (m.path / "kept.txt").write_text("waits for umount")
        time.sleep(0.2)
        assert m.status()["dirty_files"] == 1  # the hour-long delay holds it back
    # `bucketfs umount` (run by mounted()) uploaded it before unmounting.
    names = {i.name for i in client.list_path(key, "").item.items}
    assert "kept.txt" in names and "gone" not in names
    assert pull(client, key, "kept.txt") == b"waits for umount"


def test_editor_atomic_save_and_temp_rename(mnt, client, bucket) -> None:  # noqa: ANN001
    d = mnt.path / "save"
    os.mkdir(d)
    (d / "notes.txt").write_text("v1")
    mnt.wait_synced()
    for version in ("v2", "v3"):  # write a temp file, fsync, rename over the original
        with open(d / ".notes.txt.tmp", "w") as f:
            f.write(version)
            f.flush()
            os.fsync(f.fileno())
        os.rename(d / ".notes.txt.tmp", d / "notes.txt")
        assert (d / "notes.txt").read_text() == version
    # rsync/browser style: a never-uploaded temp name renamed before its upload
    (d / ".part").write_bytes(b"download")
    os.rename(d / ".part", d / "file.bin")
    mnt.wait_synced()
    listed = {i.name for i in client.list_path(bucket, "save").item.items}
    assert listed == {"notes.txt", "file.bin"}
    assert pull(client, bucket, "save/notes.txt") == b"v3"
    assert pull(client, bucket, "save/file.bin") == b"download"
