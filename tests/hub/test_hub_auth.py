"""The auth matrix over loopback: a real gRPC server with the hub's auth interceptor, threads,
users and hubd services on a real SQLite database (spec 3.2-3.4, 4, 8, 10, 11)."""

from __future__ import annotations

import contextlib
import os
import queue
import stat
import tomllib
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from bucketfs import keys
from bucketfs.hub.accounts import (
    DEV,
    KEY_TYPE_ACCOUNT,
    KEY_TYPE_USER,
    Accounts,
    bootstrap_local_account,
    client_address,
)
from bucketfs.hub.auth import AUTH_KEYS, AUTH_NONE, HubAuth, add_auth_services
from bucketfs.hub.db import Database
from bucketfs.pb import (
    hubd_pb2,
    hubd_pb2_grpc,
    threads_pb2,
    threads_pb2_grpc,
    usersd_pb2,
    usersd_pb2_grpc,
)

pytestmark = pytest.mark.timeout(60)

Code = grpc.StatusCode


@dataclass
class Hub:
    """A running auth server and the pieces tests need."""

    channel: grpc.Channel
    auth: HubAuth
    accounts: Accounts
    account: int

    @property
    def threads(self) -> threads_pb2_grpc.APIStub:
        return threads_pb2_grpc.APIStub(self.channel)

    @property
    def users(self) -> usersd_pb2_grpc.APIServiceStub:
        return usersd_pb2_grpc.APIServiceStub(self.channel)

    @property
    def hubd(self) -> hubd_pb2_grpc.APIServiceStub:
        return hubd_pb2_grpc.APIServiceStub(self.channel)


@contextlib.contextmanager
def running(
    tmp_path: Path, mode: str = AUTH_KEYS, challenge_timeout: float = 60.0
) -> Iterator[Hub]:
    db = Database(tmp_path / "hub.db")
    auth = HubAuth(db, tmp_path, mode=mode, challenge_timeout=challenge_timeout)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8), interceptors=[auth.interceptor()]
    )
    add_auth_services(server, auth)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    accounts = Accounts(db)
    account = accounts.create_account(DEV, "alice").id
    try:
        yield Hub(channel, auth, accounts, account)
    finally:
        channel.close()
        server.stop(grace=None).wait()
        db.close()


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    with running(tmp_path) as h:
        yield h


def key_md(key: str, secret: str | None, lifetime: float = 600.0) -> list[tuple[str, str]]:
    md = [("x-textile-api-key", key)]
    if secret:
        msg, sig = keys.sign_api_request(secret, lifetime=lifetime)
        md += [("x-textile-api-sig-msg", msg), ("x-textile-api-sig", sig)]
    return md


def token_md(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"bearer {token}")]


def rpc_error(call, *args, **kwargs) -> grpc.RpcError:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as info:
        call(*args, **kwargs)
    return info.value


def assert_status(err: grpc.RpcError, code: grpc.StatusCode, message: str) -> None:
    assert (err.code(), err.details()) == (code, message)


def new_db(hub: Hub, md: list[tuple[str, str]], name: str = "") -> bytes:
    tid = keys.new_thread_id()
    extra = [("x-textile-thread-name", name)] if name else []
    hub.threads.NewDB(
        threads_pb2.NewDBRequest(dbID=tid, name=name), metadata=md + extra, timeout=10
    )
    return tid


class TokenSession:
    """Drives the GetToken bidi stream step by step."""

    def __init__(self, hub: Hub, md: list[tuple[str, str]]) -> None:
        self._q: queue.Queue[threads_pb2.GetTokenRequest | None] = queue.Queue()
        self.call = hub.threads.GetToken(iter(self._q.get, None), metadata=md, timeout=20)

    def send(self, **payload: object) -> None:
        self._q.put(threads_pb2.GetTokenRequest(**payload))

    def recv(self) -> threads_pb2.GetTokenReply:
        return next(self.call)

    def close(self) -> None:
        self._q.put(None)


def get_token(hub: Hub, ident: keys.Identity, md: list[tuple[str, str]]) -> str:
    s = TokenSession(hub, md)
    s.send(key=ident.public_key_string())
    challenge = s.recv().challenge
    assert len(challenge) == 32
    s.send(signature=ident.sign(challenge))
    token = s.recv().token
    s.close()
    return token


# --- credentials ------------------------------------------------------------------------------


