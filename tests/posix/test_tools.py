"""Real tools on a real mount: cp -a, tar, rsync, git, an editor's atomic save, sqlite3, unzip,
shutil.copytree.

Each test runs the tool on its own bucket, waits until the mount has uploaded everything, and
then checks the result twice more: through a FRESH mount (new mount point, empty cache: every
byte comes from the hub) and through the hub itself (ListPath to walk, PullPath per file). All
comparisons are sha256 maps of whole trees (:func:`posix_helpers.tree_digests`) against the
source on local disk.
"""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from posix_helpers import (
    hub_digests,
    mounted,
    new_bucket,
    remount,
    tree_digests,
)

pytestmark = [
    pytest.mark.timeout(240),
]

N_FILES = 240  # "many small files", kept small: each create is a few FUSE round trips


def make_tree(root: Path, n_files: int = N_FILES, seed: int = 7) -> Path:
    """A source tree on local disk: ``n_files`` small files (0–6 KiB) over nested directories,
    two files that span several 256 KiB chunks, an executable, a symlink, an empty directory
    and a few odd mtimes. Deterministic for a given seed."""
    rng = random.Random(seed)
    root.mkdir(parents=True)
    dirs = [root]
    for i in range(12):
        d = rng.choice(dirs) / f"dir{i:02d}"
        d.mkdir()
        dirs.append(d)
    for i in range(n_files):
        p = rng.choice(dirs) / f"file{i:03d}.txt"
        p.write_bytes(rng.randbytes(rng.randint(0, 6144)))
    (root / "big1.bin").write_bytes(rng.randbytes(700_000))
    (dirs[3] / "big2.bin").write_bytes(rng.randbytes(300_000))
    (root / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "run.sh").chmod(0o755)
    (root / "link").symlink_to("dir00")
    (root / "empty").mkdir()
    os.utime(root / "big1.bin", ns=(1_500_000_000_123_456_789, 1_500_000_000_123_456_789))
    return root


def file_meta(root: Path) -> dict[str, tuple[int, int]]:
    """``{relative path: (permission bits, mtime in whole seconds)}`` of regular files."""
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = Path(dirpath) / name
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode):
                out[str(p.relative_to(root))] = (stat.S_IMODE(st.st_mode), int(st.st_mtime))
    return out


def run(*cmd: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None,
        timeout: float = 120) -> str:
    """Run a tool; fail the test with its output if it fails; return stdout."""
    res = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=timeout)
    assert res.returncode == 0, f"{cmd} exited {res.returncode}:\n{res.stdout}\n{res.stderr}"
    return res.stdout


def check_everywhere(hub: Any, client: Any, tmp: Path, m: Any, sub: str,  # noqa: ANN401
                     want: dict[str, str], skip: tuple[str, ...] = ()) -> None:
    """``sub`` on a fresh mount and in the bucket (via the hub) both equal ``want``."""
    m.wait_synced()
    own_writes_only(m)
    with remount(hub, tmp, m, "fresh") as fresh:
        assert tree_digests(fresh.path / sub, skip) == want
    assert hub_digests(client, m.key, sub, skip) == want


def own_writes_only(m: Any) -> None:  # noqa: ANN401
    """Nobody else writes the test's bucket, so the mount must never have adopted a root as
    "changed elsewhere": each such adoption re-lists directories (and one adopted from a stale
    read of the root made files vanish until the next upload failed and re-read it)."""
    st = m.status()
    assert st["remote_changes"] == 0 and st["conflicts"] == 0, st


@pytest.fixture
def src(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "src")


@pytest.fixture
def mnt(hub, thread, tmp_path: Path):  # noqa: ANN001, ANN201
    """A fresh bucket, mounted (so a slow test cannot blame another's files)."""
    _, key = new_bucket(hub, "tools", thread=thread)
    with mounted(hub, tmp_path, key, thread=thread, poll=0.5, writeback_delay=0.2) as m:
        yield m


def test_cp_a(hub, client, tmp_path, src, mnt) -> None:  # noqa: ANN001
    """``cp -a`` keeps contents, modes, mtimes and the symlink."""
    run("cp", "-a", src, mnt.path / "cp")
    want = tree_digests(src)
    assert tree_digests(mnt.path / "cp") == want
    assert file_meta(mnt.path / "cp") == file_meta(src)
    check_everywhere(hub, client, tmp_path, mnt, "cp", want)
    with remount(hub, tmp_path, mnt, "fresh2") as fresh:
        assert file_meta(fresh.path / "cp") == file_meta(src)


