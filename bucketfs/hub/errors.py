"""The hub's one error type: a gRPC status code plus the exact message a client sees.

Service code raises :class:`HubError` anywhere below the servicers; :func:`grpc_errors` turns it
into ``context.abort`` at the edge, so storage code never needs a gRPC context. Messages that
Textile's clients compare as text (``db required``, ``update is non-fast-forward`` ...) are
kept byte for byte; see textile-buckets.md section 13.
"""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import grpc

from bucketfs import metrics

log = logging.getLogger(__name__)

# Exact texts from the spec, shared by several modules.
DB_REQUIRED = "db required"
NON_FAST_FORWARD = "update is non-fast-forward"
SEED_NOT_ALLOWED = "paths containing .textileseed are not allowed"
HEADER_REQUIRED = "push bucket path header is required"
INVALID_REQUEST = "invalid request"
NODE_IS_DIR = "node is a directory"
ARCHIVING_DISABLED = "archiving feature is disabled"


class HubError(Exception):
    """An expected failure of a hub call: ``code`` and ``message`` go to the client as is."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return self.message


def unknown(message: str) -> HubError:
    """UNKNOWN, the code a Go server gives a plain error (how Textile reports most failures)."""
    return HubError(grpc.StatusCode.UNKNOWN, message)


def invalid(message: str) -> HubError:
    """INVALID_ARGUMENT: bad input that Textile had no exact text for."""
    return HubError(grpc.StatusCode.INVALID_ARGUMENT, message)


def not_found(message: str) -> HubError:
    """NOT_FOUND."""
    return HubError(grpc.StatusCode.NOT_FOUND, message)


MAX_MESSAGE = 4 * 1024 * 1024  # spec 1.3: the request size Textile's servers accepted


def check_size(n: int) -> None:
    """RESOURCE_EXHAUSTED for a request payload over :data:`MAX_MESSAGE` bytes."""
    if n > MAX_MESSAGE:
        raise HubError(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"message of {n} bytes is larger than the limit of {MAX_MESSAGE} bytes",
        )


def check_active(context: grpc.ServicerContext) -> None:
    """Refuse to commit for a call whose request stream broke off (see ``streamguard``).

    gRPC ends a servicer's request iterator the same way for a half-close and for a failed
    receive; checking before the commit keeps a broken stream from being saved as complete.
    """
    from bucketfs.hub.streamguard import stream_broken

    if stream_broken(context):
        log.info("request stream broke off; nothing committed")
        raise HubError(grpc.StatusCode.CANCELLED, "the request stream broke off; nothing saved")


F = TypeVar("F", bound=Callable[..., Any])


def _abort(context: grpc.ServicerContext, exc: BaseException, name: str) -> None:
    if _is_abort(exc):
        raise exc
    if isinstance(exc, grpc.RpcError):
        # Raised by the request iterator when the client cancelled or the stream broke off:
        # nobody is left to receive a status, and whatever was half-done was never committed.
        log.info("%s: client stream ended abnormally: %r", name, exc)
        raise exc
    from bucketfs.hub.dcrypto import DecryptError
    from bucketfs.ipfs.blockstore import BlockCorrupt, BlockNotFound

    if isinstance(exc, DecryptError):
        # A private bucket's ciphertext that does not verify under its key: tampered data.
        log.error("%s: %s", name, exc)
        exc = HubError(grpc.StatusCode.DATA_LOSS, f"decrypting: {exc}")
    elif isinstance(exc, BlockNotFound):
        # A CID the caller named that this hub does not hold (there is no IPFS network).
        exc = HubError(grpc.StatusCode.NOT_FOUND, f"block not found in this hub: {exc}")
    elif isinstance(exc, BlockCorrupt):
        log.error("%s: %s", name, exc)
        exc = HubError(grpc.StatusCode.DATA_LOSS, f"stored block is corrupt: {exc}")
    if isinstance(exc, HubError):
        log.debug("%s failed: %s %s", name, exc.code.name, exc.message)
        context.abort(exc.code, exc.message)
    # A bug or an I/O failure: keep the traceback in the log, give the client a clear status.
    log.exception("%s failed unexpectedly", name)
    context.abort(grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}")


def _record(name: str, start: float, result: str) -> None:
    metrics.OPS.labels("hub", name, result).inc()
    metrics.OP_SECONDS.labels("hub", name).observe(time.perf_counter() - start)


def _result(exc: BaseException) -> str:
    from bucketfs.ipfs.blockstore import BlockCorrupt, BlockNotFound

    if isinstance(exc, BlockNotFound):
        return "NOT_FOUND"
    if isinstance(exc, BlockCorrupt):
        return "DATA_LOSS"
    if isinstance(exc, HubError):
        return exc.code.name
    if isinstance(exc, grpc.RpcError) or isinstance(exc, GeneratorExit):
        return "CANCELLED"
    return "INTERNAL"


def grpc_errors(method: F) -> F:
    """Decorate a servicer method (plain or generator) so a HubError becomes its gRPC status.

    Also counts and times every call in the shared metrics (``bucketfs_ops_total{component=
    "hub", op=<RPC>, result=<status code>}``).
    """
    name = method.__name__
    if inspect.isgeneratorfunction(method):

        @functools.wraps(method)
        def gen_wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
            start = time.perf_counter()
            try:
                yield from method(self, request, context)
            except BaseException as exc:
                _record(name, start, _result(exc))
                if isinstance(exc, Exception):
                    _abort(context, exc, name)
                raise
            _record(name, start, "OK")

        return gen_wrapper  # type: ignore[return-value]

    @functools.wraps(method)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        start = time.perf_counter()
        try:
            reply = method(self, request, context)
        except Exception as exc:  # noqa: BLE001 - mapped to a status right here
            _record(name, start, _result(exc))
            _abort(context, exc, name)
        _record(name, start, "OK")
        return reply

    return wrapper  # type: ignore[return-value]


def _is_abort(exc: BaseException) -> bool:
    # grpc's context.abort() raises a bare ``Exception()`` after recording the status; it must
    # pass through untouched or the recorded status would be overwritten.
    return type(exc) is Exception and not exc.args
