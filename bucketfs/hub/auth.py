"""Hub authentication and authorization (spec 3.2-3.5, 4, 5.3 "Roles and access control").

Every RPC goes through :class:`AuthInterceptor`, which runs :meth:`HubAuth.authenticate` in the
RPC's own worker thread and stores the resulting :class:`Caller` on the gRPC context. Servicers
read it with :func:`caller`::

    who = caller(context)          # never None inside a servicer
    auth.authorize_thread(who, thread_id, "/api.bucketsd.pb.APIService/List")

Two modes:

``keys`` (default, like Textile's Hub)
    The order of spec 3.4: blocked methods, then sessions (bucketfs has none: always
    ``Invalid session``), then the API key with its HMAC signature, else
    ``Session or API key required``. An account key acts as its developer or org (the
    account's own identity owns what it creates); a user key needs a thread token and acts as
    the token's identity. Then thread ownership for every method that names a thread, except
    the cross-user methods.

``none`` (like standalone ``buckd``)
    No keys; a token is optional and, when given, sets the identity (bucket owner and role
    key). No thread ownership: access control comes from bucket roles alone.

Deviations from Textile's Hub, on purpose:

- Tokens are *verified* (Ed25519 signature by this hub's host key) on every call that carries
  one, in both modes and for account keys too. The Hub only parsed ``sub``; accepting an
  unverified token would let anyone claim any identity. A token that does not parse is
  PERMISSION_DENIED ``Bad authorization`` (as the Hub); one that parses but was tampered with or
  was signed by another host is UNAUTHENTICATED ``invalid thread token`` (go-threads' text).
- ``/threads.pb.API/ListDBs`` is allowed for account keys (``bucketfs thread ls`` uses it) and
  lists only the caller's own threads; the Hub blocked it for everyone. User keys still get
  ``Method is not accessible``.
- ``x-textile-org`` is honoured with an account key of a member (the Hub honoured it with
  sessions only, which bucketfs does not have).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc

from bucketfs.hub.db import Database
from bucketfs.hub.errors import HubError
from bucketfs.hub.identity import load_host_identity
from bucketfs.keys import (
    Identity,
    InvalidThreadID,
    InvalidToken,
    canonical_thread_id,
    token_subject_unverified,
    verify_api_signature,
    verify_token,
)

if TYPE_CHECKING:
    from bucketfs.hub.accounts import Accounts
    from bucketfs.hub.threads import ThreadRecord, ThreadStore

log = logging.getLogger(__name__)

AUTH_KEYS = "keys"
AUTH_NONE = "none"
AUTH_MODES = (AUTH_KEYS, AUTH_NONE)
TOKEN_CACHE_SIZE = 4096  # verified tokens remembered (a token is ~300 bytes)

# --- method tables (spec 3.4) -----------------------------------------------------------------

_BUCKETS = "/api.bucketsd.pb.APIService/"
_THREADS = "/threads.pb.API/"
_NET = "/threads.net.pb.API/"
_HUBD = "/api.hubd.pb.APIService/"
_FS = "/bucketfs.pb.FS/"

#: Methods that need no credentials at all.
PUBLIC_METHODS = frozenset(
    {
        _HUBD + "Signup",
        _HUBD + "Signin",
        _HUBD + "IsUsernameAvailable",
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Watch",
    }
)

#: Always PERMISSION_DENIED ``Method is not accessible`` (ListDBs: only for user keys, see
#: the module docstring).
BLOCKED_METHODS = frozenset({_NET + "Subscribe"})

#: The only methods a user-group key may call without a token.
TOKEN_METHODS = frozenset({_THREADS + "GetToken", _NET + "GetToken"})

#: Methods that may name a thread the caller does not own; bucket roles decide instead.
#: bucketfs's FS service follows the bucket path methods it extends. Its block methods
#: (GetBlocks, HasBlocks, PutBlocks) are cross-user too: a writer into someone else's bucket
#: uploads blocks before linking them, and reading a block by CID is what Textile's
#: PullIpfsPath already allows any authenticated caller (knowing a CID is the capability).
CROSS_USER_METHODS = frozenset(
    [
        _THREADS + m
        for m in (
            "Create",
            "Verify",
            "Save",
            "Delete",
            "Has",
            "Find",
            "FindByID",
            "ReadTransaction",
            "WriteTransaction",
            "Listen",
        )
    ]
    + [
        _BUCKETS + m
        for m in (
            "Root",
            "Links",
            "ListPath",
            "PushPath",
            "PullPath",
            "SetPath",
            "MovePath",
            "RemovePath",
            "PullPathAccessRoles",
            "PushPathAccessRoles",
        )
    ]
    + [
        _FS + m
        for m in (
            "ReadFile",
            "GetBlocks",
            "HasBlocks",
            "PutBlocks",
            "SetAttr",
            "Symlink",
            "Mkdir",
            "Rename",
            "Link",
            "Remove",
            "ListDir",
            "WatchRoot",
        )
    ]
)

#: Methods whose thread is created by the call, so the header cannot be checked for ownership.
THREAD_CREATING_METHODS = frozenset({_THREADS + "NewDB"})

# Exact texts (spec 3.2, 3.4, 4.2).
NOT_ACCESSIBLE = "Method is not accessible"
BAD_AUTH_STRING = "Bad authorization string"
NOT_BEARER = "Request unauthenticated with bearer"
INVALID_SESSION = "Invalid session"
KEY_NOT_FOUND = "API key not found or is invalid"
SIG_REQUIRED = "API key signature required"
BAD_SIG = "Bad API key signature"
TOKEN_REQUIRED = "Token required"
BAD_AUTHORIZATION = "Bad authorization"
NO_CREDENTIALS = "Session or API key required"
NOT_OWNER = "User does not own thread"
BAD_API_KEY = "Bad API key"
INVALID_TOKEN = "invalid thread token"
#: The text of a ThreadDB write-validator denial (spec 5.3).
PERMISSION_DENIED_TEXT = "app denied net record body: permission denied"


@dataclass(frozen=True)
class Caller:
    """Who is calling, as decided by the interceptor.

    ``identity`` is the public key string the request acts as: the account's own identity for
    an account key, the token's subject for a user key or (in ``none`` mode) for a token; None
    for an anonymous local call. It is what a new bucket's ``owner`` is set to (``""`` if None)
    and the key looked up in bucket roles.
    """

    identity: str | None = None
    account: int | None = None  # the developer/org account (keys mode)
    account_name: str = ""
    is_org: bool = False
    key: str | None = None  # the API key used
    is_user_key: bool = False
    thread: str | None = None  # canonical x-textile-thread, None if absent or invalid
    thread_name: str = ""  # x-textile-thread-name
    token: str | None = None  # the (verified) thread token sent, if any
    local: bool = False  # --auth none
    method: str = ""

    @property
    def owner(self) -> str:
        """The ``owner`` string for things this caller creates (``""`` when anonymous)."""
        return self.identity or ""


_CALLER_ATTR = "_bucketfs_caller"


def caller(context: grpc.ServicerContext) -> Caller:
    """The :class:`Caller` the interceptor attached to this RPC's context.

    Raises RuntimeError when the server was built without :class:`AuthInterceptor`: serving
    without authentication by accident must not be possible.
    """
    found = getattr(context, _CALLER_ATTR, None)
    if found is None:
        raise RuntimeError("no caller on this context: is the AuthInterceptor installed?")
    return found


def _metadata(context: grpc.ServicerContext) -> dict[str, str]:
    md: dict[str, str] = {}
    for item in context.invocation_metadata() or ():
        key, value = item[0], item[1]
        if isinstance(value, bytes):  # only "-bin" keys are bytes; none of ours
            continue
        md.setdefault(key.lower(), value)
    return md


def parse_authorization(value: str | None) -> str | None:
    """The bearer token from an ``authorization`` value (spec 3.2), or None if absent."""
    if not value:
        return None
    parts = value.split(" ", 1)
    if len(parts) < 2:
        raise HubError(grpc.StatusCode.UNAUTHENTICATED, BAD_AUTH_STRING)
    if parts[0].lower() != "bearer":
        raise HubError(grpc.StatusCode.UNAUTHENTICATED, NOT_BEARER)
    return parts[1]


def _thread_header(value: str | None) -> str | None:
    # "A value that does not parse as a thread ID is treated as absent" (spec 3.1).
    if not value:
        return None
    try:
        return canonical_thread_id(value)
    except InvalidThreadID:
        log.debug("ignoring unparsable x-textile-thread %r", value[:80])
        return None


class HubAuth:
    """The hub's authentication state: mode, host key, accounts, keys and threads."""

    def __init__(
        self,
        db: Database,
        data_dir: Path,
        mode: str = AUTH_KEYS,
        challenge_timeout: float = 60.0,
    ) -> None:
        from bucketfs.hub.accounts import Accounts
        from bucketfs.hub.threads import ThreadStore

        if mode not in AUTH_MODES:
            raise ValueError(f"auth mode must be one of {', '.join(AUTH_MODES)}, not {mode!r}")
        self.db = db
        self.mode = mode
        self.host: Identity = load_host_identity(Path(data_dir))
        self.accounts: Accounts = Accounts(db)
        self.threads: ThreadStore = ThreadStore(db)
        self.challenge_timeout = challenge_timeout
        self._token_lock = threading.Lock()
        self._token_cache: OrderedDict[str, str] = OrderedDict()

    @property
    def local(self) -> bool:
        """True in ``--auth none`` mode."""
        return self.mode == AUTH_NONE

    def interceptor(self) -> AuthInterceptor:
        """The server interceptor that authenticates every call."""
        return AuthInterceptor(self)

    def issue_token(self, subject: str) -> str:
        """A thread token for ``subject``, signed by the host key."""
        from bucketfs.keys import issue_token

        return issue_token(self.host, subject)

    # -- authentication ------------------------------------------------------------------------

    def _verify_token(self, token: str) -> str:
        """The verified subject of a token; errors as described in the module docstring.

        Verified tokens are remembered (bounded LRU): a token never expires and the host key
        never changes while the hub runs, so a token that verified once always will, and the
        Ed25519 check (about 0.1 ms) would otherwise run on every call of a mount.
        """
        with self._token_lock:
            sub = self._token_cache.get(token)
            if sub is not None:
                self._token_cache.move_to_end(token)
                return sub
        try:
            sub = verify_token(token, self.host.public_key).sub
        except InvalidToken:
            try:
                token_subject_unverified(token)
            except InvalidToken:
                raise HubError(grpc.StatusCode.PERMISSION_DENIED, BAD_AUTHORIZATION) from None
            raise HubError(grpc.StatusCode.UNAUTHENTICATED, INVALID_TOKEN) from None
        with self._token_lock:
            self._token_cache[token] = sub
            if len(self._token_cache) > TOKEN_CACHE_SIZE:
                self._token_cache.popitem(last=False)
        return sub

    def authenticate(self, method: str, md: Mapping[str, str]) -> Caller:
        """Decide who is calling ``method`` with metadata ``md``; raises :class:`HubError`."""
        thread = _thread_header(md.get("x-textile-thread"))
        base = Caller(thread=thread, thread_name=md.get("x-textile-thread-name", ""), method=method)
        if method in PUBLIC_METHODS:
            return replace(base, local=self.local)
        if self.local:
            token = parse_authorization(md.get("authorization"))
            identity = self._verify_token(token) if token else None
            return replace(base, identity=identity, token=token, local=True)
        return self._authenticate_keys(method, md, base)

    def _authenticate_keys(self, method: str, md: Mapping[str, str], base: Caller) -> Caller:
        if method in BLOCKED_METHODS:
            raise HubError(grpc.StatusCode.PERMISSION_DENIED, NOT_ACCESSIBLE)
        token = parse_authorization(md.get("authorization"))
        if md.get("x-textile-session"):
            # bucketfs has no developer sessions (hub login); any session ID is unknown.
            raise HubError(grpc.StatusCode.UNAUTHENTICATED, INVALID_SESSION)
        key_text = md.get("x-textile-api-key")
        if not key_text:
            raise HubError(grpc.StatusCode.UNAUTHENTICATED, NO_CREDENTIALS)
        found = self.accounts.key_with_account(key_text)
        if found is None or not found[0].valid:
            raise HubError(grpc.StatusCode.NOT_FOUND, KEY_NOT_FOUND)
        key, account = found
        if key.secure:
            msg, sig = md.get("x-textile-api-sig-msg"), md.get("x-textile-api-sig")
            if not msg or not sig:
                raise HubError(grpc.StatusCode.UNAUTHENTICATED, SIG_REQUIRED)
            if not verify_api_signature(key.secret, msg, sig):
                raise HubError(grpc.StatusCode.UNAUTHENTICATED, BAD_SIG)
        caller = replace(
            base,
            account=account.id,
            account_name=account.name,
            is_org=account.is_org,
            key=key.key,
            is_user_key=key.is_user_key,
        )
        if key.is_user_key:
            if method == _THREADS + "ListDBs":
                raise HubError(grpc.StatusCode.PERMISSION_DENIED, NOT_ACCESSIBLE)
            if not token:
                if method in TOKEN_METHODS:
                    return caller
                raise HubError(grpc.StatusCode.UNAUTHENTICATED, TOKEN_REQUIRED)
            caller = replace(caller, identity=self._verify_token(token), token=token)
        else:
            if token:
                self._verify_token(token)  # a forged token is refused even where it is unused
            caller = replace(caller, identity=account.pubkey, token=token)
            org_name = md.get("x-textile-org")
            if org_name:
                if account.is_org:
                    raise HubError(grpc.StatusCode.PERMISSION_DENIED, "User is not an org member")
                org = self.accounts.org_for(
                    org_name, account.id, create=method == _HUBD + "CreateKey"
                )
                caller = replace(
                    caller,
                    account=org.id,
                    account_name=org.name,
                    is_org=True,
                    identity=org.pubkey,
                )
        if caller.thread and method not in CROSS_USER_METHODS:
            if method not in THREAD_CREATING_METHODS:
                self.authorize_thread(caller, caller.thread)
        return caller

    # -- authorization -------------------------------------------------------------------------

    def authorize_thread(self, caller: Caller, thread_id: str) -> ThreadRecord | None:
        """Check that ``caller`` may use ``thread_id`` (spec 3.4); returns its record if known.

        In ``none`` mode every thread is open (like ``buckd``). With keys the caller must own
        the thread (PERMISSION_DENIED ``User does not own thread``) and a user-key caller must
        use the key the thread was created with (PERMISSION_DENIED ``Bad API key``).
        """
        record = self.threads.get(thread_id)
        if caller.local:
            return record
        if record is None or record.owner != caller.identity:
            raise HubError(grpc.StatusCode.PERMISSION_DENIED, NOT_OWNER)
        if caller.is_user_key and record.api_key != caller.key:
            raise HubError(grpc.StatusCode.PERMISSION_DENIED, BAD_API_KEY)
        return record


