"""POSIX details on a real mount: permissions for a second user, name lengths, odd names,
O_EXCL races, flock/fcntl locks, st_blocks, directory st_nlink (and ``find``), statfs/``df``.

The module's mount uses ``-o allow_other,default_permissions`` and lives in a world-searchable
directory (pytest's own temp root is 0700), so the unprivileged user ``nobody`` can reach it.
Commands run as that user through ``setpriv`` with the system Python (the test's virtualenv
may not be readable by ``nobody``); they print the errno name of what they tried.
"""

from __future__ import annotations

import errno
import io
import json
import multiprocessing
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from posix_helpers import mounted, new_bucket, remount

pytestmark = pytest.mark.timeout(180)

NOBODY = 65534
SYS_PY = shutil.which("python3", path="/usr/bin:/bin") or "/usr/bin/python3"


@pytest.fixture(scope="module")
def shared_tmp() -> Iterator[Path]:
    """A 0755 directory under /tmp for mount points another user must be able to reach."""
    d = Path(tempfile.mkdtemp(prefix="bucketfs-posix-"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        # Runs after every mount in it was unmounted (module fixtures end in reverse order);
        # never recurse into one still mounted: that would delete files in the bucket.
        # (mount points decoded: a raw field would hide one with a space, and rmtree would
        # then recurse into it)
        from bucketfs.mount import mountinfo

        live = [m.point for m in mountinfo.mounts() if m.point.startswith(str(d))]
        if live:
            print(f"not removing {d}: still mounted: {live}")
        else:
            shutil.rmtree(d)


@pytest.fixture(scope="module")
def bucket(hub, thread) -> str:  # noqa: ANN001
    return new_bucket(hub, "details", thread=thread)[1]


@pytest.fixture(scope="module")
def mnt(hub, thread, bucket, shared_tmp):  # noqa: ANN001, ANN201
    with mounted(hub, shared_tmp, bucket, thread=thread, poll=0.5, writeback_delay=0.2,
                 allow_other=True, default_permissions=True) as m:
        yield m


# -- permissions for a second user ---------------------------------------------------------

_AS_USER = textwrap.dedent("""
    import errno, json, os, sys
    out = {}
    os.umask(int(sys.argv[2], 8))
    for what, path in json.loads(sys.argv[1]):
        try:
            if what == "read":
                with open(path, "rb") as f:
                    f.read()
            elif what == "write":
                with open(path, "ab") as f:
                    f.write(b"x")
            elif what == "create":
                with open(path, "xb") as f:
                    f.write(b"x")
            elif what == "mkdir":
                os.mkdir(path)
            elif what == "unlink":
                os.unlink(path)
            elif what == "list":
                os.listdir(path)
            elif what == "stat":
                os.stat(path)
            out[what + " " + path] = "ok"
        except OSError as exc:
            out[what + " " + path] = errno.errorcode.get(exc.errno, str(exc.errno))
    print(json.dumps(out))
""")


def as_nobody(*steps: tuple[str, Path], umask: int = 0o022) -> dict[str, str]:
    """Run file operations as uid/gid 65534 (no supplementary groups); errno name per step."""
    args = json.dumps([(w, str(p)) for w, p in steps])
    res = subprocess.run(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
         SYS_PY, "-c", _AS_USER, args, oct(umask)],
        capture_output=True, text=True, timeout=60, cwd="/",
    )
    assert res.returncode == 0, res.stderr
    out = {}
    for step, result in json.loads(res.stdout).items():
        what, path = step.split(" ", 1)
        out[f"{what} {Path(path).name}"] = result  # "read /long/path/secret" → "read secret"
    return out


def test_permissions_for_another_user(mnt) -> None:  # noqa: ANN001
    """With allow_other + default_permissions the kernel enforces the mode bits: nobody may
    read a 0644 file but not a 0600 one, may not write either, may not create in a 0555
    directory or the (0755, root's) mount root, and may create in a 0777 directory."""
    p = mnt.path / "perm"
    p.mkdir()
    (p / "secret").write_text("s")
    (p / "secret").chmod(0o600)
    (p / "public").write_text("p")
    (p / "public").chmod(0o644)
    (p / "ro").mkdir()
    (p / "ro").chmod(0o555)
    (p / "open").mkdir()
    (p / "open").chmod(0o777)
    got = as_nobody(("stat", p / "secret"), ("read", p / "secret"), ("read", p / "public"),
                    ("write", p / "public"), ("create", p / "ro" / "new"),
                    ("mkdir", p / "ro" / "newdir"), ("create", p / "rootfile"),
                    ("list", p / "ro"), ("create", p / "open" / "mine"))
    assert got == {
        "stat secret": "ok", "read secret": "EACCES", "read public": "ok",
        "write public": "EACCES", "create new": "EACCES", "mkdir newdir": "EACCES",
        "create rootfile": "EACCES", "list ro": "ok", "create mine": "ok",
    }
    # Denied calls changed nothing.
    assert sorted(os.listdir(p / "ro")) == []
    assert (p / "public").read_text() == "p"
    assert not (p / "rootfile").exists()


def test_files_of_another_user_belong_to_the_mount_owner(mnt) -> None:  # noqa: ANN001
    """A bucket stores no owners: what another user creates belongs to the user who mounted
    (here root), and only the group/other bits apply to its creator afterwards. So with the
    usual umask 022 the creator cannot write its own file a second time; with umask 000 the
    file is created 0666 and it can."""
    p = mnt.path / "owners"
    p.mkdir()
    p.chmod(0o777)
    got = as_nobody(("create", p / "a"), ("write", p / "a"))
    assert got == {"create a": "ok", "write a": "EACCES"}
    st = os.stat(p / "a")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (os.getuid(), os.getgid(), 0o644)
    got = as_nobody(("create", p / "b"), ("write", p / "b"), umask=0)
    assert got == {"create b": "ok", "write b": "ok"}
    assert stat.S_IMODE(os.stat(p / "b").st_mode) == 0o666
    assert (p / "b").read_bytes() == b"xx"


def test_other_users_are_kept_out_without_allow_other(hub, thread, bucket,  # noqa: ANN001
                                                       shared_tmp) -> None:
    """Without allow_other, FUSE refuses every other user at the mount point itself."""
    with mounted(hub, shared_tmp, bucket, thread=thread, name="private", poll=0.5) as m:
        assert as_nobody(("stat", m.path)) == {"stat private": "EACCES"}


# -- names -----------------------------------------------------------------------------------

def errno_of(fn: Any, *args: Any) -> int:  # noqa: ANN401
    try:
        fn(*args)
    except OSError as exc:
        return exc.errno
    raise AssertionError(f"{fn.__name__}{args} did not fail")


def test_name_length_limits(mnt, client, hub, shared_tmp) -> None:  # noqa: ANN001
    """255-byte names (ASCII and multi-byte UTF-8) work for files, directories, symlinks and
    renames; 256 bytes give ENAMETOOLONG and create nothing."""
    d = mnt.path / "names"
    d.mkdir()
    ascii255 = "a" * 255
    utf255 = "é" * 127 + "x"  # 2 bytes each: 255 bytes, 128 characters
    assert len(utf255.encode()) == 255
    (d / ascii255).write_bytes(b"ascii")
    (d / utf255).mkdir()
    (d / utf255 / ("l" * 255)).symlink_to(ascii255)
    os.rename(d / ascii255, d / ("b" * 255))
    too_long = "c" * 256
    assert errno_of(open, d / too_long, "xb") == errno.ENAMETOOLONG
    assert errno_of(os.mkdir, d / too_long) == errno.ENAMETOOLONG
    assert errno_of(os.symlink, "x", d / too_long) == errno.ENAMETOOLONG
    assert errno_of(os.rename, d / ("b" * 255), d / too_long) == errno.ENAMETOOLONG
    assert errno_of(os.mkdir, d / ("é" * 128)) == errno.ENAMETOOLONG  # 128 chars, 256 bytes
    assert sorted(os.listdir(d)) == sorted(["b" * 255, utf255])
    mnt.wait_synced()
    with remount(hub, shared_tmp, mnt, "fresh-names") as fresh:
        fd = fresh.path / "names"
        assert sorted(os.listdir(fd)) == sorted(["b" * 255, utf255])
        assert (fd / ("b" * 255)).read_bytes() == b"ascii"
        assert os.readlink(fd / utf255 / ("l" * 255)) == ascii255
    assert sorted(i.name for i in client.list_path(mnt.key, "names").item.items) == sorted(
        ["b" * 255, utf255])


ODD_NAMES = [
    "with space", " leading space", "trailing space ", "new\nline", "tab\there", "-leading-dash",
    "--", "-", "emoji 🎉📁", "e\u0301 combining (NFD)", "\u00e9 precomposed (NFC)",
    "日本語のファイル", "quote'\"", "back\\slash", "star*?[x]", "100% $HOME #hash", ".hidden",
    "..double-dot-prefix", "...", "semi;colon|pipe&amp<>", "\u200bzero-width", "ÄÖÜß",
]


def test_odd_names_round_trip(mnt, client, hub, shared_tmp) -> None:  # noqa: ANN001
    """UTF-8 and odd-but-legal names (spaces, newline, tab, leading dashes, emoji, combining
    characters — NFC and NFD spellings of é are two different files) survive the mount, a
    fresh mount and the hub, as files and as directories."""
    d = mnt.path / "odd"
    d.mkdir()
    for name in ODD_NAMES:
        (d / name).write_bytes(name.encode())
        (d / ("dir " + name)).mkdir()
        (d / ("dir " + name) / name).write_bytes(b"inner " + name.encode())
    want = sorted(ODD_NAMES + ["dir " + n for n in ODD_NAMES])
    assert sorted(os.listdir(d)) == want
    # `ls` and `find` cope too (names with a newline are printed quoted / NUL-separated).
    found = subprocess.run(["find", d, "-mindepth", "1", "-maxdepth", "1", "-print0"],
                           capture_output=True, check=True).stdout.split(b"\0")
    assert sorted(Path(os.fsdecode(f)).name for f in found if f) == want
    mnt.wait_synced()
    with remount(hub, shared_tmp, mnt, "fresh-odd") as fresh:
        fd = fresh.path / "odd"
        assert sorted(os.listdir(fd)) == want
        for name in ODD_NAMES:
            assert (fd / name).read_bytes() == name.encode(), repr(name)
            assert (fd / ("dir " + name) / name).read_bytes() == b"inner " + name.encode()
    items = client.list_path(mnt.key, "odd").item.items
    assert sorted(i.name for i in items) == want
    for name in ODD_NAMES:
        out = io.BytesIO()
        client.pull_path(mnt.key, f"odd/{name}", out)
        assert out.getvalue() == name.encode(), repr(name)


# -- O_EXCL races ------------------------------------------------------------------------------

def _excl_worker(d: str, names: list[str], me: int, barrier: Any, q: Any) -> None:  # noqa: ANN401
    """Try to create every name with O_EXCL; report which ones this process won."""
    won, lost, other = [], [], []
    barrier.wait()
    for name in names:
        try:
            fd = os.open(os.path.join(d, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            lost.append(name)
            continue
        except OSError as exc:  # any other errno is a failure the test must see
            other.append(f"{name}: {exc!r}")
            continue
        os.write(fd, str(me).encode())
        os.close(fd)
        won.append(name)
    q.put((me, won, lost, other))


def test_o_excl_race_between_two_processes(mnt) -> None:  # noqa: ANN001
    """Two processes create the same 40 names with O_CREAT|O_EXCL at the same moment: each
    name has exactly one winner, the loser gets EEXIST, and the file holds the winner's id."""
    d = mnt.path / "excl"
    d.mkdir()
    names = [f"lock{i:02d}" for i in range(40)]
    ctx = multiprocessing.get_context("fork")
    barrier, q = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_excl_worker, args=(str(d), names, i, barrier, q))
             for i in (1, 2)]
    for p in procs:
        p.start()
    try:
        results = [q.get(timeout=120) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
                p.join()
    won: dict[str, int] = {}
    for me, w, lost, other in results:
        assert other == [], other
        assert sorted(w + lost) == names
        for name in w:
            assert name not in won, f"{name} created by both processes"
            won[name] = me
    assert sorted(won) == names
    for name, me in won.items():
        assert (d / name).read_text() == str(me)


# -- locks -------------------------------------------------------------------------------------

_LOCK_HOLDER = textwrap.dedent("""
    import fcntl, sys
    kind, path = sys.argv[1], sys.argv[2]
    f = open(path, "r+b")
    if kind == "flock":
        fcntl.flock(f, fcntl.LOCK_EX)
    else:
        fcntl.lockf(f, fcntl.LOCK_EX, 100, 0)  # bytes 0-99 only
    print("locked", flush=True)
    sys.stdin.readline()  # hold until told to go
""")


@pytest.mark.parametrize("kind", ["flock", "fcntl"])
def test_locks_conflict_between_processes(mnt, kind: str) -> None:  # noqa: ANN001
    """A lock held by another process on this host blocks ours (LOCK_NB / F_SETLK fail with
    EWOULDBLOCK / EAGAIN); a byte-range lock leaves other ranges free; once the holder lets
    go, the lock is ours. The kernel enforces these (bucketfs implements no lock operations),
    so they hold between processes of this host only."""
    import fcntl

    path = mnt.path / f"locked-{kind}"
    path.write_bytes(b"0" * 1000)
    holder = subprocess.Popen([sys.executable, "-c", _LOCK_HOLDER, kind, str(path)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline().strip() == "locked"
        with open(path, "r+b") as f:
            if kind == "flock":
                with pytest.raises(BlockingIOError):
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                with pytest.raises(BlockingIOError):
                    fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
            else:
                with pytest.raises(OSError) as exc:
                    fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 50)
                assert exc.value.errno in (errno.EAGAIN, errno.EACCES)
                fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB, 100, 500)  # a disjoint range
                fcntl.lockf(f, fcntl.LOCK_UN, 100, 500)
            holder.stdin.write("go\n")
            holder.stdin.flush()
            holder.wait(timeout=30)
            if kind == "flock":
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(f, fcntl.LOCK_UN)
            else:
                fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 50)
                fcntl.lockf(f, fcntl.LOCK_UN, 10, 50)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    assert holder.returncode == 0


# -- st_blocks, st_nlink, find, statfs -------------------------------------------------------

def test_st_blocks_cover_the_size(mnt, hub, shared_tmp) -> None:  # noqa: ANN001
    """st_blocks * 512 >= st_size for written (non-sparse) files, before and after a remount,
    and ``du`` adds up to at least the apparent size."""
    d = mnt.path / "blocks"
    d.mkdir()
    sizes = [0, 1, 511, 512, 513, 4096, 262_143, 262_144, 262_145, 1_000_001]
    for n in sizes:
        (d / f"f{n}").write_bytes(os.urandom(n))

    def check(root: Path) -> None:
        for n in sizes:
            st = os.stat(root / f"f{n}")
            assert st.st_size == n
            assert st.st_blocks * 512 >= n, (n, st.st_blocks)
            assert st.st_blocks * 512 < n + 256 * 1024, (n, st.st_blocks)  # not absurd either
        du = subprocess.run(["du", "-s", "-B1", root], capture_output=True, text=True,
                            check=True).stdout.split()[0]
        assert int(du) >= sum(sizes)

    check(d)
    mnt.wait_synced()
    with remount(hub, shared_tmp, mnt, "fresh-blocks") as fresh:
        check(fresh.path / "blocks")


def test_directory_nlink_and_find(mnt, tmp_path) -> None:  # noqa: ANN001
    """Whatever st_nlink a directory reports (bucketfs: 2, see the report), ``find`` must see
    every entry of a nested tree — GNU find's leaf optimisation trusts st_nlink on some
    filesystems and would skip subdirectories if it trusted a wrong count here."""
    src = tmp_path / "tree"
    for a in range(3):
        for b in range(3):
            leaf = src / f"a{a}" / f"b{b}" / "c"
            leaf.mkdir(parents=True)
            (leaf / "f.txt").write_text(f"{a}{b}")
            (src / f"a{a}" / f"b{b}" / "g.txt").write_text("g")
    shutil.copytree(src, mnt.path / "tree")

    def find(root: Path, *args: str) -> list[str]:
        out = subprocess.run(["find", root, *args, "-print0"], capture_output=True,
                             check=True).stdout.split(b"\0")
        return sorted(os.path.relpath(os.fsdecode(p), root) for p in out if p)

    assert find(mnt.path / "tree") == find(src)
    assert find(mnt.path / "tree", "-type", "d") == find(src, "-type", "d")
    assert find(mnt.path / "tree", "-type", "f", "-name", "f.txt") == find(
        src, "-type", "f", "-name", "f.txt")
    for p in (mnt.path / "tree", mnt.path / "tree" / "a0"):
        st = os.stat(p)
        assert stat.S_ISDIR(st.st_mode) and st.st_nlink >= 1


def test_statfs_and_df(mnt) -> None:  # noqa: ANN001
    """statvfs gives usable numbers (block size, free space, NAME_MAX 255) and ``df`` on the
    mount point exits 0 with a nonzero size."""
    sv = os.statvfs(mnt.path)
    assert sv.f_bsize > 0 and sv.f_frsize > 0
    assert sv.f_blocks > 0 and 0 < sv.f_bavail <= sv.f_blocks
    assert sv.f_namemax == 255
    res = subprocess.run(["df", "-P", "-B1", mnt.path], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    fields = res.stdout.splitlines()[-1].split()
    assert int(fields[1]) > 0 and int(fields[3]) > 0, res.stdout
    res = subprocess.run(["df", "-i", mnt.path], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
