"""Run ``bucketfs`` client commands in a subprocess, as a person would, for the client tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


class CLI:
    """Runs ``bucketfs`` in a subprocess with its own config file and hub address."""

    def __init__(self, tmp_path: Path, api: str | None, config: Path | None = None) -> None:
        self.config = config or tmp_path / "config" / "config.toml"
        self.cwd = tmp_path / "work"
        self.cwd.mkdir(exist_ok=True)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("BUCK_", "BUCKETFS_"))}
        self.env["BUCKETFS_CONFIG"] = str(self.config)
        if api:
            self.env["BUCK_API"] = api

    def run(self, *args: str, input: bytes | None = None, code: int = 0, env=None):
        proc = subprocess.run(
            [sys.executable, "-m", "bucketfs.cli", *args],
            input=input,
            capture_output=True,
            cwd=self.cwd,
            env={**self.env, **(env or {})},
            timeout=120,
        )
        assert proc.returncode == code, (args, proc.returncode, proc.stderr.decode())
        if code:
            lines = proc.stderr.decode().strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("bucketfs: "), proc.stderr
            assert "Traceback" not in proc.stderr.decode()
        return proc

    def json(self, *args: str):
        return json.loads(self.run(*args, "--json").stdout)

    def out(self, *args: str, **kw) -> str:
        return self.run(*args, **kw).stdout.decode()

    def err(self, *args: str, code: int = 1, **kw) -> str:
        return self.run(*args, code=code, **kw).stderr.decode().strip()
