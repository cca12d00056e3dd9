"""Private (encrypted) buckets through the CLI, and the mount's refusal of them."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from clirun import CLI

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def cli(tmp_path: Path, hub: str) -> CLI:
    return CLI(tmp_path, hub)


def test_private_bucket_commands(cli: CLI) -> None:
    made = cli.json("bucket", "create", "--private", "vault")
    assert made["root"]["private"] is True
    data = os.urandom(700_000)  # three 256 KiB chunks of ciphertext
    (cli.cwd / "big.bin").write_bytes(data)
    cli.run("bucket", "push", "vault", "big.bin", "d/big.bin")
    assert cli.run("bucket", "cat", "vault", "d/big.bin").stdout == data
    cli.run("bucket", "pull", "vault", "d/big.bin", "back.bin")
    assert (cli.cwd / "back.bin").read_bytes() == data
    cli.run("bucket", "mv", "vault", "d/big.bin", "e/moved.bin")
    assert cli.run("bucket", "cat", "vault", "e/moved.bin").stdout == data
    cli.run("bucket", "rm", "vault", "e/moved.bin")
    assert "no link" in cli.err("bucket", "cat", "vault", "e/moved.bin")


def test_mount_refuses_a_private_bucket_in_one_line(cli: CLI, tmp_path: Path) -> None:
    key = cli.json("bucket", "create", "--private", "vault")["root"]["key"]
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    try:
        err = cli.err("mount", "--key", key, str(mnt))
        assert "is private (encrypted)" in err and "bucketfs bucket push/pull/cat" in err
        assert not os.path.ismount(mnt)
    finally:
        if os.path.ismount(mnt):  # only if the refusal failed: never leave a mount behind
            subprocess.run(["fusermount3", "-u", str(mnt)], check=False, timeout=30)
