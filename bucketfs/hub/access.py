"""The buckets service's view of authentication: the caller and Textile's path roles.

A thin adapter over ``bucketfs.hub.auth`` (owned by the auth layer), so the servicers depend on
five small functions instead of that module's internals. The rules themselves (spec 5.3) live
in ``auth``: an ownerless bucket allows everything, the owner may do everything, anyone else
needs a role at the path (Writer to update, Admin to change roles or delete) and only the owner
adds new paths; the read filter hides entries the caller has no role for.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc

from bucketfs.hub import auth
from bucketfs.hub.errors import HubError, unknown

log = logging.getLogger(__name__)

READER, WRITER, ADMIN = auth.ROLE_READER, auth.ROLE_WRITER, auth.ROLE_ADMIN


@dataclass(frozen=True)
class Caller:
    """The identity a call acts as ("" = anonymous) and the auth layer's full record."""

    identity: str = ""
    record: Any = None


ANONYMOUS = Caller()


def caller_of(context: grpc.ServicerContext) -> Caller:
    """The caller of the current call, as the auth interceptor determined it."""
    found = auth.caller(context)
    return Caller(found.identity or "", found)


def authorize_thread(hub_auth: Any, caller: Caller, thread: str) -> None:
    """Spec 3.4 thread ownership, for the methods that are not cross-user."""
    if hub_auth is not None and caller.record is not None:
        hub_auth.authorize_thread(caller.record, thread)


def is_owner(owner: str, caller: Caller) -> bool:
    """True if the caller may do anything to a bucket with this owner."""
    return not owner or caller.identity == owner


def check_write(
    owner: str,
    caller: Caller,
    meta: Mapping[str, Any],
    paths: Iterable[str],
    change: str = "update",
) -> None:
    """UNKNOWN ``app denied net record body: permission denied`` unless every path may change.

    ``change``: ``update`` (Writer), ``roles`` or ``delete`` (Admin).
    """
    for p in paths:
        auth.check_write(owner, caller.identity or None, meta, p, change)


def check_owner(owner: str, caller: Caller) -> None:
    """Owner-only operations (deleting a bucket)."""
    auth.check_owner(owner, caller.identity or None)


def check_read(owner: str, caller: Caller, meta: Mapping[str, Any], path: str) -> None:
    """Reads need Reader at the path or an ancestor; otherwise the path does not resolve."""
    if not auth.can_read(owner, caller.identity or None, meta, path):
        raise unknown(f"could not resolve path: {path}")


def visible_metadata(owner: str, caller: Caller, meta: dict[str, Any]) -> dict[str, Any]:
    """Textile's read filter."""
    if is_owner(owner, caller):
        return meta
    return auth.read_filter(owner, caller.identity or None, meta)


def denied(message: str) -> HubError:
    """PERMISSION_DENIED (PushPaths' up-front check, spec 13)."""
    return HubError(grpc.StatusCode.PERMISSION_DENIED, message)
