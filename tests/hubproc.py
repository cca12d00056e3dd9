"""Start a real hub as a subprocess for tests: ``with running_hub(tmp_path) as hub: ...``.

The hub runs ``python -m bucketfs.hub.server`` (the same code as ``bucketfs hub``) on a free
loopback port with its own data dir and its own client config file (``BUCKETFS_CONFIG``), so a
test never touches the user's real config. Readiness is the gRPC health check; the context
manager kills only the process it started, in a ``finally``.

    from hubproc import running_hub

    def test_something(tmp_path):
        with running_hub(tmp_path, auth="none") as hub:
            channel = grpc.insecure_channel(hub.address)
            ...
            hub.kill()      # SIGKILL, e.g. to test crash safety
            hub.restart()   # same port and data dir
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT = 60.0  # generous: the machine is shared and may be busy


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Hub:
    """A hub subprocess: ``address`` (HOST:PORT), ``data_dir``, ``config`` (client config)."""

    address: str
    data_dir: Path
    config: Path
    auth: str
    log_path: Path
    extra_args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    tls_root: Path | None = None  # CA/cert to trust when the hub serves TLS

    @property
    def port(self) -> int:
        """The TCP port."""
        return int(self.address.rpartition(":")[2])

    def env(self) -> dict[str, str]:
        """The environment the hub runs with (also right for CLI subprocesses of a test)."""
        env = dict(os.environ)
        env["BUCKETFS_CONFIG"] = str(self.config)
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        env.pop("NOTIFY_SOCKET", None)
        return env

    def start(self) -> None:
        """Start the process and wait until it answers health checks."""
        cmd = [
            sys.executable, "-m", "bucketfs.hub.server",
            "--listen", self.address, "--data-dir", str(self.data_dir),
            "--auth", self.auth, *self.extra_args,
        ]  # fmt: skip
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        offset = log.tell()
        try:
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env(), cwd=REPO
            )
        finally:
            log.close()
        if self.port == 0:
            # Port 0: the hub picks a free port itself (no race with other processes for a
            # port chosen in advance) and prints it; later restarts reuse that address.
            self.address = self._announced_address(offset)
        self.wait_ready()

    def _announced_address(self, offset: int, timeout: float = START_TIMEOUT) -> str:
        deadline = time.monotonic() + timeout
        while True:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                text = f.read().decode(errors="replace")
            match = re.search(r"listening on (\S+) ", text)
            if match:
                return match.group(1)
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"hub exited with {self.proc.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"hub did not announce its address:\n{self.log()}")
            time.sleep(0.05)

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Poll grpc.health.v1 until SERVING; raises with the hub's log if it never is."""
        deadline = time.monotonic() + timeout
        with self.channel() as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while True:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise RuntimeError(f"hub exited with {self.proc.returncode}:\n{self.log()}")
                try:
                    reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=2)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"hub not ready after {timeout}s:\n{self.log()}")
                time.sleep(0.05)

    def log(self) -> str:
        """Everything the hub printed so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL the hub (a crash) and reap it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM and wait (a graceful stop); SIGKILL if it does not stop in time."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        return self.proc.returncode

    def restart(self) -> None:
        """Stop (if running) and start again on the same address and data dir."""
        self.stop()
        self.start()

    def channel(self) -> grpc.Channel:
        """A new channel to the hub (TLS when ``tls_root`` is set); close it after use."""
        if self.tls_root is not None:
            creds = grpc.ssl_channel_credentials(root_certificates=self.tls_root.read_bytes())
            host = "localhost:" + str(self.port)  # the name in the test certificate
            return grpc.secure_channel(host, creds)
        return grpc.insecure_channel(self.address)


@contextlib.contextmanager
def running_hub(
    tmp_path: Path,
    auth: str = "none",
    extra_args: list[str] | None = None,
    tls_root: Path | None = None,
) -> Iterator[Hub]:
    """A started hub with data under ``tmp_path``; always killed on exit."""
    Path(tmp_path).mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="hub-", dir=tmp_path))
    hub = Hub(
        address="127.0.0.1:0",
        data_dir=base / "data",
        config=base / "config.toml",
        auth=auth,
        log_path=base / "hub.log",
        extra_args=list(extra_args or []),
        tls_root=tls_root,
    )
    try:
        hub.start()
        yield hub
    finally:
        hub.kill()