def test_no_key(hub: Hub) -> None:
    err = rpc_error(hub.users.ListThreads, usersd_pb2.ListThreadsRequest(), timeout=10)
    assert_status(err, Code.UNAUTHENTICATED, "Session or API key required")


def test_unknown_and_invalidated_key(hub: Hub) -> None:
    bogus, secret = keys.new_api_key()
    err = rpc_error(
        hub.users.ListThreads, usersd_pb2.ListThreadsRequest(), metadata=key_md(bogus, secret)
    )
    assert_status(err, Code.NOT_FOUND, "API key not found or is invalid")
    k = hub.accounts.create_key(hub.account, KEY_TYPE_ACCOUNT)
    hub.users.ListThreads(usersd_pb2.ListThreadsRequest(), metadata=key_md(k.key, k.secret))
    hub.accounts.invalidate_key(hub.account, k.key)
    err = rpc_error(
        hub.users.ListThreads, usersd_pb2.ListThreadsRequest(), metadata=key_md(k.key, k.secret)
    )
    assert_status(err, Code.NOT_FOUND, "API key not found or is invalid")


def test_signature_required_bad_and_expired(hub: Hub) -> None:
    k = hub.accounts.create_key(hub.account, KEY_TYPE_ACCOUNT, secure=True)
    req = usersd_pb2.ListThreadsRequest()
    err = rpc_error(hub.users.ListThreads, req, metadata=key_md(k.key, None))
    assert_status(err, Code.UNAUTHENTICATED, "API key signature required")
    _, other_secret = keys.new_api_key()
    err = rpc_error(hub.users.ListThreads, req, metadata=key_md(k.key, other_secret))
    assert_status(err, Code.UNAUTHENTICATED, "Bad API key signature")
    err = rpc_error(hub.users.ListThreads, req, metadata=key_md(k.key, k.secret, lifetime=-5))
    assert_status(err, Code.UNAUTHENTICATED, "Bad API key signature")
    md = [
        ("x-textile-api-key", k.key),
        ("x-textile-api-sig-msg", "someday"),
        ("x-textile-api-sig", keys.api_signature(k.secret, "someday")),
    ]
    err = rpc_error(hub.users.ListThreads, req, metadata=md)
    assert_status(err, Code.UNAUTHENTICATED, "Bad API key signature")
    # The same key with a good signature works: nothing was changed by the refusals.
    hub.users.ListThreads(req, metadata=key_md(k.key, k.secret))


def test_insecure_key_needs_no_signature(hub: Hub) -> None:
    k = hub.accounts.create_key(hub.account, KEY_TYPE_ACCOUNT, secure=False)
    tid = new_db(hub, key_md(k.key, None), name="plain")
    info = hub.threads.GetDBInfo(
        threads_pb2.GetDBInfoRequest(dbID=tid), metadata=key_md(k.key, None)
    )
    assert info.name == "plain"


def test_session_header_is_refused(hub: Hub) -> None:
    err = rpc_error(
        hub.users.ListThreads,
        usersd_pb2.ListThreadsRequest(),
        metadata=[("x-textile-session", "x")],
    )
    assert_status(err, Code.UNAUTHENTICATED, "Invalid session")


@pytest.mark.parametrize(
    "value, message",
    [("bearer", "Bad authorization string"), ("basic abc", "Request unauthenticated with bearer")],
)
def test_malformed_authorization(hub: Hub, value: str, message: str) -> None:
    k = hub.accounts.create_key(hub.account, KEY_TYPE_ACCOUNT)
    md = key_md(k.key, k.secret) + [("authorization", value)]
    err = rpc_error(hub.users.ListThreads, usersd_pb2.ListThreadsRequest(), metadata=md)
    assert_status(err, Code.UNAUTHENTICATED, message)


# --- account keys -----------------------------------------------------------------------------


def test_account_key_acts_as_account(hub: Hub) -> None:
    k = hub.accounts.create_key(hub.account, KEY_TYPE_ACCOUNT)
    md = key_md(k.key, k.secret)
    tid = new_db(hub, md, name="photos")
    got = hub.users.GetThread(usersd_pb2.GetThreadRequest(name="PHOTOS"), metadata=md)
    assert (got.id, got.name, got.is_db) == (tid, "photos", True)
    # A second key of the same account sees the same threads: they belong to the account.
    k2 = hub.accounts.create_key(hub.account, KEY_TYPE_ACCOUNT)
    md2 = key_md(k2.key, k2.secret)
    dbs = hub.threads.ListDBs(threads_pb2.ListDBsRequest(), metadata=md2).dbs
    assert [d.dbID for d in dbs] == [tid]
    assert dbs[0].info.name == "photos" and len(dbs[0].info.key) == 64
    assert dbs[0].info.addrs and dbs[0].info.addrs[0].endswith(tid)
    record = hub.auth.threads.get(keys.thread_id_to_string(tid))
    assert record is not None
    assert record.owner == hub.accounts.account(hub.account).pubkey


