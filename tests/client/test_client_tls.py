"""TLS: the CLI talks to a hub serving TLS with --tls-ca, and never sends credentials in clear
text to a remote host."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import grpc
import pytest
from clirun import CLI
from grpc_health.v1 import health_pb2, health_pb2_grpc

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl tool"),
]


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def tls_hub(tmp_path: Path):
    """A hub started by tests/hubproc.py with TLS on; readiness checked over TLS."""
    import hubproc

    cert, key = _self_signed(tmp_path)

    class TLSHub(hubproc.Hub):
        def wait_ready(self, timeout: float = hubproc.START_TIMEOUT) -> None:
            creds = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
            deadline = time.monotonic() + timeout
            with grpc.secure_channel(self.address, creds) as channel:
                stub = health_pb2_grpc.HealthStub(channel)
                while True:
                    assert self.proc is not None
                    if self.proc.poll() is not None:
                        raise RuntimeError(f"hub exited:\n{self.log()}")
                    try:
                        stub.Check(health_pb2.HealthCheckRequest(), timeout=2)
                        return
                    except grpc.RpcError:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.05)

    base = tmp_path / "hub"
    base.mkdir()
    hub = TLSHub(
        address=f"127.0.0.1:{hubproc.free_port()}",
        data_dir=base / "data",
        config=base / "config.toml",
        auth="none",
        log_path=base / "hub.log",
        extra_args=["--tls-cert", str(cert), "--tls-key", str(key)],
    )
    try:
        hub.start()
        yield hub, cert
    finally:
        hub.kill()


def test_cli_over_tls(tls_hub, tmp_path: Path) -> None:
    hub, cert = tls_hub
    cli = CLI(tmp_path, hub.address)
    cli.run("bucket", "create", "secure", "--tls-ca", str(cert))
    cli.run("bucket", "push", "secure", "-", "s.txt", "--tls-ca", str(cert), input=b"tls bytes")
    # The same through the environment and config instead of flags.
    env = {"BUCKETFS_TLS_CA": str(cert)}
    assert cli.out("bucket", "cat", "secure", "s.txt", env=env) == "tls bytes"
    # Plain text to a TLS port: one line, no traceback.
    assert "cannot reach the hub" in cli.err("bucket", "ls")


def test_credentials_never_go_in_clear_to_a_remote_host(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("baaaqeayeaudaocajbifqydiob4ibceqtcqkrmfy\n")
    os.chmod(secret, 0o600)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'api_key = "bkey"\napi_secret_file = "{secret}"\n')
    # 192.0.2.0/24 is TEST-NET-1: nothing is contacted, the refusal comes first.
    cli = CLI(tmp_path, "192.0.2.1:3006", config=cfg)
    msg = cli.err("thread", "ls")
    assert "refusing to send credentials without TLS" in msg and "--insecure" in msg
