"""``bucketfs key`` and ``bucketfs identity`` against a real hub on loopback (over gRPC with the
credentials the hub wrote on first start, and directly on its data dir)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import stat
import tomllib
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from bucketfs import keys
from bucketfs.commands import identity as identity_cmd
from bucketfs.commands import key as key_cmd
from bucketfs.errors import UserError
from bucketfs.hub.server import Hub, HubConfig
from bucketfs.pb import usersd_pb2, usersd_pb2_grpc

pytestmark = pytest.mark.timeout(120)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Parse and run one command the way ``bucketfs`` does; returns its stdout."""
    parser = argparse.ArgumentParser(prog="bucketfs")
    sub = parser.add_subparsers()
    key_cmd.register(sub)
    identity_cmd.register(sub)
    args = parser.parse_args(argv)
    capsys.readouterr()
    assert args.func(args) == 0
    return capsys.readouterr().out


@pytest.fixture
def config_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "config" / "config.toml"
    monkeypatch.setenv("BUCKETFS_CONFIG", str(path))
    for var in ("BUCK_API", "BUCKETFS_API", "BUCK_THREAD", "BUCKETFS_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    return path


@contextlib.contextmanager
def running_hub(data_dir: Path) -> Iterator[Hub]:
    hub = Hub(HubConfig(listen="127.0.0.1:0", data_dir=data_dir, gc_interval=0))
    hub.start()
    try:
        yield hub
    finally:
        hub.stop(grace=1)


def works(address: str, key: str, secret: str) -> bool:
    """True if the hub accepts a signed call with this key."""
    msg, sig = keys.sign_api_request(secret)
    md = [("x-textile-api-key", key), ("x-textile-api-sig-msg", msg), ("x-textile-api-sig", sig)]
    with grpc.insecure_channel(address) as channel:
        try:
            usersd_pb2_grpc.APIServiceStub(channel).ListThreads(
                usersd_pb2.ListThreadsRequest(), metadata=md, timeout=20
            )
        except grpc.RpcError as exc:
            assert exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAUTHENTICATED)
            return False
    return True


def test_key_commands_over_grpc(
    tmp_path: Path, config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with running_hub(tmp_path / "data") as hub:
        out = json.loads(run(["key", "create", "--json"], capsys))
        assert out["type"] == "account" and out["secure"] and len(out["secret"]) == 40
        assert works(hub.address, out["key"], out["secret"])
        text = run(["key", "create", "--type", "user"], capsys)
        assert "secret: b" in text and "shown only now" in text
        rows = json.loads(run(["key", "ls", "--json"], capsys))
        assert {r["type"] for r in rows} == {"account", "user"}
        assert len(rows) == 3  # the first-start key, and the two above
        assert all("secret" not in r for r in rows)
        run(["key", "invalidate", out["key"]], capsys)
        assert not works(hub.address, out["key"], out["secret"])
        listed = {r["key"]: r for r in json.loads(run(["key", "ls", "--json"], capsys))}
        assert listed[out["key"]]["valid"] is False

        org = json.loads(run(["key", "create", "--org", "acme", "--json"], capsys))
        assert org["org"] == "acme" and works(hub.address, org["key"], org["secret"])
        org_rows = json.loads(run(["key", "ls", "--org", "acme", "--json"], capsys))
        assert [r["key"] for r in org_rows] == [org["key"]]


def test_key_commands_on_data_dir(
    tmp_path: Path, config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    with pytest.raises(UserError, match="no hub database"):
        run(["key", "ls", "--data-dir", str(data)], capsys)
    with running_hub(data) as hub:
        out = json.loads(run(["key", "create", "--data-dir", str(data), "--json"], capsys))
        # The running hub accepts a key written straight into its database.
        assert works(hub.address, out["key"], out["secret"])
        org = json.loads(
            run(["key", "create", "--data-dir", str(data), "--org", "acme", "--json"], capsys)
        )
        assert works(hub.address, org["key"], org["secret"])
    rows = json.loads(run(["key", "ls", "--data-dir", str(data), "--json"], capsys))
    assert out["key"] in {r["key"] for r in rows} and org["key"] not in {r["key"] for r in rows}
    with pytest.raises(UserError, match="Org not found"):
        run(["key", "ls", "--data-dir", str(data), "--org", "nope"], capsys)


def test_key_command_without_credentials(
    tmp_path: Path, config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(UserError, match="no API key configured"):
        run(["key", "ls"], capsys)


def test_identity_commands(
    tmp_path: Path, config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = json.loads(run(["identity", "create", "--save", "--json"], capsys))
    path = Path(out["path"])
    assert path == config_path.parent / "identity"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert keys.read_identity_file(path).public_key_string() == out["public_key"]
    cfg = tomllib.loads(config_path.read_text())
    assert Path(cfg["identity_file"]) == path.resolve()
    assert run(["identity", "show"], capsys).strip() == out["public_key"]
    with pytest.raises(UserError, match="already exists"):
        run(["identity", "create"], capsys)
    other = tmp_path / "alice.key"
    shown = run(["identity", "create", str(other)], capsys)
    alice = keys.read_identity_file(other).public_key_string()
    assert alice in shown and alice != out["public_key"]
    os.chmod(other, 0o640)
    with pytest.raises(UserError, match="chmod 600"):
        run(["identity", "show", str(other)], capsys)
