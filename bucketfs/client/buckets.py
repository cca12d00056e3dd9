"""``BucketsClient``: every buckets RPC and the ``bucketfs.pb.FS`` extension, the Pythonic way.

Conventions of every method:

- a deadline (``timeout`` for unary calls, ``stream_timeout`` for transfers);
- failures raise :mod:`bucketfs.client.errors` classes with the gRPC error as ``__cause__``;
- UNAVAILABLE is retried with capped exponential backoff when a repeat cannot apply a change
  twice: reads always; writes that carry a fast-forward ``root`` (a repeat of a write that landed
  fails with :class:`NonFastForward` instead of applying twice) or are idempotent by nature
  (SetPath, SetAttr, Link); uploads only when their source can be rewound;
- blocking: call from worker threads (``trio.to_thread.run_sync``), never from an event loop.
  One client (and its ``with_thread`` copies) shares one channel and is safe to use from many
  threads at once.
"""

from __future__ import annotations

import io
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO

import grpc

from bucketfs.client.auth import AuthContext
from bucketfs.client.channel import (
    NO_RETRY,
    RetryPolicy,
    is_loopback,
    make_channel,
    with_retries,
)
from bucketfs.client.errors import (
    PRIVATE_REFUSAL,
    ClientError,
    FailedPrecondition,
    HubError,
    HubUnavailable,
    Unauthenticated,
    Unimplemented,
    from_rpc_error,
)
from bucketfs.client.threads import ThreadsClient
from bucketfs.errors import UserError
from bucketfs.pb import bucketsd_pb2 as pb
from bucketfs.pb import bucketsd_pb2_grpc, fs_pb2, fs_pb2_grpc

log = logging.getLogger(__name__)

#: Upload chunk size: big enough to keep per-message overhead small, well under the 4 MiB limit.
CHUNK_SIZE = 1024 * 1024  # fewer, larger messages: per-message cost dominates on loopback
MIN_CHUNK, MAX_CHUNK = 32 * 1024, 1024 * 1024
#: Header ``paths`` are listed only while they fit comfortably in one message (spec 5.6 allows
#: leaving them out, as the JS client does).
HEADER_PATHS_BUDGET = 1024 * 1024
DEFAULT_TIMEOUT = 60.0
STREAM_TIMEOUT = 24 * 3600.0  # the Go client's limit for push, pull and cat

Progress = Callable[[int], None]
"""Called with the cumulative number of bytes transferred; may run on a gRPC thread."""

_CID_RE = re.compile(r"^(Qm[1-9A-HJ-NP-Za-km-z]{44}|b[a-z2-7]{50,})$")


@dataclass
class PushResult:
    """Outcome of :meth:`BucketsClient.push_path`."""

    cid: str  # the file's CID
    size: int  # cumulative DAG size, as the hub reports it
    root: Any  # pb.Root after the change


@dataclass
class PushedFile:
    """One file of a PushPaths stream, as the hub reported it."""

    path: str
    cid: str
    size: int


@dataclass
class PushPathsResult:
    """Outcome of :meth:`BucketsClient.push_paths`: every file, and the bucket's new root."""

    files: list[PushedFile]
    root: Any


class _StreamAborted(Exception):
    """Carries an exception raised while producing a request stream (e.g. a read error)."""


