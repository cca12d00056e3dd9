"""``bucketfs identity create|show``: the ed25519 key a user signs in with (thread tokens).

With a user-group API key every request acts as an identity: the client answers the hub's
GetToken challenge with this key and receives a thread token. The key file holds the libp2p
private key string that Textile's tools use too, with mode 0600.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bucketfs.commands.common import add_parser, emit
from bucketfs.errors import UserError

DEFAULT_NAME = "identity"

EPILOG_CREATE = """examples:
  bucketfs identity create                 write <config dir>/identity and print its public key
  bucketfs identity create --save          ... and use it from now on (identity_file in config)
  bucketfs identity create ~/alice.key     write the key somewhere else
  bucketfs identity create --force         replace an existing key (its buckets stay its own)
"""

EPILOG_SHOW = """examples:
  bucketfs identity show                   print the public key of the configured identity
  bucketfs identity show ~/alice.key --json
"""


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``identity create`` and ``identity show``."""
    p = sub.add_parser(
        "identity",
        help="create or show the ed25519 identity used for thread tokens",
        description="An identity is an ed25519 key pair. With a user-group API key the hub "
        "knows you by its public key: you own what you create with it.",
        epilog=EPILOG_CREATE + "\n" + EPILOG_SHOW,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    isub = p.add_subparsers(dest="identity_command", metavar="ACTION", required=True)

    c = add_parser(isub, "create", "write a new identity key file (mode 0600)", EPILOG_CREATE)
    c.add_argument(
        "path", nargs="?", type=Path, metavar="PATH", help="default: <config dir>/identity"
    )
    c.add_argument("--force", action="store_true", help="replace an existing key file")
    c.add_argument("--save", action="store_true", help="set it as identity_file in the config file")
    c.add_argument("--config", metavar="FILE", help="config file (env BUCKETFS_CONFIG)")
    c.add_argument("--json", action="store_true", help="print JSON for scripts")
    c.set_defaults(func=run_create)

    s = add_parser(isub, "show", "print an identity's public key", EPILOG_SHOW)
    s.add_argument("path", nargs="?", type=Path, metavar="PATH", help="default: the configured one")
    s.add_argument("--config", metavar="FILE", help="config file (env BUCKETFS_CONFIG)")
    s.add_argument("--json", action="store_true", help="print JSON for scripts")
    s.set_defaults(func=run_show)


def _config_path(args: argparse.Namespace) -> Path:
    from bucketfs import config as configmod

    return Path(args.config).expanduser() if args.config else configmod.config_path()


def run_create(args: argparse.Namespace) -> int:
    """Write a new identity file and print its public key string."""
    from bucketfs import config as configmod
    from bucketfs.keys import write_identity_file

    cfg_path = _config_path(args)
    path = Path(args.path).expanduser() if args.path else cfg_path.parent / DEFAULT_NAME
    ident = write_identity_file(path, force=args.force)
    if args.save:
        configmod.update_file({"identity_file": str(path.resolve())}, cfg_path)
    out = {"path": str(path), "public_key": ident.public_key_string(), "saved": args.save}
    emit(args, out, f"{ident.public_key_string()}\n(key written to {path}, mode 0600)")
    return 0


def run_show(args: argparse.Namespace) -> int:
    """Print the public key string of an identity file."""
    from bucketfs import config as configmod
    from bucketfs.keys import read_identity_file

    path = args.path
    if path is None:
        cfg = configmod.load(args.config)
        path = cfg.resolve(cfg.identity_file)
        if path is None:
            raise UserError(
                "no identity configured: pass PATH, or run `bucketfs identity create --save`"
            )
    ident = read_identity_file(Path(path))
    emit(args, {"path": str(path), "public_key": ident.public_key_string()},
         ident.public_key_string())  # fmt: skip
    return 0
