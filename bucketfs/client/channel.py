"""The gRPC channel and the retry loop every client call goes through.

One channel per hub is shared by every client object and thread (``grpc.Channel`` is
thread-safe). Retries are for UNAVAILABLE only ("could not reach the hub"), with capped
exponential backoff; which calls may be retried is decided by the caller, who knows whether a
repeat could apply a change twice.
"""

from __future__ import annotations

import ipaddress
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import grpc

from bucketfs.client.errors import ClientError, from_rpc_error

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Largest request message we send: the hub (like Go gRPC) accepts up to 4 MiB.
MAX_SEND = 4 * 1024 * 1024
#: Largest reply we accept. ListPath/Root replies carry the whole path metadata of a bucket, which
#: grows with the number of files, so this is far above the request limit but still bounded.
MAX_RECEIVE = 256 * 1024 * 1024

CHANNEL_OPTIONS: list[tuple[str, int]] = [
    ("grpc.max_send_message_length", MAX_SEND),
    ("grpc.max_receive_message_length", MAX_RECEIVE),
    # gRPC's default reconnect backoff grows to 120 s, which would leave a mount failing fast for
    # two minutes after a hub restart; our own retry loop paces attempts instead.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
    # Ping during calls so a long WatchRoot or transfer notices a hub that vanished without
    # closing the connection (power loss, network cut). 30 s respects the 20 s minimum interval
    # that Textile's hub and ours enforce (spec 1.3) — pinging faster gets the connection closed.
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 0),
]


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff for UNAVAILABLE: ``attempts`` tries in all, with full jitter."""

    attempts: int = 5
    initial: float = 0.1
    multiplier: float = 2.0
    cap: float = 2.0

    def delay(self, attempt: int) -> float:
        """Sleep before retry number ``attempt`` (0-based), jittered to avoid thundering herds."""
        ceiling = min(self.cap, self.initial * self.multiplier**attempt)
        return random.uniform(ceiling / 2, ceiling)


NO_RETRY = RetryPolicy(attempts=1)


def is_loopback(target: str) -> bool:
    """True for ``localhost``/``127.x``/``::1`` targets (credentials may go in clear there)."""
    host = target.rpartition(":")[0].strip("[]") or target
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def make_channel(target: str, credentials: grpc.ChannelCredentials | None = None) -> grpc.Channel:
    """A channel to ``target`` (``HOST:PORT``), TLS when ``credentials`` is given."""
    if credentials is not None:
        return grpc.secure_channel(target, credentials, options=CHANNEL_OPTIONS)
    return grpc.insecure_channel(target, options=CHANNEL_OPTIONS)


def with_retries(
    call: Callable[[], T],
    policy: RetryPolicy,
    what: str,
    retry: bool = True,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``call``; on UNAVAILABLE retry per ``policy`` (when ``retry``); map errors.

    Any ``grpc.RpcError`` leaves as a :class:`ClientError` with the RPC error as its cause.
    """
    attempts = policy.attempts if retry else 1
    for attempt in range(attempts):
        try:
            return call()
        except grpc.RpcError as exc:
            code = exc.code() if hasattr(exc, "code") else None
            if code == grpc.StatusCode.UNAVAILABLE and attempt + 1 < attempts:
                delay = policy.delay(attempt)
                log.debug(
                    "hub unavailable; retrying",
                    extra={"fields": {"rpc": what, "attempt": attempt + 1, "delay": delay}},
                )
                sleep(delay)
                continue
            raise from_rpc_error(exc) from exc
    raise AssertionError("unreachable")  # the loop always returns or raises


def raise_client_error(exc: grpc.RpcError) -> ClientError:
    """Build (for ``raise ... from exc``) the client error of a failed streaming call."""
    return from_rpc_error(exc)
