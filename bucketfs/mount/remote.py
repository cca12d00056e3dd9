"""The mount's view of the hub: the dozen calls it makes, as plain blocking methods.

This is a thin adapter over the generated stubs (``bucketfs.pb``) so that the mount depends only
on the protocol and on :mod:`bucketfs.client.errors` (every ``grpc.RpcError`` becomes a
``ClientError`` here, keeping the cause). It is thread-safe (gRPC channels are) and is always
called from worker threads, never from the trio loop.

Everything is relative to one bucket (``key``): paths are bucket-relative without a leading
slash, ``""`` is the bucket root. Roots are the ``/ipfs/<cid>`` strings the protocol uses for the
fast-forward check.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import grpc

from bucketfs.client.errors import ClientError, HubUnavailable, Unimplemented, from_rpc_error
from bucketfs.client.ingest import LocalIngest, NotReachable
from bucketfs.ipfs.cid import encode_varint
from bucketfs.pb import bucketsd_pb2 as bpb
from bucketfs.pb import bucketsd_pb2_grpc as bgrpc
from bucketfs.pb import fs_pb2 as fpb
from bucketfs.pb import fs_pb2_grpc as fgrpc

log = logging.getLogger(__name__)

#: Size of the data messages we send in PushPath (under the hub's 4 MiB request limit).
PUSH_MESSAGE = 256 * 1024
#: Default deadline of calls that should answer quickly (listing, root, block reads,
#: namespace calls); ``-o hub_timeout=`` sets it. A read of data that is not cached fails with
#: EIO after this long when the hub does not answer, rather than hanging.
UNARY_DEADLINE = 30.0


#: Seconds before asking again for a local ingest socket that was not offered or not reachable.
INGEST_RECHECK = 60.0


@dataclass(frozen=True)
class RemoteItem:
    """One directory entry as the hub lists it (PathItem + bucketfs extension fields)."""

    name: str
    cid: str
    kind: str  # "file" | "dir" | "symlink"
    size: int  # logical bytes (0 for directories)
    mode: int  # permission bits; 0 = never set
    mtime_ns: int  # 0 = never set
    target: str = ""  # symlink target

    @classmethod
    def from_pb(cls, item: bpb.PathItem) -> RemoteItem:
        """Build from a ``PathItem`` (its ``name`` is the entry name)."""
        if item.is_symlink:
            kind = "symlink"
        elif item.is_dir:
            kind = "dir"
        else:
            kind = "file"
        return cls(
            name=item.name,
            cid=item.cid,
            kind=kind,
            size=item.file_size if kind == "file" else 0,
            mode=item.mode & 0o7777,
            mtime_ns=item.mtime,
            target=item.symlink_target,
        )


@dataclass(frozen=True)
class Listing:
    """One directory: its own item, its children by name, and the root it was read from."""

    item: RemoteItem
    children: dict[str, RemoteItem]
    root: str


def root_cid(root: str) -> str:
    """The CID part of a ``/ipfs/<cid>`` root path."""
    return root.rsplit("/", 1)[-1]


class Remote:
    """Blocking access to one bucket on one hub.

    ``metadata`` returns the per-call gRPC metadata (thread header, credentials); it is called
    for every call so that signatures can be refreshed. ``timeout`` is the deadline of every
    call except the streaming upload and the root watch.

    ``online`` tells whether the last call got an answer from the hub (any answer, errors
    included); ``last_contact`` is when (``time.time()``), for the status command.
    """

    def __init__(
        self,
        channel: grpc.Channel,
        key: str,
        metadata: Callable[[], list[tuple[str, str]]],
        timeout: float = UNARY_DEADLINE,
    ) -> None:
        self.key = key
        self.timeout = timeout
        self.online = True
        self.last_contact = 0.0
        # Called (from whichever thread made the call) when the hub answers after it was
        # unreachable: the uploader uses it to retry at once instead of waiting out a backoff
        # of up to 30 s. Must be quick and must not block.
        self.on_back: Callable[[], None] | None = None
        # updated_at of the newest root our own mutations produced: a later one on the hub with
        # the same root CID is a metadata-only change (chmod, utime) made elsewhere.
        self.own_updated_at = 0
        self._metadata = metadata
        self._buckets = bgrpc.APIServiceStub(channel)
        self._fs = fgrpc.FSStub(channel)
        # PutBlocks with Block messages built by block_message (the same wire bytes as the
        # generated stub's, one copy of the data fewer).
        self._put_blocks = channel.stream_unary(
            "/bucketfs.pb.FS/PutBlocks",
            request_serializer=bytes,
            response_deserializer=fpb.PutBlocksReply.FromString,
        )
        # The hub's local ingest socket: (name, or "" when not offered or not reachable from
        # here, and when that was last asked).
        self._ingest: tuple[str, float] | None = None

    @classmethod
    def from_client(cls, client: object, key: str, timeout: float = UNARY_DEADLINE) -> Remote:
        """Share a :class:`~bucketfs.client.buckets.BucketsClient`'s channel and credentials."""
        return cls(client.channel, key, client.metadata, timeout)  # type: ignore[attr-defined]

    def _answered(self) -> None:
        was_online, self.online = self.online, True
        self.last_contact = time.time()
        if not was_online and self.on_back is not None:
            self.on_back()

    def _error(self, exc: grpc.RpcError) -> ClientError:
        """The client error for ``exc``; notes whether the hub answered at all."""
        err = from_rpc_error(exc)
        if isinstance(err, HubUnavailable):
            self.online = False
        else:
            self._answered()
        return err

    # -- reads ---------------------------------------------------------------------------------

    def root(self) -> str:
        """The bucket's current root path (``/ipfs/<cid>``)."""
        return self.root_info()[0]

    def root_info(self) -> tuple[str, int]:
        """The bucket's current root path and its ``updated_at`` (Unix ns), which also moves
        on a metadata-only change that keeps the root CID."""
        reply = self._unary(self._buckets.Root, bpb.RootRequest(key=self.key))
        return reply.root.path, reply.root.updated_at

    def _own(self, root: bpb.Root) -> str:
        """Note a root our own mutation produced; returns its path."""
        self.own_updated_at = max(self.own_updated_at, root.updated_at)
        return root.path

    def list_dir(self, path: str) -> Listing:
        """One level of ``path`` (must be a directory) with extension attributes."""
        reply = self._unary(self._fs.ListDir, fpb.ListDirRequest(key=self.key, path=path))
        children = {c.name: RemoteItem.from_pb(c) for c in reply.item.items}
        return Listing(RemoteItem.from_pb(reply.item), children, reply.root)

    def read_file(self, cid: str, offset: int, length: int) -> Iterator[tuple[int, bytes]]:
        """Stream ``(offset, data)`` pieces of the file DAG ``cid`` from ``offset``."""
        req = fpb.ReadFileRequest(key=self.key, cid=cid, offset=offset, length=length)
        try:
            for msg in self._fs.ReadFile(req, metadata=self._metadata(), timeout=self.timeout):
                yield msg.offset, msg.data
        except grpc.RpcError as exc:
            raise self._error(exc) from exc
        self._answered()

    def get_blocks(self, cids: list[str]) -> Iterator[tuple[str, bytes]]:
        """FS.GetBlocks: ``(cid, data)`` in request order (unverified: the caller verifies)."""
        call = self._fs.GetBlocks(
            fpb.GetBlocksRequest(key=self.key, cids=cids), metadata=self._metadata(),
            timeout=self.timeout,
        )
        try:
            for block in call:
                yield block.cid, block.data
        except grpc.RpcError as exc:
            raise self._error(exc) from exc
        finally:
            call.cancel()
        self._answered()

    def watch_root(self) -> RootWatch:
        """FS.WatchRoot: iterate over ``(root path, updated_at)`` (current first); ``cancel()``
        ends it."""
        call = self._fs.WatchRoot(fpb.WatchRootRequest(key=self.key), metadata=self._metadata())
        return RootWatch(call)

    # -- mutations (each takes the fast-forward root and returns the new root) -----------------

    def push_file(
        self,
        path: str,
        chunks: Iterable[bytes],
        root: str,
        mode: int | None = None,
        mtime_ns: int | None = None,
    ) -> tuple[str, str]:
        """Push a whole file at ``path``; returns ``(new root, file cid)``."""

        def requests() -> Iterator[bpb.PushPathRequest]:
            # light_root: the reply's Root without path_metadata (O(paths in the bucket)).
            header = bpb.PushPathRequest.Header(
                key=self.key, path=path, root=root, light_root=True
            )
            if mode is not None:
                header.mode = mode
            if mtime_ns is not None:
                header.mtime = mtime_ns
            yield bpb.PushPathRequest(header=header)
            for chunk in chunks:
                for i in range(0, len(chunk), PUSH_MESSAGE):
                    yield bpb.PushPathRequest(chunk=chunk[i : i + PUSH_MESSAGE])

        new_root = ""
        file_cid = ""
        try:
            # No deadline: a large file may take long; the hub answers with progress events.
            # (A hub that vanishes is noticed by the channel's keepalive pings.)
            for reply in self._buckets.PushPath(requests(), metadata=self._metadata()):
                ev = reply.event
                if ev.path:
                    file_cid = root_cid(ev.path)
                    new_root = self._own(ev.root)
        except grpc.RpcError as exc:
            raise self._error(exc) from exc
        self._answered()
        if not new_root:
            raise ClientError(f"push of {path} ended without a final event")
        return new_root, file_cid

    def push_files(
        self,
        files: list[tuple[str, Iterable[bytes], int | None, int | None]],
        root: str,
    ) -> tuple[str, dict[str, str]]:
        """Push several whole files in ONE ``PushPaths`` stream (one new root, one fast-forward
        check for all); ``files`` are ``(path, chunks, mode, mtime_ns)``, sent in series. Returns
        ``(new root, {path: file cid})``. On an error the hub keeps the files completed before
        it (spec 5.6), so the caller must re-read the root before retrying."""

        def requests() -> Iterator[bpb.PushPathsRequest]:
            paths = [f[0] for f in files]
            yield bpb.PushPathsRequest(
                header=bpb.PushPathsRequest.Header(key=self.key, root=root, paths=paths))
            for path, chunks, mode, mtime_ns in files:
                first = True
                for chunk in chunks:
                    for i in range(0, len(chunk), PUSH_MESSAGE):
                        c = bpb.PushPathsRequest.Chunk(path=path, data=chunk[i : i + PUSH_MESSAGE])
                        if first:
                            _attrs(c, mode, mtime_ns)
                            first = False
                        yield bpb.PushPathsRequest(chunk=c)
                end = bpb.PushPathsRequest.Chunk(path=path)  # empty data closes the file
                if first:  # an empty file: its only chunk carries the attributes
                    _attrs(end, mode, mtime_ns)
                yield bpb.PushPathsRequest(chunk=end)

        new_root = ""
        cids: dict[str, str] = {}
        try:
            # No deadline, as for push_file; the last reply carries the saved root.
            for reply in self._buckets.PushPaths(requests(), metadata=self._metadata()):
                cids[reply.path] = reply.cid
                new_root = self._own(reply.root)
        except grpc.RpcError as exc:
            raise self._error(exc) from exc
        self._answered()
        if len(cids) != len(files) or not new_root:
            raise ClientError(f"PushPaths of {len(files)} files answered for {len(cids)}")
        return new_root, cids

    def put_blocks(self, blocks: Iterable[tuple[str, bytes]]) -> None:
        """FS.PutBlocks: raw ``(cid, bytes)`` blocks, each verified by the hub; all of them
        are durable on the hub when this returns. No deadline: a caller may feed the stream
        while a file is being written (see :mod:`bucketfs.mount.leafpipe`)."""

        try:
            self._put_blocks(
                (block_message(cid, data) for cid, data in blocks), metadata=self._metadata())
        except grpc.RpcError as exc:
            raise self._error(exc) from exc
        self._answered()

    def ingest_leaves(
        self, fd: int, ranges: Iterable[tuple[int, int] | None]
    ) -> list[tuple[str, int]] | None:
        """Local ingest (:mod:`bucketfs.client.ingest`): the hub reads the ranges of the open
        file ``fd`` itself and stores them as raw leaves; returns ``(cid, bytes read)`` per
        range, all durable. None, before taking anything from ``ranges``, when the hub offers
        no local ingest or is on another host (the caller sends the bytes by
        :meth:`put_blocks`). Raises ``LocalIngestError``."""
        name = self._ingest_name()
        if not name:
            return None
        try:
            out = LocalIngest(name, dict(self._metadata())).send(fd, ranges)
        except NotReachable as exc:
            log.info("the hub's local ingest is not reachable from here (%s): sending leaves "
                     "over gRPC", exc)
            self._ingest = ("", time.monotonic())
            return None
        self._answered()
        return out

    def _ingest_name(self) -> str:
        """The hub's local ingest socket name, asked once (again after INGEST_RECHECK s when
        it was not offered or not reachable: the hub may have restarted)."""
        known = self._ingest
        if known is not None and (known[0] or time.monotonic() - known[1] < INGEST_RECHECK):
            return known[0]
        try:
            reply = self._fs.LocalIngest(
                fpb.LocalIngestRequest(), metadata=self._metadata(), timeout=self.timeout)
            name = reply.socket
        except grpc.RpcError as exc:
            err = self._error(exc)
            if not isinstance(err, Unimplemented):
                raise err from exc
            name = ""  # an older hub, or another implementation
        self._ingest = (name, time.monotonic())
        return name

    def link(
        self, path: str, cid: str, root: str, mode: int | None, mtime_ns: int | None
    ) -> tuple[str, RemoteItem]:
        """FS.Link: put the DAG ``cid`` (every block already on the hub) at ``path``."""
        req = fpb.LinkRequest(key=self.key, path=path, cid=cid, root=root)
        if mode is not None:
            req.mode = mode
        if mtime_ns is not None:
            req.mtime = mtime_ns
        return self._mutation(self._fs.Link, req)

    def remove(self, path: str, root: str, rmdir: bool = False) -> str:
        """FS.Remove: unlink(2), or rmdir(2) when ``rmdir`` (an empty directory only)."""
        req = fpb.RemoveRequest(key=self.key, path=path, root=root, rmdir=rmdir)
        return self._mutation(self._fs.Remove, req)[0]

    def mkdir(self, path: str, root: str, mode: int, mtime_ns: int) -> tuple[str, RemoteItem]:
        """FS.Mkdir: an empty directory."""
        req = fpb.MkdirRequest(key=self.key, path=path, root=root, mode=mode, mtime=mtime_ns)
        return self._mutation(self._fs.Mkdir, req)

    def symlink(
        self, path: str, target: str, root: str, mtime_ns: int
    ) -> tuple[str, RemoteItem]:
        """FS.Symlink: a UnixFS symlink node."""
        req = fpb.SymlinkRequest(
            key=self.key, path=path, target=target, root=root, mtime=mtime_ns
        )
        return self._mutation(self._fs.Symlink, req)

    def set_attr(
        self, path: str, root: str, mode: int | None, mtime_ns: int | None
    ) -> tuple[str, RemoteItem]:
        """FS.SetAttr: record mode and/or mtime."""
        req = fpb.SetAttrRequest(key=self.key, path=path, root=root)
        if mode is not None:
            req.mode = mode
        if mtime_ns is not None:
            req.mtime = mtime_ns
        return self._mutation(self._fs.SetAttr, req)

    def rename(self, src: str, dst: str, flags: int, root: str) -> str:
        """FS.Rename with rename(2) semantics (flags: 1 NOREPLACE, 2 EXCHANGE)."""
        req = fpb.RenameRequest(key=self.key, from_path=src, to_path=dst, flags=flags, root=root)
        return self._mutation(self._fs.Rename, req)[0]

    # -- helpers -------------------------------------------------------------------------------

    def _unary(self, method, request):  # noqa: ANN001, ANN202 - stub methods are untyped
        try:
            reply = method(request, metadata=self._metadata(), timeout=self.timeout)
        except grpc.RpcError as exc:
            raise self._error(exc) from exc
        self._answered()
        return reply

    def _mutation(self, method, request) -> tuple[str, RemoteItem]:  # noqa: ANN001
        reply = self._unary(method, request)
        return self._own(reply.root), RemoteItem.from_pb(reply.item)


