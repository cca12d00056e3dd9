"""Threads: the table of thread DBs and the ``threads.pb.API`` / ``api.usersd.pb.APIService``
servicers (spec 4, 8, 10).

bucketfs has no ThreadDB: a "thread" is a row here (ID, name, owner, the API key it was created
with, its thread key), and the buckets in it are rows of the buckets table. The RPCs that bucket
clients call behave as the spec says; the rest of ThreadDB is absent (UNIMPLEMENTED).
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc

from bucketfs.hub.auth import Caller, caller
from bucketfs.hub.db import Database
from bucketfs.hub.errors import HubError, grpc_errors
from bucketfs.hub.identity import peer_id_bytes
from bucketfs.hub.tokens import get_token_flow
from bucketfs.keys import (
    InvalidKey,
    InvalidThreadID,
    multibase_encode,
    parse_libp2p_key,
    validate_thread_id,
)
from bucketfs.pb import threads_pb2, threads_pb2_grpc, usersd_pb2, usersd_pb2_grpc

if TYPE_CHECKING:
    from bucketfs.hub.auth import HubAuth

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS threads (
    id         TEXT PRIMARY KEY,        -- canonical thread ID string (multibase base32)
    name       TEXT NOT NULL DEFAULT '',
    owner      TEXT NOT NULL DEFAULT '',-- public key string of the owner ('' = anonymous local)
    account    INTEGER,                 -- account whose key created it (NULL with --auth none)
    api_key    TEXT NOT NULL DEFAULT '',-- key it was created with (user keys are bound to it)
    is_db      INTEGER NOT NULL DEFAULT 1,
    thread_key BLOB NOT NULL,           -- service key (32) || read key (32)
    created_at INTEGER NOT NULL         -- Unix ns
);
CREATE INDEX IF NOT EXISTS threads_owner ON threads(owner);
CREATE INDEX IF NOT EXISTS threads_api_key ON threads(api_key);
-- Names are unique per owner, case-insensitively (spec 8.3).
CREATE UNIQUE INDEX IF NOT EXISTS threads_owner_name
    ON threads(owner, name COLLATE NOCASE) WHERE name != '';
"""

Database.register_schema(SCHEMA)

NAME_RE = re.compile(r"^[A-Za-z0-9]+(?:[-][A-Za-z0-9]+)*$")
NAME_RULE = (
    "name may only contain alphanumeric characters or non-consecutive hyphens, "
    "and cannot begin or end with a hyphen"
)
DB_EXISTS = "db already exists"
DB_NOT_FOUND = "db not found"
DB_NOT_EMPTY = "DB not empty (delete buckets first)"
THREAD_NOT_FOUND = "Thread not found"
NAME_TAKEN = "thread name is already taken"
THREADS_PORT = 4006  # the threads libp2p port of spec 1.1, for GetDBInfo addresses


@dataclass(frozen=True)
class ThreadRecord:
    """One thread DB."""

    id: str
    name: str
    owner: str
    account: int | None
    api_key: str
    is_db: bool
    thread_key: bytes
    created_at: int


def _record(row: sqlite3.Row) -> ThreadRecord:
    return ThreadRecord(
        id=row["id"],
        name=row["name"],
        owner=row["owner"],
        account=row["account"],
        api_key=row["api_key"],
        is_db=bool(row["is_db"]),
        thread_key=bytes(row["thread_key"]),
        created_at=row["created_at"],
    )


