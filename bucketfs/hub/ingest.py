"""The hub's side of local ingest: leaves read from a client's descriptor (see ``ingestwire``).

One thread accepts on the abstract socket; each connection (one call) is served by a thread
of its own, at most :data:`MAX_CALLS` at once. A call stores its leaves as ``FS.PutBlocks``
does (``HubStore.loose_blocks``): into one pack, under the store's mutation gate (the garbage
collector's grace period keeps them until a ``Link`` references them), made durable before
the answer.
"""

from __future__ import annotations

import logging
import os
import socket
import stat
import threading
import uuid
from typing import Any

import grpc

from bucketfs.hub.buckets import BYTES_IN
from bucketfs.hub.errors import HubError, check_size, invalid
from bucketfs.hub.ingestwire import VERSION, WireError, address, recv_frame, send_frame
from bucketfs.hub.store import HubStore
from bucketfs.ipfs.cid import CID

log = logging.getLogger(__name__)

#: Calls served at once; more connections wait in the listen backlog.
MAX_CALLS = 16
#: The gRPC method whose authorization a call needs (it does what PutBlocks does).
METHOD = "/bucketfs.pb.FS/PutBlocks"
#: A client that sends nothing for this long is dropped (seconds).
IDLE_TIMEOUT = 300.0


class IngestServer:
    """Serves local ingest calls for ``store`` on a fresh abstract socket (:attr:`name`)."""

    def __init__(self, store: HubStore, hub_auth: Any = None) -> None:
        self.store = store
        self.auth = hub_auth
        self.name = f"bucketfs-ingest-{uuid.uuid4().hex}"
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(address(self.name))
        self._sock.listen(64)
        self._slots = threading.BoundedSemaphore(MAX_CALLS)
        self._stopping = False
        self._thread = threading.Thread(target=self._accept, name="hub-ingest", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting (calls in progress finish on their own)."""
        self._stopping = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # never connected: nothing to shut down
        self._sock.close()
        self._thread.join(5)

    def _accept(self) -> None:
        while not self._stopping:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                if self._stopping:
                    return
                log.exception("local ingest: accept failed")
                continue
            self._slots.acquire()
            threading.Thread(target=self._serve, args=(conn,), daemon=True,
                             name="hub-ingest-call").start()

    def _serve(self, conn: socket.socket) -> None:
        fd = -1
        try:
            conn.settimeout(IDLE_TIMEOUT)
            hello, fds = recv_frame(conn, max_fds=1)
            if not fds:
                raise invalid("local ingest: no file descriptor attached")
            fd = fds[0]
            if not isinstance(hello, dict) or hello.get("v") != VERSION:
                raise invalid(f"local ingest: unsupported hello {str(hello)[:80]!r}")
            if self.auth is not None:
                self.auth.authenticate(METHOD, _metadata(hello.get("md")))
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise invalid("local ingest: the descriptor is not a regular file")
            send_frame(conn, self._call(conn, fd))
        except HubError as exc:
            log.warning("local ingest refused: %s", exc.message)
            _send_error(conn, exc.code.name, exc.message)
        except WireError as exc:
            log.warning("local ingest call broke off: %s", exc)
            _send_error(conn, grpc.StatusCode.CANCELLED.name, f"local ingest: {exc}")
        except OSError as exc:  # reading the descriptor, or storing (disk full)
            log.warning("local ingest call failed: %s", exc)
            _send_error(conn, grpc.StatusCode.INTERNAL.name, f"local ingest: {exc}")
        except Exception as exc:  # a bug: reported, and the client falls back to PutBlocks
            log.exception("local ingest call failed")
            _send_error(conn, grpc.StatusCode.INTERNAL.name, f"local ingest: {exc}")
        finally:
            if fd >= 0:
                os.close(fd)
            conn.close()
            self._slots.release()

    def _call(self, conn: socket.socket, fd: int) -> dict[str, list]:
        """Read, hash and store every range the client sends until its end frame."""
        cids: list[str] = []
        lens: list[int] = []
        with self.store.loose_blocks() as pack:  # (as PutBlocks stores its leaves)
            while True:
                frame, _ = recv_frame(conn)
                if not isinstance(frame, dict):
                    raise invalid("local ingest: a frame must be an object")
                if frame.get("end"):
                    break
                for offset, length in _ranges(frame.get("r")):
                    data = os.pread(fd, length, offset)
                    if not data:
                        cids.append("")
                        lens.append(0)
                        continue
                    cid = CID.of_raw(data)
                    pack.put(cid, data, trusted=True)  # hashed right here
                    BYTES_IN.inc(len(data))
                    cids.append(str(cid))
                    lens.append(len(data))
        return {"cids": cids, "lens": lens}


def _ranges(value: object) -> list[tuple[int, int]]:
    """The ``[[offset, length], ...]`` of a ranges frame, checked."""
    if not isinstance(value, list):
        raise invalid("local ingest: a frame needs 'r' (ranges) or 'end'")
    out = []
    for item in value:
        if (not isinstance(item, list) or len(item) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in item)
                or item[0] < 0 or item[1] <= 0):
            raise invalid(f"local ingest: bad range {str(item)[:40]!r}")
        check_size(item[1])
        out.append((item[0], item[1]))
    return out


def _metadata(value: object) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise invalid("local ingest: 'md' must map header names to strings")
    return {k.lower(): v for k, v in value.items()}


def _send_error(conn: socket.socket, code: str, message: str) -> None:
    try:
        send_frame(conn, {"error": {"code": code, "message": message}})
    except OSError as exc:  # the client is gone: the log line above is all there is
        log.debug("local ingest: cannot report the error: %s", exc)
