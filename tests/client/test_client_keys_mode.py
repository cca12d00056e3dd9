"""The client against a hub that requires keys (the default mode): signed API keys, thread
tokens from an identity, and one-line refusals."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest
from clirun import CLI

from bucketfs import config
from bucketfs.client.buckets import BucketsClient
from bucketfs.keys import write_identity_file
from bucketfs.pb import hubd_pb2, hubd_pb2_grpc

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def keys_hub(tmp_path: Path):
    from hubproc import running_hub

    with running_hub(tmp_path / "hub", auth="keys") as hub:
        yield hub


def _secret_file(path: Path, secret: str, mode: int = 0o600) -> Path:
    path.write_text(secret + "\n")
    os.chmod(path, mode)
    return path


def test_first_start_credentials_just_work(keys_hub, tmp_path: Path) -> None:
    """The hub wrote api, api_key and a 0600 secret file into the config: no further step."""
    cli = CLI(tmp_path, None, config=keys_hub.config)
    key = cli.out("bucket", "create", "signed").strip()
    cli.run("bucket", "push", key, "-", "a.txt", input=b"signed bytes")
    assert cli.out("bucket", "cat", "signed", "a.txt") == "signed bytes"
    assert cli.json("thread", "ls")  # ListDBs is allowed for account keys


def test_wrong_or_missing_credentials_are_one_line(keys_hub, tmp_path: Path) -> None:
    api_key = tomllib.loads(keys_hub.config.read_text())["api_key"]
    bad_secret = _secret_file(tmp_path / "bad-secret", "b" + "a" * 39)
    cfg = tmp_path / "bad.toml"
    cfg.write_text(
        f'api = "{keys_hub.address}"\napi_key = "{api_key}"\napi_secret_file = "{bad_secret}"\n'
    )
    msg = CLI(tmp_path, None, config=cfg).err("bucket", "create", "x")
    assert "refused the credentials" in msg and "Bad API key signature" in msg

    cfg.write_text(f'api = "{keys_hub.address}"\n')
    msg = CLI(tmp_path, None, config=cfg).err("thread", "create")
    assert "refused the credentials" in msg


def test_user_key_with_identity_gets_a_token(keys_hub, tmp_path: Path) -> None:
    # A user-group key, made over gRPC with the account key (as `bucketfs key create` does).
    with BucketsClient.from_config(config.load(keys_hub.config, env={})) as admin:
        info = (
            hubd_pb2_grpc.APIServiceStub(admin.channel)
            .CreateKey(
                hubd_pb2.CreateKeyRequest(type=hubd_pb2.KEY_TYPE_USER, secure=True),
                metadata=admin.metadata(),
                timeout=30,
            )
            .key_info
        )
    user_key = {"key": info.key, "secret": info.secret}

    def user(name: str) -> CLI:
        secret = _secret_file(tmp_path / f"{name}-secret", user_key["secret"])
        ident = tmp_path / f"{name}.key"
        cfg = tmp_path / f"{name}.toml"
        cfg.write_text(
            f'api = "{keys_hub.address}"\napi_key = "{user_key["key"]}"\n'
            f'api_secret_file = "{secret}"\nidentity_file = "{ident}"\n'
        )
        cli = CLI(tmp_path, None, config=cfg)
        cli.public_key = write_identity_file(ident).public_key_string()
        return cli

    alice, bob = user("alice"), user("bob")
    made = alice.json("bucket", "create", "mine")
    assert made["root"]["owner"] == alice.public_key  # created as the identity, via its token
    alice.run("bucket", "push", "mine", "-", "f", input=b"alice's")
    thread = made["root"]["thread"]
    # Bob holds the same API key but another identity: Alice's thread is not his.
    msg = bob.err("bucket", "ls", "--thread", thread)
    assert "permission denied" in msg.lower()


def test_loose_identity_file_is_refused(keys_hub, tmp_path: Path) -> None:
    cli = CLI(tmp_path, None, config=keys_hub.config)
    ident = tmp_path / "loose.key"
    write_identity_file(ident)
    os.chmod(ident, 0o644)
    msg = cli.err("bucket", "ls", "--identity", str(ident))
    assert f"chmod 600 {ident}" in msg