class ThreadStore:
    """The threads table. Thread-safe (see ``Database``)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, record: ThreadRecord) -> None:
        """Insert a thread: UNKNOWN ``db already exists``; ALREADY_EXISTS for a name the owner
        already uses (Textile had no exact text for it)."""
        try:
            with self.db.write() as conn:
                if conn.execute("SELECT 1 FROM threads WHERE id = ?", (record.id,)).fetchone():
                    raise HubError(grpc.StatusCode.UNKNOWN, DB_EXISTS)
                conn.execute(
                    "INSERT INTO threads (id, name, owner, account, api_key, is_db, thread_key,"
                    " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        record.id,
                        record.name,
                        record.owner,
                        record.account,
                        record.api_key,
                        int(record.is_db),
                        record.thread_key,
                        record.created_at,
                    ),
                )
        except sqlite3.IntegrityError as exc:
            raise HubError(grpc.StatusCode.ALREADY_EXISTS, NAME_TAKEN) from exc

    def get(self, thread_id: str) -> ThreadRecord | None:
        """The thread with this canonical ID, or None."""
        row = self.db.conn().execute("SELECT * FROM threads WHERE id = ?", (thread_id,)).fetchone()
        return _record(row) if row else None

    def by_name(self, owner: str, name: str) -> ThreadRecord | None:
        """The owner's thread with this name (case-insensitive), or None."""
        row = (
            self.db.conn()
            .execute(
                "SELECT * FROM threads WHERE owner = ? AND name = ? COLLATE NOCASE", (owner, name)
            )
            .fetchone()
        )
        return _record(row) if row else None

    def list(self, owner: str | None = None) -> list[ThreadRecord]:
        """Threads of ``owner`` (every thread when None), oldest first."""
        if owner is None:
            rows = self.db.conn().execute("SELECT * FROM threads ORDER BY created_at, id")
        else:
            rows = self.db.conn().execute(
                "SELECT * FROM threads WHERE owner = ? ORDER BY created_at, id", (owner,)
            )
        return [_record(r) for r in rows]

    def count_for_key(self, api_key: str) -> int:
        """How many threads were created with an API key (``KeyInfo.threads``)."""
        row = (
            self.db.conn()
            .execute("SELECT count(*) AS n FROM threads WHERE api_key = ?", (api_key,))
            .fetchone()
        )
        return int(row["n"])

    def delete(self, thread_id: str) -> None:
        """Delete an empty thread: NOT_FOUND ``db not found``, FAILED_PRECONDITION when it still
        holds buckets (checked in the same transaction, so no bucket can slip in)."""
        with self.db.write() as conn:
            if not conn.execute("SELECT 1 FROM threads WHERE id = ?", (thread_id,)).fetchone():
                raise HubError(grpc.StatusCode.NOT_FOUND, DB_NOT_FOUND)
            if conn.execute(
                "SELECT 1 FROM buckets WHERE thread = ? LIMIT 1", (thread_id,)
            ).fetchone():
                raise HubError(grpc.StatusCode.FAILED_PRECONDITION, DB_NOT_EMPTY)
            conn.execute("DELETE FROM threads WHERE id = ?", (thread_id,))


# --- helpers ----------------------------------------------------------------------------------


