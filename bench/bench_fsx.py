"""fsx-style random I/O on the local disk and on a bucketfs mount, in the same run.

    .venv/bin/python bench/bench_fsx.py --ops 100000 --seed N [--max-size MiB]

Runs the exerciser of ``tests/posix/fsx.py`` (writes, truncates, reads, mmap reads, close/
reopen, fsync over one file of up to 4 MiB, every operation checked against a shadow copy) with
the same seed — hence the same operation sequence — first on a local temp directory, then on a
fresh mount of a real hub on loopback. After the mount run the mount is synced and the file is
checked through a fresh mount. Prints ops/s for both and the ratio, as a Markdown table.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "tests" / "posix"))

from fsx import Fsx, FsxResult, check_file  # noqa: E402
from hubproc import running_hub  # noqa: E402
from mountproc import mounted, new_bucket  # noqa: E402


def run_one(path: Path, seed: int, ops: int, max_size: int) -> tuple[FsxResult, float, bytes]:
    """One exerciser run; returns its result, its wall time in seconds and the final shadow."""
    fx = Fsx(path, seed=seed, max_size=max_size)
    t = time.perf_counter()
    try:
        result = fx.run(ops)
    finally:
        fx.close()
    return result, time.perf_counter() - t, bytes(fx.shadow)


def main() -> None:
    """Parse arguments, run both targets, print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ops", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-size", type=int, default=4, help="file size limit in MiB")
    args = ap.parse_args()
    max_size = args.max_size << 20

    with tempfile.TemporaryDirectory(prefix="bench-fsx-") as tmp_s:
        tmp = Path(tmp_s)
        (tmp / "local").mkdir()
        local, local_s, local_shadow = run_one(tmp / "local" / "fsx.bin", args.seed, args.ops,
                                               max_size)
        print(f"local: {args.ops} ops in {local_s:.1f}s", file=sys.stderr)
        with running_hub(tmp / "hub") as hub:
            thread, key = new_bucket(hub, "fsx")
            with mounted(hub, tmp, key, thread=thread, poll=0.5, writeback_delay=0.2) as m:
                mnt, mnt_s, shadow = run_one(m.path / "fsx.bin", args.seed, args.ops, max_size)
                print(f"mount: {args.ops} ops in {mnt_s:.1f}s", file=sys.stderr)
                t = time.perf_counter()
                m.wait_synced(timeout=600)
                sync_s = time.perf_counter() - t
            assert shadow == local_shadow, "same seed, different final contents"
            with mounted(hub, tmp, key, thread=thread, name="fresh") as m2:
                check_file(m2.path / "fsx.bin", shadow, f"seed {args.seed}")
            from bucketfs.client.buckets import BucketsClient

            out = io.BytesIO()
            with BucketsClient(hub.address) as c:
                c.with_thread(thread).pull_path(key, "fsx.bin", out)
            assert hashlib.sha256(out.getvalue()).digest() == hashlib.sha256(shadow).digest()

    counts = ", ".join(f"{k} {v}" for k, v in sorted(mnt.counts.items()))
    print(f"\nfsx, {args.ops} operations, seed {args.seed}, file up to {args.max_size} MiB "
          f"(final size {mnt.size}); mix: {counts}\n")
    print("| | local disk | bucketfs | bucketfs / local |")
    print("|---|---|---|---|")
    lo, bf = args.ops / local_s, args.ops / mnt_s
    print(f"| ops/s | {lo:,.0f} | {bf:,.0f} | {bf / lo:.2f}x |")
    print(f"| wall time (s) | {local_s:.1f} | {mnt_s:.1f} | |")
    print("\nTime per operation kind (ms per operation, each including its read-back check):\n")
    print("| operation | count | local | bucketfs | ratio |")
    print("|---|---:|---:|---:|---:|")
    for k in sorted(mnt.counts):
        lo_ms = 1000 * local.seconds[k] / max(1, local.counts[k])
        bf_ms = 1000 * mnt.seconds[k] / max(1, mnt.counts[k])
        share = 100 * mnt.seconds[k] / mnt_s
        print(f"| {k} | {mnt.counts[k]:,} | {lo_ms:.3f} | {bf_ms:.3f} ({share:.0f}% of the "
              f"time) | {bf_ms / lo_ms if lo_ms else 0:.0f}x |")
    print(f"\nmount: final sync to the hub took {sync_s:.1f}s; fresh mount and PullPath of "
          "the file equal the shadow.")


if __name__ == "__main__":
    main()