# --- the interceptor --------------------------------------------------------------------------


class AuthInterceptor(grpc.ServerInterceptor):
    """Wraps every handler so :meth:`HubAuth.authenticate` runs first, in the RPC's thread.

    Authenticating inside the handler (rather than in ``intercept_service``, which runs on the
    server's polling thread without a context) lets a failure end the call with the exact
    status via ``context.abort`` and keeps slow database lookups off the polling thread.
    """

    def __init__(self, auth: HubAuth) -> None:
        self.auth = auth

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        return _wrap(handler, handler_call_details.method, self._enter)

    def _enter(self, method: str, context: grpc.ServicerContext) -> None:
        try:
            who = self.auth.authenticate(method, _metadata(context))
        except HubError as exc:
            log.info("denied %s: %s %s", method, exc.code.name, exc.message)
            context.abort(exc.code, exc.message)
        except Exception:
            log.exception("authentication of %s failed unexpectedly", method)
            context.abort(grpc.StatusCode.INTERNAL, "internal error during authentication")
        setattr(context, _CALLER_ATTR, who)


def _wrap(
    handler: grpc.RpcMethodHandler,
    method: str,
    enter: Callable[[str, grpc.ServicerContext], None],
) -> grpc.RpcMethodHandler:
    kwargs: dict[str, Any] = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary:
        inner_uu = handler.unary_unary

        def unary_unary(request: Any, context: grpc.ServicerContext) -> Any:
            enter(method, context)
            return inner_uu(request, context)

        return grpc.unary_unary_rpc_method_handler(unary_unary, **kwargs)
    if handler.unary_stream:
        inner_us = handler.unary_stream

        def unary_stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            enter(method, context)
            yield from inner_us(request, context)

        return grpc.unary_stream_rpc_method_handler(unary_stream, **kwargs)
    if handler.stream_unary:
        inner_su = handler.stream_unary

        def stream_unary(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
            enter(method, context)
            return inner_su(requests, context)

        return grpc.stream_unary_rpc_method_handler(stream_unary, **kwargs)
    inner_ss = handler.stream_stream

    def stream_stream(requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
        enter(method, context)
        yield from inner_ss(requests, context)

    return grpc.stream_stream_rpc_method_handler(stream_stream, **kwargs)


# --- bucket roles (spec 5.3) ------------------------------------------------------------------

ROLE_NONE = 0
ROLE_READER = 1
ROLE_WRITER = 2
ROLE_ADMIN = 3
EVERYONE = "*"


def _roles_of(entry: Any) -> Mapping[str, int]:
    """Roles of a metadata entry given as a roles dict or any object with ``.roles``."""
    if entry is None:
        return {}
    if isinstance(entry, Mapping):
        inner = entry.get("roles")
        return inner if isinstance(inner, Mapping) else entry
    return getattr(entry, "roles", None) or {}


def _ancestors(path: str) -> Iterator[str]:
    """``a/b/c``, ``a/b``, ``a``, ``""`` (bucket-relative, no leading slash)."""
    path = path.strip("/")
    while path:
        yield path
        path = path.rpartition("/")[0]
    yield ""


def effective_role(path_metadata: Mapping[str, Any], path: str, identity: str | None) -> int:
    """The caller's role at ``path``: the maximum, over the path and all its ancestors, of the
    role given to ``identity`` and to ``"*"`` (spec 5.3).

    ``path_metadata`` maps bucket-relative paths to entries: either a roles dict
    (``{pubkey or "*": role}``), a dict with a ``"roles"`` key, or an object with ``.roles``.
    """
    best = ROLE_NONE
    for p in _ancestors(path):
        roles = _roles_of(path_metadata.get(p))
        best = max(best, int(roles.get(EVERYONE, 0)))
        if identity:
            best = max(best, int(roles.get(identity, 0)))
        if best == ROLE_ADMIN:
            break
    return best


def can_read(owner: str, identity: str | None, path_metadata: Mapping[str, Any], path: str) -> bool:
    """The read filter: everything is visible in an ownerless bucket and to the owner; others
    need Reader at the path or an ancestor."""
    if not owner or identity == owner:
        return True
    return effective_role(path_metadata, path, identity) >= ROLE_READER


def read_filter(
    owner: str, identity: str | None, path_metadata: Mapping[str, Any]
) -> dict[str, Any]:
    """The metadata entries the caller may see (spec 5.3 read filter). When the result is
    empty, the caller must not be given the bucket's link key either."""
    return {p: m for p, m in path_metadata.items() if can_read(owner, identity, path_metadata, p)}


def check_write(
    owner: str,
    identity: str | None,
    path_metadata: Mapping[str, Any],
    path: str,
    change: str = "update",
) -> None:
    """Raise UNKNOWN ``app denied net record body: permission denied`` unless the caller may
    make ``change`` to the metadata entry of ``path`` (spec 5.3 write validator).

    ``change`` is ``"update"`` (a push, set, move or timestamp change: needs Writer), ``"roles"``
    (changing the entry's roles: needs Admin) or ``"delete"`` (removing the entry: needs
    Admin). An ownerless bucket allows everything; the owner may do anything; only the owner may
    add a path that has no metadata entry of its own yet.
    """
    if change not in ("update", "roles", "delete"):
        raise ValueError(f"unknown change kind {change!r}")
    if not owner or identity == owner:
        return
    key = path.strip("/")
    if key not in path_metadata:
        if change == "delete":
            return  # nothing to delete
        raise HubError(grpc.StatusCode.UNKNOWN, PERMISSION_DENIED_TEXT)
    need = ROLE_WRITER if change == "update" else ROLE_ADMIN
    if effective_role(path_metadata, key, identity) < need:
        raise HubError(grpc.StatusCode.UNKNOWN, PERMISSION_DENIED_TEXT)


def check_owner(owner: str, identity: str | None) -> None:
    """Owner-only bucket changes (Remove, renaming, ...): UNKNOWN permission denied otherwise."""
    if owner and identity != owner:
        raise HubError(grpc.StatusCode.UNKNOWN, PERMISSION_DENIED_TEXT)


def add_auth_services(
    server: grpc.Server, auth: HubAuth, listen: Callable[..., Any] | None = None
) -> None:
    """Register ``threads.pb.API``, ``api.usersd.pb.APIService`` and ``api.hubd.pb.APIService``.

    ``listen(request, context)`` serves ``threads.pb.API/Listen`` (bucket change events come
    from the buckets store); without it Listen is UNIMPLEMENTED.
    """
    from bucketfs.hub.keys import add_hubd_service
    from bucketfs.hub.threads import add_thread_services

    add_thread_services(server, auth, listen=listen)
    add_hubd_service(server, auth)
