"""A differential state machine: the same random operations on a local directory and on a
bucketfs mount (real hub, real FUSE mount), comparing every result and errno.

Each Hypothesis example works in a fresh subdirectory ``exN`` of both trees; the hub and the
mount are shared by the whole module (a mount per example would cost most of the run). Names
come from a tiny alphabet so that operations collide (EEXIST, ENOTEMPTY, renames over
targets), and file sizes reach ~600 KiB so that files span several 256 KiB chunks. Besides
the file-system rules there are two checks that reach past the kernel:

- ``remount``: ``bucketfs umount`` and mount again with the same cache directory; the
  invariant then compares the fresh mount's view with the local tree.
- ``bucket_agrees``: wait until the mount has uploaded everything, then ListPath every
  directory and PullPath every file through the hub and compare them with the local tree.

Every mismatch this machine finds is either fixed in the mount (with a regression test in
``test_posix_fixes.py``) or inherent to buckets and listed in docs/posix.md; the comparisons
below skip exactly those inherent differences, each with its reason.

Reproduce a run: the examples are derandomized (fixed by the test's code), so a failure
recurs on every run; ``POSIX_MODEL_RANDOM=1`` draws new ones, ``POSIX_MODEL_EXAMPLES=N`` and
``POSIX_MODEL_STEPS=N`` change the size, ``POSIX_MODEL_SHRINK=0`` reports a failure
unshrunk (shrinking against a real mount can take many minutes).
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import errno
import hashlib
import io
import logging
import os
import random
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from mountproc import Mount, daemon_log, mounted, new_bucket, sha256_file

log = logging.getLogger(__name__)

# A failing run shrinks its example against the real mount, which takes far longer than the
# passing run (~1-2 min); the timeout leaves room for that so the report shows the minimal case.
pytestmark = pytest.mark.timeout(900)

EXAMPLES = int(os.environ.get("POSIX_MODEL_EXAMPLES", "40"))
STEPS = int(os.environ.get("POSIX_MODEL_STEPS", "50"))
MAX_FDS = 3
PHASES = [Phase.explicit, Phase.reuse, Phase.generate, Phase.target] + (
    [] if os.environ.get("POSIX_MODEL_SHRINK") == "0" else [Phase.shrink])
CHUNK = 262144

NAMES = st.sampled_from(["a", "b", "é"])  # one non-ASCII name: UTF-8 all the way to the hub
PATHS = st.lists(NAMES, min_size=1, max_size=3).map("/".join)
# Sizes and offsets around the chunk boundaries, plus anything up to ~600 KiB.
SIZES = st.one_of(
    st.sampled_from([0, 1, 4096, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 7, 614_400]),
    st.integers(0, 614_400),
)
SMALL = st.integers(0, 5000)
OFFSETS = st.one_of(st.sampled_from([0, 1, CHUNK - 3, CHUNK, 2 * CHUNK - 1]), SIZES)
MODES = st.sampled_from([0o600, 0o644, 0o640, 0o700, 0o755, 0o444, 0o400])
# Relative targets only, and none with "..": a link must resolve inside the example's
# directory in both trees (dangling and self-referencing targets are fine and wanted).
TARGETS = st.one_of(PATHS, st.sampled_from(["nowhere", ".", "a/../b"]))
ACCESS = st.sampled_from([os.O_RDONLY, os.O_WRONLY, os.O_RDWR])
FLAG_BITS = st.lists(
    st.sampled_from([os.O_APPEND, os.O_TRUNC, os.O_EXCL, os.O_CREAT]), unique=True, max_size=3
).map(lambda bits: sum(bits, 0))
# Not 0: the bucket's mtime field uses 0 for "never set", so the epoch itself cannot be stored
# (docs/posix.md; test_posix_fixes.py::test_mtime_zero_reads_back_as_unset).
TIME_VALUES = (1, 1_000_000_000, 1_500_000_000_123_456_789, 1_700_000_000_000_000_001)
TIMES = st.sampled_from(TIME_VALUES)


def data_of(seed: int, size: int) -> bytes:
    """``size`` pseudo-random bytes (cheap to make; Hypothesis draws only seed and size)."""
    return random.Random(seed).randbytes(size)


def _fsize(fd: int) -> int | None:
    """fstat size of a regular file; None for a directory (O_RDONLY opens those too, and
    a directory's size is file-system specific: docs/posix.md)."""
    s = os.fstat(fd)
    return s.st_size if stat.S_ISREG(s.st_mode) else None


def outcome(fn: Callable[[], Any]) -> tuple[str, Any]:
    """``("ok", result)`` or ``("err", errno name)`` — comparable between the two trees."""
    try:
        return "ok", fn()
    except OSError as exc:
        return "err", errno.errorcode.get(exc.errno, exc.errno)


class Remountable:
    """The module's one mount, which a rule can unmount and mount again (same cache dir)."""

    def __init__(self, hub: Any, thread: str, key: str, tmp: Path) -> None:
        self.hub, self.thread, self.key, self.tmp = hub, thread, key, tmp
        self._cm: contextlib.AbstractContextManager[Mount] | None = None
        self.mount: Mount | None = None
        self.remounts = 0

    def up(self) -> Mount:
        """Mount (again)."""
        cm = mounted(self.hub, self.tmp, self.key, thread=self.thread, poll=0.5,
                     writeback_delay=0.1)
        self.mount = cm.__enter__()  # on failure, mounted() has cleaned up after itself
        self._cm = cm
        return self.mount

    def down(self) -> None:
        """``bucketfs umount`` (which uploads everything first); the helper's ``finally``
        falls back to fusermount3 if that fails."""
        cm, self._cm, self.mount = self._cm, None, None
        if cm is not None:
            cm.__exit__(None, None, None)

    def remount(self) -> Mount:
        """Unmount and mount again with the same cache directory."""
        self.down()
        self.remounts += 1
        return self.up()


@pytest.fixture(scope="module")
def target(hub: Any, thread: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        Remountable]:
    """The mount under test (module-scoped; remounted by the machine's ``remount`` rule)."""
    _, key = new_bucket(hub, "posix-model", thread=thread)
    r = Remountable(hub, thread, key, tmp_path_factory.mktemp("pm"))
    r.up()
    try:
        yield r
    finally:
        r.down()


def wait_uploaded(m: Mount, timeout: float = 120) -> None:
    """Block until no file is dirty and no namespace change is pending (``status --wait``)."""
    deadline = time.monotonic() + timeout
    while True:
        s = m.status()
        if s["dirty_files"] == 0 and s["pending_ops"] == 0:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"mount not synced after {timeout}s: {s}")
        time.sleep(0.05)


