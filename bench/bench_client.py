"""Client throughput over loopback: what ``BucketsClient`` and the CLI add on top of the wire.

    .venv/bin/python bench/bench_client.py               # 256 MiB file
    .venv/bin/python bench/bench_client.py --size 64M    # quicker

Against a real hub subprocess (``--auth none``, ``tests/hubproc.py``) on 127.0.0.1, in one run:

- ``cp`` of the file to the same disk plus fsync (the local baseline of every ratio; the hub
  fsyncs what it stores);
- ``BucketsClient.push_path`` with 64 KiB, 256 KiB (the default) and 1 MiB chunks, each into a
  fresh bucket with fresh bytes (so the hub cannot skip blocks it already has);
- ``BucketsClient.pull_path`` (PullPath, 32 KiB messages) and ``read_file_stream`` (the
  bucketfs FS.ReadFile extension, 256 KiB messages) into a file;
- the same push and pull through ``bucketfs bucket push|pull`` subprocesses (start-up included;
  the CLI pulls with ``download()``, i.e. FS.ReadFile);
- ``push_paths`` of 1,000 files of 1 KiB (files/s).

Each figure is the median of ``--repeat`` runs (default 3). Prints a table and the figures as
JSON on the last line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from bucketfs.client.buckets import BucketsClient  # noqa: E402
from bucketfs.config import parse_size  # noqa: E402

MiB = 1024 * 1024


def make_file(path: Path, size: int) -> None:
    """Random bytes (incompressible, no repeated blocks)."""
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(MiB, left)
            f.write(os.urandom(n))
            left -= n


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median_rate(n: int, setup, run, amount: float) -> float:
    """Median of ``n`` runs of ``amount / seconds``; ``setup(i)`` (untimed) returns run's arg."""
    rates = []
    for i in range(n):
        arg = setup(i)
        rates.append(amount / timed(lambda arg=arg: run(arg)))
    return statistics.median(rates)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="256M", help="file size (default 256M)")
    ap.add_argument("--files", type=int, default=1000, help="small files for PushPaths")
    ap.add_argument("--repeat", type=int, default=3, help="runs per figure (median reported)")
    opts = ap.parse_args()
    size = parse_size(opts.size)
    mb = size / MiB
    n = opts.repeat
    from hubproc import running_hub

    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-client-") as tmp:
        tmpdir = Path(tmp)
        src = tmpdir / "src.bin"
        make_file(src, size)

        def cp(_: object) -> None:
            # The hub fsyncs what it stores, so the baseline does too.
            shutil.copyfile(src, tmpdir / "cp.bin")
            with open(tmpdir / "cp.bin", "rb") as f:
                os.fsync(f.fileno())
            (tmpdir / "cp.bin").unlink()

        results["cp_MBps"] = median_rate(n, lambda i: None, cp, mb)

        with running_hub(tmpdir / "hub", auth="none") as hub:
            with BucketsClient(hub.address) as c:
                c = c.with_thread(c.threads.new_db(name="bench"))
                data = tmpdir / "push.bin"

                def fresh(i: int) -> str:
                    make_file(data, size)  # new bytes: the hub cannot skip known blocks
                    return c.create(f"push-{i}").root.key

                for chunk in (64 * 1024, 256 * 1024, MiB):

                    def push(key: str, chunk: int = chunk) -> None:
                        with open(data, "rb") as f:
                            c.push_path(key, "f.bin", f, chunk_size=chunk)

                    results[f"push_{chunk // 1024}K_MBps"] = median_rate(n, fresh, push, mb)

                key = c.create("pull").root.key
                with open(src, "rb") as f:
                    c.push_path(key, "f.bin", f)

                def pull(_: object) -> None:
                    with open(tmpdir / "pulled.bin", "wb") as out:
                        c.pull_path(key, "f.bin", out)

                results["pull_MBps"] = median_rate(n, lambda i: None, pull, mb)

                def read_file(_: object) -> None:
                    with open(tmpdir / "pulled.bin", "wb") as out:
                        c.download(key, "f.bin", out)

                results["readfile_MBps"] = median_rate(n, lambda i: None, read_file, mb)

                small = [(f"d/f{i:05d}", os.urandom(1024)) for i in range(opts.files)]
                results["push_paths_files_per_s"] = median_rate(
                    n,
                    lambda i: c.create(f"small-{i}").root.key,
                    lambda key: c.push_paths(key, small),
                    opts.files,
                )

                env = hub.env()
                env["BUCK_API"] = hub.address
                env["BUCK_THREAD"] = c.auth.thread
                env["BUCKETFS_CONFIG"] = str(tmpdir / "cli.toml")
                cli = [sys.executable, "-m", "bucketfs.cli", "bucket"]

                def cli_fresh(i: int) -> str:
                    make_file(data, size)
                    name = f"cli-{i}"
                    subprocess.run([*cli, "create", name], env=env, check=True, capture_output=True)
                    return name

                def cli_push(name: str) -> None:
                    subprocess.run(
                        [*cli, "push", name, str(data), "f.bin"], env=env, check=True,
                        capture_output=True,
                    )  # fmt: skip

                results["cli_push_MBps"] = median_rate(n, cli_fresh, cli_push, mb)

                def cli_pull(_: object) -> None:
                    subprocess.run(
                        [*cli, "pull", "cli-0", "f.bin", str(tmpdir / "cli-out.bin")], env=env,
                        check=True, capture_output=True,
                    )  # fmt: skip

                results["cli_pull_MBps"] = median_rate(n, lambda i: None, cli_pull, mb)

    cp = results["cp_MBps"]
    print(f"file size {size / MiB:.0f} MiB; local cp {cp:.0f} MB/s")
    for name, value in results.items():
        if name.endswith("_MBps") and name != "cp_MBps":
            print(f"  {name[:-5]:<14} {value:8.1f} MB/s   {value / cp:5.2f}x cp")
    print(
        f"  push_paths     {results['push_paths_files_per_s']:8.0f} files/s ({opts.files} x 1 KiB)"
    )
    print(json.dumps({k: round(v, 2) for k, v in results.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