class BucketsClient:
    """A client of one hub; see the module docstring for the conventions."""

    def __init__(
        self,
        target: str,
        auth: AuthContext | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        stream_timeout: float = STREAM_TIMEOUT,
        retry: RetryPolicy | None = None,
        channel: grpc.Channel | None = None,
    ) -> None:
        self.target = target
        self.auth = auth or AuthContext()
        self.timeout = timeout
        self.stream_timeout = stream_timeout
        self.retry = retry or RetryPolicy()
        self._owns_channel = channel is None
        self.channel = channel or make_channel(target, credentials)
        self._buckets = bucketsd_pb2_grpc.APIServiceStub(self.channel)
        # PushPath with chunk messages serialized straight from the file's bytes (the wire
        # format is the generated stub's; see _WireChunk).
        self._push_path = self.channel.stream_stream(
            "/api.bucketsd.pb.APIService/PushPath",
            request_serializer=_serialize_push_path,
            response_deserializer=pb.PushPathResponse.FromString,
        )
        self._fs = fs_pb2_grpc.FSStub(self.channel)
        self.threads = ThreadsClient(self.channel, self.auth, timeout, self.retry)
        #: The effective config when built by :meth:`from_config` (commands use it).
        self.config: Any = None
        self._no_read_file = False  # set once the hub said FS.ReadFile is unimplemented

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def from_config(cls, cfg: Any, **kwargs: Any) -> BucketsClient:
        """A client for a :class:`bucketfs.config.Config`: credentials, TLS and thread applied.

        Refuses (UserError) to send credentials in clear text to a non-loopback hub unless
        ``insecure`` is set, since the API signature and token are bearer credentials.
        """
        secret = cfg.api_secret() or ""
        identity = None
        identity_path = cfg.identity_path()
        if identity_path is not None:
            identity = load_identity(identity_path)
        credentials = None
        if cfg.tls.enabled or cfg.tls.ca or cfg.tls.cert:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=_read_opt(cfg.resolve(cfg.tls.ca, "tls.ca")),
                private_key=_read_opt(cfg.resolve(cfg.tls.key, "tls.key")),
                certificate_chain=_read_opt(cfg.resolve(cfg.tls.cert, "tls.cert")),
            )
        has_secrets = bool(secret or identity)
        if has_secrets and credentials is None and not cfg.insecure and not is_loopback(cfg.api):
            raise UserError(
                f"refusing to send credentials without TLS to {cfg.api}; "
                "use --tls (or [tls] enabled = true) or, on a trusted network, --insecure"
            )
        try:
            auth = AuthContext(
                thread=cfg.thread, api_key=cfg.api_key, api_secret=secret, identity=identity
            )
        except ValueError as exc:
            raise UserError(f"the API secret in {cfg.api_secret_file} is malformed: {exc}") from exc
        client = cls(cfg.api, auth, credentials, **kwargs)
        client.config = cfg
        return client

    def with_thread(self, thread: str) -> BucketsClient:
        """A client for another thread sharing this one's channel, token and settings."""
        clone = object.__new__(BucketsClient)
        clone.__dict__.update(self.__dict__)
        clone.auth = self.auth.with_thread(thread)
        clone._owns_channel = False
        return clone

    def close(self) -> None:
        """Close the channel (copies made by :meth:`with_thread` leave it open)."""
        if self._owns_channel:
            self.channel.close()

    def __enter__(self) -> BucketsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ----------------------------------------------------------------------------

    def metadata(self) -> list[tuple[str, str]]:
        """The gRPC metadata for one call: thread, fresh API signature, and the token (fetched
        with the identity on first use). For adapters that call the stubs on ``channel``."""
        self.threads.ensure_token()
        return self.auth.metadata()

    _md = metadata

    def _unary(self, method: Any, request: Any, name: str, retry: bool = True) -> Any:
        def call() -> Any:
            return with_retries(
                lambda: method(request, timeout=self.timeout, metadata=self._md()),
                self.retry if retry else NO_RETRY,
                name,
            )

        try:
            return call()
        except Unauthenticated:
            # A token from an identity can go stale (the hub got a new host key); fetch a
            # fresh one once. The request was refused, so repeating it applies nothing twice.
            if self.auth.identity is None or not self.auth.token:
                raise
            log.info("thread token refused; fetching a new one", extra={"fields": {"rpc": name}})
            self.auth.set_token("")
            return call()

    # -- buckets service: unary --------------------------------------------------------------

    def list(self) -> list[Any]:
        """Every bucket in the thread, as ``Root`` messages."""
        return list(self._unary(self._buckets.List, pb.ListRequest(), "List").roots)

    def create(self, name: str = "", private: bool = False, bootstrap_cid: str = "") -> Any:
        """Create a bucket; returns the ``CreateResponse`` (root, links, seed). Not retried."""
        req = pb.CreateRequest(name=name, private=private, bootstrap_cid=bootstrap_cid)
        return self._unary(self._buckets.Create, req, "Create", retry=False)

    def root(self, key: str) -> Any:
        """The bucket's ``Root``."""
        return self._unary(self._buckets.Root, pb.RootRequest(key=key), "Root").root

    def links(self, key: str, path: str = "") -> Any:
        """Gateway links (``url``, ``www``, ``ipns``) for the bucket or a path in it."""
        return self._unary(self._buckets.Links, pb.LinksRequest(key=key, path=path), "Links")

    def list_path(self, key: str, path: str = "") -> Any:
        """One level of a directory (or a file's item) plus the full ``Root``."""
        req = pb.ListPathRequest(key=key, path=path)
        return self._unary(self._buckets.ListPath, req, "ListPath")

    def list_ipfs_path(self, path: str) -> Any:
        """List any ``/ipfs/<cid>[/...]`` path (no thread needed); returns the ``PathItem``."""
        req = pb.ListIpfsPathRequest(path=path)
        return self._unary(self._buckets.ListIpfsPath, req, "ListIpfsPath").item

    def set_path(self, key: str, path: str, cid: str) -> int:
        """Link an existing DAG at ``path``; returns ``pinned``. Idempotent, so retried."""
        req = pb.SetPathRequest(key=key, path=path, cid=cid)
        return self._unary(self._buckets.SetPath, req, "SetPath").pinned

    def move_path(self, key: str, from_path: str, to_path: str) -> None:
        """``mv`` semantics (moves *into* an existing directory). Not retried."""
        req = pb.MovePathRequest(key=key, from_path=from_path, to_path=to_path)
        self._unary(self._buckets.MovePath, req, "MovePath", retry=False)

    def remove_path(self, key: str, path: str, root: str | None = None) -> Any:
        """Remove a file or directory; returns the new ``Root``. Retried only with ``root``."""
        req = pb.RemovePathRequest(key=key, path=path, root=root or "")
        return self._unary(self._buckets.RemovePath, req, "RemovePath", retry=bool(root)).root

    def remove(self, key: str) -> int:
        """Delete the whole bucket; returns ``pinned``. Not retried."""
        return self._unary(
            self._buckets.Remove, pb.RemoveRequest(key=key), "Remove", retry=False
        ).pinned

    def push_path_access_roles(self, key: str, path: str, roles: dict[str, int]) -> int:
        """Merge per-path roles (0 deletes a key's role); returns ``pinned``."""
        req = pb.PushPathAccessRolesRequest(key=key, path=path, roles=roles)
        return self._unary(self._buckets.PushPathAccessRoles, req, "PushPathAccessRoles").pinned

    def pull_path_access_roles(self, key: str, path: str = "") -> dict[str, int]:
        """The effective roles at ``path``."""
        req = pb.PullPathAccessRolesRequest(key=key, path=path)
        reply = self._unary(self._buckets.PullPathAccessRoles, req, "PullPathAccessRoles")
        return dict(reply.roles)

    # Filecoin archiving exists only for wire compatibility; a bucketfs hub answers each with
    # "archiving feature is disabled" (spec 5.6), which surfaces as HubError.

    def default_archive_config(self, key: str) -> Any:
        """``DefaultArchiveConfig`` (archiving is disabled on a bucketfs hub)."""
        req = pb.DefaultArchiveConfigRequest(key=key)
        return self._unary(self._buckets.DefaultArchiveConfig, req, "DefaultArchiveConfig")

    def set_default_archive_config(self, key: str, config: Any) -> None:
        """``SetDefaultArchiveConfig``."""
        req = pb.SetDefaultArchiveConfigRequest(key=key, archive_config=config)
        self._unary(self._buckets.SetDefaultArchiveConfig, req, "SetDefaultArchiveConfig")

    def archive(self, key: str, config: Any = None) -> None:
        """``Archive`` (not retried)."""
        req = pb.ArchiveRequest(key=key, archive_config=config)
        self._unary(self._buckets.Archive, req, "Archive", retry=False)

    def archives(self, key: str) -> Any:
        """``Archives``."""
        return self._unary(self._buckets.Archives, pb.ArchivesRequest(key=key), "Archives")

    def archive_watch(self, key: str) -> Iterator[str]:
        """``ArchiveWatch`` messages."""
        call = self._buckets.ArchiveWatch(
            pb.ArchiveWatchRequest(key=key), timeout=self.stream_timeout, metadata=self._md()
        )
        try:
            for reply in call:
                yield reply.msg
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc

    # -- buckets service: transfers ----------------------------------------------------------

    def push_path(
        self,
        key: str,
        path: str,
        stream: IO[bytes],
        root: str | None = None,
        progress: Progress | None = None,
        mode: int | None = None,
        mtime_ns: int | None = None,
        chunk_size: int = CHUNK_SIZE,
        light_root: bool = False,
    ) -> PushResult:
        """Upload ``stream`` (read to EOF, ``chunk_size`` at a time) to ``path``.

        ``root`` enables the fast-forward check (:class:`NonFastForward` on mismatch).
        ``progress`` gets the cumulative bytes sent. If the hub becomes unreachable mid-stream
        the upload restarts from the beginning when ``stream`` is seekable, else it fails with
        :class:`HubUnavailable` (the hub keeps nothing of an interrupted push).
        ``light_root`` asks a bucketfs hub to leave ``path_metadata`` out of the returned root
        (it grows with the bucket), as the mount wants for many single-file pushes.
        """
        chunk_size = _check_chunk(chunk_size)
        start = _tell(stream)
        header = pb.PushPathRequest.Header(
            key=key, path=path, root=root or "", light_root=light_root
        )
        if mode is not None:
            header.mode = mode
        if mtime_ns is not None:
            header.mtime = mtime_ns

        def attempt() -> PushResult:
            sent = _Counter(progress)
            aborted: list[BaseException] = []

            def requests() -> Iterator[Any]:
                yield pb.PushPathRequest(header=header)
                try:
                    for chunk in _chunks(stream, chunk_size):
                        sent.add(len(chunk))
                        yield _WireChunk(chunk)
                except Exception as exc:  # a read error must abort, not end, the upload
                    aborted.append(exc)
                    raise

            try:
                result = None
                for reply in self._push_path(
                    requests(), timeout=self.stream_timeout, metadata=self._md()
                ):
                    ev = reply.event
                    if ev.path:
                        result = PushResult(
                            cid=_strip_ipfs(ev.path), size=_int(ev.size), root=ev.root
                        )
            except grpc.RpcError as exc:
                if aborted:
                    raise aborted[0] from exc
                raise _Retryable(exc, sent.total) from exc
            if result is None:
                raise HubError("the hub ended the push without a final event")
            return result

        rewind = None if start is None else (lambda: stream.seek(start))
        return self._with_restart(attempt, rewind, "PushPath")

    def push_paths(
        self,
        key: str,
        files: Iterable[tuple[str, BinaryIO | str | os.PathLike[str] | bytes]],
        root: str | None = None,
        progress: Progress | None = None,
        chunk_size: int = CHUNK_SIZE,
        attrs: dict[str, tuple[int | None, int | None]] | None = None,
    ) -> PushPathsResult:
        """Upload many files in one PushPaths stream; the hub saves the bucket once at the end.

        Each source is a binary file object, a local file path (opened one at a time, so any
        number of files is fine), or ``bytes``. ``attrs`` maps a bucket path to ``(mode,
        mtime_ns)``. Files are sent in series, each closed by an empty chunk as the Go client
        does. On UNAVAILABLE the stream is restarted if every source can be re-read.
        """
        chunk_size = _check_chunk(chunk_size)
        items = list(files)
        paths = [p for p, _ in items]
        if len(set(paths)) != len(paths):
            # The hub accepts each path once per stream; fail before sending anything.
            raise ValueError("push_paths: the same path is listed twice")
        starts = [_tell(src) if _is_fileobj(src) else 0 for _, src in items]
        restartable = all(s is not None for s in starts)
        header_paths = paths if sum(len(p) + 3 for p in paths) < HEADER_PATHS_BUDGET else []
        header = pb.PushPathsRequest.Header(key=key, root=root or "", paths=header_paths)
        attrs = attrs or {}

        def attempt() -> PushPathsResult:
            sent = _Counter(progress)
            aborted: list[BaseException] = []

            def requests() -> Iterator[Any]:
                yield pb.PushPathsRequest(header=header)
                try:
                    for (path, src), start in zip(items, starts, strict=True):
                        mode, mtime = attrs.get(path, (None, None))
                        first = True
                        with _open_source(src, start) as f:
                            for chunk in _chunks(f, chunk_size):
                                c = pb.PushPathsRequest.Chunk(path=path, data=chunk)
                                if first:
                                    _set_attrs(c, mode, mtime)
                                    first = False
                                sent.add(len(chunk))
                                yield pb.PushPathsRequest(chunk=c)
                        end = pb.PushPathsRequest.Chunk(path=path)
                        if first:  # an empty file: its only chunk carries the attributes
                            _set_attrs(end, mode, mtime)
                        yield pb.PushPathsRequest(chunk=end)
                except Exception as exc:
                    aborted.append(exc)
                    raise

            pushed: list[PushedFile] = []
            new_root = None
            try:
                for reply in self._buckets.PushPaths(
                    requests(), timeout=self.stream_timeout, metadata=self._md()
                ):
                    pushed.append(PushedFile(reply.path, reply.cid, reply.size))
                    new_root = reply.root
            except grpc.RpcError as exc:
                if aborted:
                    raise aborted[0] from exc
                raise _Retryable(exc, sent.total) from exc
            if new_root is None:
                new_root = self.root(key)  # nothing pushed: report the unchanged root
            return PushPathsResult(pushed, new_root)

        # Sources are re-opened (paths, bytes) or re-seeked (_open_source) on every attempt.
        return self._with_restart(attempt, (lambda: None) if restartable else None, "PushPaths")

    def _with_restart(
        self, attempt: Callable[[], Any], rewind: Callable[[], None] | None, what: str
    ) -> Any:
        """Run an upload attempt, restarting it on UNAVAILABLE while the source can be rewound.

        A failure before any byte was sent can always be retried; after that only with
        ``rewind`` (the hub keeps nothing of a push that did not complete).
        """
        tries = self.retry.attempts
        for n in range(tries):
            try:
                return attempt()
            except _Retryable as wrapped:
                exc = wrapped.rpc_error
                unavailable = exc.code() == grpc.StatusCode.UNAVAILABLE
                can_restart = wrapped.sent == 0 or rewind is not None
                if unavailable and can_restart and n + 1 < tries:
                    if wrapped.sent and rewind is not None:
                        rewind()
                    delay = self.retry.delay(n)
                    log.info(
                        "hub unavailable during upload; restarting",
                        extra={"fields": {"rpc": what, "sent": wrapped.sent, "delay": delay}},
                    )
                    time.sleep(delay)
                    continue
                err = from_rpc_error(exc)
                if unavailable and not can_restart:
                    err = HubUnavailable(
                        f"upload interrupted after {wrapped.sent} bytes and the source cannot be "
                        f"rewound to retry: {err.message}",
                        exc.code(),
                    )
                raise err from exc
        raise AssertionError("unreachable")

    def pull_path(
        self, key: str, path: str, out: IO[bytes], progress: Progress | None = None
    ) -> int:
        """Write the file at ``path`` to ``out``; returns the byte count.

        Retried on UNAVAILABLE while nothing was written yet.
        """
        return self._pull(
            lambda: self._buckets.PullPath(
                pb.PullPathRequest(key=key, path=path),
                timeout=self.stream_timeout,
                metadata=self._md(),
            ),
            out,
            progress,
            "PullPath",
        )

    def download(
        self, key: str, path: str, out: IO[bytes], progress: Progress | None = None
    ) -> int:
        """Like :meth:`pull_path`, through FS.ReadFile when the hub offers it.

        ReadFile sends 256 KiB messages where PullPath is fixed at Textile's 32 KiB, which
        about doubles pull throughput over loopback (bench/bench_client.py). A Textile hub
        answers UNIMPLEMENTED, and from then on this client uses PullPath. A private bucket
        is refused by ReadFile (FAILED_PRECONDITION, before any byte), so it uses PullPath,
        which decrypts.
        """
        if not self._no_read_file:
            try:
                return self._pull(
                    lambda: self._fs.ReadFile(
                        fs_pb2.ReadFileRequest(key=key, path=path),
                        timeout=self.stream_timeout,
                        metadata=self._md(),
                    ),
                    out,
                    progress,
                    "ReadFile",
                    field="data",
                )
            except Unimplemented:
                self._no_read_file = True
            except FailedPrecondition as exc:
                if PRIVATE_REFUSAL not in str(exc):
                    raise
        return self.pull_path(key, path, out, progress)

    def pull_ipfs_path(self, path: str, out: IO[bytes], progress: Progress | None = None) -> int:
        """Like :meth:`pull_path` for any ``/ipfs/...`` path."""
        return self._pull(
            lambda: self._buckets.PullIpfsPath(
                pb.PullIpfsPathRequest(path=path),
                timeout=self.stream_timeout,
                metadata=self._md(),
            ),
            out,
            progress,
            "PullIpfsPath",
        )

    def _pull(
        self,
        start: Callable[[], Any],
        out: IO[bytes],
        progress: Progress | None,
        what: str,
        field: str = "chunk",
    ) -> int:
        written = _Counter(progress)

        def once() -> int:
            for reply in start():
                data = getattr(reply, field)
                out.write(data)
                written.add(len(data))
            return written.total

        for n in range(self.retry.attempts):
            try:
                return once()
            except grpc.RpcError as exc:
                if (
                    exc.code() == grpc.StatusCode.UNAVAILABLE
                    and written.total == 0
                    and n + 1 < self.retry.attempts
                ):
                    time.sleep(self.retry.delay(n))
                    continue
                raise from_rpc_error(exc) from exc
        raise AssertionError("unreachable")

    # -- bucketfs.pb.FS ----------------------------------------------------------------------

    def read_file_stream(
        self,
        key: str,
        path_or_cid: str,
        offset: int = 0,
        length: int | None = None,
        is_cid: bool | None = None,
    ) -> Iterator[Any]:
        """``ReadFileReply`` messages for a byte range; ``is_cid`` None = guess from the text."""
        if is_cid is None:
            is_cid = looks_like_cid(path_or_cid)
        req = fs_pb2.ReadFileRequest(key=key, offset=offset)
        if is_cid:
            req.cid = path_or_cid
        else:
            req.path = path_or_cid
        if length is not None:
            req.length = length
        call = self._fs.ReadFile(req, timeout=self.stream_timeout, metadata=self._md())
        try:
            yield from call
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc
        finally:
            call.cancel()  # no-op when finished; frees the stream if the caller stopped early

    def read_file(
        self,
        key: str,
        path_or_cid: str,
        offset: int = 0,
        length: int | None = None,
        is_cid: bool | None = None,
    ) -> bytes:
        """Bytes ``[offset, offset+length)`` of a file (fewer at EOF). Retried on UNAVAILABLE.

        Without ``length`` this reads to the end of the file into memory: use
        :meth:`read_file_stream` for large ranges.
        """
        return with_retries(
            lambda: self._read_once(key, path_or_cid, offset, length, is_cid),
            self.retry,
            "ReadFile",
        )

    def _read_once(self, key, path_or_cid, offset, length, is_cid) -> bytes:
        buf = bytearray()
        req = fs_pb2.ReadFileRequest(key=key, offset=offset)
        if is_cid if is_cid is not None else looks_like_cid(path_or_cid):
            req.cid = path_or_cid
        else:
            req.path = path_or_cid
        if length is not None:
            req.length = length
        for reply in self._fs.ReadFile(req, timeout=self.timeout, metadata=self._md()):
            buf += reply.data
        return bytes(buf)

    def get_blocks(self, key: str, cids: list[str]) -> Iterator[tuple[str, bytes]]:
        """``(cid, data)`` for each CID, in request order (NotFound names a missing block)."""
        call = self._fs.GetBlocks(
            fs_pb2.GetBlocksRequest(key=key, cids=cids),
            timeout=self.stream_timeout,
            metadata=self._md(),
        )
        try:
            for block in call:
                yield block.cid, block.data
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc
        finally:
            call.cancel()

    def has_blocks(self, key: str, cids: list[str]) -> list[bool]:
        """Which of ``cids`` the hub already holds."""
        req = fs_pb2.HasBlocksRequest(key=key, cids=cids)
        return list(self._unary(self._fs.HasBlocks, req, "HasBlocks").has)

    def put_blocks(self, blocks: Iterable[tuple[str, bytes]]) -> tuple[int, int]:
        """Upload raw blocks (verified by the hub); returns ``(blocks, bytes)`` stored.

        Not retried: the iterable may not be re-iterable. Blocks already stored survive a
        failure, so the caller can check with :meth:`has_blocks` and send the rest.
        """

        def requests() -> Iterator[Any]:
            for cid, data in blocks:
                yield fs_pb2.Block(cid=cid, data=data)

        try:
            reply = self._fs.PutBlocks(
                requests(), timeout=self.stream_timeout, metadata=self._md()
            )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc
        return reply.blocks, reply.bytes

    def set_attr(
        self,
        key: str,
        path: str,
        root: str | None = None,
        mode: int | None = None,
        mtime_ns: int | None = None,
    ) -> Any:
        """Record mode and/or mtime; returns the ``MutationReply``. Idempotent, so retried."""
        req = fs_pb2.SetAttrRequest(key=key, path=path, root=root or "")
        _set_attrs(req, mode, mtime_ns)
        return self._unary(self._fs.SetAttr, req, "SetAttr")

    def symlink(
        self,
        key: str,
        path: str,
        target: str,
        root: str | None = None,
        mode: int | None = None,
        mtime_ns: int | None = None,
    ) -> Any:
        """Create a symlink; retried only with ``root``."""
        req = fs_pb2.SymlinkRequest(key=key, path=path, target=target, root=root or "")
        _set_attrs(req, mode, mtime_ns)
        return self._unary(self._fs.Symlink, req, "Symlink", retry=bool(root))

    def mkdir(
        self,
        key: str,
        path: str,
        root: str | None = None,
        mode: int | None = None,
        mtime_ns: int | None = None,
    ) -> Any:
        """Create an empty directory (AlreadyExists if taken); retried only with ``root``."""
        req = fs_pb2.MkdirRequest(key=key, path=path, root=root or "")
        _set_attrs(req, mode, mtime_ns)
        return self._unary(self._fs.Mkdir, req, "Mkdir", retry=bool(root))

    def rename(
        self, key: str, from_path: str, to_path: str, flags: int = 0, root: str | None = None
    ) -> Any:
        """rename(2) semantics (``fs_pb2.RENAME_NOREPLACE`` / ``RENAME_EXCHANGE`` flags)."""
        req = fs_pb2.RenameRequest(
            key=key, from_path=from_path, to_path=to_path, flags=flags, root=root or ""
        )
        return self._unary(self._fs.Rename, req, "Rename", retry=bool(root))

    def link(
        self,
        key: str,
        path: str,
        cid: str,
        root: str | None = None,
        mode: int | None = None,
        mtime_ns: int | None = None,
    ) -> Any:
        """Put an existing DAG at ``path`` with attributes. Idempotent, so retried."""
        req = fs_pb2.LinkRequest(key=key, path=path, cid=cid, root=root or "")
        _set_attrs(req, mode, mtime_ns)
        return self._unary(self._fs.Link, req, "Link")

    def fs_remove(
        self, key: str, path: str, root: str | None = None, rmdir: bool = False
    ) -> Any:
        """unlink(2) (or rmdir(2) with ``rmdir``) semantics; retried only with ``root``.

        Unlike :meth:`remove_path`, a directory is refused unless ``rmdir`` and empty.
        """
        req = fs_pb2.RemoveRequest(key=key, path=path, root=root or "", rmdir=rmdir)
        return self._unary(self._fs.Remove, req, "FS.Remove", retry=bool(root))

    def unlink(self, key: str, path: str, root: str | None = None) -> Any:
        """Remove a file or symlink (FailedPrecondition for a directory)."""
        return self.fs_remove(key, path, root, rmdir=False)

    def rmdir(self, key: str, path: str, root: str | None = None) -> Any:
        """Remove an empty directory."""
        return self.fs_remove(key, path, root, rmdir=True)

    def list_dir(self, key: str, path: str = "") -> Any:
        """One directory level without the full Root (``ListDirReply``: ``item``, ``root``)."""
        return self._unary(self._fs.ListDir, fs_pb2.ListDirRequest(key=key, path=path), "ListDir")

    def watch_root(self, key: str, timeout: float | None = None) -> RootWatch:
        """Stream root changes: first the current root, then each change (``WatchRootReply``).

        Returns a :class:`RootWatch`; iterate it, and call ``cancel()`` (or use it as a context
        manager) to stop. No deadline unless ``timeout`` is given: it is meant to stay open.
        """
        call = self._fs.WatchRoot(
            fs_pb2.WatchRootRequest(key=key), timeout=timeout, metadata=self._md()
        )
        return RootWatch(call)


