"""``bucketfs hub``: run the embedded hub in the foreground."""

from __future__ import annotations

import argparse

EPILOG = """examples:
  bucketfs hub                                   serve on 127.0.0.1:3006, API keys required
  bucketfs hub --auth none                       single-user local mode (like Textile's buckd)
  bucketfs hub --listen 0.0.0.0:3006 --tls-cert cert.pem --tls-key key.pem
  bucketfs hub --data-dir /srv/bucketfs          keep the database and blocks elsewhere

On the first start with --auth keys the hub creates an account key for the local user and
writes the client config, so `bucketfs bucket ...` and `bucketfs mount` work at once.
SIGTERM or Ctrl-C stops it gracefully; under systemd (Type=notify) it reports READY=1.
"""


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``hub`` command."""
    from bucketfs.hub.server import add_arguments

    p = sub.add_parser(
        "hub",
        help="run the embedded bucket hub (Textile buckets API) in the foreground",
        description="Run the embedded hub: a Textile-compatible buckets server.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Serve until SIGTERM/SIGINT."""
    from bucketfs.hub.server import config_from_args, serve_forever

    return serve_forever(config_from_args(args), metrics_listen=args.metrics)
