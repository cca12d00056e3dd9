"""Benchmark ``bucketfs mount`` against the local disk and ``rclone mount`` in the same run.

    .venv/bin/python bench/bench_mount.py [--size MiB] [--files N] [--big-dir N] [--no-rclone]

A real hub runs on loopback (``tests/hubproc.py``), the mount runs as users start it
(``tests/mountproc.py``), and rclone mounts a local directory with ``--vfs-cache-mode full``.
Each figure is one run of each scenario, all targets interleaved in the same process, so the
ratios are the meaningful part on a shared machine. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from hubproc import running_hub  # noqa: E402
from mountproc import mounted, new_bucket  # noqa: E402

from bucketfs.mount import mountinfo  # noqa: E402

MiB = 1 << 20

#: What ``--only`` can pick: seq (write + fsync, also fsync=local), warm, delta (10 bytes
#: changed in the middle, fsync) and cold (of the seq file, which they need), creates, stats
#: (of the created files), ctb (close to bucket), lsl (ls -l of a big directory).
SCENARIOS = ("seq", "warm", "delta", "cold", "creates", "stats", "ctb", "lsl")


def settle() -> None:
    """Start a measurement from a quiet disk, for every target alike: ``sync()``, so that the
    dirty data the previous phase left (rclone's cache and remote copy of the 1 GiB file, say)
    is not written out during the next target's run, with its fsyncs waiting behind it.
    (Dropping the page cache as well made every target slower and more variable on this VM:
    memory given back to the host is slow to get again.)"""
    os.sync()


def seq_write(path: Path, size: int) -> tuple[float, float]:
    """Write ``size`` bytes in 1 MiB blocks, fsync, close: MiB/s of the whole, and seconds
    the fsync alone took (what was left to make durable when the writing was done). Starts
    from :func:`settle`."""
    settle()
    block = os.urandom(MiB)
    t = time.perf_counter()
    with open(path, "wb", buffering=0) as f:
        for _ in range(size // MiB):
            f.write(block)
        t_sync = time.perf_counter()
        os.fsync(f.fileno())
    end = time.perf_counter()
    return size / MiB / (end - t), end - t_sync


def seq_read(path: Path) -> float:
    """Read the whole file in 1 MiB blocks; MiB/s."""
    n = 0
    t = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(MiB):
            n += len(chunk)
    return n / MiB / (time.perf_counter() - t)


def warm_read(path: Path, runs: int = 3) -> tuple[float, float]:
    """The first read of the file right after writing it, then the median of ``runs`` more
    back-to-back passes (warm: the file has been read before); MiB/s of each.

    Why both: what the first read finds in a cache depends on how the file was written (a
    write-only descriptor of the mount bypasses the kernel's page cache, so its first read is
    served by the daemon; the local disk's page cache keeps whatever was written). Warm is the
    state after a read, the same for every target. A single pass of a page-cache read lasts
    a fraction of a second, so the median of three back-to-back passes is steadier on a
    shared machine. ``sync()`` first, for every target alike: the kernel's background flush
    of what the writing left dirty (a mount's cache, the hub's blocks) does not run during
    the reads."""
    os.sync()
    first = seq_read(path)
    return first, statistics.median(seq_read(path) for _ in range(runs))


def put_reads(put: Callable[[str, str, float], None], target: str, result: tuple[float, float]
              ) -> None:
    """The two rows of :func:`warm_read`."""
    put("first read right after writing (MiB/s)", target, result[0])
    put("warm seq read, median of 3 (MiB/s)", target, result[1])


def small_change(path: Path) -> float:
    """Change 10 bytes in the middle of an existing big file and fsync; seconds. (The mount
    uploads a delta: one 256 KiB leaf and the tree's interior nodes, not the whole file.)"""
    t = time.perf_counter()
    with open(path, "r+b", buffering=0) as f:
        f.seek(os.fstat(f.fileno()).st_size // 2 + 12345)
        f.write(b"0123456789")
        os.fsync(f.fileno())
    return time.perf_counter() - t


def drop_local(path: Path) -> None:
    """Evict a (clean, fsynced) local file from the page cache."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def creates(d: Path, n: int) -> float:
    """Create ``n`` files of 4 KiB; files/s. Starts from :func:`settle`."""
    settle()
    d.mkdir(exist_ok=True)
    data = os.urandom(4096)
    t = time.perf_counter()
    for i in range(n):
        with open(d / f"f{i:05d}", "wb") as f:
            f.write(data)
    return n / (time.perf_counter() - t)


def stats(d: Path) -> tuple[float, int]:
    """scandir + lstat of every entry (``ls -l``); entries/s and the count."""
    t = time.perf_counter()
    n = 0
    with os.scandir(d) as it:
        for e in it:
            e.stat(follow_symlinks=False)
            n += 1
    return n / (time.perf_counter() - t), n


@contextmanager
def fuse_process(cmd: list[str], mnt: Path, name: str) -> Iterator[Path]:
    """Run ``cmd``, a FUSE daemon in the foreground that mounts ``mnt``; yields once mounted,
    then unmounts (lazily if it must) and stops it."""
    mnt.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not mountinfo.is_mounted(mnt):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not mount")
            time.sleep(0.05)
        yield mnt
    finally:
        subprocess.run(["fusermount3", "-u", str(mnt)], capture_output=True)
        if mountinfo.is_mounted(mnt):
            subprocess.run(["fusermount3", "-u", "-z", str(mnt)], capture_output=True)
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def rclone_mount(src: Path, mnt: Path, cache: Path) -> contextlib.AbstractContextManager[Path]:
    """``rclone mount`` of a local directory, vfs-cache-mode full."""
    return fuse_process(["rclone", "mount", f":local:{src}", str(mnt), "--vfs-cache-mode", "full",
                         "--cache-dir", str(cache)], mnt, "rclone mount")


def peak_rss_mb(pid: int) -> float:
    """VmHWM of ``pid`` in MB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def close_to_bucket(m, client, key: str, samples: int) -> list[float]:  # noqa: ANN001
    """Seconds from close() of a small file to its CID being in the bucket root."""
    out = []
    for i in range(samples):
        name = f"ctb{i}.txt"
        with open(m.path / name, "wb") as f:
            f.write(b"x" * 100)
        t = time.perf_counter()
        while True:
            names = {it.name for it in client.list_dir(key, "").item.items}
            if name in names:
                break
            time.sleep(0.01)
        out.append(time.perf_counter() - t)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=512, help="sequential file size in MiB")
    ap.add_argument("--files", type=int, default=2000, help="small files to create")
    ap.add_argument("--big-dir", type=int, default=10000, help="entries for the ls -l test")
    ap.add_argument("--no-rclone", action="store_true")
    ap.add_argument(
        "--only", default=",".join(SCENARIOS),
        help=f"comma-separated scenarios to run (default all: {','.join(SCENARIOS)})",
    )
    args = ap.parse_args()
    only = set(args.only.split(","))
    if only - set(SCENARIOS):
        ap.error(f"unknown scenario(s): {', '.join(sorted(only - set(SCENARIOS)))}")
    size = args.size * MiB
    rows: dict[str, dict[str, float]] = {}

    def put(metric: str, target: str, value: float) -> None:
        rows.setdefault(metric, {})[target] = value

    def put_seq(target: str, result: tuple[float, float]) -> None:
        put("seq write 1 MiB blocks + fsync (MiB/s)", target, result[0])
        put("  of which the final fsync (s)", target, result[1])

    if {"warm", "cold", "delta"} & only:
        only.add("seq")  # the reads read the file the sequential write made
    if "stats" in only:
        only.add("creates")
    rss1 = rss3 = 0.0

    from bucketfs.client.buckets import BucketsClient

    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR", "/tmp")) as tmp_s:
        tmp = Path(tmp_s)
        local = tmp / "local"
        local.mkdir()
        # -- local disk
        if "seq" in only:
            put_seq("local", seq_write(local / "big", size))
        if "warm" in only:
            put_reads(put, "local", warm_read(local / "big"))
        if "delta" in only:
            put("change 10 bytes of the seq file + fsync (s)", "local", small_change(local / "big"))
        if "cold" in only:
            drop_local(local / "big")
            put("cold seq read (MiB/s)", "local", seq_read(local / "big"))
        if "creates" in only:
            put(f"create {args.files} x 4 KiB (files/s)", "local",
                creates(local / "small", args.files))
        if "stats" in only:
            put(f"stat {args.files} entries (entries/s)", "local", stats(local / "small")[0])
        if "seq" in only:
            (local / "big").unlink()

        # -- rclone
        if not args.no_rclone and shutil.which("rclone") and {"seq", "creates"} & only:
            src = tmp / "rclone-src"
            src.mkdir()
            with rclone_mount(src, tmp / "rmnt", tmp / "rcache") as r:
                if "seq" in only:
                    put_seq("rclone", seq_write(r / "big", size))
                if "warm" in only:
                    put_reads(put, "rclone", warm_read(r / "big"))
                if "creates" in only:
                    put(f"create {args.files} x 4 KiB (files/s)", "rclone",
                        creates(r / "small", args.files))
                if "stats" in only:
                    put(f"stat {args.files} entries (entries/s)", "rclone",
                        stats(r / "small")[0])
                # rclone uploads 5 s after close and an unmount does not wait (rclone #7309):
                # wait until the backing directory has everything before remounting.
                deadline = time.monotonic() + 300
                while time.monotonic() < deadline and not (
                    ("seq" not in only or (
                        (src / "big").exists() and (src / "big").stat().st_size == size))
                    and ("creates" not in only or (
                        (src / "small").is_dir()
                        and len(os.listdir(src / "small")) == args.files))
                ):
                    time.sleep(0.2)
            if {"cold", "stats"} & only:
                shutil.rmtree(tmp / "rcache", ignore_errors=True)
                with rclone_mount(src, tmp / "rmnt", tmp / "rcache") as r:
                    if "cold" in only:
                        put("cold seq read (MiB/s)", "rclone", seq_read(r / "big"))
                    if "stats" in only:
                        put(f"stat {args.files} entries (entries/s), cold", "rclone",
                            stats(r / "small")[0])

        # rclone's files (its remote copy and cache of the big file) are read no more: remove
        # them, as the local file was, so that every target starts with the same free memory.
        shutil.rmtree(tmp / "rclone-src", ignore_errors=True)
        shutil.rmtree(tmp / "rcache", ignore_errors=True)

        # -- bucketfs
        with running_hub(tmp / "hub", auth="none") as hub:
            thread, key = new_bucket(hub, "bench")
            client = BucketsClient(hub.address).with_thread(thread)
            with mounted(hub, tmp, key, thread=thread, name="b1") as m:
                if "seq" in only:
                    put_seq("bucketfs", seq_write(m.path / "big", size))
                if "warm" in only:
                    put_reads(put, "bucketfs", warm_read(m.path / "big"))
                if "delta" in only:
                    put("change 10 bytes of the seq file + fsync (s)", "bucketfs",
                        small_change(m.path / "big"))
                if "creates" in only:
                    put(f"create {args.files} x 4 KiB (files/s)", "bucketfs",
                        creates(m.path / "small", args.files))
                if "stats" in only:
                    put(f"stat {args.files} entries (entries/s)", "bucketfs",
                        stats(m.path / "small")[0])
                m.wait_synced(timeout=600)
                if "ctb" in only:
                    ctb = close_to_bucket(m, client, key, 5)
                    put("close → in bucket root, small file (s, median of 5)", "bucketfs",
                        statistics.median(ctb))
                rss1 = peak_rss_mb(m.pid)
            if "seq" in only:
                with mounted(hub, tmp, key, thread=thread, name="b2", writeback_delay=0,
                             fsync="local") as m:
                    put_seq("bucketfs fsync=local", seq_write(m.path / "big2", size))
                    m.wait_synced(timeout=600)
            # Cold: a new mount with an empty cache reads everything from the hub.
            if {"cold", "stats"} & only:
                with mounted(hub, tmp, key, thread=thread, name="b3") as m:
                    if "cold" in only:
                        put("cold seq read (MiB/s)", "bucketfs", seq_read(m.path / "big"))
                    if "stats" in only:
                        put(f"stat {args.files} entries (entries/s), cold", "bucketfs",
                            stats(m.path / "small")[0])
                    rss3 = peak_rss_mb(m.pid)
            if "lsl" in only:
                # ls -l of a big directory pushed from outside in one PushPaths stream.
                files = [(f"bigdir/e{i:05d}", io.BytesIO(b"e")) for i in range(args.big_dir)]
                client.push_paths(key, files)
                with mounted(hub, tmp, key, thread=thread, name="b4") as m:
                    t = time.perf_counter()
                    rate, n = stats(m.path / "bigdir")
                    elapsed = time.perf_counter() - t
                    assert n == args.big_dir, n
                    put(f"ls -l of {n} entries, cold (s)", "bucketfs", elapsed)
            client.close()

    targets = ["local", "bucketfs", "bucketfs fsync=local", "rclone"]
    print(f"\nsize={args.size} MiB, files={args.files}, big dir={args.big_dir}")
    print("| metric | " + " | ".join(targets) + " | bucketfs / local | bucketfs / rclone |")
    print("| --- |" + " ---: |" * (len(targets) + 2))
    for metric, vals in rows.items():
        cells = [f"{vals[t]:.3g}" if t in vals else "" for t in targets]
        if metric.endswith("(s)"):  # durations: a ratio of rates only
            vals = {k: v for k, v in vals.items() if k not in ("local", "rclone")}
        r_local = (f"{vals['bucketfs'] / vals['local']:.2f}x"
                   if "bucketfs" in vals and "local" in vals else "")
        r_rc = (f"{vals['bucketfs'] / vals['rclone']:.2f}x"
                if "bucketfs" in vals and "rclone" in vals else "")
        print(f"| {metric} | " + " | ".join(cells) + f" | {r_local} | {r_rc} |")
    print(f"\nmount daemon peak RSS: {rss1:.0f} MB (writes), {rss3:.0f} MB (cold read)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
