"""``bucketfs cid PATH...``: print the CIDs files and directories would get in a bucket.

Hashes like ``ipfs add --only-hash --cid-version=1 -r`` (raw leaves, 256 KiB chunks, balanced
layout, HAMT above the threshold) and stores nothing, so people can check that a local copy
matches what a bucket holds.
"""

from __future__ import annotations

import argparse

from bucketfs.errors import UserError

EPILOG = """examples:
  bucketfs cid photo.jpg                 print "added <cid> photo.jpg"
  bucketfs cid -q ~/photos               print only the root CID of the folder
  bucketfs cid --hidden project/         include dot-files, like ipfs add -H
"""


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``cid`` command."""
    p = sub.add_parser(
        "cid",
        help="print the CID a file or folder would get in a bucket",
        description=(
            "Compute the CID of each PATH as a bucket would store it (like "
            "'ipfs add --only-hash --cid-version=1 -r'), without storing anything."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="files or directories to hash")
    p.add_argument(
        "-q",
        "--quiet",
        dest="only_root",
        action="store_true",
        help="print only the root CID of each PATH",
    )
    p.add_argument(
        "-H", "--hidden", action="store_true", help="include files whose names begin with '.'"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Hash each path and print ``added <cid> <name>`` lines (or bare root CIDs with -q)."""
    # Deferred so that ``bucketfs --help`` does not pay for importing the ipfs layer.
    from bucketfs.ipfs.blockstore import NullBlockstore
    from bucketfs.ipfs.importer import Imported, UnixFSImportError, import_tree

    store = NullBlockstore()

    def show(rel: str, imported: Imported) -> None:
        print(f"added {imported.cid} {rel}", flush=False)

    for path in args.paths:
        try:
            root = import_tree(
                path, store, hidden=args.hidden, on_entry=None if args.only_root else show
            )
        except FileNotFoundError:
            raise UserError(f"{path}: no such file or directory") from None
        except PermissionError as exc:
            raise UserError(f"{exc.filename or path}: permission denied") from None
        except UnixFSImportError as exc:
            raise UserError(str(exc)) from None
        except OSError as exc:
            raise UserError(f"{path}: {exc.strerror or exc}") from None
        if args.only_root:
            print(root.cid)
    return 0
