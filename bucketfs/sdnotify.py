"""Minimal sd_notify(3): tell systemd a Type=notify service is ready, stopping or busy.

Written by hand because the protocol is one datagram on a unix socket, and a dependency for
that would be heavier than the code.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


def notify(state: str) -> bool:
    """Send ``state`` (e.g. ``"READY=1"``) to ``$NOTIFY_SOCKET``; False when not under systemd."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return False
    if addr.startswith("@"):  # abstract namespace socket
        addr = "\0" + addr[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(addr)
            sock.sendall(state.encode())
    except OSError as exc:
        # Not fatal: the service still works, systemd will just time out waiting for READY.
        log.warning("sd_notify failed", extra={"fields": {"state": state, "error": exc}})
        return False
    return True