class RootWatch:
    """An open WatchRoot stream: iterable of ``WatchRootReply``, cancellable from any thread."""

    def __init__(self, call: Any) -> None:
        self._call = call
        self._cancelled = threading.Event()

    def __iter__(self) -> Iterator[Any]:
        try:
            yield from self._call
        except grpc.RpcError as exc:
            if self._cancelled.is_set() and exc.code() == grpc.StatusCode.CANCELLED:
                return
            raise from_rpc_error(exc) from exc

    def cancel(self) -> None:
        """End the stream; a thread blocked iterating it returns normally."""
        self._cancelled.set()
        self._call.cancel()

    def __enter__(self) -> RootWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()


# -- helpers ---------------------------------------------------------------------------------


class _Retryable(Exception):
    """Internal: an upload attempt failed with ``rpc_error`` after ``sent`` bytes."""

    def __init__(self, rpc_error: grpc.RpcError, sent: int) -> None:
        super().__init__(str(rpc_error))
        self.rpc_error = rpc_error
        self.sent = sent


class _Counter:
    """Cumulative byte count that reports to a progress callback."""

    def __init__(self, progress: Progress | None) -> None:
        self.total = 0
        self.progress = progress

    def add(self, n: int) -> None:
        self.total += n
        if self.progress is not None and n:
            self.progress(self.total)