def test_other_account_cannot_use_thread(hub: Hub) -> None:
    k = hub.accounts.create_key(hub.account, KEY_TYPE_ACCOUNT)
    tid = new_db(hub, key_md(k.key, k.secret))
    bob = hub.accounts.create_account(DEV, "bob").id
    kb = hub.accounts.create_key(bob, KEY_TYPE_ACCOUNT)
    mdb = key_md(kb.key, kb.secret)
    for call, req in (
        (hub.threads.GetDBInfo, threads_pb2.GetDBInfoRequest(dbID=tid)),
        (hub.threads.DeleteDB, threads_pb2.DeleteDBRequest(dbID=tid)),
    ):
        assert_status(
            rpc_error(call, req, metadata=mdb), Code.PERMISSION_DENIED, "User does not own thread"
        )
    # A thread header on a method that is not cross-user is checked too.
    header = [("x-textile-thread", keys.thread_id_to_string(tid))]
    err = rpc_error(hub.users.ListThreads, usersd_pb2.ListThreadsRequest(), metadata=mdb + header)
    assert_status(err, Code.PERMISSION_DENIED, "User does not own thread")
    assert hub.threads.ListDBs(threads_pb2.ListDBsRequest(), metadata=mdb).dbs == []
    err = rpc_error(hub.users.GetThread, usersd_pb2.GetThreadRequest(name="x"), metadata=mdb)
    assert_status(err, Code.NOT_FOUND, "Thread not found")
    # The owner still has it.
    hub.threads.GetDBInfo(threads_pb2.GetDBInfoRequest(dbID=tid), metadata=key_md(k.key, k.secret))


# --- user keys and tokens ---------------------------------------------------------------------


def test_user_key_requires_token_except_get_token(hub: Hub) -> None:
    uk = hub.accounts.create_key(hub.account, KEY_TYPE_USER)
    md = key_md(uk.key, uk.secret)
    err = rpc_error(hub.users.ListThreads, usersd_pb2.ListThreadsRequest(), metadata=md)
    assert_status(err, Code.UNAUTHENTICATED, "Token required")
    token = get_token(hub, keys.Identity.generate(), md)
    hub.users.ListThreads(usersd_pb2.ListThreadsRequest(), metadata=md + token_md(token))


def test_user_a_token_on_user_b_thread_denied(hub: Hub) -> None:
    uk = hub.accounts.create_key(hub.account, KEY_TYPE_USER)
    md = key_md(uk.key, uk.secret)
    alice, bob = keys.Identity.generate(), keys.Identity.generate()
    ta, tb = get_token(hub, alice, md), get_token(hub, bob, md)
    tid_b = new_db(hub, md + token_md(tb), name="bobs")
    record = hub.auth.threads.get(keys.thread_id_to_string(tid_b))
    assert record is not None and record.owner == bob.public_key_string()
    err = rpc_error(
        hub.threads.GetDBInfo, threads_pb2.GetDBInfoRequest(dbID=tid_b), metadata=md + token_md(ta)
    )
    assert_status(err, Code.PERMISSION_DENIED, "User does not own thread")
    header = [("x-textile-thread", keys.thread_id_to_string(tid_b))]
    err = rpc_error(
        hub.users.ListThreads, usersd_pb2.ListThreadsRequest(), metadata=md + token_md(ta) + header
    )
    assert_status(err, Code.PERMISSION_DENIED, "User does not own thread")
    err = rpc_error(
        hub.users.GetThread, usersd_pb2.GetThreadRequest(name="bobs"), metadata=md + token_md(ta)
    )
    assert_status(err, Code.NOT_FOUND, "Thread not found")
    # Bob still can.
    got = hub.users.GetThread(usersd_pb2.GetThreadRequest(name="bobs"), metadata=md + token_md(tb))
    assert got.id == tid_b


