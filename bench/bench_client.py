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
- the same push and pull through ``bucketfs bucket push|pull`` subprocesses (start-up included);
- ``push_paths`` of 1,000 files of 1 KiB (files/s).

Prints a table and the figures as JSON on the last line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="256M", help="file size (default 256M)")
    ap.add_argument("--files", type=int, default=1000, help="small files for PushPaths")
    opts = ap.parse_args()
    size = parse_size(opts.size)
    from hubproc import running_hub

    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-client-") as tmp:
        tmpdir = Path(tmp)
        src = tmpdir / "src.bin"
        make_file(src, size)

        def cp() -> None:
            # The hub fsyncs what it stores, so the baseline does too.
            shutil.copyfile(src, tmpdir / "cp.bin")
            with open(tmpdir / "cp.bin", "rb") as f:
                os.fsync(f.fileno())

        cp_s = timed(cp)
        (tmpdir / "cp.bin").unlink()
        results["cp_MBps"] = size / MiB / cp_s

        with running_hub(tmpdir / "hub", auth="none") as hub:
            with BucketsClient(hub.address) as c:
                c = c.with_thread(c.threads.new_db(name="bench"))
                for chunk in (64 * 1024, 256 * 1024, MiB):
                    data = tmpdir / f"push-{chunk}.bin"
                    make_file(data, size)
                    key = c.create(f"push-{chunk}").root.key

                    def push(data=data, key=key, chunk=chunk) -> None:
                        with open(data, "rb") as f:
                            c.push_path(key, "f.bin", f, chunk_size=chunk)

                    results[f"push_{chunk // 1024}K_MBps"] = size / MiB / timed(push)
                    data.unlink()
                key = c.create("pull").root.key
                with open(src, "rb") as f:
                    c.push_path(key, "f.bin", f)

                def pull() -> None:
                    with open(tmpdir / "pulled.bin", "wb") as out:
                        c.pull_path(key, "f.bin", out)

                results["pull_MBps"] = size / MiB / timed(pull)
                (tmpdir / "pulled.bin").unlink()

                def read_file() -> None:
                    with open(tmpdir / "read.bin", "wb") as out:
                        for reply in c.read_file_stream(key, "f.bin"):
                            out.write(reply.data)

                results["readfile_MBps"] = size / MiB / timed(read_file)
                (tmpdir / "read.bin").unlink()

                small = [(f"d/f{i:05d}", os.urandom(1024)) for i in range(opts.files)]
                key = c.create("small").root.key
                results["push_paths_files_per_s"] = opts.files / timed(
                    lambda: c.push_paths(key, small)
                )

                env = hub.env()
                env["BUCK_API"] = hub.address
                env["BUCK_THREAD"] = c.auth.thread
                env["BUCKETFS_CONFIG"] = str(tmpdir / "cli.toml")
                cli = [sys.executable, "-m", "bucketfs.cli", "bucket"]
                subprocess.run([*cli, "create", "cli"], env=env, check=True, capture_output=True)
                cli_data = tmpdir / "cli.bin"
                make_file(cli_data, size)
                results["cli_push_MBps"] = (
                    size
                    / MiB
                    / timed(
                        lambda: subprocess.run(
                            [*cli, "push", "cli", str(cli_data), "f.bin"],
                            env=env,
                            check=True,
                            capture_output=True,
                        )
                    )
                )
                results["cli_pull_MBps"] = (
                    size
                    / MiB
                    / timed(
                        lambda: subprocess.run(
                            [*cli, "pull", "cli", "f.bin", str(tmpdir / "cli-out.bin")],
                            env=env,
                            check=True,
                            capture_output=True,
                        )
                    )
                )

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
