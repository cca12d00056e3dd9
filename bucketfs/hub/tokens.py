"""The GetToken challenge flow (spec 4.1), shared by ``threads.pb.API`` and ``threads.net.pb.API``.

1. the client sends its public key string; 2. the hub answers 32 random bytes; 3. the client
signs them with its Ed25519 key; 4. the hub verifies and answers a JWT signed by its host key.

The client has ``timeout`` seconds (1 minute upstream) from the challenge to answer. A gRPC
request iterator blocks without a timeout, so the next message is read in a helper thread and
waited for with one; when time is up the call is aborted, which also ends the helper's read.
"""

from __future__ import annotations

import logging
import queue
import secrets
import threading
from collections.abc import Iterator
from typing import Any

import grpc

from bucketfs.hub.errors import HubError
from bucketfs.keys import (
    Identity,
    InvalidKey,
    issue_token,
    parse_public_key,
    public_key_bytes_to_string,
    verify_signature,
)
from bucketfs.pb import threads_pb2

log = logging.getLogger(__name__)

CHALLENGE_BYTES = 32
KEY_REQUIRED = "Key is required"
SIGNATURE_REQUIRED = "Signature is required"
DEADLINE = "Challenge deadline exceeded"
BAD_SIGNATURE = "bad signature"

_END = object()


def _next_with_timeout(requests: Iterator[Any], timeout: float) -> Any:
    """The next request, ``_END`` at end of stream; DEADLINE_EXCEEDED after ``timeout``."""
    box: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=1)

    def read() -> None:
        try:
            box.put(("ok", next(requests)))
        except StopIteration:
            box.put(("ok", _END))
        except Exception as exc:  # noqa: BLE001 - handed to the waiting thread below
            box.put(("err", exc))

    threading.Thread(target=read, name="gettoken-read", daemon=True).start()
    try:
        kind, value = box.get(timeout=timeout)
    except queue.Empty:
        raise HubError(grpc.StatusCode.DEADLINE_EXCEEDED, DEADLINE) from None
    if kind == "err":
        raise value
    return value


def get_token_flow(
    requests: Iterator[threads_pb2.GetTokenRequest], host: Identity, timeout: float = 60.0
) -> Iterator[threads_pb2.GetTokenReply]:
    """Run the challenge over a request stream, yielding the challenge and then the token.

    Raises :class:`HubError` with the exact codes and texts of spec 4.1/13.
    """
    # The key too must come in time: a client that opens the stream and says nothing would
    # otherwise hold one of the server's worker threads for good.
    first = _next_with_timeout(requests, timeout)
    if first is _END or first.WhichOneof("payload") != "key":
        raise HubError(grpc.StatusCode.INVALID_ARGUMENT, KEY_REQUIRED)
    try:
        public_key = parse_public_key(first.key)
    except InvalidKey as exc:
        # Go returns the parse error as a plain error (UNKNOWN).
        raise HubError(grpc.StatusCode.UNKNOWN, str(exc)) from exc
    challenge = secrets.token_bytes(CHALLENGE_BYTES)
    yield threads_pb2.GetTokenReply(challenge=challenge)
    answer = _next_with_timeout(requests, timeout)
    if answer is _END or answer.WhichOneof("payload") != "signature":
        raise HubError(grpc.StatusCode.INVALID_ARGUMENT, SIGNATURE_REQUIRED)
    if not verify_signature(public_key, challenge, answer.signature):
        raise HubError(grpc.StatusCode.UNKNOWN, BAD_SIGNATURE)
    # The subject is re-encoded in canonical base32, as go-threads does, so that owner and role
    # keys compare equal whatever multibase the client used.
    subject = public_key_bytes_to_string(public_key)
    log.info("issued a thread token to %s", subject)
    yield threads_pb2.GetTokenReply(token=issue_token(host, subject))