def looks_like_cid(text: str) -> bool:
    """True for a bare CIDv0 (``Qm…``) or base32 CIDv1 (``b…``) string."""
    return bool(_CID_RE.match(text))


def load_identity(path: os.PathLike[str] | str) -> Any:
    """Load an ed25519 identity file (format owned by ``bucketfs.keys``) as a Signer."""
    from bucketfs import keys

    return keys.read_identity_file(Path(path))


def _read_opt(path: os.PathLike[str] | None) -> bytes | None:
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            return f.read()  # PEM files are small
    except OSError as exc:
        raise UserError(f"cannot read TLS file {path}: {exc.strerror}") from exc


def _check_chunk(size: int) -> int:
    if not MIN_CHUNK <= size <= MAX_CHUNK:
        raise ValueError(f"chunk_size must be between {MIN_CHUNK} and {MAX_CHUNK} bytes")
    return size


def _tell(stream: Any) -> int | None:
    """The current position of a seekable stream, else None (cannot be rewound)."""
    if isinstance(stream, str | bytes | os.PathLike):
        return 0
    try:
        if stream.seekable():
            return stream.tell()
    except (AttributeError, OSError, ValueError):
        pass
    return None


def _is_fileobj(src: Any) -> bool:
    return not isinstance(src, str | bytes | os.PathLike)