def test_tar_create_and_extract(hub, client, tmp_path, src, mnt) -> None:  # noqa: ANN001
    """tar writes an archive onto the mount, extracts it there, and archives the result back
    out; every copy equals the source."""
    run("tar", "-cf", mnt.path / "src.tar", "-C", src, ".")
    (mnt.path / "x").mkdir()
    run("tar", "-xf", mnt.path / "src.tar", "-C", mnt.path / "x")
    want = tree_digests(src)
    assert tree_digests(mnt.path / "x") == want
    out = tmp_path / "back"
    out.mkdir()
    run("tar", "-cf", tmp_path / "back.tar", "-C", mnt.path / "x", ".")
    run("tar", "-xf", tmp_path / "back.tar", "-C", out)
    assert tree_digests(out) == want
    assert file_meta(out) == file_meta(src)
    check_everywhere(hub, client, tmp_path, mnt, "x", want)


def test_rsync_a_twice(hub, client, tmp_path, src, mnt) -> None:  # noqa: ANN001
    """``rsync -a`` (temp names, then renames), then again after edits, a delete and a new
    file, with ``--delete``: the mount follows the source."""
    run("rsync", "-a", f"{src}/", f"{mnt.path / 'rs'}/")
    assert tree_digests(mnt.path / "rs") == tree_digests(src)
    (src / "big1.bin").write_bytes(os.urandom(500_000))
    (src / "dir00" / "new.txt").parent.mkdir(exist_ok=True)
    (src / "dir00" / "new.txt").write_text("new\n")
    victim = next(p for p in sorted(src.rglob("file*.txt")))
    victim.unlink()
    run("rsync", "-a", "--delete", f"{src}/", f"{mnt.path / 'rs'}/")
    want = tree_digests(src)
    assert tree_digests(mnt.path / "rs") == want
    leftovers = [p.name for p in (mnt.path / "rs").rglob(".*") if p.name != ".textileseed"]
    assert leftovers == [], f"rsync temp files left behind: {leftovers}"
    check_everywhere(hub, client, tmp_path, mnt, "rs", want)


def git(*args: str | Path, cwd: Path) -> str:
    """git with a fixed identity and no user/system config (the host's must not matter)."""
    env = {**os.environ, "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}
    return run("git", "-c", "init.defaultBranch=main", "-c", "safe.directory=*", *args,
               cwd=cwd, env=env)


def test_git_init_add_commit_clone_status(hub, client, tmp_path, mnt) -> None:  # noqa: ANN001
    """git init/add/commit in the mount, a second commit, a clone inside the mount; both work
    trees clean and ``git fsck`` happy, also on a fresh mount."""
    src = make_tree(tmp_path / "gsrc", n_files=60, seed=3)
    repo = mnt.path / "repo"
    shutil.copytree(src, repo, symlinks=True)
    git("init", "-q", cwd=repo)
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "first", cwd=repo)
    (repo / "run.sh").write_text("#!/bin/sh\necho changed\n")
    (repo / "dir00" / "added.txt").write_text("added\n")
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "second", cwd=repo)
    assert git("status", "--porcelain", cwd=repo) == ""
    git("fsck", "--strict", cwd=repo)
    git("clone", "-q", repo, mnt.path / "clone", cwd=mnt.path)
    clone = mnt.path / "clone"
    assert git("status", "--porcelain", cwd=clone) == ""
    assert git("log", "--format=%s", cwd=clone).split() == ["second", "first"]
    git("fsck", "--strict", cwd=clone)
    want = tree_digests(repo, skip=(".git", "empty"))  # git keeps no empty directories
    assert tree_digests(clone, skip=(".git",)) == want
    mnt.wait_synced()
    with remount(hub, tmp_path, mnt, "fresh") as fresh:
        for d in ("repo", "clone"):
            assert tree_digests(fresh.path / d, skip=(".git", "empty")) == want
            # The index's stat data (inode numbers, ctimes) changes with a new mount: git must
            # re-check the contents and still find nothing modified.
            assert git("status", "--porcelain", cwd=fresh.path / d) == ""
            git("fsck", "--strict", cwd=fresh.path / d)
    assert hub_digests(client, mnt.key, "clone", skip=(".git",)) == want


def test_editor_atomic_save_with_backup(hub, client, tmp_path, mnt) -> None:  # noqa: ANN001
    """Save as editors do: copy the original to ``file~``, write ``.file.swp``-style temp,
    fsync it, rename it over the original, fsync the directory. Five saves in a row."""
    d = mnt.path / "notes"
    d.mkdir()
    target = d / "notes.txt"
    target.write_text("version 0\n")
    for v in range(1, 6):
        old = target.read_bytes()
        shutil.copy2(target, d / "notes.txt~")
        tmp = d / ".notes.txt.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, f"version {v}\n".encode() * (v * 1000))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, target)
        dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
        assert (d / "notes.txt~").read_bytes() == old
    want = tree_digests(d)
    assert sorted(want) == ["notes.txt", "notes.txt~"]
    assert target.read_bytes() == b"version 5\n" * 5000
    check_everywhere(hub, client, tmp_path, mnt, "notes", want)


