"""The one entry point: ``bucketfs``.

Sub-commands live in ``bucketfs/commands/<name>.py``; each exposes ``register(sub)``. This
module only builds the parser, sets up logging and turns expected errors into one line.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from bucketfs import __version__, logs
from bucketfs.errors import UserError

log = logging.getLogger(__name__)

#: Sub-command modules, in the order ``--help`` lists them. A module missing from the tree is
#: a packaging bug, so imports are not guarded.
COMMAND_MODULES: list[str] = [
    "demo", "hub", "key", "identity", "thread", "bucket", "mount", "status", "cid", "completion",
]

EPILOG = """examples:
  bucketfs demo                          start a local hub and mount a demo bucket
  bucketfs hub                           run the embedded hub in the foreground
  bucketfs bucket create photos          create a bucket in the default thread
  bucketfs mount photos ~/photos         mount it as a folder
  bucketfs status --wait                 block until every write is in the bucket
"""


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level argument parser with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="bucketfs",
        description="Mount content-addressed buckets as ordinary folders.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"bucketfs {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    parser.add_argument("-q", "--quiet", action="store_true", help="only errors")
    parser.add_argument("--debug", action="store_true", help="debug logs and full tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"bucketfs.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    verbosity = -1 if args.quiet else (3 if args.debug else args.verbose)
    logs.setup(verbosity)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except UserError as exc:
        if args.debug:
            log.exception("command failed")
        print(f"bucketfs: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("bucketfs: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