def test_user_thread_bound_to_its_key(hub: Hub) -> None:
    k1 = hub.accounts.create_key(hub.account, KEY_TYPE_USER)
    k2 = hub.accounts.create_key(hub.account, KEY_TYPE_USER)
    ident = keys.Identity.generate()
    md1, md2 = key_md(k1.key, k1.secret), key_md(k2.key, k2.secret)
    token = get_token(hub, ident, md1)
    tid = new_db(hub, md1 + token_md(token))
    err = rpc_error(
        hub.threads.GetDBInfo,
        threads_pb2.GetDBInfoRequest(dbID=tid),
        metadata=md2 + token_md(token),
    )
    assert_status(err, Code.PERMISSION_DENIED, "Bad API key")
    keyinfo = hub.hubd.ListKeys(
        hubd_pb2.ListKeysRequest(), metadata=key_md(*_account_key(hub))
    ).list
    assert {k.key: k.threads for k in keyinfo}[k1.key] == 1


def _account_key(hub: Hub) -> tuple[str, str]:
    k = hub.accounts.create_key(hub.account, KEY_TYPE_ACCOUNT)
    return k.key, k.secret


def test_list_dbs_blocked_for_user_keys(hub: Hub) -> None:
    uk = hub.accounts.create_key(hub.account, KEY_TYPE_USER)
    md = key_md(uk.key, uk.secret)
    token = get_token(hub, keys.Identity.generate(), md)
    err = rpc_error(
        hub.threads.ListDBs, threads_pb2.ListDBsRequest(), metadata=md + token_md(token)
    )
    assert_status(err, Code.PERMISSION_DENIED, "Method is not accessible")


def test_tampered_foreign_and_garbage_tokens(hub: Hub) -> None:
    uk = hub.accounts.create_key(hub.account, KEY_TYPE_USER)
    md = key_md(uk.key, uk.secret)
    ident = keys.Identity.generate()
    good = get_token(hub, ident, md)
    claims = keys.verify_token(good, hub.auth.host.public_key)
    assert claims.sub == ident.public_key_string()
    assert claims.iss == hub.auth.host.public_key_string()
    header, _, sig = good.split(".")
    # Claims rewritten to another subject, original signature kept.
    forged = keys.issue_token(
        keys.Identity.generate(), keys.Identity.generate().public_key_string()
    )
    tampered = f"{header}.{forged.split('.')[1]}.{sig}"
    foreign = keys.issue_token(keys.Identity.generate(), ident.public_key_string())
    req = usersd_pb2.ListThreadsRequest()
    hub.users.ListThreads(req, metadata=md + token_md(good))  # now remembered as verified
    for bad in (tampered, foreign):
        err = rpc_error(hub.users.ListThreads, req, metadata=md + token_md(bad))
        assert_status(err, Code.UNAUTHENTICATED, "invalid thread token")
    err = rpc_error(hub.users.ListThreads, req, metadata=md + token_md("garbage"))
    assert_status(err, Code.PERMISSION_DENIED, "Bad authorization")
    # An account key does not use a token, but a forged one is still refused.
    ak, asec = _account_key(hub)
    err = rpc_error(hub.users.ListThreads, req, metadata=key_md(ak, asec) + token_md(foreign))
    assert_status(err, Code.UNAUTHENTICATED, "invalid thread token")
    hub.users.ListThreads(req, metadata=md + token_md(good))


def test_token_survives_restart_but_not_new_host(tmp_path: Path) -> None:
    ident = keys.Identity.generate()
    with running(tmp_path) as hub:
        uk = hub.accounts.create_key(hub.account, KEY_TYPE_USER)
        md = key_md(uk.key, uk.secret)
        token = get_token(hub, ident, md)
    host = tmp_path / "host.key"
    assert stat.S_IMODE(os.stat(host).st_mode) == 0o600
    db = Database(tmp_path / "hub.db")
    try:
        again = HubAuth(db, tmp_path)
        assert keys.verify_token(token, again.host.public_key).sub == ident.public_key_string()
    finally:
        db.close()
    other = tmp_path / "other"
    other.mkdir()
    with running(other) as hub2:
        uk2 = hub2.accounts.create_key(hub2.account, KEY_TYPE_USER)
        err = rpc_error(
            hub2.users.ListThreads,
            usersd_pb2.ListThreadsRequest(),
            metadata=key_md(uk2.key, uk2.secret) + token_md(token),
        )
        assert_status(err, Code.UNAUTHENTICATED, "invalid thread token")


