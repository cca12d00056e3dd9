"""ThreadDB calls bucket clients need (spec section 8): NewDB, ListDBs, GetDBInfo, DeleteDB,
GetToken. Thread-ID encoding (spec 2.1) lives in :mod:`bucketfs.keys`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import grpc

from bucketfs.client.auth import AuthContext, Signer
from bucketfs.client.channel import NO_RETRY, RetryPolicy, with_retries
from bucketfs.client.errors import ClientError, HubError, PermissionDenied
from bucketfs.keys import (
    InvalidThreadID,
    multibase_encode,
    new_thread_id,
    parse_thread_id,
    thread_id_to_string,
)
from bucketfs.pb import threads_pb2, threads_pb2_grpc, usersd_pb2, usersd_pb2_grpc


@dataclass
class ThreadInfo:
    """A thread as ListDBs / GetDBInfo describe it."""

    id: str
    name: str = ""
    key: bytes = b""
    addrs: list[bytes] = field(default_factory=list)


class ThreadsClient:
    """ThreadDB client over a shared channel; thread-safe."""

    def __init__(
        self,
        channel: grpc.Channel,
        auth: AuthContext,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.auth = auth
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self._stub = threads_pb2_grpc.APIStub(channel)
        self._users = usersd_pb2_grpc.APIServiceStub(channel)
        self._token_lock = threading.Lock()

    def _md(self, extra: list[tuple[str, str]] | None = None) -> list[tuple[str, str]]:
        self.ensure_token()
        return self.auth.metadata(thread=False) + (extra or [])

    def new_db(self, name: str = "", thread_id: bytes | None = None) -> str:
        """Create a thread DB and return its ID string. ``name`` is recorded on the hub too.

        Retried on UNAVAILABLE: the ID is fixed before the first attempt, so a repeat of a
        request that did land fails with "db already exists" instead of making a second thread.
        """
        raw = thread_id or new_thread_id()
        extra = [("x-textile-thread-name", name)] if name else []
        req = threads_pb2.NewDBRequest(dbID=raw, name=name)
        try:
            with_retries(
                lambda: self._stub.NewDB(req, timeout=self.timeout, metadata=self._md(extra)),
                self.retry,
                "NewDB",
            )
        except ClientError as exc:
            if "already exists" not in exc.message or thread_id is not None:
                raise
            # Our own earlier attempt landed before the connection dropped.
        return thread_id_to_string(raw)

    def list_dbs(self) -> list[ThreadInfo]:
        """Every thread the hub lists for us.

        A Textile Hub blocks ListDBs (PERMISSION_DENIED); there the users API's ListThreads
        gives the caller's threads instead.
        """
        try:
            reply = with_retries(
                lambda: self._stub.ListDBs(
                    threads_pb2.ListDBsRequest(), timeout=self.timeout, metadata=self._md()
                ),
                self.retry,
                "ListDBs",
            )
        except PermissionDenied:
            users = with_retries(
                lambda: self._users.ListThreads(
                    usersd_pb2.ListThreadsRequest(), timeout=self.timeout, metadata=self._md()
                ),
                self.retry,
                "ListThreads",
            )
            return [ThreadInfo(id=_id_str(t.id), name=t.name) for t in users.list]
        return [
            ThreadInfo(
                id=_id_str(db.dbID), name=db.info.name, key=db.info.key, addrs=list(db.info.addrs)
            )
            for db in reply.dbs
        ]

    def get_db_info(self, thread: str) -> ThreadInfo:
        """Name, key and addresses of one thread."""
        raw = parse_thread_id(thread)
        reply = with_retries(
            lambda: self._stub.GetDBInfo(
                threads_pb2.GetDBInfoRequest(dbID=raw), timeout=self.timeout, metadata=self._md()
            ),
            self.retry,
            "GetDBInfo",
        )
        return ThreadInfo(id=thread, name=reply.name, key=reply.key, addrs=list(reply.addrs))

    def delete_db(self, thread: str) -> None:
        """Delete a thread (the hub refuses one that still holds buckets). Not retried."""
        raw = parse_thread_id(thread)
        with_retries(
            lambda: self._stub.DeleteDB(
                threads_pb2.DeleteDBRequest(dbID=raw), timeout=self.timeout, metadata=self._md()
            ),
            NO_RETRY,
            "DeleteDB",
        )

    def get_token(self, identity: Signer) -> str:
        """Run the GetToken challenge (spec 4.1) and return the JWT; does not store it."""
        return with_retries(lambda: self._get_token_once(identity), self.retry, "GetToken")

    def _get_token_once(self, identity: Signer) -> str:
        challenge_box: list[bytes] = []
        ready = threading.Event()

        def requests() -> Iterator[threads_pb2.GetTokenRequest]:
            yield threads_pb2.GetTokenRequest(key=identity.public_key_string())
            # The challenge arrives on the reply stream; wait for it (bounded by the deadline:
            # a cancelled call ends this generator when gRPC stops iterating).
            if not ready.wait(self.timeout):
                return
            if challenge_box:
                yield threads_pb2.GetTokenRequest(signature=identity.sign(challenge_box[0]))

        call = self._stub.GetToken(
            requests(), timeout=self.timeout, metadata=self.auth.metadata(thread=False)
        )
        token = ""
        try:
            for reply in call:
                which = reply.WhichOneof("payload")
                if which == "challenge":
                    challenge_box.append(reply.challenge)
                    ready.set()
                elif which == "token":
                    token = reply.token
        finally:
            ready.set()  # never leave the request generator waiting
        if not token:
            raise HubError("GetToken ended without a token")
        return token

    def ensure_token(self) -> None:
        """Fetch a token once if the context has an identity but no token yet."""
        if not self.auth.needs_token():
            return
        with self._token_lock:
            if self.auth.needs_token():
                assert self.auth.identity is not None
                self.auth.set_token(self.get_token(self.auth.identity))


def _id_str(raw: bytes) -> str:
    try:
        return thread_id_to_string(raw)
    except InvalidThreadID:
        # Show what the hub sent rather than fail the whole listing.
        return multibase_encode(raw)