def test_mount_matches_local_disk(target: Remountable, client: Any, tmp_path: Path) -> None:
    """Random operation sequences give the same results, errnos and trees on both sides."""
    local_top = tmp_path / "local"
    local_top.mkdir()
    counter = [0]
    ran: collections.Counter[str] = collections.Counter()  # the rare rules really ran
    old_umask = os.umask(0o022)  # both trees see the same umask whatever the caller's is

    class PosixModel(RuleBasedStateMachine):
        """Local directory vs mount; see the module docstring."""

        def __init__(self) -> None:
            super().__init__()
            self.fds: list[tuple[int, int, str, int]] = []  # local fd, mount fd, path, flags
            self.remounted = False
            self.hub_checks = 0

        @initialize()
        def fresh_dirs(self) -> None:
            counter[0] += 1
            self.rel = f"ex{counter[0]}"
            os.mkdir(local_top / self.rel)
            os.mkdir(self.mnt_base())

        def mnt_base(self) -> Path:
            assert target.mount is not None
            return target.mount.path / self.rel

        def bases(self) -> tuple[Path, Path]:
            return local_top / self.rel, self.mnt_base()

        def both(self, what: str, fn: Callable[[Path], Any]) -> tuple[str, Any]:
            """Run ``fn(base)`` on both trees and demand the same outcome."""
            lb, mb = self.bases()
            lo = outcome(lambda: fn(lb))
            mo = outcome(lambda: fn(mb))
            assert lo == mo, f"{what}: local {lo!r} != mount {mo!r}"
            return lo

        # -- bookkeeping -----------------------------------------------------------------------

        def _close_all(self) -> None:
            while self.fds:
                lfd, mfd, _, _ = self.fds.pop()
                os.close(lfd)
                os.close(mfd)

        def teardown(self) -> None:
            self._close_all()

        # -- whole-file rules ------------------------------------------------------------------

        @rule(path=PATHS, seed=st.integers(0, 2**16), size=SIZES)
        def write_file(self, path: str, seed: int, size: int) -> None:
            data = data_of(seed, size)
            self.both(f"write_file {path} {size}", lambda b: (b / path).write_bytes(data))

        @rule(path=PATHS, access=ACCESS, flags=FLAG_BITS, mode=MODES, offset=OFFSETS,
              seed=st.integers(0, 2**16), size=st.one_of(SMALL, SIZES))
        def open_write_close(self, path: str, access: int, flags: int, mode: int,
                             offset: int, seed: int, size: int) -> None:
            """open(2) with flags, pwrite (or write for O_APPEND), fstat, close."""
            data = data_of(seed, size)

            def go(b: Path) -> tuple[int, int]:
                fd = os.open(b / path, access | flags, mode)
                try:
                    n = os.write(fd, data) if flags & os.O_APPEND else os.pwrite(fd, data, offset)
                    return n, os.fstat(fd).st_size
                finally:
                    os.close(fd)

            self.both(f"open_write_close {path} {access}|{flags:o}", go)

        @rule(path=PATHS, offset=OFFSETS, length=st.one_of(SMALL, SIZES))
        def read_file(self, path: str, offset: int, length: int) -> None:
            def go(b: Path) -> str:
                fd = os.open(b / path, os.O_RDONLY)
                try:
                    return hashlib.sha256(os.pread(fd, length, offset)).hexdigest()
                finally:
                    os.close(fd)

            self.both(f"read {path} @{offset}+{length}", go)

        @rule(path=PATHS, size=SIZES)
        def truncate(self, path: str, size: int) -> None:
            self.both(f"truncate {path} {size}", lambda b: os.truncate(b / path, size))

        # -- open descriptors ------------------------------------------------------------------

        @rule(path=PATHS, access=ACCESS, flags=FLAG_BITS, mode=MODES)
        def open_fd(self, path: str, access: int, flags: int, mode: int) -> None:
            if len(self.fds) >= MAX_FDS:
                lfd, mfd, _, _ = self.fds.pop(0)
                os.close(lfd)
                os.close(mfd)
            lb, mb = self.bases()
            lo = outcome(lambda: os.open(lb / path, access | flags, mode))
            mo = outcome(lambda: os.open(mb / path, access | flags, mode))
            if lo[0] == mo[0] == "ok":
                self.fds.append((lo[1], mo[1], path, access))
                return
            for kind, fd in (lo, mo):  # a one-sided success must not leak a descriptor
                if kind == "ok":
                    os.close(fd)
            assert lo == mo, f"open {path} {access}|{flags:o}: local {lo!r} != mount {mo!r}"

        def _fd_pair(self, i: int) -> tuple[int, int, str, int]:
            return self.fds[i % len(self.fds)]

        @precondition(lambda self: self.fds)
        @rule(i=st.integers(0, MAX_FDS - 1), offset=OFFSETS, seed=st.integers(0, 2**16),
              size=st.one_of(SMALL, SIZES))
        def fd_pwrite(self, i: int, offset: int, seed: int, size: int) -> None:
            lfd, mfd, path, _ = self._fd_pair(i)
            data = data_of(seed, size)
            lo = outcome(lambda: os.pwrite(lfd, data, offset))
            mo = outcome(lambda: os.pwrite(mfd, data, offset))
            assert lo == mo, f"pwrite {path} @{offset}: local {lo!r} != mount {mo!r}"

        @precondition(lambda self: self.fds)
        @rule(i=st.integers(0, MAX_FDS - 1), seed=st.integers(0, 2**16), size=SMALL)
        def fd_write(self, i: int, seed: int, size: int) -> None:
            """write(2) at the descriptor's position (the end, for O_APPEND)."""
            lfd, mfd, path, _ = self._fd_pair(i)
            data = data_of(seed, size)
            lo = outcome(lambda: (os.write(lfd, data), os.lseek(lfd, 0, os.SEEK_CUR),
                                  _fsize(lfd)))
            mo = outcome(lambda: (os.write(mfd, data), os.lseek(mfd, 0, os.SEEK_CUR),
                                  _fsize(mfd)))
            assert lo == mo, f"write {path}: local {lo!r} != mount {mo!r}"

        @precondition(lambda self: self.fds)
        @rule(i=st.integers(0, MAX_FDS - 1), offset=OFFSETS, length=st.one_of(SMALL, SIZES))
        def fd_pread(self, i: int, offset: int, length: int) -> None:
            lfd, mfd, path, _ = self._fd_pair(i)
            lo = outcome(lambda: hashlib.sha256(os.pread(lfd, length, offset)).hexdigest())
            mo = outcome(lambda: hashlib.sha256(os.pread(mfd, length, offset)).hexdigest())
            assert lo == mo, f"pread {path} @{offset}+{length}: local {lo!r} != mount {mo!r}"

        @precondition(lambda self: self.fds)
        @rule(i=st.integers(0, MAX_FDS - 1), size=SIZES)
        def fd_truncate(self, i: int, size: int) -> None:
            lfd, mfd, path, _ = self._fd_pair(i)
            lo = outcome(lambda: (os.ftruncate(lfd, size), _fsize(lfd)))
            mo = outcome(lambda: (os.ftruncate(mfd, size), _fsize(mfd)))
            assert lo == mo, f"ftruncate {path} {size}: local {lo!r} != mount {mo!r}"

        @precondition(lambda self: self.fds)
        @rule(i=st.integers(0, MAX_FDS - 1))
        def fd_fsync(self, i: int) -> None:
            """fsync(2) on an open descriptor: the upload then runs while the file is open
            (and may be written again through another descriptor next)."""
            lfd, mfd, path, _ = self._fd_pair(i)
            lo = outcome(lambda: (os.fsync(lfd), _fsize(lfd)))
            mo = outcome(lambda: (os.fsync(mfd), _fsize(mfd)))
            assert lo == mo, f"fsync {path}: local {lo!r} != mount {mo!r}"

        @precondition(lambda self: self.fds)
        @rule(i=st.integers(0, MAX_FDS - 1))
        def fd_close(self, i: int) -> None:
            lfd, mfd, _, _ = self.fds.pop(i % len(self.fds))
            os.close(lfd)
            os.close(mfd)

        # -- namespace -------------------------------------------------------------------------

        @rule(path=PATHS, mode=MODES)
        def mkdir(self, path: str, mode: int) -> None:
            self.both(f"mkdir {path}", lambda b: os.mkdir(b / path, mode | 0o700))

        @rule(path=PATHS)
        def rmdir(self, path: str) -> None:
            self.both(f"rmdir {path}", lambda b: os.rmdir(b / path))

        @rule(path=PATHS)
        def unlink(self, path: str) -> None:
            self.both(f"unlink {path}", lambda b: os.unlink(b / path))

        @rule(src=PATHS, dst=PATHS)
        def rename(self, src: str, dst: str) -> None:
            self.both(f"rename {src} {dst}", lambda b: os.rename(b / src, b / dst))

        @rule(path=PATHS, target_=TARGETS)
        def symlink(self, path: str, target_: str) -> None:
            self.both(f"symlink {path} -> {target_}", lambda b: os.symlink(target_, b / path))

        @rule(path=PATHS)
        def readlink(self, path: str) -> None:
            self.both(f"readlink {path}", lambda b: os.readlink(b / path))

        @rule(path=PATHS, mode=MODES)
        def chmod(self, path: str, mode: int) -> None:
            # Directories keep their owner's rwx: the machine must still be able to walk them
            # (we run as root, where permissions do not bite, but other users run CI).
            def go(b: Path) -> None:
                p = b / path
                os.chmod(p, mode | (0o700 if os.path.isdir(p) else 0o600))

            self.both(f"chmod {path} {mode:o}", go)

        @rule(path=PATHS, ns=TIMES)
        def utime(self, path: str, ns: int) -> None:
            def go(b: Path) -> int:
                os.utime(b / path, ns=(ns, ns))
                return os.stat(b / path).st_mtime_ns

            self.both(f"utime {path} {ns}", go)

        @rule(path=st.one_of(st.just(""), PATHS))
        def listdir(self, path: str) -> None:
            self.both(f"listdir {path}", lambda b: sorted(os.listdir(b / path)))

        @rule(path=PATHS)
        def stat_follow(self, path: str) -> None:
            """stat(2) through symlinks (lstat is compared by the invariant)."""
            def go(b: Path) -> tuple:
                s = os.stat(b / path)
                return stat.S_IFMT(s.st_mode), stat.S_IMODE(s.st_mode), (
                    s.st_size if stat.S_ISREG(s.st_mode) else None)

            self.both(f"stat {path}", go)

        # -- checks beyond the kernel ----------------------------------------------------------

        # A remount costs seconds (umount uploads, the daemon exits, a new one starts): at most
        # one per example keeps the test file near two minutes.
        @precondition(lambda self: not self.remounted)
        @rule()
        def remount(self) -> None:
            """``bucketfs umount`` + mount again with the same cache: the invariant then
            compares the new mount's view (listings re-read from the hub) with the local tree."""
            self._close_all()  # an open file would make the unmount fail with EBUSY
            self.remounted = True
            target.remount()
            ran["remount"] += 1

        @precondition(lambda self: self.hub_checks < 2)
        @rule()
        def bucket_agrees(self) -> None:
            """Once uploaded, ListPath/PullPath through the hub show the local tree."""
            self._close_all()  # open files are uploaded after their last close
            self.hub_checks += 1
            ran["bucket_agrees"] += 1
            assert target.mount is not None
            wait_uploaded(target.mount)
            self._compare_hub(local_top / self.rel, self.rel)

        def _compare_hub(self, local: Path, bpath: str) -> None:
            items = {i.name: i for i in client.list_path(target.key, bpath).item.items}
            items.pop(".textileseed", None)
            assert sorted(items) == sorted(os.listdir(local)), f"hub listing of {bpath}"
            for name, item in items.items():
                lp, rel = local / name, f"{bpath}/{name}"
                s = os.lstat(lp)
                assert item.is_dir == stat.S_ISDIR(s.st_mode), rel
                if stat.S_ISLNK(s.st_mode):
                    assert item.symlink_target == os.readlink(lp), rel
                    continue
                assert item.mode == stat.S_IMODE(s.st_mode), f"{rel}: mode {item.mode:o}"
                if item.is_dir:
                    self._compare_hub(lp, rel)
                    continue
                assert item.file_size == s.st_size, rel
                out = io.BytesIO()
                client.pull_path(target.key, rel, out)
                assert out.getvalue() == lp.read_bytes(), f"{rel}: content in the bucket"
                if s.st_mtime_ns in TIME_VALUES:  # set by utime and not written since
                    assert item.mtime == s.st_mtime_ns, f"{rel}: mtime in the bucket"

        @invariant()
        def trees_match(self) -> None:
            if not hasattr(self, "rel"):
                return
            lb, mb = self.bases()
            self._compare_tree(lb, mb, "")

        def _compare_tree(self, local: Path, mnt: Path, rel: str) -> None:
            names = sorted(os.listdir(local))
            assert sorted(os.listdir(mnt)) == names, f"listing of {rel or '.'}"
            for name in names:
                r = f"{rel}/{name}" if rel else name
                ls, ms = os.lstat(local / name), os.lstat(mnt / name)
                assert stat.S_IFMT(ms.st_mode) == stat.S_IFMT(ls.st_mode), f"{r}: type"
                # Inherent: a symlink's mode is always 0777 on Linux; no owners in a bucket
                # (the mounting user owns everything, as root does here).
                assert stat.S_IMODE(ms.st_mode) == stat.S_IMODE(ls.st_mode), f"{r}: mode"
                if stat.S_ISDIR(ls.st_mode):
                    # Size and link count of a directory are file-system specific (docs).
                    if ls.st_mtime_ns in TIME_VALUES:  # utime'd, no entry changed since
                        assert ms.st_mtime_ns == ls.st_mtime_ns, f"{r}: mtime"
                    self._compare_tree(local / name, mnt / name, r)
                    continue
                assert ms.st_nlink == ls.st_nlink == 1, f"{r}: nlink"
                assert ms.st_size == ls.st_size, f"{r}: size"
                if stat.S_ISLNK(ls.st_mode):
                    assert os.readlink(mnt / name) == os.readlink(local / name), r
                    continue
                if ls.st_mtime_ns in TIME_VALUES:
                    # Set by utime and not written since (a write's own mtime is "now" on
                    # both sides, but not the same now): must be the same on the mount.
                    assert ms.st_mtime_ns == ls.st_mtime_ns, f"{r}: mtime"
                assert sha256_file(mnt / name) == sha256_file(local / name), f"{r}: content"

    try:
        run_state_machine_as_test(
            PosixModel,
            settings=settings(
                max_examples=EXAMPLES,
                stateful_step_count=STEPS,
                deadline=None,
                derandomize=not os.environ.get("POSIX_MODEL_RANDOM"),
                database=None,
                phases=PHASES,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much],
            ),
        )
    except BaseException:
        if target.mount is not None:
            log.error("daemon log tail:\n%s", daemon_log(target.mount)[-5000:])
        raise
    finally:
        os.umask(old_umask)
    print(f"{counter[0]} examples, {dict(ran)}")
    # The machine really ran, including the checks past the kernel.
    assert counter[0] >= 1 and ran["remount"] >= 1 and ran["bucket_agrees"] >= 1, dict(ran)