# --- GetToken errors --------------------------------------------------------------------------


def _user_md(hub: Hub) -> list[tuple[str, str]]:
    uk = hub.accounts.create_key(hub.account, KEY_TYPE_USER)
    return key_md(uk.key, uk.secret)


def test_get_token_key_required(hub: Hub) -> None:
    s = TokenSession(hub, _user_md(hub))
    s.send(signature=b"x" * 64)
    err = rpc_error(s.recv)
    assert_status(err, Code.INVALID_ARGUMENT, "Key is required")


def test_get_token_signature_required(hub: Hub) -> None:
    s = TokenSession(hub, _user_md(hub))
    s.send(key=keys.Identity.generate().public_key_string())
    s.recv()
    s.send(key="again")
    err = rpc_error(s.recv)
    assert_status(err, Code.INVALID_ARGUMENT, "Signature is required")


def test_get_token_bad_signature(hub: Hub) -> None:
    ident, other = keys.Identity.generate(), keys.Identity.generate()
    s = TokenSession(hub, _user_md(hub))
    s.send(key=ident.public_key_string())
    challenge = s.recv().challenge
    s.send(signature=other.sign(challenge))
    err = rpc_error(s.recv)
    assert_status(err, Code.UNKNOWN, "bad signature")


def test_get_token_unparsable_key(hub: Hub) -> None:
    s = TokenSession(hub, _user_md(hub))
    s.send(key="not-a-key")
    err = rpc_error(s.recv)
    assert err.code() == Code.UNKNOWN and "public key" in err.details()


def test_get_token_needs_a_key_with_keys_auth(hub: Hub) -> None:
    s = TokenSession(hub, [])
    s.send(key=keys.Identity.generate().public_key_string())
    err = rpc_error(s.recv)
    assert_status(err, Code.UNAUTHENTICATED, "Session or API key required")


def test_get_token_challenge_deadline(tmp_path: Path) -> None:
    with running(tmp_path, challenge_timeout=0.5) as hub:
        s = TokenSession(hub, _user_md(hub))
        s.send(key=keys.Identity.generate().public_key_string())
        s.recv()
        err = rpc_error(s.recv)  # never answer the challenge
        assert_status(err, Code.DEADLINE_EXCEEDED, "Challenge deadline exceeded")
        s.close()
        silent = TokenSession(hub, _user_md(hub))  # never even sends its key
        err = rpc_error(silent.recv)
        assert_status(err, Code.DEADLINE_EXCEEDED, "Challenge deadline exceeded")
        silent.close()
        # The hub is still serving (with a generous deadline, so a busy machine cannot fail it).
        hub.auth.challenge_timeout = 60.0
        get_token(hub, keys.Identity.generate(), _user_md(hub))


# --- threads API errors -----------------------------------------------------------------------


def test_new_db_bad_input(hub: Hub) -> None:
    md = key_md(*_account_key(hub))
    err = rpc_error(hub.threads.NewDB, threads_pb2.NewDBRequest(dbID=b"\x01\x99\x01x"), metadata=md)
    assert err.code() == Code.INVALID_ARGUMENT and "variant" in err.details()
    tid = keys.new_thread_id()
    err = rpc_error(
        hub.threads.NewDB, threads_pb2.NewDBRequest(dbID=tid, name="-bad-"), metadata=md
    )
    assert err.code() == Code.UNKNOWN and "alphanumeric" in err.details()
    err = rpc_error(
        hub.threads.NewDB, threads_pb2.NewDBRequest(dbID=tid, key=bytes(32)), metadata=md
    )
    assert_status(err, Code.UNKNOWN, "thread read key is required")
    err = rpc_error(
        hub.threads.NewDB, threads_pb2.NewDBRequest(dbID=tid, logKey=b"\xff\xff"), metadata=md
    )
    assert_status(err, Code.UNKNOWN, "invalid log-key")
    assert hub.threads.ListDBs(threads_pb2.ListDBsRequest(), metadata=md).dbs == []
    given_key = os.urandom(64)
    hub.threads.NewDB(threads_pb2.NewDBRequest(dbID=tid, key=given_key, name="a"), metadata=md)
    err = rpc_error(hub.threads.NewDB, threads_pb2.NewDBRequest(dbID=tid), metadata=md)
    assert_status(err, Code.UNKNOWN, "db already exists")
    err = rpc_error(
        hub.threads.NewDB,
        threads_pb2.NewDBRequest(dbID=keys.new_thread_id(), name="A"),
        metadata=md,
    )
    assert err.code() == Code.ALREADY_EXISTS
    info = hub.threads.GetDBInfo(threads_pb2.GetDBInfoRequest(dbID=tid), metadata=md)
    assert info.key == given_key


