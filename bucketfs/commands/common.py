"""What every client command shares: hub options, config precedence, output and error mapping.

Commands add the options with :func:`add_client_options`, get a client with
:func:`client_from_args`, and wrap their body in :func:`client_command` so that any client error
becomes one line (a :class:`~bucketfs.errors.UserError` with a hint) instead of a traceback.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bucketfs import config as configmod
from bucketfs.errors import UserError

if TYPE_CHECKING:  # the client pulls in grpc; keep `bucketfs --help` fast
    from bucketfs.client.buckets import BucketsClient
    from bucketfs.client.errors import ClientError


def add_client_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--api``, ``--thread``, ``--key``, ``--json`` and the credential/TLS options."""
    g = parser.add_argument_group("hub connection (flags beat environment beats config file)")
    g.add_argument(
        "--api", metavar="HOST:PORT", help="hub address (env BUCK_API; default 127.0.0.1:3006)"
    )
    g.add_argument("--thread", metavar="ID", help="thread ID (env BUCK_THREAD; default: config)")
    g.add_argument(
        "--key",
        metavar="BUCKET_KEY",
        help="bucket key to act on (env BUCK_KEY); when set, leave out the BUCKET argument",
    )
    g.add_argument("--json", action="store_true", help="print JSON for scripts")
    g.add_argument("--config", metavar="FILE", help="config file (env BUCKETFS_CONFIG)")
    g.add_argument("--api-key", metavar="KEY", help="hub API key (env BUCKETFS_API_KEY)")
    g.add_argument(
        "--api-secret-file", metavar="FILE", help="file holding the API secret (mode 0600)"
    )
    g.add_argument(
        "--identity", metavar="FILE", help="ed25519 identity file for a thread token (mode 0600)"
    )
    g.add_argument("--tls", action="store_true", default=None, help="connect with TLS")
    g.add_argument("--tls-ca", metavar="FILE", help="PEM CA bundle to trust (implies --tls)")
    g.add_argument("--tls-cert", metavar="FILE", help="client certificate for mutual TLS")
    g.add_argument("--tls-key", metavar="FILE", help="client certificate key for mutual TLS")
    g.add_argument(
        "--insecure",
        action="store_true",
        default=None,
        help="allow sending credentials without TLS to a non-loopback hub",
    )


def load_config(args: argparse.Namespace) -> configmod.Config:
    """The effective config: flags from ``args`` over environment over the config file."""
    tls_enabled = getattr(args, "tls", None)
    if getattr(args, "tls_ca", None):
        tls_enabled = True
    overrides = {
        "api": getattr(args, "api", None),
        "thread": getattr(args, "thread", None),
        "key": getattr(args, "key", None),
        "api_key": getattr(args, "api_key", None),
        "api_secret_file": getattr(args, "api_secret_file", None),
        "identity_file": getattr(args, "identity", None),
        "insecure": getattr(args, "insecure", None),
        "tls.enabled": tls_enabled,
        "tls.ca": getattr(args, "tls_ca", None),
        "tls.cert": getattr(args, "tls_cert", None),
        "tls.key": getattr(args, "tls_key", None),
    }
    return configmod.load(getattr(args, "config", None), overrides=overrides)


def client_from_args(args: argparse.Namespace) -> BucketsClient:
    """A :class:`BucketsClient` for the hub the flags, environment and config file name.

    The config is kept on the client as ``client.config`` for commands that need more of it.
    """
    from bucketfs.client.buckets import BucketsClient
    from bucketfs.keys import InvalidThreadID, parse_thread_id

    cfg = load_config(args)
    if cfg.thread:
        try:
            parse_thread_id(cfg.thread)
        except InvalidThreadID as exc:
            src = {"flag": "--thread", "env": "BUCK_THREAD"}.get(cfg.origin.get("thread", ""))
            raise UserError(
                f"{cfg.thread!r} (from {src or cfg.path}) is not a thread ID: {exc}"
            ) from exc
    client = BucketsClient.from_config(cfg)
    client.config = cfg
    return client


def user_error(exc: ClientError, api: str = "") -> UserError:
    """Turn a client error into one line with a hint about what to do."""
    from bucketfs.client import errors as ce

    where = f" at {api}" if api else ""
    if isinstance(exc, ce.HubUnavailable):
        return UserError(
            f"cannot reach the hub{where} ({exc.message}) — is `bucketfs hub` running?"
        )
    if isinstance(exc, ce.NonFastForward):
        return UserError(
            "the bucket changed since the given root (update is non-fast-forward); "
            "fetch the new root with `bucketfs bucket root` and retry"
        )
    if isinstance(exc, ce.Unauthenticated):
        return UserError(
            f"the hub{where} refused the credentials: {exc.message} "
            "(check api_key / api_secret_file in the config, or --api-key)"
        )
    if isinstance(exc, ce.PermissionDenied):
        return UserError(f"permission denied: {exc.message}")
    if isinstance(exc, ce.Unimplemented):
        return UserError(f"the hub{where} does not support this call: {exc.message}")
    if exc.message == "db required":
        return UserError("no thread given: pass --thread ID, set BUCK_THREAD, or create a bucket")
    return UserError(exc.message)


def client_command(func: Callable[[argparse.Namespace], int]) -> Callable[..., int]:
    """Decorator: run a command body, mapping client errors to one-line UserErrors."""

    @functools.wraps(func)
    def wrapper(args: argparse.Namespace) -> int:
        from bucketfs.client.errors import ClientError

        try:
            return func(args)
        except ClientError as exc:
            api = getattr(args, "api", None) or _configured_api(args)
            raise user_error(exc, api) from exc
        except BrokenPipeError:
            # `bucketfs bucket cat x | head` closes the pipe early; that is not an error. Point
            # stdout at /dev/null so the interpreter's final flush does not fail again.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
            return 0

    return wrapper


def _configured_api(args: argparse.Namespace) -> str:
    try:
        return load_config(args).api
    except UserError:
        return ""


def emit(args: argparse.Namespace, data: Any, text: str | None = None) -> None:
    """Print ``data`` as JSON under ``--json``, else ``text`` (if any)."""
    if getattr(args, "json", False):
        print(json.dumps(data, indent=None, sort_keys=True))
    elif text is not None:
        print(text)


def add_parser(
    sub: argparse._SubParsersAction, name: str, help: str, epilog: str, **kwargs: Any
) -> argparse.ArgumentParser:
    """A sub-parser with the house style: raw epilog of examples, description = help."""
    return sub.add_parser(
        name,
        help=help,
        description=kwargs.pop("description", help[0].upper() + help[1:] + "."),
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        **kwargs,
    )