def block_message(cid: str, data: bytes) -> bytes:
    """The wire bytes of ``fs.proto``'s ``Block{cid, data}``: field 1 (``0x0a``) and field 2
    (``0x12``), each a length and the bytes. Built directly, the data is copied once instead
    of twice (into a message, then out of it): a big file's early upload sends all of it."""
    key = cid.encode()
    return b"".join((b"\x0a", encode_varint(len(key)), key,
                     b"\x12", encode_varint(len(data)), data))


def _attrs(chunk: bpb.PushPathsRequest.Chunk, mode: int | None, mtime_ns: int | None) -> None:
    if mode is not None:
        chunk.mode = mode
    if mtime_ns is not None:
        chunk.mtime = mtime_ns


class RootWatch:
    """An open WatchRoot stream: iterate for ``(root path, updated_at)``; cancel() from any
    thread."""

    def __init__(self, call: grpc.Call) -> None:
        self._call = call

    def __iter__(self) -> Iterator[tuple[str, int]]:
        try:
            for msg in self._call:  # type: ignore[attr-defined]
                if msg.removed:
                    raise ClientError("the bucket was removed")
                yield msg.path, msg.updated_at
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.CANCELLED:  # type: ignore[attr-defined]
                return
            raise from_rpc_error(exc) from exc

    def cancel(self) -> None:
        """End the stream."""
        self._call.cancel()
