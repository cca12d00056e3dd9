"""Turning pushed byte streams into UnixFS files without holding them in memory.

:class:`StreamingImport` feeds the chunks of a pushed file, as the gRPC request loop receives
them, to a push-style importer (``bucketfs.ipfs.importer.FileImporter``) whose write-behind
threads hash and store the leaves; it holds at most a few chunks, so a fast client is slowed
to the importer's pace instead of filling memory.

:class:`FileSlots` holds the open files of one PushPaths stream, whose chunks may interleave.
A file starts in a small memory buffer (most pushed files are small); one that grows past
``STREAM_AFTER`` bytes gets a streaming importer if one of ``MAX_STREAMS`` slots is free, else
it is spilled to a temp file and imported when it closes. Memory per stream is thus bounded by
``MEMORY_BUDGET`` plus ``MAX_STREAMS`` pipes, whatever the number and sizes of the files.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from pathlib import Path

import grpc

from bucketfs.hub.dcrypto import Encryptor
from bucketfs.hub.errors import HubError, unknown
from bucketfs.ipfs.blockstore import Blockstore
from bucketfs.ipfs.cid import CID
from bucketfs.ipfs.importer import (
    CHUNK_SIZE,
    FileImporter,
    Imported,
    import_bytes,
    import_file,
)
from bucketfs.pb import bucketsd_pb2 as pb

log = logging.getLogger(__name__)

STREAM_AFTER = 1 << 20  # 1 MiB: a file this big is imported while it arrives
MAX_STREAMS = 4  # concurrent streaming imports per PushPaths call
MEMORY_BUDGET = 32 << 20  # buffered bytes of not-yet-streaming files per call
MAX_OPEN_FILES = 100_000  # files open at once in one PushPaths stream (each costs a little)


class RawChunk:
    """A ``PushPathRequest`` that holds only ``chunk``, as a view of the received bytes.

    Parsing a 1 MiB chunk message with protobuf copies the bytes once, and reading the
    ``chunk`` field copies them again (upb hands out a new ``bytes`` on every access); with
    the copies the import makes anyway, that was most of the memory traffic of a push.
    """

    __slots__ = ("chunk",)

    def __init__(self, chunk: memoryview) -> None:
        self.chunk = chunk

    def WhichOneof(self, group: str) -> str | None:  # noqa: N802 - the protobuf method name
        """``"chunk"`` for the ``payload`` oneof, as the protobuf message would answer."""
        return "chunk" if group == "payload" else None


_CHUNK_TAG = 0x12  # field 2 (chunk), wire type 2 (length-delimited)


def parse_push_path_request(raw: bytes) -> object:
    """Deserialize a ``PushPathRequest``: a message that is exactly one ``chunk`` field (what
    every client sends after the header) becomes a :class:`RawChunk` without copying; any
    other message goes through protobuf. The wire format is the same either way."""
    if len(raw) >= 2 and raw[0] == _CHUNK_TAG:
        length = shift = 0
        pos = 1
        while pos < len(raw) and pos <= 5:
            b = raw[pos]
            length |= (b & 0x7F) << shift
            pos += 1
            if not b & 0x80:
                if pos + length == len(raw):
                    return RawChunk(memoryview(raw)[pos:])
                break
            shift += 7
    return pb.PushPathRequest.FromString(raw)


class StreamingImport:
    """A :class:`FileImporter` fed by the gRPC request loop as the chunks arrive.

    The request thread cuts the received messages into leaves (views, no copies) and hands
    them to the importer's write-behind threads, which hash and store them while the next
    message is received; ``feed`` blocks once a few leaves are in flight, so a fast client is
    slowed to the disk's pace instead of filling memory.
    """

    def __init__(self, store: Blockstore, name: str) -> None:
        self.name = name
        self._imp = FileImporter(store)

    def feed(self, data: bytes) -> None:
        """Pass bytes on; raises (UNKNOWN) if storing a block failed."""
        try:
            self._imp.write(data)
        except Exception as exc:
            log.error("%s: import failed: %s", self.name, exc)
            raise unknown(f"import failed: {exc}") from exc

    def finish(self) -> Imported:
        """End the input and wait for the file's root."""
        try:
            return self._imp.finish()
        except Exception as exc:
            log.error("%s: import failed: %s", self.name, exc)
            raise unknown(f"import failed: {exc}") from exc

    def abort(self) -> None:
        """Abandon the import (its pack is thrown away)."""
        self._imp.abort()


