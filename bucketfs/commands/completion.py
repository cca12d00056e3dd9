"""``bucketfs completion bash|zsh``: print a shell completion script."""

from __future__ import annotations

import argparse

import shtab

EPILOG = """examples:
  bucketfs completion bash > /etc/bash_completion.d/bucketfs
  bucketfs completion zsh > "${fpath[1]}/_bucketfs"
  source <(bucketfs completion bash)
"""


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``completion`` command."""
    p = sub.add_parser(
        "completion",
        help="print a bash or zsh completion script",
        description="Print a completion script for bash or zsh to standard output.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("shell", choices=["bash", "zsh"])
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the script; the parser is rebuilt so every registered command is included."""
    from bucketfs.cli import build_parser  # deferred: cli imports this module

    print(shtab.complete(build_parser(), shell=args.shell))
    return 0
