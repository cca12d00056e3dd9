"""``bucketfs hub``: the command module registers its options and serves until SIGTERM."""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hubproc import REPO, free_port

from bucketfs.commands import hub as hub_command

pytestmark = pytest.mark.timeout(120)

# Runs the command through its own register(), the way bucketfs.cli does.
RUNNER = """
import argparse, sys
from bucketfs.commands import hub
parser = argparse.ArgumentParser(prog="bucketfs")
hub.register(parser.add_subparsers())
args = parser.parse_args(sys.argv[1:])
sys.exit(args.func(args))
"""


def test_register_defaults() -> None:
    parser = argparse.ArgumentParser()
    hub_command.register(parser.add_subparsers())
    args = parser.parse_args(["hub"])
    assert args.listen == "127.0.0.1:3006" and args.auth == "keys"
    assert args.data_dir is None and args.tls_cert is None and args.func is hub_command.run
    args = parser.parse_args(["hub", "--auth", "none", "--data-dir", "/x", "--listen", ":9"])
    assert args.auth == "none" and args.data_dir == Path("/x")


def test_command_serves_until_sigterm(tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    proc = subprocess.Popen(
        [sys.executable, "-c", RUNNER, "hub", "--listen", address, "--auth", "none",
         "--data-dir", str(tmp_path / "data")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        env={"BUCKETFS_CONFIG": str(tmp_path / "c.toml"), "PATH": "/usr/bin:/bin",
             "PYTHONPATH": str(REPO), "HOME": str(tmp_path)},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        with grpc.insecure_channel(address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while True:
                try:
                    reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=2)
                    break
                except grpc.RpcError:
                    assert proc.poll() is None and time.monotonic() < deadline, proc.stderr
                    time.sleep(0.1)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert proc.returncode == 0, err
    assert f"bucketfs hub listening on {address}" in out
