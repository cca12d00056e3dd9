"""Sequential write + fsync of a big file: local disk, bucketfs and rclone in alternating rounds.

    .venv/bin/python bench/bench_seqwrite.py [--size MiB] [--rounds N] [--no-rclone]
                                             [--nodirect] [--reads]

``bench_mount.py`` writes once per target, one target after the other; on this VM a single
write's speed moves a lot from minute to minute (the local disk alone measured 300-1,660 MiB/s
within an hour: fresh page-cache memory is slow to come by), so one round gives a noisy ratio.
Here every target is mounted once, and each round writes the file once on every target, the
order rotating each round. Targets: the local disk, rclone (``--vfs-cache-mode full``), the
least a pyfuse3 daemon can do (``bench/peers/pyfuse3_minimal.py``: each write one ``pwrite``
to a local file, through the kernel's page cache like any FUSE file by default), bucketfs
(fsync = in the bucket), bucketfs ``-o fsync=local`` and, with ``--nodirect``, bucketfs
``-o nodirect_write`` (write-only descriptors through the page cache, as before
``direct_write`` became the default); the table gives the best and the median round of each
and the ratios of those. With ``--reads`` each file is also read back right after it was
written, then read warm (``bench_mount.warm_read``). Each written file is removed (and, on
bucketfs, its upload finished) before the next write. For the
bucketfs targets it also gives the CPU seconds the mount daemon and the hub used per GiB
written (``/proc/PID/stat``, from the start of the write to fsync's return: the early upload
during the write counts, the fsync=local target's final upload, after fsync, does not).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

from bench_mount import MiB, fuse_process, rclone_mount, seq_write, warm_read  # noqa: E402
from hubproc import running_hub  # noqa: E402
from mountproc import mounted, new_bucket  # noqa: E402


def minimal_mount(mnt: Path, backing: Path) -> contextlib.AbstractContextManager[Path]:
    """``bench/peers/pyfuse3_minimal.py`` mounted at ``mnt``; unmounted and stopped after."""
    return fuse_process([sys.executable, str(REPO / "bench" / "peers" / "pyfuse3_minimal.py"),
                         str(mnt), str(backing)], mnt, "pyfuse3_minimal")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=1024, help="file size in MiB")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--no-rclone", action="store_true")
    ap.add_argument("--nodirect", action="store_true",
                    help="also bucketfs -o nodirect_write (write-only descriptors go through "
                         "the kernel's page cache, as before direct_write was the default)")
    ap.add_argument("--reads", action="store_true",
                    help="also read each file back after writing it: the first read, then "
                         "the warm read (bench_mount.warm_read)")
    args = ap.parse_args()
    size = args.size * MiB
    results: dict[str, list[tuple[float, float]]] = {}
    cpu: dict[str, list[tuple[float, float]]] = {}  # bucketfs: (daemon, hub) CPU s per GiB
    reads: dict[str, list[tuple[float, float]]] = {}  # --reads: (first, warm) MiB/s
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR", "/tmp")) as tmp_s, \
            ExitStack() as stack:
        tmp = Path(tmp_s)
        dirs: dict[str, Path] = {"local": tmp / "local"}
        dirs["local"].mkdir()
        syncs = {}
        pids: dict[str, tuple[int, int]] = {}
        if not args.no_rclone and shutil.which("rclone"):
            (tmp / "rclone-src").mkdir()
            dirs["rclone"] = stack.enter_context(
                rclone_mount(tmp / "rclone-src", tmp / "rmnt", tmp / "rcache"))
        dirs["pyfuse3 minimal"] = stack.enter_context(
            minimal_mount(tmp / "minimal", tmp / "minimal-backing"))
        hub = stack.enter_context(running_hub(tmp / "hub", auth="none"))
        thread, key = new_bucket(hub, "bench")
        variants: list[tuple[str, dict[str, object]]] = [
            ("bucketfs", {}), ("bucketfs fsync=local", {"fsync": "local"})]
        if args.nodirect:
            variants.append(("bucketfs nodirect_write", {"nodirect_write": True}))
        for target, opts in variants:
            m = stack.enter_context(
                mounted(hub, tmp, key, thread=thread, name=target.replace(" ", "_"), **opts))
            dirs[target] = m.path
            syncs[target] = m.wait_synced
            pids[target] = (m.pid, hub.proc.pid)
        targets = list(dirs)
        for r in range(args.rounds):
            for target in targets[r % len(targets):] + targets[: r % len(targets)]:
                path = dirs[target] / ("f" if target == "pyfuse3 minimal"
                                       else f"big-{target.replace(' ', '_')}")
                before = [cpu_seconds(p) for p in pids.get(target, ())]
                results.setdefault(target, []).append(seq_write(path, size))
                if target in pids:
                    used = [cpu_seconds(p) - b for p, b in zip(pids[target], before, strict=True)]
                    cpu.setdefault(target, []).append((used[0] * MiB * 1024 / size,
                                                       used[1] * MiB * 1024 / size))
                if args.reads:
                    reads.setdefault(target, []).append(warm_read(path))
                path.unlink()
                if target in syncs:
                    syncs[target](timeout=600)  # the upload (or removal) done first
            print(f"round {r + 1}: " + ", ".join(
                f"{t} {results[t][-1][0]:.0f}" for t in targets), file=sys.stderr, flush=True)

    def best(t: str) -> float:
        return max(v for v, _ in results[t])

    def median(t: str) -> float:
        return statistics.median(v for v, _ in results[t])

    print(f"size={args.size} MiB, rounds={args.rounds}")
    print("| target | best MiB/s | median MiB/s | best / local best | median / local median "
          "| final fsync, median (s) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for t in targets:
        fs = statistics.median(f for _, f in results[t])
        print(f"| {t} | {best(t):,.0f} | {median(t):,.0f} | {best(t) / best('local'):.2f}x "
              f"| {median(t) / median('local'):.2f}x | {fs:.2f} |")
    if reads:
        print("\n| target | first read after writing, median MiB/s | warm read, median MiB/s "
              "| warm / local warm |")
        print("| --- | ---: | ---: | ---: |")
        lw = statistics.median(w for _, w in reads["local"])
        for t, values in reads.items():
            w = statistics.median(w for _, w in values)
            print(f"| {t} | {statistics.median(f for f, _ in values):,.0f} | {w:,.0f} "
                  f"| {w / lw:.2f}x |")
    for t, values in cpu.items():
        print(f"{t}: CPU seconds per GiB written (median): mount daemon "
              f"{statistics.median(d for d, _ in values):.2f}, hub "
              f"{statistics.median(h for _, h in values):.2f}")
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds process ``pid`` has used so far (``/proc/PID/stat``)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    sys.exit(main())
