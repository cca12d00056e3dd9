"""Helpers for hub tests: stubs with the thread header, and push/pull one-liners."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import grpc

from bucketfs import keys
from bucketfs.pb import bucketsd_pb2 as pb
from bucketfs.pb import bucketsd_pb2_grpc, fs_pb2_grpc, threads_pb2, threads_pb2_grpc

TIMEOUT = 60


@dataclass
class Api:
    """The stubs of one channel and the thread every call is made in."""

    channel: grpc.Channel
    thread: str

    @classmethod
    def new_thread(cls, channel: grpc.Channel, name: str = "") -> Api:
        """Create a thread with NewDB and return an Api bound to it."""
        raw = keys.new_thread_id()
        threads_pb2_grpc.APIStub(channel).NewDB(
            threads_pb2.NewDBRequest(dbID=raw, name=name), timeout=TIMEOUT
        )
        return cls(channel, keys.thread_id_to_string(raw))

    @property
    def md(self) -> list[tuple[str, str]]:
        """Metadata with the thread header."""
        return [("x-textile-thread", self.thread)]

    @property
    def buckets(self) -> bucketsd_pb2_grpc.APIServiceStub:
        return bucketsd_pb2_grpc.APIServiceStub(self.channel)

    @property
    def fs(self) -> fs_pb2_grpc.FSStub:
        return fs_pb2_grpc.FSStub(self.channel)

    def call(self, method: str, request: object, **kw: object) -> object:
        """Call a unary buckets RPC with the thread header."""
        return getattr(self.buckets, method)(request, metadata=self.md, timeout=TIMEOUT, **kw)

    def fscall(self, method: str, request: object) -> object:
        """Call a unary FS RPC with the thread header."""
        return getattr(self.fs, method)(request, metadata=self.md, timeout=TIMEOUT)

    def create(self, name: str = "b") -> pb.CreateResponse:
        return self.call("Create", pb.CreateRequest(name=name))

    def root(self, key: str) -> pb.Root:
        return self.call("Root", pb.RootRequest(key=key)).root

    def push(
        self, key: str, path: str, data: bytes, root: str = "", chunk: int = 32768, **header: object
    ) -> list[pb.PushPathResponse]:
        """PushPath ``data`` to ``path``; returns every response."""

        def reqs() -> Iterator[pb.PushPathRequest]:
            yield pb.PushPathRequest(
                header=pb.PushPathRequest.Header(key=key, path=path, root=root, **header)
            )
            for i in range(0, len(data), chunk):
                yield pb.PushPathRequest(chunk=data[i : i + chunk])

        return list(self.buckets.PushPath(reqs(), metadata=self.md, timeout=TIMEOUT))

    def push_paths(
        self, key: str, chunks: Iterable[tuple[str, bytes]], root: str = "", paths: tuple = ()
    ) -> list[pb.PushPathsResponse]:
        """PushPaths with the given (path, data) chunks in order (empty data closes a file)."""

        def reqs() -> Iterator[pb.PushPathsRequest]:
            yield pb.PushPathsRequest(
                header=pb.PushPathsRequest.Header(key=key, root=root, paths=list(paths))
            )
            for path, data in chunks:
                yield pb.PushPathsRequest(chunk=pb.PushPathsRequest.Chunk(path=path, data=data))

        return list(self.buckets.PushPaths(reqs(), metadata=self.md, timeout=TIMEOUT))

    def pull(self, key: str, path: str) -> bytes:
        """PullPath, joined."""
        stream = self.buckets.PullPath(
            pb.PullPathRequest(key=key, path=path), metadata=self.md, timeout=TIMEOUT
        )
        return b"".join(r.chunk for r in stream)

    def ls(self, key: str, path: str = "") -> pb.ListPathResponse:
        return self.call("ListPath", pb.ListPathRequest(key=key, path=path))

    def names(self, key: str, path: str = "") -> list[str]:
        """Entry names of a directory."""
        return [i.name for i in self.ls(key, path).item.items]


def code_of(exc: grpc.RpcError) -> grpc.StatusCode:
    """The status code of a failed call."""
    return exc.code()  # type: ignore[attr-defined, no-any-return]


def get_token(channel: grpc.Channel, identity: keys.Identity) -> str:
    """Run the GetToken challenge (spec 4.1) for ``identity``; returns the JWT."""
    import queue

    outbox: queue.Queue = queue.Queue()
    outbox.put(threads_pb2.GetTokenRequest(key=identity.public_key_string()))
    call = threads_pb2_grpc.APIStub(channel).GetToken(iter(outbox.get, None), timeout=TIMEOUT)
    token = ""
    for reply in call:
        if reply.WhichOneof("payload") == "challenge":
            outbox.put(threads_pb2.GetTokenRequest(signature=identity.sign(reply.challenge)))
            outbox.put(None)
        else:
            token = reply.token
    return token


@dataclass
class TokenApi(Api):
    """An Api whose calls also carry a thread token."""

    token: str = ""

    @property
    def md(self) -> list[tuple[str, str]]:
        return [("x-textile-thread", self.thread), ("authorization", f"bearer {self.token}")]
