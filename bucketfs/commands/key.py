"""``bucketfs key create|ls|invalidate``: hub API keys (account keys and user-group keys).

Two ways to reach the keys, picked by what the user has at hand:

- by default the command talks to the hub over gRPC (``api.hubd.pb.APIService``), with the
  credentials of the config file: the account key the hub wrote there on its first start. This
  works for a remote hub too, and keys are created by the hub that will check them.
- ``--data-dir DIR`` opens the hub's database directly, as the local account. That works
  whether or not the hub is running (SQLite in WAL mode lets both write) and needs no
  credentials, only file access: it is the way back in after losing the config's key.

The secret of a new key is printed once; the hub never shows it again.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bucketfs.commands.common import add_client_options, add_parser, client_command, emit
from bucketfs.errors import UserError

EPILOG_CREATE = """examples:
  bucketfs key create                     a new account key for your account
  bucketfs key create --type user         a user-group key: its users sign in with identities
  bucketfs key create --org acme          an account key of the org "acme" (created if new)
  bucketfs key create --data-dir /var/lib/bucketfs   straight in the hub's database
  bucketfs key create --json | jq -r .secret > hub-secret && chmod 600 hub-secret
"""

EPILOG_LS = """examples:
  bucketfs key ls                         your account's keys (secrets are never listed)
  bucketfs key ls --org acme              the org's keys
  bucketfs key ls --json
"""

EPILOG_INVALIDATE = """examples:
  bucketfs key invalidate bcz2...         stop accepting this key from now on
  bucketfs key invalidate bcz2... --org acme
"""

TYPES = {"account": 1, "user": 2}  # api.hubd.pb.KeyType values
TYPE_NAMES = {v: k for k, v in TYPES.items()}


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``key create``, ``key ls`` and ``key invalidate``."""
    p = sub.add_parser(
        "key",
        help="create and list hub API keys",
        description="Hub API keys. An account key acts as your account (or an org's); a user "
        "key lets each of its users act as their own identity, with a thread token.",
        epilog=EPILOG_CREATE + "\n" + EPILOG_LS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ksub = p.add_subparsers(dest="key_command", metavar="ACTION", required=True)

    c = add_parser(ksub, "create", "create an API key and print it with its secret", EPILOG_CREATE)
    c.add_argument("--type", choices=sorted(TYPES), default="account", help="default: account")
    c.add_argument(
        "--unsigned",
        action="store_true",
        help="accept requests without an API signature (not recommended)",
    )
    _add_common(c)
    c.set_defaults(func=run_create)

    ls = add_parser(ksub, "ls", "list API keys (without secrets)", EPILOG_LS)
    _add_common(ls)
    ls.set_defaults(func=run_ls)

    inv = add_parser(ksub, "invalidate", "stop accepting an API key", EPILOG_INVALIDATE)
    inv.add_argument("api_key_to_invalidate", metavar="KEY", help="the API key")
    _add_common(inv)
    inv.set_defaults(func=run_invalidate)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--org", metavar="NAME", help="act for this org (you must be a member)")
    p.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help="work on the hub database in DIR directly instead of over gRPC",
    )
    add_client_options(p)


# --- direct access to the hub database --------------------------------------------------------


class _Direct:
    """The hub database opened as its local (first) developer account."""

    def __init__(self, data_dir: Path) -> None:
        from bucketfs.hub.accounts import Accounts
        from bucketfs.hub.db import Database

        db_path = Path(data_dir).expanduser() / "hub.db"
        if not db_path.exists():
            raise UserError(
                f"no hub database in {data_dir}: start `bucketfs hub --data-dir {data_dir}` once"
            )
        self.db = Database(db_path)
        self.accounts = Accounts(self.db)
        row = (
            self.db.conn()
            .execute("SELECT id FROM accounts WHERE kind = 'dev' ORDER BY id LIMIT 1")
            .fetchone()
        )
        if row is None:
            self.db.close()
            raise UserError(
                f"the hub in {data_dir} has no account yet: start it once with --auth keys"
            )
        self.account = int(row["id"])

    def account_for(self, org: str | None, create: bool = False) -> int:
        if not org:
            return self.account
        return self.accounts.org_for(org, self.account, create=create).id

    def thread_count(self, key: str) -> int:
        from bucketfs.hub.threads import ThreadStore

        return ThreadStore(self.db).count_for_key(key)

    def close(self) -> None:
        self.db.close()