_SQL_WRITER = textwrap.dedent("""
    import sqlite3, sys
    db = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)
    assert db.execute("PRAGMA journal_mode=DELETE").fetchone()[0] == "delete"
    for i in range(int(sys.argv[2])):
        db.execute("BEGIN IMMEDIATE")
        db.executemany("INSERT INTO t(v) VALUES (?)", [(f"row {i} {j} " * 20,) for j in range(10)])
        db.execute("UPDATE meta SET n = n + 10")
        db.execute("COMMIT")
    db.close()
""")

_SQL_READER = textwrap.dedent("""
    import sqlite3, sys
    db = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)
    seen = 0
    reads = 0
    while True:
        db.execute("BEGIN")
        n = db.execute("SELECT count(*) FROM t").fetchone()[0]
        m = db.execute("SELECT n FROM meta").fetchone()[0]
        db.execute("COMMIT")
        # One transaction = one snapshot: the two counts must agree, and never go back.
        assert n == m, (n, m)
        assert n >= seen, (n, seen)
        seen = n
        reads += 1
        if n >= int(sys.argv[2]) * 10:
            break
    print(reads)
""")


def test_sqlite_rollback_journal_with_concurrent_readers(hub, client, tmp_path,  # noqa: ANN001
                                                        mnt) -> None:
    """sqlite3 in rollback-journal mode on the mount: one writer process, two reader processes
    at the same time (the kernel's POSIX locks keep them apart), then integrity_check here, on
    a fresh mount and on a copy pulled from the hub."""
    db_path = mnt.path / "app.db"
    db = sqlite3.connect(db_path)
    db.execute("PRAGMA journal_mode=DELETE")
    db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    db.execute("CREATE TABLE meta(n INTEGER)")
    db.execute("INSERT INTO meta VALUES (0)")
    db.commit()
    db.close()
    txs = 60
    readers = [subprocess.Popen([sys.executable, "-c", _SQL_READER, str(db_path), str(txs)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(2)]
    try:
        run(sys.executable, "-c", _SQL_WRITER, db_path, str(txs))
        for r in readers:
            out, err = r.communicate(timeout=120)
            assert r.returncode == 0, f"reader failed: {err}"
            assert int(out) >= 1
    finally:
        for r in readers:
            if r.poll() is None:
                r.kill()
                r.wait()
    assert run("sqlite3", db_path, "PRAGMA integrity_check;").strip() == "ok"
    assert run("sqlite3", db_path, "SELECT count(*) FROM t;").strip() == str(txs * 10)
    assert not (mnt.path / "app.db-journal").exists()
    mnt.wait_synced()
    with remount(hub, tmp_path, mnt, "fresh") as fresh:
        assert run("sqlite3", fresh.path / "app.db", "PRAGMA integrity_check;").strip() == "ok"
        assert run("sqlite3", fresh.path / "app.db",
                   "SELECT count(*) FROM t;").strip() == str(txs * 10)
    pulled = tmp_path / "pulled.db"
    with open(pulled, "wb") as f:
        client.pull_path(mnt.key, "app.db", f)
    assert run("sqlite3", pulled, "PRAGMA integrity_check;").strip() == "ok"
    assert run("sqlite3", pulled, "SELECT count(*) FROM t;").strip() == str(txs * 10)


def test_unzip(hub, client, tmp_path, src, mnt) -> None:  # noqa: ANN001
    """``unzip`` of an archive of the source tree into the mount."""
    run("zip", "-q", "-r", "-y", tmp_path / "src.zip", ".", cwd=src)
    run("unzip", "-q", tmp_path / "src.zip", "-d", mnt.path / "uz")
    want = tree_digests(src)
    assert tree_digests(mnt.path / "uz") == want
    check_everywhere(hub, client, tmp_path, mnt, "uz", want)


def test_shutil_copytree(hub, client, tmp_path, src, mnt) -> None:  # noqa: ANN001
    """Python's ``shutil.copytree`` (copy2: contents, then mode and times) into the mount."""
    shutil.copytree(src, mnt.path / "ct", symlinks=True)
    want = tree_digests(src)
    assert tree_digests(mnt.path / "ct") == want
    assert file_meta(mnt.path / "ct") == file_meta(src)
    check_everywhere(hub, client, tmp_path, mnt, "ct", want)
