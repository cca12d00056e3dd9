"""``bucketfs cid``: hashes like ipfs add --only-hash --cid-version=1 -r, stores nothing."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from bucketfs.commands import cid as cid_command
from bucketfs.errors import UserError

pytestmark = pytest.mark.timeout(120)

PLANETS_V1 = "bafybeih7e5dmkyk25up5vxug4q3hrg2fxbzf23dfrac2fns5h7z4aa7ioi"
MARS = "bafkreibmlvvgdyihetgocpof6xk64kjjzdeq2e4c7hqs3krdheosk4tgj4"
VENUS = "bafkreihfsphazrk2ilejpekyltjeh5k4yvwgjuwg26ueafohqioeo3sdca"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bucketfs")
    cid_command.register(parser.add_subparsers(dest="command"))
    return parser


def _planets(tmp_path: Path) -> Path:
    d = tmp_path / "planets"
    d.mkdir()
    (d / "mars.txt").write_bytes(b"Hello Mars!\n")
    (d / "venus.txt").write_bytes(b"Hello Venus!\n")
    (d / ".secret").write_bytes(b"x")
    return d


def _run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    return args.func(args)


def test_lists_every_entry_like_ipfs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = _planets(tmp_path)
    assert _run(["cid", str(d)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"added {MARS} planets/mars.txt",
        f"added {VENUS} planets/venus.txt",
        f"added {PLANETS_V1} planets",
    ]
    assert list(tmp_path.iterdir()) == [d]  # nothing stored anywhere


def test_quiet_prints_root_only_and_hidden_changes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = _planets(tmp_path)
    _run(["cid", "-q", str(d), str(d / "mars.txt")])
    assert capsys.readouterr().out.split() == [PLANETS_V1, MARS]
    _run(["cid", "-q", "--hidden", str(d)])
    assert capsys.readouterr().out.strip() != PLANETS_V1


def test_missing_path_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such file or directory"):
        _run(["cid", str(tmp_path / "nope")])


def test_through_the_real_cli(tmp_path: Path) -> None:
    """``python -m bucketfs.cli cid`` end to end: output, exit codes, one-line errors."""
    d = _planets(tmp_path)
    ok = subprocess.run(
        [sys.executable, "-m", "bucketfs.cli", "cid", "-q", str(d)], capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.split() == [PLANETS_V1]
    bad = subprocess.run(
        [sys.executable, "-m", "bucketfs.cli", "cid", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines() == [
        f"bucketfs: {tmp_path / 'missing'}: no such file or directory"
    ]
    helptext = subprocess.run(
        [sys.executable, "-m", "bucketfs.cli", "cid", "--help"], capture_output=True, text=True
    )
    assert "examples:" in helptext.stdout


def test_fifo_is_rejected_with_a_user_error(tmp_path: Path) -> None:
    import os

    d = tmp_path / "withfifo"
    d.mkdir()
    os.mkfifo(d / "pipe")
    with pytest.raises(UserError, match="unsupported file type"):
        _run(["cid", str(d)])