def _parse_db_id(raw: bytes) -> str:
    """Canonical string of a binary ``dbID``; INVALID_ARGUMENT with the parse error."""
    try:
        return multibase_encode(validate_thread_id(raw))
    except InvalidThreadID as exc:
        raise HubError(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from exc


def _check_name(name: str) -> None:
    if name and not NAME_RE.match(name):
        raise HubError(grpc.StatusCode.UNKNOWN, NAME_RULE)


def _thread_key(raw: bytes) -> bytes:
    """The thread key to store: given (64 bytes) or generated (spec 8.3)."""
    if not raw:
        return secrets.token_bytes(64)
    if len(raw) == 32:
        raise HubError(grpc.StatusCode.UNKNOWN, "thread read key is required")
    if len(raw) != 64:
        raise HubError(grpc.StatusCode.UNKNOWN, "invalid key")
    return bytes(raw)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def thread_addr(peer_id: bytes, thread_raw: bytes) -> bytes:
    """Binary multiaddr ``/ip4/127.0.0.1/tcp/4006/p2p/<peer>/thread/<id>`` (GetDBInfo ``addrs``).

    bucketfs runs no libp2p host; the address names this hub and the thread the way
    go-threads does, for clients that only display it.
    """
    ip4 = _varint(4) + bytes([127, 0, 0, 1])
    tcp = _varint(6) + THREADS_PORT.to_bytes(2, "big")
    p2p = _varint(421) + _varint(len(peer_id)) + peer_id
    thread = _varint(406) + _varint(len(thread_raw)) + thread_raw
    return ip4 + tcp + p2p + thread


# The instance schema of the buckets collection (spec 5.3), for GetCollectionInfo.
_BUCKETS_SCHEMA = json.dumps(
    {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "$ref": "#/definitions/Bucket",
        "definitions": {
            "Bucket": {
                "type": "object",
                "required": [
                    "_id",
                    "owner",
                    "name",
                    "version",
                    "path",
                    "metadata",
                    "archives",
                    "created_at",
                    "updated_at",
                ],
                "properties": {
                    "_id": {"type": "string"},
                    "owner": {"type": "string"},
                    "name": {"type": "string"},
                    "version": {"type": "integer"},
                    "key": {"type": "string"},
                    "path": {"type": "string"},
                    "metadata": {"type": "object"},
                    "archives": {"type": "object"},
                    "created_at": {"type": "integer"},
                    "updated_at": {"type": "integer"},
                },
            }
        },
    },
    separators=(",", ":"),
).encode()


# --- servicers --------------------------------------------------------------------------------


class ThreadsServicer(threads_pb2_grpc.APIServicer):
    """``threads.pb.API``: GetToken, NewDB, ListDBs, GetDBInfo, DeleteDB, GetCollectionInfo, and
    Listen when the buckets store provides it."""

    def __init__(self, auth: HubAuth, listen: Callable[..., Any] | None = None) -> None:
        self.auth = auth
        self.threads = auth.threads
        self._listen = listen
        self._peer_id = peer_id_bytes(auth.host)

    def _owned(self, who: Caller, raw_id: bytes) -> ThreadRecord:
        """The thread named in a request body, after the ownership check of spec 3.4."""
        thread_id = _parse_db_id(raw_id)
        record = self.auth.authorize_thread(who, thread_id)
        if record is None:
            raise HubError(grpc.StatusCode.NOT_FOUND, DB_NOT_FOUND)
        return record

    def _info(self, record: ThreadRecord) -> threads_pb2.GetDBInfoReply:
        raw = validate_thread_id(_raw(record.id))
        return threads_pb2.GetDBInfoReply(
            addrs=[thread_addr(self._peer_id, raw)], key=record.thread_key, name=record.name
        )

    @grpc_errors
    def GetToken(  # noqa: N802 - gRPC method name
        self, request_iterator: Iterator[threads_pb2.GetTokenRequest], context: grpc.ServicerContext
    ) -> Iterator[threads_pb2.GetTokenReply]:
        """The challenge flow of spec 4.1."""
        caller(context)  # authenticated by the interceptor (a user key needs no token here)
        yield from get_token_flow(request_iterator, self.auth.host, self.auth.challenge_timeout)

    @grpc_errors
    def NewDB(  # noqa: N802
        self, request: threads_pb2.NewDBRequest, context: grpc.ServicerContext
    ) -> threads_pb2.NewDBReply:
        """Create a thread owned by the caller (spec 8.3)."""
        who = caller(context)
        thread_id = _parse_db_id(request.dbID)
        thread_key = _thread_key(request.key)
        if request.logKey:
            try:
                parse_libp2p_key(request.logKey)
            except InvalidKey as exc:
                raise HubError(grpc.StatusCode.UNKNOWN, "invalid log-key") from exc
        _check_name(request.name)
        _check_name(who.thread_name)
        # The Hub records the name from the header; the JS client sets both.
        name = who.thread_name or request.name
        self.threads.create(
            ThreadRecord(
                id=thread_id,
                name=name,
                owner=who.owner,
                account=who.account,
                api_key=who.key or "",
                is_db=True,
                thread_key=thread_key,
                created_at=time.time_ns(),
            )
        )
        log.info("created thread %s (%s) for %s", thread_id, name or "unnamed", who.owner or "-")
        return threads_pb2.NewDBReply()

    @grpc_errors
    def ListDBs(  # noqa: N802
        self, request: threads_pb2.ListDBsRequest, context: grpc.ServicerContext
    ) -> threads_pb2.ListDBsReply:
        """Every thread locally; the caller's own threads with keys (see ``auth``)."""
        who = caller(context)
        records = self.threads.list(None if who.local else who.owner)
        return threads_pb2.ListDBsReply(
            dbs=[threads_pb2.ListDBsReply.DB(dbID=_raw(r.id), info=self._info(r)) for r in records]
        )

    @grpc_errors
    def GetDBInfo(  # noqa: N802
        self, request: threads_pb2.GetDBInfoRequest, context: grpc.ServicerContext
    ) -> threads_pb2.GetDBInfoReply:
        """Addresses, key and name of a thread (spec 8.4)."""
        return self._info(self._owned(caller(context), request.dbID))

    @grpc_errors
    def DeleteDB(  # noqa: N802
        self, request: threads_pb2.DeleteDBRequest, context: grpc.ServicerContext
    ) -> threads_pb2.DeleteDBReply:
        """Delete an empty thread (spec 8.4)."""
        record = self._owned(caller(context), request.dbID)
        self.threads.delete(record.id)
        log.info("deleted thread %s", record.id)
        return threads_pb2.DeleteDBReply()

    @grpc_errors
    def GetCollectionInfo(  # noqa: N802
        self, request: threads_pb2.GetCollectionInfoRequest, context: grpc.ServicerContext
    ) -> threads_pb2.GetCollectionInfoReply:
        """The ``buckets`` collection's config (spec 8.5). Access rules are enforced in Python,
        so the JavaScript validator and filter sources are empty."""
        self._owned(caller(context), request.dbID)
        if request.name != "buckets":
            raise HubError(grpc.StatusCode.NOT_FOUND, "collection not found")
        return threads_pb2.GetCollectionInfoReply(
            name="buckets",
            schema=_BUCKETS_SCHEMA,
            indexes=[threads_pb2.Index(path="path", unique=False)],
        )

    def Listen(  # noqa: N802
        self, request: threads_pb2.ListenRequest, context: grpc.ServicerContext
    ) -> Iterator[threads_pb2.ListenReply]:
        """Bucket change events, served by the buckets store's ``listen`` (spec 8.6)."""
        if self._listen is None:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "Listen is not available on this hub")
        yield from self._listen(request, context)