def _direct(args: argparse.Namespace, action: Any) -> Any:
    from bucketfs.hub.errors import HubError

    direct = _Direct(args.data_dir)
    try:
        return action(direct)
    except HubError as exc:
        raise UserError(exc.message) from exc
    finally:
        direct.close()


# --- over gRPC --------------------------------------------------------------------------------


def _remote(args: argparse.Namespace, name: str, request: Any) -> Any:
    """Call one hubd RPC with the configured credentials (never retried: not idempotent)."""
    from bucketfs.client.channel import NO_RETRY, with_retries
    from bucketfs.commands.common import client_from_args
    from bucketfs.pb import hubd_pb2_grpc

    with client_from_args(args) as client:
        if not client.auth.api_key:
            raise UserError(
                "no API key configured: start `bucketfs hub` once (it writes one to the config), "
                "pass --api-key, or use --data-dir on the hub's machine"
            )
        stub = hubd_pb2_grpc.APIServiceStub(client.channel)
        # No thread header: a default thread of the config must not be checked against an org.
        md = client.auth.metadata(thread=False)
        if args.org:
            md.append(("x-textile-org", args.org))
        method = getattr(stub, name)
        return with_retries(
            lambda: method(request, timeout=client.timeout, metadata=md), NO_RETRY, name
        )


def _row(key: str, type_: int, valid: bool, secure: bool, threads: int) -> dict[str, Any]:
    return {
        "key": key,
        "type": TYPE_NAMES.get(type_, str(type_)),
        "valid": valid,
        "secure": secure,
        "threads": threads,
    }


@client_command
def run_create(args: argparse.Namespace) -> int:
    """Create a key and print it with its secret."""
    key_type, secure = TYPES[args.type], not args.unsigned
    if args.data_dir:

        def create(d: _Direct) -> dict[str, Any]:
            k = d.accounts.create_key(d.account_for(args.org, create=True), key_type, secure)
            return {**_row(k.key, k.type, k.valid, k.secure, 0), "secret": k.secret}

        out = _direct(args, create)
    else:
        from bucketfs.pb import hubd_pb2

        info = _remote(
            args, "CreateKey", hubd_pb2.CreateKeyRequest(type=key_type, secure=secure)
        ).key_info
        out = {**_row(info.key, info.type, info.valid, info.secure, info.threads),
               "secret": info.secret}  # fmt: skip
    out["org"] = args.org or ""
    text = (
        f"key:    {out['key']}\n"
        f"secret: {out['secret']}\n"
        f"type:   {out['type']}{' (org ' + args.org + ')' if args.org else ''}"
        f"{'' if secure else ', unsigned'}\n"
        "The secret is shown only now: store it in a file of mode 0600."
    )
    emit(args, out, text)
    return 0


@client_command
def run_ls(args: argparse.Namespace) -> int:
    """List the account's (or org's) keys."""
    if args.data_dir:

        def ls(d: _Direct) -> list[dict[str, Any]]:
            keys = d.accounts.list_keys(d.account_for(args.org))
            return [_row(k.key, k.type, k.valid, k.secure, d.thread_count(k.key)) for k in keys]

        rows = _direct(args, ls)
    else:
        from bucketfs.pb import hubd_pb2

        reply = _remote(args, "ListKeys", hubd_pb2.ListKeysRequest())
        rows = [_row(k.key, k.type, k.valid, k.secure, k.threads) for k in reply.list]
    lines = [
        f"{r['key']}  {r['type']:<7}  {'valid' if r['valid'] else 'INVALID':<7}  "
        f"{'signed' if r['secure'] else 'unsigned':<8}  {r['threads']} thread(s)"
        for r in rows
    ]
    emit(args, rows, "\n".join(lines) if lines else "no keys")
    return 0


@client_command
def run_invalidate(args: argparse.Namespace) -> int:
    """Invalidate one key."""
    key = args.api_key_to_invalidate
    if args.data_dir:
        _direct(args, lambda d: d.accounts.invalidate_key(d.account_for(args.org), key))
    else:
        from bucketfs.pb import hubd_pb2

        _remote(args, "InvalidateKey", hubd_pb2.InvalidateKeyRequest(key=key))
    emit(args, {"key": key, "valid": False}, f"invalidated {key}")
    return 0
