"""The local ingest protocol: a client on the hub's host hands the hub file ranges by descriptor.

Why: a mount uploading a big file over gRPC reads every byte, hashes it, frames it into HTTP/2
and sends it over loopback, and the hub receives, copies and hashes it again (measured: about
4 CPU-seconds per GiB of the two processes together, on a machine where writing the GiB took
one). When the hub runs on the same host, the mount instead passes the hub an open read-only
descriptor of its cache file (``SCM_RIGHTS`` over a Unix socket) and the byte ranges of the
leaves; the hub reads them itself (from the page cache), hashes each range once, stores it as a
raw leaf and answers the CIDs. The descriptor is the capability: the hub reads only what the
client could open. Authentication is the gRPC one (the same metadata, checked as for
``FS.PutBlocks``).

Frames: a 4-byte big-endian length, then that many bytes of UTF-8 JSON. One call per
connection:

1. client: ``{"v": 1, "md": {header: value}}`` with exactly one descriptor attached;
2. client: ``{"r": [[offset, length], ...]}``, any number of these (streamed while the file is
   still being written: the hub works through them as they come);
3. client: ``{"end": true}``;
4. hub: ``{"cids": [...], "lens": [...]}`` once every leaf is durable (one entry per range in
   order: the bytes read, fewer at end of file, and the CID, "" for none), or at any point
   ``{"error": {"code": "INVALID_ARGUMENT", "message": "..."}}`` (a gRPC status name), after
   which the hub closes the connection. Leaves stored before an error are kept.

The socket is in the abstract namespace (no file to clean up, no path length limit) under a
random name the hub reports in ``FS.LocalIngest``, so a client reaches only the hub it asked.
"""

from __future__ import annotations

import array
import json
import os
import socket
import struct
from typing import Any

VERSION = 1
#: The largest frame either side accepts (a ranges frame of a 32 GiB file is ~3 MB).
MAX_FRAME = 16 << 20
_LEN = struct.Struct(">I")


class WireError(Exception):
    """The peer broke the protocol or went away."""


def send_frame(sock: socket.socket, obj: Any, fds: tuple[int, ...] = ()) -> None:
    """Send one JSON frame, with ``fds`` attached to its first byte."""
    body = json.dumps(obj, separators=(",", ":")).encode()
    if len(body) > MAX_FRAME:
        raise WireError(f"frame of {len(body)} bytes is larger than {MAX_FRAME}")
    data = _LEN.pack(len(body)) + body
    if fds:
        anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())]
        sent = sock.sendmsg([data], anc)
        data = data[sent:]
    if data:
        sock.sendall(data)


def recv_frame(sock: socket.socket, max_fds: int = 0) -> tuple[Any, list[int]]:
    """Receive one JSON frame and the descriptors attached to it (at most ``max_fds``; any
    descriptor beyond that, or when none is expected, is closed)."""
    fds: list[int] = []
    head = b""
    if max_fds:
        space = socket.CMSG_SPACE(max_fds * array.array("i").itemsize)
        head, anc, flags, _addr = sock.recvmsg(_LEN.size, space)
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                got = array.array("i")
                got.frombytes(payload[: len(payload) - len(payload) % got.itemsize])
                fds.extend(got)
        if flags & socket.MSG_CTRUNC:
            _close(fds)
            raise WireError("too many descriptors attached")
        if len(fds) > max_fds:
            _close(fds)
            raise WireError("too many descriptors attached")
    try:
        head += _recv_exact(sock, _LEN.size - len(head))
        (n,) = _LEN.unpack(head)
        if n > MAX_FRAME:
            raise WireError(f"frame of {n} bytes is larger than {MAX_FRAME}")
        try:
            return json.loads(_recv_exact(sock, n)), fds
        except ValueError as exc:
            raise WireError(f"bad frame: {exc}") from None
    except BaseException:
        _close(fds)
        raise


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        part = sock.recv(n - len(buf))
        if not part:
            raise WireError("connection closed by the peer")
        buf += part
    return bytes(buf)


def _close(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)


def address(name: str) -> str:
    """The ``AF_UNIX`` address of the abstract socket ``name``."""
    return "\0" + name
