"""``bucketfs thread create|ls``: threads hold buckets (Textile's ThreadDB databases)."""

from __future__ import annotations

import argparse

from bucketfs.commands.common import (
    add_client_options,
    add_parser,
    client_command,
    client_from_args,
    emit,
)

EPILOG_CREATE = """examples:
  bucketfs thread create                  create a thread and print its ID
  bucketfs thread create --name photos    create a named thread
  bucketfs thread create --default        ... and make it the default for new buckets
  bucketfs bucket create pics --thread "$(bucketfs thread create)"
"""

EPILOG_LS = """examples:
  bucketfs thread ls                      list the threads on the hub
  bucketfs thread ls --json | jq -r '.[].id'
"""


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``thread create`` and ``thread ls``."""
    p = sub.add_parser(
        "thread",
        help="create and list threads (the databases that hold buckets)",
        description="Threads hold buckets. `bucketfs bucket create` makes a default thread on "
        "first use, so most people never need these commands.",
        epilog=EPILOG_CREATE + EPILOG_LS.removeprefix("examples:\n"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    tsub = p.add_subparsers(dest="thread_command", metavar="ACTION", required=True)

    c = add_parser(tsub, "create", "create a new thread (NewDB)", EPILOG_CREATE)
    c.add_argument("--name", help="a name: letters, digits and single hyphens")
    c.add_argument(
        "--default", action="store_true", help="save it as the default thread in the config"
    )
    add_client_options(c)
    c.set_defaults(func=run_create)

    ls = add_parser(tsub, "ls", "list threads (ListDBs)", EPILOG_LS)
    add_client_options(ls)
    ls.set_defaults(func=run_ls)


@client_command
def run_create(args: argparse.Namespace) -> int:
    """Create a thread and print its ID."""
    from bucketfs import config as configmod

    with client_from_args(args) as client:
        thread_id = client.threads.new_db(name=args.name or "")
        if args.default:
            configmod.update_file({"thread": thread_id}, client.config.path)
    emit(args, {"id": thread_id, "name": args.name or ""}, thread_id)
    return 0


@client_command
def run_ls(args: argparse.Namespace) -> int:
    """List threads: ID and name, one per line."""
    with client_from_args(args) as client:
        dbs = client.threads.list_dbs()
        default = client.config.thread
    rows = [{"id": db.id, "name": db.name, "default": db.id == default} for db in dbs]
    lines = [f"{r['id']}  {r['name'] or '-'}{'  (default)' if r['default'] else ''}" for r in rows]
    emit(args, rows, "\n".join(lines) if lines else None)
    return 0