def import_small(data: bytes, store: Blockstore) -> Imported:
    """Import an in-memory file without the importer's worker threads.

    Up to one chunk, ``ipfs add --cid-version=1`` gives a single raw block (spec 9), so that
    block is stored directly: starting the write-behind pool for each of 10,000 small files
    cost more than hashing and writing them.
    """
    if len(data) <= CHUNK_SIZE:
        cid = CID.of_raw(data)
        store.put(cid, data, trusted=True)
        return Imported(cid, len(data), len(data))
    return import_bytes(data, store, write_behind=False)


class _OpenFile:
    __slots__ = ("buf", "stream", "spill", "size", "mode", "mtime", "enc")

    def __init__(self, mode: int | None, mtime: int | None, enc: Encryptor | None) -> None:
        self.enc = enc
        self.buf: bytearray | None = bytearray()
        self.stream: StreamingImport | None = None
        self.spill: Path | None = None
        self.size = 0
        self.mode = mode
        self.mtime = mtime


class FileSlots:
    """The open files of one PushPaths stream, keyed by path."""

    def __init__(
        self,
        store: Blockstore,
        spill_dir: Path,
        cipher: Callable[[str], Encryptor] | None = None,
    ) -> None:
        """``cipher`` (private buckets): the encryptor for a path; files are stored as their
        dcrypto stream (spec 7.3)."""
        self.store = store
        self.cipher = cipher
        self.spill_dir = spill_dir
        self.files: dict[str, _OpenFile] = {}
        self.closed: set[str] = set()
        self._buffered = 0
        self._streams = 0

    def __len__(self) -> int:
        return len(self.files)

    def write(
        self, path: str, data: bytes, mode: int | None = None, mtime: int | None = None
    ) -> tuple[Imported, _OpenFile] | None:
        """Add a chunk; empty ``data`` closes the file and returns (its import, its attrs)."""
        f = self.files.get(path)
        if f is None:
            if path in self.closed:
                raise unknown(f"writing chunk: file {path!r} was already closed in this stream")
            if len(self.files) >= MAX_OPEN_FILES:
                raise HubError(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"more than {MAX_OPEN_FILES} files open at once in one PushPaths stream; "
                    "close files (empty chunk) before opening more",
                )
            enc = self.cipher(path) if self.cipher is not None else None
            f = self.files[path] = _OpenFile(mode, mtime, enc)
            if enc is not None:
                self._append(path, f, enc.header())
        if not data:
            if f.enc is not None:
                self._append(path, f, f.enc.finalize())
            del self.files[path]
            self.closed.add(path)
            return self._close(f), f
        self._append(path, f, f.enc.update(data) if f.enc is not None else data)
        return None

    def _append(self, path: str, f: _OpenFile, data: bytes) -> None:
        f.size += len(data)
        if f.buf is not None:
            f.buf += data
            self._buffered += len(data)
            if len(f.buf) >= STREAM_AFTER or self._buffered > MEMORY_BUDGET:
                self._promote(path, f)
        elif f.stream is not None:
            f.stream.feed(data)
        else:
            assert f.spill is not None
            with open(f.spill, "ab") as out:
                out.write(data)

    def _promote(self, path: str, f: _OpenFile) -> None:
        assert f.buf is not None
        data, f.buf = bytes(f.buf), None
        self._buffered -= len(data)
        if self._streams < MAX_STREAMS:
            self._streams += 1
            f.stream = StreamingImport(self.store, f"import {path[:40]}")
            f.stream.feed(data)
        else:
            fd, name = tempfile.mkstemp(prefix="push-", dir=self.spill_dir)
            with open(fd, "wb") as out:
                out.write(data)
            f.spill = Path(name)

    def _close(self, f: _OpenFile) -> Imported:
        if f.buf is not None:
            self._buffered -= len(f.buf)
            data, f.buf = bytes(f.buf), None
            return import_small(data, self.store)
        if f.stream is not None:
            self._streams -= 1
            return f.stream.finish()
        assert f.spill is not None
        try:
            with open(f.spill, "rb") as src:
                return import_file(src, self.store)
        finally:
            f.spill.unlink(missing_ok=True)

    def abort(self) -> None:
        """Abandon every open file (the push failed)."""
        for f in self.files.values():
            if f.stream is not None:
                f.stream.abort()
            if f.spill is not None:
                f.spill.unlink(missing_ok=True)
        self.files.clear()