_libc = ctypes.CDLL(None, use_errno=True)
NOREPLACE, EXCHANGE, WHITEOUT = 1, 2, 4

# (source, destination, renameat2 flags) over the tree made by _rename_tree; a trailing "/"
# is passed on as is (it demands a directory).
RENAME_CASES = [
    ("f", "f", 0), ("d1", "d1", 0), ("d1", "d1/sub/new", 0), ("d1/sub", "d1", 0),
    ("f", "d1", 0), ("d1", "f", 0), ("d1", "d2", 0), ("d1", "e", 0), ("missing", "x", 0),
    ("f", "missing/x", 0), ("f", "f/x", 0), ("ln", "g", 0), ("ln", "ln2", 0), ("f", "d2/", 0),
    ("f/", "h", 0), ("e/", "e2/", 0), ("d1", "d1/", 0), ("f", "g", NOREPLACE),
    ("f", "f", NOREPLACE), ("e", "new", NOREPLACE), ("f", "missing", EXCHANGE),
    ("d1", "d1/sub", EXCHANGE), ("d1/sub", "d1", EXCHANGE), ("e", "e", EXCHANGE),
    ("f", "g", NOREPLACE | EXCHANGE),
]
# Documented difference (docs/posix.md): there are no whiteouts in a bucket. (RENAME_EXCHANGE of
# entries with unsynced changes is the other one: test_rename_exchange_needs_synced_entries.)
RENAME_DIFFERENT = {("f", "g", WHITEOUT): "EINVAL"}


