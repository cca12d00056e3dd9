"""Per-path roles (spec 5.3): the rule functions of ``bucketfs.hub.auth``, then the same rules
enforced by the whole hub for two identities holding thread tokens."""

from __future__ import annotations

import contextlib
import queue
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from bucketfs import keys
from bucketfs.hub import auth
from bucketfs.hub.accounts import DEV, KEY_TYPE_USER, Accounts
from bucketfs.hub.errors import HubError
from bucketfs.hub.server import Hub, HubConfig
from bucketfs.pb import bucketsd_pb2, bucketsd_pb2_grpc, threads_pb2, threads_pb2_grpc

pytestmark = pytest.mark.timeout(120)

OWNER = keys.Identity.generate().public_key_string()
ALICE = keys.Identity.generate().public_key_string()
BOB = keys.Identity.generate().public_key_string()


@dataclass
class Meta:
    """A metadata entry shaped like the buckets store's (an object with ``.roles``)."""

    roles: dict[str, int] = field(default_factory=dict)


META = {
    "": Meta({"*": auth.ROLE_READER, OWNER: auth.ROLE_ADMIN}),
    "docs": Meta({ALICE: auth.ROLE_WRITER}),
    "docs/a.txt": Meta({}),
    "private": Meta({}),
    "team": Meta({BOB: auth.ROLE_ADMIN}),
    "team/x": Meta({}),
}


def test_effective_role_is_max_over_ancestors() -> None:
    assert auth.effective_role(META, "docs/a.txt", ALICE) == auth.ROLE_WRITER
    assert auth.effective_role(META, "docs/a.txt", BOB) == auth.ROLE_READER  # "*" at the root
    assert auth.effective_role(META, "team/x/deep", BOB) == auth.ROLE_ADMIN
    assert auth.effective_role(META, "/docs/", ALICE) == auth.ROLE_WRITER
    assert auth.effective_role(META, "other", None) == auth.ROLE_READER
    assert auth.effective_role({}, "x", ALICE) == auth.ROLE_NONE
    # Plain role dicts and {"roles": ...} dicts work as entries too.
    assert auth.effective_role({"": {ALICE: 3}}, "a/b", ALICE) == auth.ROLE_ADMIN
    assert auth.effective_role({"a": {"roles": {"*": 2}}}, "a/b", None) == auth.ROLE_WRITER


def _denied(fn, *args) -> bool:  # type: ignore[no-untyped-def]
    try:
        fn(*args)
    except HubError as exc:
        assert exc.code == grpc.StatusCode.UNKNOWN
        assert exc.message == "app denied net record body: permission denied"
        return True
    return False


def test_check_write() -> None:
    cw = auth.check_write
    # Writers update existing entries; only the owner adds new paths.
    assert not _denied(cw, OWNER, ALICE, META, "docs/a.txt", "update")
    assert _denied(cw, OWNER, ALICE, META, "docs/new.txt", "update")
    assert not _denied(cw, OWNER, OWNER, META, "docs/new.txt", "update")
    # Readers cannot write; anonymous callers neither.
    assert _denied(cw, OWNER, BOB, META, "docs/a.txt", "update")
    assert _denied(cw, OWNER, None, META, "docs/a.txt", "update")
    # Roles and deletes need Admin.
    assert _denied(cw, OWNER, ALICE, META, "docs/a.txt", "roles")
    assert _denied(cw, OWNER, ALICE, META, "docs/a.txt", "delete")
    assert not _denied(cw, OWNER, BOB, META, "team/x", "roles")
    assert not _denied(cw, OWNER, BOB, META, "team/x", "delete")
    # An ownerless bucket (created without a token) allows everything.
    assert not _denied(cw, "", None, META, "anything", "roles")
    with pytest.raises(ValueError):
        cw(OWNER, OWNER, META, "x", "chmod")


def test_read_filter_and_owner_checks() -> None:
    private = {"": Meta({OWNER: auth.ROLE_ADMIN}), "shared": Meta({ALICE: auth.ROLE_READER})}
    assert set(auth.read_filter(OWNER, ALICE, private)) == {"shared"}
    assert auth.read_filter(OWNER, BOB, private) == {}
    assert set(auth.read_filter(OWNER, OWNER, private)) == {"", "shared"}
    assert auth.can_read(OWNER, ALICE, private, "shared/deep/file")
    assert not auth.can_read(OWNER, ALICE, private, "other")
    assert auth.can_read("", None, private, "other")
    assert _denied(auth.check_owner, OWNER, ALICE)
    assert not _denied(auth.check_owner, OWNER, OWNER)
    assert not _denied(auth.check_owner, "", ALICE)


# --- through the hub --------------------------------------------------------------------------


