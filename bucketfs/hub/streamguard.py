"""Tell a client's half-close from a broken request stream (grpcio sync servers).

grpcio's sync server ends a servicer's request iterator with ``StopIteration`` both when the
client half-closes and when receiving the next message *failed* (the client vanished, or gRPC
rejected an oversized message); the call is marked cancelled only when a second event is
processed a moment later. Go's ``stream.Recv`` returns an error in the second case, and
Textile's PushPath relies on that: the end of the stream is the end of the file. Without this
guard a push cut off mid-file could be committed as a shorter file.

:func:`install` wraps grpcio's private receive callback (``grpc._server._receive_message``)
to note a failed receive on the call state; :func:`stream_broken` reads the note. If grpcio
changes that internal, ``install`` logs a warning and :func:`stream_broken` falls back to
``context.is_active()`` after a short wait, which catches the same failures in practice
(the cancellation follows within about a millisecond) but not with certainty.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import grpc

log = logging.getLogger(__name__)

_FLAG = "_bucketfs_receive_failed"
_installed = False
_works = False
_lock = threading.Lock()
FALLBACK_WAIT = 0.02


def install() -> bool:
    """Install the receive hook once per process; returns True when it is active."""
    global _installed, _works
    with _lock:
        if _installed:
            return _works
        _installed = True
        try:
            from grpc import _server

            original = _server._receive_message
        except (ImportError, AttributeError):
            log.warning("grpcio internals changed: broken push streams are detected by timing")
            return False

        def receive_message(state: Any, call: Any, request_deserializer: Any) -> Any:
            inner = original(state, call, request_deserializer)

            def on_event(event: Any) -> Any:
                try:
                    if not event.success:
                        setattr(state, _FLAG, True)
                except AttributeError:
                    pass  # an event without `success`: nothing to learn
                return inner(event)

            return on_event

        _server._receive_message = receive_message
        _works = True
        return True


def stream_broken(context: grpc.ServicerContext) -> bool:
    """True if the request stream of this call ended by failure rather than a half-close."""
    if not context.is_active():
        return True
    state = getattr(context, "_state", None)
    if _works and state is not None:
        return bool(getattr(state, _FLAG, False))
    time.sleep(FALLBACK_WAIT)
    return not context.is_active()
