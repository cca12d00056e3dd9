"""``bucketfs demo``: start a local hub (if none answers), create a demo bucket, mount it.

Everything goes through the real commands as subprocesses (``hub``, ``bucket``, ``mount``), so
the demo exercises exactly what a user would type; gRPC is never set up in this process, so the
background hub and mount start cleanly.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bucketfs.commands.common import add_parser
from bucketfs.errors import UserError
from bucketfs.hub.store import data_dir_default

EPILOG = """examples:
  bucketfs demo                       hub on 127.0.0.1:3006, bucket "demo" at ~/bucketfs-demo
  bucketfs demo --mountpoint /mnt/d   mount somewhere else
  bucketfs demo --stop                unmount (after uploading) and stop the demo hub
"""

API = "127.0.0.1:3006"
WELCOME = b"""Welcome to bucketfs.

This folder is the bucket "demo" on your local hub. Files you put here are uploaded to the
bucket; `bucketfs bucket ls demo` lists them through the hub, and `bucketfs cid FILE` shows the
CID a file gets.
"""


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``demo`` command."""
    p = add_parser(
        sub, "demo", "start a local hub and mount a demo bucket", EPILOG,
        description="Start the embedded hub (unless one answers), create the bucket 'demo' and "
        "mount it in the background.",
    )
    p.add_argument("--mountpoint", default=str(Path.home() / "bucketfs-demo"))
    p.add_argument("--stop", action="store_true", help="unmount the demo and stop its hub")
    p.set_defaults(func=run)


def _cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "bucketfs.cli", *args], capture_output=True, text=True
    )
    if check and proc.returncode != 0:
        raise UserError(proc.stderr.strip().removeprefix("bucketfs: ") or f"{args[0]} failed")
    return proc


def _hub_serving(timeout: float = 1.0) -> bool:
    with grpc.insecure_channel(API) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=timeout
            )
        except grpc.RpcError:
            return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def _pidfile() -> Path:
    return data_dir_default() / "demo-hub.pid"


def _start_hub() -> None:
    data_dir = data_dir_default()
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    log_path = data_dir / "demo-hub.log"
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bucketfs.cli", "hub", "--listen", API],
            stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file, start_new_session=True,
        )
    _pidfile().write_text(str(proc.pid))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise UserError(f"the hub exited at start; see {log_path}")
        if _hub_serving():
            print(f"started the hub on {API} (data in {data_dir}, log {log_path})")
            return
        time.sleep(0.2)
    raise UserError(f"the hub did not become ready in 30 s; see {log_path}")


def _demo_bucket() -> str:
    roots = json.loads(_cli("bucket", "ls", "--json").stdout or "[]")
    for root in roots:
        if root.get("name") == "demo":
            return root["key"]
    created = json.loads(_cli("bucket", "create", "demo", "--json").stdout)
    key = created["root"]["key"]
    welcome = data_dir_default() / "WELCOME.txt"
    welcome.write_bytes(WELCOME)
    _cli("bucket", "push", key, str(welcome), "WELCOME.txt")
    return key


def run(args: argparse.Namespace) -> int:
    """Start or stop the demo."""
    mountpoint = Path(args.mountpoint).expanduser().absolute()
    if args.stop:
        if os.path.ismount(mountpoint):
            _cli("umount", str(mountpoint))
            print(f"unmounted {mountpoint}")
        pidfile = _pidfile()
        if pidfile.exists():
            pid = int(pidfile.read_text())
            try:
                os.kill(pid, signal.SIGTERM)
                print(f"stopped the demo hub (pid {pid})")
            except ProcessLookupError:
                pass  # already gone: nothing to stop
            pidfile.unlink()
        return 0
    if not _hub_serving():
        _start_hub()
    key = _demo_bucket()
    if not os.path.ismount(mountpoint):
        mountpoint.mkdir(parents=True, exist_ok=True)
        _cli("mount", key, str(mountpoint))
    print(f"bucket 'demo' ({key}) is mounted at {mountpoint}")
    print(f"  try:  ls -l {mountpoint}; cp some-file {mountpoint}/")
    print("  stop: .venv/bin/bucketfs demo --stop   (uploads what is pending, then unmounts)")
    return 0