class _open_source:
    """Context manager giving a readable binary stream for a push_paths source."""

    def __init__(self, src: Any, start: int | None) -> None:
        self.src, self.start, self.f = src, start, None

    def __enter__(self) -> Any:
        if isinstance(self.src, bytes):
            return io.BytesIO(self.src)
        if isinstance(self.src, str | os.PathLike):
            self.f = open(self.src, "rb")  # noqa: SIM115 -- closed in __exit__
            return self.f
        if self.start is not None and self.src.tell() != self.start:
            self.src.seek(self.start)  # a restarted stream re-reads from the beginning
        return self.src

    def __exit__(self, *exc: object) -> None:
        if self.f is not None:
            self.f.close()


class _WireChunk:
    """A ``PushPathRequest{chunk}`` to be serialized by :func:`_serialize_push_path`."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _serialize_push_path(msg: Any) -> bytes:
    """``PushPathRequest`` wire bytes. A chunk is field 2 (``0x12``, length, bytes): written
    directly, it costs one copy of the data instead of protobuf's two (into the message, then
    out of it), which showed in the client's CPU time for large pushes."""
    if isinstance(msg, _WireChunk):
        return b"\x12" + _varint(len(msg.data)) + msg.data
    return msg.SerializeToString()  # type: ignore[no-any-return]


def _chunks(stream: Any, size: int) -> Iterator[bytes]:
    """Read ``stream`` to EOF in pieces of at most ``size`` bytes (short reads are fine)."""
    while True:
        chunk = stream.read(size)
        if not chunk:
            return
        yield bytes(chunk)


def _set_attrs(msg: Any, mode: int | None, mtime_ns: int | None) -> None:
    if mode is not None:
        msg.mode = mode & 0o7777
    if mtime_ns is not None:
        msg.mtime = mtime_ns


def _strip_ipfs(path: str) -> str:
    return path[len("/ipfs/") :] if path.startswith("/ipfs/") else path


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 0


__all__ = [
    "BucketsClient",
    "ClientError",
    "PushPathsResult",
    "PushResult",
    "PushedFile",
    "RootWatch",
    "looks_like_cid",
]