def _rename_tree(base: Path) -> None:
    for d in ("d1/sub", "d2", "e"):
        os.makedirs(base / d)
    (base / "d2" / "x").write_text("x")
    (base / "f").write_text("f")
    (base / "g").write_text("g")
    os.symlink("f", base / "ln")


def _renameat2(base: Path, src: str, dst: str, flags: int) -> list[str]:
    """renameat2(2) (not in Python's os module); returns the top level afterwards."""
    if _libc.renameat2(-100, os.fsencode(f"{base}/{src}"), -100, os.fsencode(f"{base}/{dst}"),
                       flags) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return sorted(os.listdir(base))


def test_rename_edge_cases_match_local_disk(target: Remountable, tmp_path: Path) -> None:
    """Every rename/renameat2 corner (into itself, over non-empty directories, trailing
    slashes, flags) gives the same errno and result as on the local disk."""
    cases = RENAME_CASES + list(RENAME_DIFFERENT)
    assert target.mount is not None
    for i, (src, dst, flags) in enumerate(cases):
        lb, mb = tmp_path / f"r{i}", target.mount.path / f"rename-{i}"
        _rename_tree(lb)
        _rename_tree(mb)
        lo = outcome(lambda b=lb: _renameat2(b, src, dst, flags))  # noqa: B023 - called now
        mo = outcome(lambda b=mb: _renameat2(b, src, dst, flags))  # noqa: B023
        expected = RENAME_DIFFERENT.get((src, dst, flags))
        if expected is not None:
            assert mo == ("err", expected), (src, dst, flags, lo, mo)
        else:
            assert lo == mo, f"rename {src} {dst} flags={flags}: local {lo!r} != mount {mo!r}"


def test_rename_exchange_needs_synced_entries(target: Remountable, tmp_path: Path) -> None:
    """RENAME_EXCHANGE: EINVAL while an entry has unsynced changes (documented in
    docs/posix.md); once both entries are in the bucket, the same result as on the local disk."""
    assert target.mount is not None
    lb, mb = tmp_path / "exchange", target.mount.path / "exchange"
    _rename_tree(lb)
    _rename_tree(mb)
    # A file created and never closed yet is not uploaded before its close: unsynced for sure.
    with open(mb / "h", "w") as held:
        held.write("h")
        held.flush()
        assert outcome(lambda: _renameat2(mb, "h", "g", EXCHANGE)) == ("err", "EINVAL")
    (lb / "h").write_text("h")
    target.mount.wait_synced()
    lo = outcome(lambda: _renameat2(lb, "h", "g", EXCHANGE))
    mo = outcome(lambda: _renameat2(mb, "h", "g", EXCHANGE))
    assert lo == mo == ("ok", ["d1", "d2", "e", "f", "g", "h", "ln"])
    assert (mb / "h").read_text() == (lb / "h").read_text() == "g"
    assert (mb / "g").read_text() == (lb / "g").read_text() == "h"
