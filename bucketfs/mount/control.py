"""The mount daemon's control socket: JSON lines over a Unix socket.

One request per connection, one JSON object per line:

- ``{"cmd": "status"}`` → one line: :meth:`BucketFS.status` plus ``pid`` and ``mountpoint``;
- ``{"cmd": "flush"}`` → progress lines (status objects) until every dirty file is in the
  bucket, then ``{"done": true}``; retries with backoff while the hub is unreachable, so the
  caller decides how long to wait;
- ``{"cmd": "exit", "flush": false}`` → ``{"ok": true}``; the daemon will not try to upload on
  exit (``bucketfs umount --lazy``: the queue stays persisted for the next mount).

The socket lives in the runtime directory, named after the mount point, so that
``bucketfs umount MOUNTPOINT`` (and ``bucketfs status`` later) can find it without knowing the
cache directory. Only the mounting user can connect (mode 0600 in a 0700 directory).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import socketserver
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def runtime_dir() -> Path:
    """``$XDG_RUNTIME_DIR/bucketfs`` or ``/tmp/bucketfs-<uid>`` (created, mode 0700)."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    d = Path(base) / "bucketfs" if base and os.path.isdir(base) else Path(
        tempfile.gettempdir()) / f"bucketfs-{os.getuid()}"
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    return d


def socket_path(mountpoint: str | os.PathLike[str]) -> Path:
    """The control socket of the mount at ``mountpoint``."""
    # abspath, not realpath: resolving would stat the mount point, which hangs while the
    # daemon itself is not serving yet (or is wedged) — exactly when umount must still work.
    real = os.path.normpath(os.path.abspath(mountpoint))
    digest = hashlib.sha256(real.encode("utf-8", "surrogateescape")).hexdigest()[:20]
    return runtime_dir() / f"mount-{digest}.sock"


class ControlServer:
    """Serves the control socket from a thread; ``handlers`` map ``cmd`` to a generator."""

    def __init__(
        self, path: Path, handlers: dict[str, Callable[[dict], Iterator[dict]]]
    ) -> None:
        self.path = path
        if path.exists():
            path.unlink()  # a stale socket from a crashed daemon
        handlers_ = handlers

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                try:
                    line = self.rfile.readline()
                    req = json.loads(line or b"{}")
                    fn = handlers_.get(req.get("cmd", ""))
                    if fn is None:
                        self._send({"error": f"unknown command {req.get('cmd')!r}"})
                        return
                    for reply in fn(req):
                        self._send(reply)
                except (BrokenPipeError, ConnectionResetError):
                    return  # the client went away (e.g. Ctrl-C on umount)
                except Exception as exc:
                    log.exception("control request failed")
                    try:
                        self._send({"error": str(exc)})
                    except OSError:
                        log.debug("could not report the error to the control client")

            def _send(self, obj: dict) -> None:
                self.wfile.write(json.dumps(obj).encode() + b"\n")
                self.wfile.flush()

        class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True

        old = os.umask(0o177)
        try:
            self._server = Server(str(path), Handler)
        finally:
            os.umask(old)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="control", daemon=True
        )

    def start(self) -> None:
        """Start serving."""
        self._thread.start()

    def close(self) -> None:
        """Stop serving and remove the socket."""
        self._server.shutdown()
        self._server.server_close()
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass


def request(path: Path, req: dict[str, Any], timeout: float | None = None) -> Iterator[dict]:
    """Send one request; yield the reply lines. Raises OSError if no daemon listens."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        s.sendall(json.dumps(req).encode() + b"\n")
        with s.makefile("rb") as f:
            for line in f:
                yield json.loads(line)
