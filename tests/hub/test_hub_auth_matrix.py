"""The auth matrix through the whole hub (``bucketfs.hub.server.Hub`` on a loopback port):
bucket RPCs with no key, bad and expired signatures, account keys, user keys with and without
tokens, user A's token on user B's thread, tampered and foreign tokens, and ``--auth none``.
The first start writes the client config, which the tests then use like the CLI would."""

from __future__ import annotations

import contextlib
import queue
import tomllib
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from bucketfs import keys
from bucketfs.hub.accounts import KEY_TYPE_USER
from bucketfs.hub.server import Hub, HubConfig
from bucketfs.pb import bucketsd_pb2, bucketsd_pb2_grpc, threads_pb2, threads_pb2_grpc

pytestmark = pytest.mark.timeout(120)

Code = grpc.StatusCode


@contextlib.contextmanager
def running_hub(tmp_path: Path, auth: str = "keys") -> Iterator[tuple[Hub, grpc.Channel]]:
    hub = Hub(HubConfig(listen="127.0.0.1:0", data_dir=tmp_path / "data", auth=auth, gc_interval=0))
    address = hub.start()
    channel = grpc.insecure_channel(address)
    try:
        yield hub, channel
    finally:
        channel.close()
        hub.stop(grace=1)


@pytest.fixture
def config_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "config" / "config.toml"
    monkeypatch.setenv("BUCKETFS_CONFIG", str(path))
    return path


def key_md(key: str, secret: str | None, lifetime: float = 600.0) -> list[tuple[str, str]]:
    md = [("x-textile-api-key", key)]
    if secret:
        msg, sig = keys.sign_api_request(secret, lifetime=lifetime)
        md += [("x-textile-api-sig-msg", msg), ("x-textile-api-sig", sig)]
    return md


def thread_md(tid: bytes) -> list[tuple[str, str]]:
    return [("x-textile-thread", keys.thread_id_to_string(tid))]


def bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"bearer {token}")]


def get_token(channel: grpc.Channel, ident: keys.Identity, md: list[tuple[str, str]]) -> str:
    q: queue.Queue[threads_pb2.GetTokenRequest | None] = queue.Queue()
    call = threads_pb2_grpc.APIStub(channel).GetToken(iter(q.get, None), metadata=md, timeout=20)
    q.put(threads_pb2.GetTokenRequest(key=ident.public_key_string()))
    challenge = next(call).challenge
    q.put(threads_pb2.GetTokenRequest(signature=ident.sign(challenge)))
    token = next(call).token
    q.put(None)
    return token


def status(call, *args, **kwargs) -> tuple[grpc.StatusCode, str]:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as info:
        call(*args, timeout=20, **kwargs)
    return info.value.code(), info.value.details()


def new_db(channel: grpc.Channel, md: list[tuple[str, str]]) -> bytes:
    tid = keys.new_thread_id()
    threads_pb2_grpc.APIStub(channel).NewDB(threads_pb2.NewDBRequest(dbID=tid), metadata=md)
    return tid