def test_delete_db(hub: Hub) -> None:
    md = key_md(*_account_key(hub))
    tid = new_db(hub, md)
    hub.threads.DeleteDB(threads_pb2.DeleteDBRequest(dbID=tid), metadata=md)
    err = rpc_error(hub.threads.GetDBInfo, threads_pb2.GetDBInfoRequest(dbID=tid), metadata=md)
    assert_status(err, Code.PERMISSION_DENIED, "User does not own thread")


def test_delete_db_with_buckets_refused(hub: Hub) -> None:
    md = key_md(*_account_key(hub))
    tid = new_db(hub, md)
    thread = keys.thread_id_to_string(tid)
    with hub.auth.db.write() as conn:
        conn.execute(
            "INSERT INTO buckets (key, thread, name, root, created_at, updated_at)"
            " VALUES ('bk', ?, 'b', 'bafy', 0, 0)",
            (thread,),
        )
    err = rpc_error(hub.threads.DeleteDB, threads_pb2.DeleteDBRequest(dbID=tid), metadata=md)
    assert_status(err, Code.FAILED_PRECONDITION, "DB not empty (delete buckets first)")
    assert hub.auth.threads.get(thread) is not None


def test_get_collection_info(hub: Hub) -> None:
    md = key_md(*_account_key(hub))
    tid = new_db(hub, md)
    info = hub.threads.GetCollectionInfo(
        threads_pb2.GetCollectionInfoRequest(dbID=tid, name="buckets"), metadata=md
    )
    assert info.name == "buckets" and info.indexes[0].path == "path"
    err = rpc_error(
        hub.threads.GetCollectionInfo,
        threads_pb2.GetCollectionInfoRequest(dbID=tid, name="other"),
        metadata=md,
    )
    assert_status(err, Code.NOT_FOUND, "collection not found")


# --- hubd keys and orgs -----------------------------------------------------------------------


def test_hubd_keys(hub: Hub) -> None:
    md = key_md(*_account_key(hub))
    created = hub.hubd.CreateKey(
        hubd_pb2.CreateKeyRequest(type=hubd_pb2.KEY_TYPE_USER, secure=True), metadata=md
    ).key_info
    assert created.secret and created.type == hubd_pb2.KEY_TYPE_USER and created.valid
    listed = {k.key: k for k in hub.hubd.ListKeys(hubd_pb2.ListKeysRequest(), metadata=md).list}
    assert created.key in listed and listed[created.key].secret == ""  # shown once
    hub.hubd.InvalidateKey(hubd_pb2.InvalidateKeyRequest(key=created.key), metadata=md)
    listed = {k.key: k for k in hub.hubd.ListKeys(hubd_pb2.ListKeysRequest(), metadata=md).list}
    assert not listed[created.key].valid
    err = rpc_error(hub.hubd.InvalidateKey, hubd_pb2.InvalidateKeyRequest(key="bnope"), metadata=md)
    assert err.code() == Code.NOT_FOUND
    err = rpc_error(hub.hubd.CreateKey, hubd_pb2.CreateKeyRequest(), metadata=md)
    assert err.code() == Code.INVALID_ARGUMENT
    # A user key cannot manage keys.
    umd = _user_md(hub)
    token = get_token(hub, keys.Identity.generate(), umd)
    err = rpc_error(
        hub.hubd.CreateKey,
        hubd_pb2.CreateKeyRequest(type=hubd_pb2.KEY_TYPE_ACCOUNT),
        metadata=umd + token_md(token),
    )
    assert err.code() == Code.PERMISSION_DENIED


