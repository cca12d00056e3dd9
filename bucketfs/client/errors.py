"""gRPC status → client exceptions, in one table.

Every exception the client raises for a failed call is a :class:`ClientError` built by
:func:`from_rpc_error`, which keeps the original ``grpc.RpcError`` as ``__cause__``. Callers match
on the class (``except NonFastForward``) instead of on codes or message text; the message text of
the hub is kept in ``.message`` because for UNKNOWN errors it is the only detail the protocol
gives (spec section 13).
"""

from __future__ import annotations

import grpc


class ClientError(Exception):
    """Base class: a call to the hub failed. ``code`` is the gRPC status code."""

    def __init__(self, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code

    def __str__(self) -> str:
        return self.message


class HubError(ClientError):
    """Any failure not covered by a more specific class (the hub's UNKNOWN, INTERNAL, ...)."""


class NotFound(ClientError):
    """The thread, bucket or path does not exist."""


class NonFastForward(ClientError):
    """The fast-forward ``root`` no longer matches: someone else changed the bucket first."""


class FailedPrecondition(ClientError):
    """FAILED_PRECONDITION other than non-fast-forward (e.g. deleting a non-empty thread)."""


class PermissionDenied(ClientError):
    """The caller is authenticated but not allowed to do this."""


class Unauthenticated(ClientError):
    """Missing, bad or expired credentials."""


class InvalidArgument(ClientError):
    """The request was malformed (bad path, bad CID, bad name)."""


class AlreadyExists(ClientError):
    """The thing to create is already there."""


class HubUnavailable(ClientError):
    """The hub could not be reached or did not answer in time (UNAVAILABLE, DEADLINE_EXCEEDED)."""


class Unimplemented(ClientError):
    """The hub does not offer this RPC (e.g. a Textile hub without the bucketfs FS service)."""


NON_FAST_FORWARD_TEXT = "update is non-fast-forward"
# What bucketfs's hub says (FAILED_PRECONDITION) when an FS call names a private bucket
# (bucketfs/hub/fs.py PRIVATE_UNSUPPORTED); the client then uses the Textile RPCs.
PRIVATE_REFUSAL = "is private (encrypted)"

# The resolver texts that the hub sends with UNKNOWN for a missing path (spec 5.6 / 13); Go's
# servers give no NOT_FOUND code for these, so the text is the only signal.
_NOT_FOUND_TEXTS = (
    "could not resolve path",
    "no link named",
    "no link by that name",
    "instance not found",
    "thread not found",
    "db not found",
    "not found",
)

#: One table: status code → class. UNKNOWN is refined by message in :func:`from_rpc_error`.
CODE_TABLE: dict[grpc.StatusCode, type[ClientError]] = {
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.OUT_OF_RANGE: InvalidArgument,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.UNAVAILABLE: HubUnavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: HubUnavailable,
    grpc.StatusCode.UNIMPLEMENTED: Unimplemented,
}


def classify(code: grpc.StatusCode | None, message: str) -> type[ClientError]:
    """Pick the exception class for a status code and message."""
    if code == grpc.StatusCode.FAILED_PRECONDITION and NON_FAST_FORWARD_TEXT in message:
        return NonFastForward
    if code == grpc.StatusCode.UNKNOWN:
        lower = message.lower()
        # A Go hub reports these as UNKNOWN; the text is what tells them apart.
        if NON_FAST_FORWARD_TEXT in lower:
            return NonFastForward
        if "permission denied" in lower:
            return PermissionDenied
        if any(text in lower for text in _NOT_FOUND_TEXTS):
            return NotFound
    if code is None:
        return HubError
    return CODE_TABLE.get(code, HubError)


def from_rpc_error(exc: grpc.RpcError) -> ClientError:
    """Build the client exception for a failed call; raise it ``from exc`` to keep the cause."""
    code = exc.code() if hasattr(exc, "code") else None
    details = exc.details() if hasattr(exc, "details") else None
    message = details or (code.name.lower() if code else str(exc))
    return classify(code, message)(message, code)