@contextlib.contextmanager
def hub_channel(tmp_path: Path) -> Iterator[tuple[Hub, grpc.Channel]]:
    hub = Hub(HubConfig(listen="127.0.0.1:0", data_dir=tmp_path / "data", gc_interval=0))
    address = hub.start()
    channel = grpc.insecure_channel(address)
    try:
        yield hub, channel
    finally:
        channel.close()
        hub.stop(grace=1)


def _token(channel: grpc.Channel, ident: keys.Identity, md: list[tuple[str, str]]) -> str:
    q: queue.Queue[threads_pb2.GetTokenRequest | None] = queue.Queue()
    call = threads_pb2_grpc.APIStub(channel).GetToken(iter(q.get, None), metadata=md, timeout=20)
    q.put(threads_pb2.GetTokenRequest(key=ident.public_key_string()))
    q.put(threads_pb2.GetTokenRequest(signature=ident.sign(next(call).challenge)))
    token = next(call).token
    q.put(None)
    return token


def _push(stub, md, key: str, path: str, data: bytes) -> bucketsd_pb2.Root:  # type: ignore[no-untyped-def]
    reqs = [
        bucketsd_pb2.PushPathRequest(
            header=bucketsd_pb2.PushPathRequest.Header(key=key, path=path)
        ),
        bucketsd_pb2.PushPathRequest(chunk=data),
    ]
    events = list(stub.PushPath(iter(reqs), metadata=md, timeout=20))
    return events[-1].event.root


def test_roles_enforced_by_the_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUCKETFS_CONFIG", str(tmp_path / "config.toml"))
    with hub_channel(tmp_path) as (hub, channel):
        assert isinstance(hub.auth, auth.HubAuth)
        accounts: Accounts = hub.auth.accounts
        account = accounts.create_account(DEV, "app").id
        uk = accounts.create_key(account, KEY_TYPE_USER)
        msg, sig = keys.sign_api_request(uk.secret)
        key_md = [
            ("x-textile-api-key", uk.key),
            ("x-textile-api-sig-msg", msg),
            ("x-textile-api-sig", sig),
        ]
        owner_id, alice_id, eve_id = (keys.Identity.generate() for _ in range(3))
        tokens = {
            n: _token(channel, i, key_md)
            for n, i in (("owner", owner_id), ("alice", alice_id), ("eve", eve_id))
        }
        tid = keys.new_thread_id()
        thread = [("x-textile-thread", keys.thread_id_to_string(tid))]

        def md(who: str) -> list[tuple[str, str]]:
            return key_md + thread + [("authorization", f"bearer {tokens[who]}")]

        threads_pb2_grpc.APIStub(channel).NewDB(
            threads_pb2.NewDBRequest(dbID=tid), metadata=md("owner"), timeout=20
        )
        stub = bucketsd_pb2_grpc.APIServiceStub(channel)
        root = stub.Create(bucketsd_pb2.CreateRequest(name="b"), metadata=md("owner"), timeout=20)
        bkey = root.root.key
        _push(stub, md("owner"), bkey, "shared.txt", b"v1")
        stub.PushPathAccessRoles(
            bucketsd_pb2.PushPathAccessRolesRequest(
                key=bkey,
                path="shared.txt",
                roles={alice_id.public_key_string(): auth.ROLE_WRITER},
            ),
            metadata=md("owner"),
            timeout=20,
        )
        # Alice (Writer) may replace the shared file ...
        after = _push(stub, md("alice"), bkey, "shared.txt", b"v2 by alice")
        # ... but not add a new path, nor change roles; Eve (only "*" Reader) may not write.
        for who, path in (("alice", "new.txt"), ("eve", "shared.txt")):
            with pytest.raises(grpc.RpcError) as info:
                _push(stub, md(who), bkey, path, b"nope")
            assert "permission denied" in info.value.details()
        with pytest.raises(grpc.RpcError) as info:
            stub.PushPathAccessRoles(
                bucketsd_pb2.PushPathAccessRolesRequest(
                    key=bkey, path="shared.txt", roles={eve_id.public_key_string(): 3}
                ),
                metadata=md("alice"),
                timeout=20,
            )
        assert "permission denied" in info.value.details()
        # Eve can read (public bucket: "*" is Reader) but not delete the bucket: Remove is not a
        # cross-user method, so the thread check refuses it before the bucket's owner check.
        data = b"".join(
            c.chunk
            for c in stub.PullPath(
                bucketsd_pb2.PullPathRequest(key=bkey, path="shared.txt"),
                metadata=md("eve"),
                timeout=20,
            )
        )
        assert data == b"v2 by alice"
        with pytest.raises(grpc.RpcError) as info:
            stub.Remove(bucketsd_pb2.RemoveRequest(key=bkey), metadata=md("eve"), timeout=20)
        assert info.value.details() == "User does not own thread"
        # The refusals changed nothing.
        now = stub.Root(bucketsd_pb2.RootRequest(key=bkey), metadata=md("owner"), timeout=20)
        assert now.root.path == after.path
