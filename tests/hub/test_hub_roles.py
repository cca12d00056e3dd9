"""Ownership and path roles (spec 5.3) with thread tokens in local mode: the owner may do
everything, others read through ``*`` and write only where a role allows it."""

from __future__ import annotations

import grpc
import pytest
from hub_helpers import Api, TokenApi, get_token

from bucketfs import keys
from bucketfs.pb import bucketsd_pb2 as pb
from bucketfs.pb import fs_pb2

pytestmark = pytest.mark.timeout(120)

DENIED = "app denied net record body: permission denied"


def _fails(fn, code: grpc.StatusCode, contains: str) -> None:
    with pytest.raises(grpc.RpcError) as err:
        fn()
    assert err.value.code() == code, err.value.details()
    assert contains in err.value.details()


def test_owner_and_roles(api: Api) -> None:
    alice, bob = keys.Identity.generate(), keys.Identity.generate()
    a = TokenApi(api.channel, api.thread, get_token(api.channel, alice))
    b = TokenApi(api.channel, api.thread, get_token(api.channel, bob))
    created = a.create("shared").root
    key = created.key
    assert created.owner == alice.public_key_string()
    roles = dict(created.path_metadata[""].roles)
    assert roles == {"*": 1, alice.public_key_string(): 3}
    a.push(key, "doc", b"v1")
    a.push(key, "private/notes", b"n")

    # Others read through "*" ...
    assert b.pull(key, "doc") == b"v1"
    assert api.pull(key, "doc") == b"v1"  # no token at all
    # ... but may not add paths, change files without a role, or delete the bucket.
    _fails(lambda: b.push(key, "new", b"x"), grpc.StatusCode.UNKNOWN, DENIED)
    _fails(lambda: b.push(key, "doc", b"v2"), grpc.StatusCode.UNKNOWN, DENIED)
    _fails(
        lambda: b.push_paths(key, [("doc", b"v2"), ("doc", b"")], paths=("doc",)),
        grpc.StatusCode.PERMISSION_DENIED,
        "verifying bucket update: ",
    )
    _fails(
        lambda: b.call("RemovePath", pb.RemovePathRequest(key=key, path="doc")),
        grpc.StatusCode.UNKNOWN,
        DENIED,
    )
    _fails(
        lambda: b.fscall("Mkdir", fs_pb2.MkdirRequest(key=key, path="newdir")),
        grpc.StatusCode.UNKNOWN,
        DENIED,
    )
    _fails(lambda: b.call("Remove", pb.RemoveRequest(key=key)), grpc.StatusCode.UNKNOWN, DENIED)
    assert a.pull(key, "doc") == b"v1"

    # Writer on "doc" lets bob replace that file, and only that.
    a.call(
        "PushPathAccessRoles",
        pb.PushPathAccessRolesRequest(key=key, path="doc", roles={bob.public_key_string(): 2}),
    )
    b.push(key, "doc", b"v2")
    assert a.pull(key, "doc") == b"v2"
    _fails(lambda: b.push(key, "private/notes", b"x"), grpc.StatusCode.UNKNOWN, DENIED)

    # Hiding a path from everyone but the owner: drop "*" and give it no other role.
    a.call(
        "PushPathAccessRoles",
        pb.PushPathAccessRolesRequest(key=key, path="", roles={"*": 0}),
    )
    visible = b.root(key).path_metadata
    assert "private/notes" not in visible and "doc" in visible
    _fails(lambda: b.pull(key, "private/notes"), grpc.StatusCode.UNKNOWN, "could not resolve")
    a.call("Remove", pb.RemoveRequest(key=key))
