"""The client side of local ingest: file ranges handed to a hub on this host by descriptor.

See :mod:`bucketfs.hub.ingestwire` for the protocol and why. :class:`LocalIngest` is one hub's
socket and the caller's gRPC metadata; :meth:`LocalIngest.send` is one call.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Mapping

from bucketfs.client.errors import ClientError
from bucketfs.hub.ingestwire import VERSION, WireError, address, recv_frame, send_frame

#: Ranges per frame: a frame goes out once this many are known (or the iterator pauses,
#: which it tells by yielding None), so the hub can start on them.
FRAME_RANGES = 16


class LocalIngestError(ClientError):
    """The local ingest call failed (refused, or the hub went away): use gRPC instead."""


class NotReachable(LocalIngestError):
    """No hub listens on that socket here (it runs on another host, or restarted): nothing was
    sent."""


class LocalIngest:
    """Calls to the local ingest socket ``name`` (from ``FS.LocalIngest``) with ``metadata``
    (the gRPC metadata the caller's calls carry: thread, API key, token)."""

    def __init__(self, name: str, metadata: Mapping[str, str]) -> None:
        self.name = name
        self.metadata = dict(metadata)

    def send(self, fd: int, ranges: Iterable[tuple[int, int] | None]) -> list[tuple[str, int]]:
        """Have the hub store the ranges ``(offset, length)`` of the open file ``fd`` as raw
        leaves; returns ``(cid, bytes read)`` per range, in order (fewer bytes at end of file;
        ``("", 0)`` past it). Every leaf is durable on the hub when this returns. ``ranges`` may
        be a generator that waits for data: a None from it sends what is pending at once.
        Raises :class:`NotReachable` before taking anything from ``ranges``, else
        :class:`LocalIngestError`."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            try:
                sock.connect(address(self.name))
            except OSError as exc:
                raise NotReachable(f"local ingest socket: {exc}") from exc
            try:
                send_frame(sock, {"v": VERSION, "md": self.metadata}, fds=(fd,))
                batch: list[list[int]] = []
                count = 0
                for item in ranges:
                    if item is not None:
                        batch.append([item[0], item[1]])
                        count += 1
                    if batch and (item is None or len(batch) >= FRAME_RANGES):
                        send_frame(sock, {"r": batch})
                        batch = []
                if batch:
                    send_frame(sock, {"r": batch})
                send_frame(sock, {"end": True})
            except (OSError, WireError) as exc:
                raise self._refusal(sock, exc) from exc
            try:
                reply, _ = recv_frame(sock)
            except (OSError, WireError) as exc:
                raise LocalIngestError(f"local ingest: no answer from the hub ({exc})") from exc
        finally:
            sock.close()
        _raise_error(reply)
        cids, lens = reply.get("cids"), reply.get("lens")
        if not isinstance(cids, list) or not isinstance(lens, list) or not (
            len(cids) == len(lens) == count
        ):
            raise LocalIngestError(f"local ingest: a malformed answer for {count} ranges")
        return list(zip(cids, lens, strict=True))

    def _refusal(self, sock: socket.socket, exc: Exception) -> LocalIngestError:
        """The error for a call that broke off while sending: the hub's own reason when it
        sent one before closing (a refused call), else the socket error."""
        try:
            sock.settimeout(1.0)
            reply, _ = recv_frame(sock)
            _raise_error(reply)
        except LocalIngestError as refused:
            return refused
        except (OSError, WireError):
            pass  # no reason given: the socket error is the one to report
        return LocalIngestError(f"local ingest: {exc}")


def _raise_error(reply: object) -> None:
    if not isinstance(reply, dict):
        raise LocalIngestError("local ingest: a malformed answer")
    err = reply.get("error")
    if err is not None:
        code = err.get("code", "UNKNOWN") if isinstance(err, dict) else "UNKNOWN"
        message = err.get("message", "") if isinstance(err, dict) else str(err)
        raise LocalIngestError(f"local ingest refused ({code}): {message}")