class UsersServicer(usersd_pb2_grpc.APIServiceServicer):
    """``api.usersd.pb.APIService``: threads by name for the caller (spec 10)."""

    def __init__(self, auth: HubAuth) -> None:
        self.threads = auth.threads

    @grpc_errors
    def GetThread(  # noqa: N802
        self, request: usersd_pb2.GetThreadRequest, context: grpc.ServicerContext
    ) -> usersd_pb2.GetThreadResponse:
        """The caller's thread with this name: NOT_FOUND ``Thread not found`` if none."""
        who = caller(context)
        record = self.threads.by_name(who.owner, request.name) if request.name else None
        if record is None:
            raise HubError(grpc.StatusCode.NOT_FOUND, THREAD_NOT_FOUND)
        return usersd_pb2.GetThreadResponse(
            id=_raw(record.id), name=record.name, is_db=record.is_db
        )

    @grpc_errors
    def ListThreads(  # noqa: N802
        self, request: usersd_pb2.ListThreadsRequest, context: grpc.ServicerContext
    ) -> usersd_pb2.ListThreadsResponse:
        """Every thread of the caller."""
        who = caller(context)
        return usersd_pb2.ListThreadsResponse(
            list=[
                usersd_pb2.GetThreadResponse(id=_raw(r.id), name=r.name, is_db=r.is_db)
                for r in self.threads.list(who.owner)
            ]
        )


def _raw(thread_id: str) -> bytes:
    from bucketfs.keys import parse_thread_id

    return parse_thread_id(thread_id)


def add_thread_services(
    server: grpc.Server, auth: HubAuth, listen: Callable[..., Any] | None = None
) -> None:
    """Register ``threads.pb.API`` and ``api.usersd.pb.APIService`` on ``server``."""
    threads_pb2_grpc.add_APIServicer_to_server(ThreadsServicer(auth, listen=listen), server)
    usersd_pb2_grpc.add_APIServiceServicer_to_server(UsersServicer(auth), server)