def test_org_key_threads_belong_to_org(hub: Hub) -> None:
    md = key_md(*_account_key(hub))
    org = [("x-textile-org", "acme")]
    err = rpc_error(hub.hubd.ListKeys, hubd_pb2.ListKeysRequest(), metadata=md + org)
    assert_status(err, Code.NOT_FOUND, "Org not found")
    created = hub.hubd.CreateKey(
        hubd_pb2.CreateKeyRequest(type=hubd_pb2.KEY_TYPE_ACCOUNT, secure=True), metadata=md + org
    ).key_info
    omd = key_md(created.key, created.secret)
    tid = new_db(hub, omd, name="shared")
    acme = hub.accounts.find("org", "acme")
    assert acme is not None
    record = hub.auth.threads.get(keys.thread_id_to_string(tid))
    assert record is not None and record.owner == acme.pubkey
    # The member's own account does not own it, but acting for the org it does.
    err = rpc_error(hub.threads.GetDBInfo, threads_pb2.GetDBInfoRequest(dbID=tid), metadata=md)
    assert_status(err, Code.PERMISSION_DENIED, "User does not own thread")
    hub.threads.GetDBInfo(threads_pb2.GetDBInfoRequest(dbID=tid), metadata=md + org)
    # A non-member cannot act for the org.
    bob = hub.accounts.create_account(DEV, "bob").id
    kb = hub.accounts.create_key(bob, KEY_TYPE_ACCOUNT)
    err = rpc_error(
        hub.hubd.ListKeys, hubd_pb2.ListKeysRequest(), metadata=key_md(kb.key, kb.secret) + org
    )
    assert_status(err, Code.PERMISSION_DENIED, "User is not an org member")


# --- --auth none ------------------------------------------------------------------------------


def test_auth_none_local_mode(tmp_path: Path) -> None:
    with running(tmp_path, mode=AUTH_NONE) as hub:
        tid = new_db(hub, [], name="mine")
        dbs = hub.threads.ListDBs(threads_pb2.ListDBsRequest()).dbs
        assert [d.dbID for d in dbs] == [tid]
        got = hub.users.GetThread(usersd_pb2.GetThreadRequest(name="mine"))
        assert got.id == tid
        ident = keys.Identity.generate()
        token = get_token(hub, ident, [])
        # With a token the caller is that identity; any thread stays usable (like buckd).
        hub.threads.GetDBInfo(threads_pb2.GetDBInfoRequest(dbID=tid), metadata=token_md(token))
        foreign = keys.issue_token(keys.Identity.generate(), ident.public_key_string())
        err = rpc_error(
            hub.threads.ListDBs, threads_pb2.ListDBsRequest(), metadata=token_md(foreign)
        )
        assert_status(err, Code.UNAUTHENTICATED, "invalid thread token")
        err = rpc_error(hub.hubd.ListKeys, hubd_pb2.ListKeysRequest())
        assert err.code() == Code.FAILED_PRECONDITION


# --- first start ------------------------------------------------------------------------------


def test_bootstrap_local_account(tmp_path: Path) -> None:
    config = tmp_path / "cfg" / "config.toml"
    db = Database(tmp_path / "hub.db")
    try:
        created = bootstrap_local_account(db, config, api="127.0.0.1:4567")
        assert created is not None
        key, secret = created
        data = tomllib.loads(config.read_text())
        assert data["api"] == "127.0.0.1:4567" and data["api_key"] == key
        secret_file = config.parent / data["api_secret_file"]
        assert secret_file.read_text().strip() == secret
        assert stat.S_IMODE(os.stat(secret_file).st_mode) == 0o600
        record = Accounts(db).get_key(key)
        assert record is not None and record.type == KEY_TYPE_ACCOUNT and record.secure
        # Second start: nothing created, nothing rewritten.
        before = config.read_text()
        assert bootstrap_local_account(db, config) is None
        assert config.read_text() == before
        assert len(Accounts(db).list_keys(record.account)) == 1
    finally:
        db.close()


def test_bootstrap_retries_after_config_write_failure(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the config directory should be")
    db = Database(tmp_path / "hub.db")
    try:
        with pytest.raises(OSError):
            bootstrap_local_account(db, blocker / "config.toml")
        assert Accounts(db).is_empty()  # rolled back: the next start tries again
        assert bootstrap_local_account(db, tmp_path / "cfg" / "config.toml") is not None
    finally:
        db.close()


def test_client_address_of_wildcard_listen() -> None:
    assert client_address("0.0.0.0:3006") == "127.0.0.1:3006"
    assert client_address(":3006") == "127.0.0.1:3006"
    assert client_address("[::]:3006") == "[::1]:3006"
    assert client_address("127.0.0.1:4000") == "127.0.0.1:4000"
    assert client_address("hub.example:443") == "hub.example:443"
