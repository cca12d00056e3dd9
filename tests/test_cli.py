"""The command line: every command documents itself with examples; completion scripts work."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys

import pytest

from bucketfs.cli import build_parser


def _subcommands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield prefix + (name,), sub
                yield from _subcommands(sub, prefix + (name,))


def test_every_command_help_has_examples() -> None:
    parser = build_parser()
    assert "examples:" in parser.format_help()
    commands = list(_subcommands(parser))
    assert commands, "no sub-commands registered"
    for path, sub in commands:
        # Group commands (those with sub-commands of their own) may list examples on the group.
        assert "examples:" in sub.format_help() or any(
            isinstance(a, argparse._SubParsersAction) for a in sub._actions
        ), f"`bucketfs {' '.join(path)} --help` has no examples"


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_completion_script(shell: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bucketfs.cli", "completion", shell], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert "bucketfs" in proc.stdout and "completion" in proc.stdout
    if shell == "bash" and shutil.which("bash"):
        # The script must at least parse in bash.
        check = subprocess.run(["bash", "-n"], input=proc.stdout, text=True, capture_output=True)
        assert check.returncode == 0, check.stderr


def test_unknown_command_is_usage_error() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bucketfs.cli", "no-such-command"], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