def test_matrix_with_keys(tmp_path: Path, config_path: Path) -> None:
    with running_hub(tmp_path) as (hub, channel):
        # First start: an account key and its secret were written for the local CLI.
        cfg = tomllib.loads(config_path.read_text())
        secret = (config_path.parent / cfg["api_secret_file"]).read_text().strip()
        account = key_md(cfg["api_key"], secret)
        buckets = bucketsd_pb2_grpc.APIServiceStub(channel)

        tid = new_db(channel, account)
        created = buckets.Create(
            bucketsd_pb2.CreateRequest(name="mine"), metadata=account + thread_md(tid)
        )
        auth = hub.auth
        assert auth is not None
        acct = auth.accounts.get_key(cfg["api_key"])
        assert acct is not None
        assert created.root.owner == auth.accounts.account(acct.account).pubkey
        listing = bucketsd_pb2.ListRequest()

        # no key
        assert status(buckets.List, listing, metadata=thread_md(tid)) == (
            Code.UNAUTHENTICATED,
            "Session or API key required",
        )
        # bad signature
        _, wrong = keys.new_api_key()
        bad_sig = key_md(cfg["api_key"], wrong)
        assert status(buckets.List, listing, metadata=bad_sig + thread_md(tid)) == (
            Code.UNAUTHENTICATED,
            "Bad API key signature",
        )
        # expired signature
        expired = key_md(cfg["api_key"], secret, lifetime=-1)
        assert status(buckets.List, listing, metadata=expired + thread_md(tid)) == (
            Code.UNAUTHENTICATED,
            "Bad API key signature",
        )

        # user key without a token
        uk = auth.accounts.create_key(acct.account, KEY_TYPE_USER)
        user = key_md(uk.key, uk.secret)
        assert status(buckets.List, listing, metadata=user + thread_md(tid)) == (
            Code.UNAUTHENTICATED,
            "Token required",
        )

        # user A's token on user B's thread
        alice, bob = keys.Identity.generate(), keys.Identity.generate()
        ta, tb = get_token(channel, alice, user), get_token(channel, bob, user)
        tid_b = new_db(channel, user + bearer(tb))
        bobs = buckets.Create(
            bucketsd_pb2.CreateRequest(name="bobs"), metadata=user + bearer(tb) + thread_md(tid_b)
        )
        assert bobs.root.owner == bob.public_key_string()
        intruder = bucketsd_pb2.CreateRequest(name="intruder")
        for call, req in ((buckets.List, listing), (buckets.Create, intruder)):
            assert status(call, req, metadata=user + bearer(ta) + thread_md(tid_b)) == (
                Code.PERMISSION_DENIED,
                "User does not own thread",
            )
        # Cross-user methods pass the thread check; bucket roles then deny writes.
        push = iter(
            [
                bucketsd_pb2.PushPathRequest(
                    header=bucketsd_pb2.PushPathRequest.Header(key=bobs.root.key, path="evil.txt")
                ),
                bucketsd_pb2.PushPathRequest(chunk=b"x"),
            ]
        )
        with pytest.raises(grpc.RpcError) as denied:
            list(buckets.PushPath(push, metadata=user + bearer(ta) + thread_md(tid_b), timeout=20))
        code = denied.value.code()
        assert code in (Code.UNKNOWN, Code.PERMISSION_DENIED)
        # The account key does not own the user's thread either.
        assert status(buckets.List, listing, metadata=account + thread_md(tid_b)) == (
            Code.PERMISSION_DENIED,
            "User does not own thread",
        )

        # tampered and foreign tokens
        header, _, sig = tb.split(".")
        other_claims = keys.issue_token(keys.Identity.generate(), alice.public_key_string())
        tampered = f"{header}.{other_claims.split('.')[1]}.{sig}"
        for bad in (tampered, other_claims):
            md = user + bearer(bad) + thread_md(tid_b)
            assert status(buckets.List, listing, metadata=md) == (
                Code.UNAUTHENTICATED,
                "invalid thread token",
            )

        # After every refusal the hub still serves, and nothing changed.
        bob_md = user + bearer(tb) + thread_md(tid_b)
        names = [r.name for r in buckets.List(listing, metadata=bob_md, timeout=20).roots]
        assert names == ["bobs"]
        root_req = bucketsd_pb2.RootRequest(key=bobs.root.key)
        root = buckets.Root(root_req, metadata=bob_md, timeout=20).root
        assert root.path == bobs.root.path
        mine = buckets.List(listing, metadata=account + thread_md(tid), timeout=20).roots
        assert [r.name for r in mine] == ["mine"]


def test_auth_none_mode(tmp_path: Path, config_path: Path) -> None:
    with running_hub(tmp_path, auth="none") as (_, channel):
        assert not config_path.exists()  # no keys, so no credentials to write
        buckets = bucketsd_pb2_grpc.APIServiceStub(channel)
        tid = new_db(channel, [])
        anon = buckets.Create(
            bucketsd_pb2.CreateRequest(name="open"), metadata=thread_md(tid), timeout=20
        )
        assert anon.root.owner == ""
        ident = keys.Identity.generate()
        token = get_token(channel, ident, [])
        owned = buckets.Create(
            bucketsd_pb2.CreateRequest(name="owned"),
            metadata=thread_md(tid) + bearer(token),
            timeout=20,
        )
        assert owned.root.owner == ident.public_key_string()
        foreign = keys.issue_token(keys.Identity.generate(), ident.public_key_string())
        assert status(
            buckets.List, bucketsd_pb2.ListRequest(), metadata=thread_md(tid) + bearer(foreign)
        ) == (Code.UNAUTHENTICATED, "invalid thread token")
        roots = buckets.List(bucketsd_pb2.ListRequest(), metadata=thread_md(tid), timeout=20).roots
        names = sorted(r.name for r in roots)
        assert names == ["open", "owned"]
