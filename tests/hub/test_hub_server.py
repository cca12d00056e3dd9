"""The hub process: start-up message, sd_notify, graceful SIGTERM, TLS, first-start client
config, and clear errors for bad options."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hubproc import REPO, free_port, running_hub

pytestmark = pytest.mark.timeout(120)


def _hub_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "bucketfs.hub.server", *args]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ, BUCKETFS_CONFIG=str(tmp_path / "config.toml"), **extra)
    env["PYTHONPATH"] = str(REPO)
    return env


def _serving(address: str, credentials: grpc.ChannelCredentials | None = None) -> bool:
    channel = (
        grpc.secure_channel(address, credentials) if credentials else grpc.insecure_channel(address)
    )
    with channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=10
        )
        return reply.status == health_pb2.HealthCheckResponse.SERVING


def test_sd_notify_ready_and_graceful_sigterm(tmp_path: Path) -> None:
    sock_path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(sock_path))
        sock.settimeout(60)
        address = f"127.0.0.1:{free_port()}"
        proc = subprocess.Popen(
            _hub_cmd("--listen", address, "--data-dir", str(tmp_path / "d"), "--auth", "none"),
            env=_env(tmp_path, NOTIFY_SOCKET=str(sock_path)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        try:
            assert sock.recv(256) == b"READY=1"
            assert _serving(address)
            proc.send_signal(signal.SIGTERM)
            assert sock.recv(256) == b"STOPPING=1"
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
    assert proc.returncode == 0, err
    assert f"listening on {address}" in out
    assert not (tmp_path / "d" / "running").exists()  # a clean stop is recorded


def test_tls(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    args = ["--tls-cert", str(cert), "--tls-key", str(key)]
    with running_hub(tmp_path, auth="none", extra_args=args, tls_root=cert) as hub:
        creds = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
        assert _serving(hub.address, creds)
        with grpc.insecure_channel(hub.address) as plain:
            with pytest.raises(grpc.RpcError):
                health_pb2_grpc.HealthStub(plain).Check(health_pb2.HealthCheckRequest(), timeout=5)


def test_first_start_in_keys_mode_writes_client_config(tmp_path: Path) -> None:
    with running_hub(tmp_path, auth="keys") as hub:
        config = tomllib.loads(hub.config.read_text())
        assert config["api"] == hub.address
        assert config["api_key"]
        secret = hub.config.parent / config["api_secret_file"]
        assert secret.stat().st_mode & 0o077 == 0
        first = hub.config.read_text()
        hub.restart()
        assert hub.config.read_text() == first  # a restart does not replace credentials


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tls-cert", "/nonexistent.pem"], "needs both --tls-cert and --tls-key"),
        (["--tls-cert", "/nonexistent.pem", "--tls-key", "/nope.pem"], "cannot read TLS files"),
        (["--listen", "nonsense"], "invalid listen address"),
    ],
)
def test_bad_options_fail_clearly(tmp_path: Path, args: list[str], message: str) -> None:
    result = subprocess.run(
        _hub_cmd("--data-dir", str(tmp_path / "d"), "--auth", "none", *args),
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_port_in_use_fails_clearly(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            _hub_cmd("--data-dir", str(tmp_path / "d"), "--auth", "none",
                     "--listen", f"127.0.0.1:{port}"),
            env=_env(tmp_path), capture_output=True, text=True, timeout=60, cwd=REPO,
        )  # fmt: skip
    assert result.returncode == 1 and "cannot listen" in result.stderr


def test_metrics_endpoint_counts_rpcs(tmp_path: Path) -> None:
    import urllib.request

    from hub_helpers import Api

    port = free_port()
    with running_hub(tmp_path, extra_args=["--metrics", f"127.0.0.1:{port}"]) as hub:
        with hub.channel() as channel:
            api = Api.new_thread(channel)
            key = api.create().root.key
            api.push(key, "f", b"12345")
            assert api.pull(key, "f") == b"12345"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as resp:
            text = resp.read().decode()
    assert 'bucketfs_ops_total{component="hub",op="Create",result="OK"} 1.0' in text
    assert 'bucketfs_ops_total{component="hub",op="PushPath",result="OK"} 1.0' in text
    assert 'bucketfs_bytes_total{component="hub",direction="in"} 5.0' in text


def test_unreadable_database_fails_clearly(tmp_path: Path) -> None:
    data = tmp_path / "d"
    data.mkdir()
    (data / "hub.db").write_bytes(b"this is not a sqlite database" * 100)
    result = subprocess.run(
        _hub_cmd("--data-dir", str(data), "--auth", "none", "--listen", "127.0.0.1:0"),
        env=_env(tmp_path), capture_output=True, text=True, timeout=60, cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 1
    assert "cannot open the hub data" in result.stderr and "Traceback" not in result.stderr
