"""Private (encrypted) buckets over loopback with the generated stubs (spec section 7)."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from hub_helpers import Api, TokenApi, get_token
from hubproc import Hub, running_hub

from bucketfs import keys
from bucketfs.hub import dcrypto
from bucketfs.ipfs import dagpb
from bucketfs.ipfs.blockstore import FSBlockstore
from bucketfs.ipfs.cid import CID
from bucketfs.ipfs.importer import import_bytes
from bucketfs.ipfs.reader import FileReader
from bucketfs.ipfs.unixfs import DataType, decode_data
from bucketfs.pb import bucketsd_pb2 as pb
from bucketfs.pb import fs_pb2

pytestmark = pytest.mark.timeout(180)

MARKER = b"PLAINTEXT-MARKER-7f3a"  # must never appear in a stored block


def _create(api: Api, name: str = "secret") -> pb.CreateResponse:
    return api.call("Create", pb.CreateRequest(name=name, private=True))


def _blocks(hub: Hub) -> FSBlockstore:
    return FSBlockstore(hub.data_dir / "blockstore", fsync=False)


def _all_block_bytes(hub: Hub) -> list[bytes]:
    store = _blocks(hub)
    return [store.get(cid) for cid in store.iter_cids()]


def _marker_file(size: int) -> bytes:
    """``size`` bytes that repeat MARKER (so any plaintext block would contain it)."""
    return (MARKER * (size // len(MARKER) + 1))[:size]


# -- the dcrypto format ------------------------------------------------------------------------


def test_dcrypto_layout_matches_spec() -> None:
    """Spec 7.2: version 0 LE, IV, AES-256-CTR with the IV as a 128-bit BE counter, then
    HMAC-SHA512 over IV || ciphertext; 84 bytes of overhead."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    key = bytes(range(64))
    iv = bytes([0xFF] * 15 + [0xFE])  # the counter wraps past 2**128 - 1 within 3 blocks
    plain = b"x" * 40
    blob = dcrypto.encrypt(key, plain, iv)
    assert len(blob) == len(plain) + dcrypto.OVERHEAD == len(plain) + 84
    assert blob[:4] == b"\0\0\0\0" and blob[4:20] == iv
    # The keystream, built block by block from the spec's words: AES-ECB of IV, IV+1, ...
    ecb = Cipher(algorithms.AES(key[:32]), modes.ECB()).encryptor()
    n = int.from_bytes(iv, "big")
    stream = b"".join(
        ecb.update(((n + i) % 2**128).to_bytes(16, "big")) for i in range(3)
    )
    expected_ct = bytes(a ^ b for a, b in zip(plain, stream, strict=False))
    assert blob[20:-64] == expected_ct
    import hmac

    assert blob[-64:] == hmac.new(key[32:], iv + expected_ct, hashlib.sha512).digest()
    assert dcrypto.decrypt(key, blob) == plain


def test_dcrypto_streaming_decrypt_checks_mac_before_any_plaintext() -> None:
    key = dcrypto.new_key()
    plain = os.urandom(100_000)
    blob = dcrypto.encrypt(key, plain)
    pieces = [blob[i : i + 777] for i in range(0, len(blob), 777)]
    out = b"".join(dcrypto.decrypt_pieces(key, lambda: iter(pieces), len(blob)))
    assert out == plain
    tampered = bytearray(blob)
    tampered[-1] ^= 1
    gen = dcrypto.decrypt_pieces(key, lambda: iter([bytes(tampered)]), len(tampered))
    with pytest.raises(dcrypto.DecryptError):
        next(gen)  # fails before yielding a single plaintext byte
    with pytest.raises(dcrypto.DecryptError):
        dcrypto.decrypt(dcrypto.new_key(), blob)  # wrong key


# -- the bucket ----------------------------------------------------------------------------------


def test_create_private_bucket(hub: Hub, api: Api) -> None:
    made = _create(api)
    root = made.root
    link_key = base64.b64decode(root.link_key)
    assert len(link_key) == 64
    file_key = base64.b64decode(root.path_metadata[""].key)
    assert len(file_key) == 64 and file_key != link_key
    assert root.metadata.key == root.path_metadata[""].key
    # The seed is stored encrypted with the file key; the response carries the plaintext.
    assert len(made.seed) == 32
    seed_cid = CID.decode(made.seed_cid)
    stored = _blocks(hub).get(seed_cid)
    assert len(stored) == 32 + 84 and dcrypto.decrypt(file_key, stored) == made.seed
    # The root is an encrypted directory node: no links, UnixFS File data = ciphertext.
    root_cid = CID.decode(root.path.removeprefix("/ipfs/"))
    assert root_cid.version == 1
    node = dagpb.decode(_blocks(hub).get(root_cid))
    assert node.links == ()
    ufs = decode_data(node.data)
    assert ufs.type == DataType.File and ufs.filesize == len(ufs.data)
    plain_dir = dagpb.decode(dcrypto.decrypt(link_key, ufs.data))
    assert [link.name for link in plain_dir.links] == [b".textileseed"]
    assert plain_dir.links[0].cid == seed_cid
    # Listing decrypts: the seed is listed, and pulls back as the plaintext seed.
    listing = api.ls(root.key)
    assert [i.name for i in listing.item.items] == [".textileseed"]
    assert listing.item.is_dir and listing.item.cid == str(CID.of_dagpb(dagpb.encode(plain_dir)))
    assert api.pull(root.key, ".textileseed") == made.seed


@pytest.mark.parametrize("size", [0, 5, 262_144 * 3 + 1000])
def test_push_pull_round_trip(hub: Hub, api: Api, size: int) -> None:
    key = _create(api).root.key
    data = _marker_file(size)
    final = api.push(key, "plain-dir-name/plain-sub-name/file.bin", data)[-1].event
    assert final.path.startswith("/ipfs/")
    assert api.pull(key, "plain-dir-name/plain-sub-name/file.bin") == data
    item = api.ls(key, "plain-dir-name/plain-sub-name").item.items[0]
    assert item.name == "file.bin" and not item.is_dir
    assert item.file_size == size  # the plaintext length
    # ListPath's CID is the ciphertext DAG's: importing the stored ciphertext gives it.
    assert final.path == f"/ipfs/{item.cid}"
    store = _blocks(hub)
    reader = FileReader(store, CID.decode(item.cid))
    assert reader.size == size + 84
    ct = reader.read(0, reader.size)
    file_key = base64.b64decode(api.root(key).path_metadata[""].key)
    assert dcrypto.decrypt(file_key, ct) == data
    assert str(import_bytes(ct, store).cid) == item.cid
    if size:
        assert not any(MARKER in block for block in _all_block_bytes(hub))
    # Names long enough that random ciphertext cannot contain them by chance (a 3-byte name did,
    # in about one run in twenty).
    names = (b"file.bin", b"plain-dir-name", b"plain-sub-name")
    assert not any(n in block for block in _all_block_bytes(hub) for n in names)


def test_push_paths_interleaved_private(hub: Hub, api: Api) -> None:
    key = _create(api).root.key
    a, b = _marker_file(300_000), _marker_file(70)
    chunks = [("a.txt", a[:100_000]), ("d/b.txt", b), ("a.txt", a[100_000:]),
              ("d/b.txt", b""), ("a.txt", b""), ("empty", b"")]  # fmt: skip
    replies = api.push_paths(key, chunks)
    assert sorted(r.path for r in replies) == ["a.txt", "d/b.txt", "empty"]
    assert api.pull(key, "a.txt") == a and api.pull(key, "d/b.txt") == b
    assert api.pull(key, "empty") == b""
    by_path = {r.path: r.cid for r in replies}
    listed = {i.name: i.cid for i in api.ls(key).item.items}
    assert listed["a.txt"] == by_path["a.txt"]
    assert not any(MARKER in block for block in _all_block_bytes(hub))


def test_move_remove_and_pull_directory(hub: Hub, api: Api) -> None:
    key = _create(api).root.key
    api.push(key, "a/one.txt", b"one")
    api.push(key, "a/two.txt", b"two")
    api.call("MovePath", pb.MovePathRequest(key=key, from_path="a/one.txt", to_path="b/1.txt"))
    assert api.pull(key, "b/1.txt") == b"one"
    assert api.names(key, "a") == ["two.txt"]
    api.call("MovePath", pb.MovePathRequest(key=key, from_path="a", to_path="b"))  # mv into b
    assert api.names(key, "b") == ["1.txt", "a"]
    assert api.pull(key, "b/a/two.txt") == b"two"
    with pytest.raises(grpc.RpcError) as err:
        api.pull(key, "b/a")
    assert err.value.code() == grpc.StatusCode.UNKNOWN
    assert "node is a directory" in err.value.details()
    root = api.root(key).path
    resp = api.call("RemovePath", pb.RemovePathRequest(key=key, path="b/a", root=root))
    assert api.names(key, "b") == ["1.txt"] and resp.root.path != root
    with pytest.raises(grpc.RpcError) as err:
        api.call("RemovePath", pb.RemovePathRequest(key=key, path="b/a"))
    assert err.value.details().endswith("no link by that name")


def test_access_roles_rotate_keys_and_reencrypt(hub: Hub, api: Api) -> None:
    key = _create(api).root.key
    api.push(key, "shared/doc.txt", b"doc")
    api.push(key, "shared/deep/x.txt", b"x" * 300_000)
    before = api.root(key)
    old_cid = {i.name: i.cid for i in api.ls(key, "shared").item.items}["doc.txt"]
    reader = keys.Identity.generate().public_key_string()
    api.call(
        "PushPathAccessRoles",
        pb.PushPathAccessRolesRequest(key=key, path="shared", roles={reader: 1}),
    )
    after = api.root(key)
    new_key = after.path_metadata["shared"].key
    assert new_key and new_key != before.path_metadata[""].key
    assert after.path != before.path
    new_cid = {i.name: i.cid for i in api.ls(key, "shared").item.items}["doc.txt"]
    assert new_cid != old_cid  # re-encrypted with the new key
    file_ct = FileReader(_blocks(hub), CID.decode(new_cid))
    assert dcrypto.decrypt(base64.b64decode(new_key), file_ct.read(0, file_ct.size)) == b"doc"
    assert api.pull(key, "shared/doc.txt") == b"doc"
    assert api.pull(key, "shared/deep/x.txt") == b"x" * 300_000
    # A file moved out of the re-keyed directory is re-encrypted with its new path's key.
    api.call("MovePath", pb.MovePathRequest(key=key, from_path="shared/doc.txt", to_path="top"))
    assert api.pull(key, "top") == b"doc"
    # Rotating the root key re-encrypts everything, the seed included.
    rotate_root = pb.PushPathAccessRolesRequest(key=key, path="", roles={reader: 1})
    api.call("PushPathAccessRoles", rotate_root)
    assert api.pull(key, "top") == b"doc"
    assert api.pull(key, "shared/deep/x.txt") == b"x" * 300_000
    assert len(api.pull(key, ".textileseed")) == 32


def test_set_path_encrypts_the_dag(hub: Hub, api: Api) -> None:
    pub = api.create("public").root.key
    api.push(pub, "src/" + "f.txt", MARKER)
    src_cid = {i.name: i.cid for i in api.ls(pub).item.items}["src"]
    key = _create(api).root.key
    api.call("SetPath", pb.SetPathRequest(key=key, path="copy", cid=src_cid))
    assert api.pull(key, "copy/f.txt") == MARKER
    copy = {i.name: i for i in api.ls(key).item.items}["copy"]
    assert copy.is_dir and copy.cid != src_cid  # the plain decrypted node, not the public DAG


def test_links_carry_the_token_and_gc_keeps_private_blocks(tmp_path: Path) -> None:
    with running_hub(tmp_path, auth="none", extra_args=["--gc-grace", "0"]) as hub:
        with hub.channel() as channel:
            plain = Api.new_thread(channel)
            ident = keys.Identity.generate()
            api = TokenApi(channel, plain.thread, get_token(channel, ident))
            made = _create(api)
            key = made.root.key
            assert made.root.owner == ident.public_key_string()
            assert dict(made.root.path_metadata[""].roles) == {made.root.owner: 3}
            assert made.links.url.endswith(f"?token={api.token}")
            links = api.call("Links", pb.LinksRequest(key=key))
            assert links.ipns.endswith(f"?token={api.token}")
            api.push(key, "a/b/c.txt", b"kept" * 100_000)
            api.push(key, "a/b/c.txt", b"new")  # the old file becomes garbage
        hub.stop()
        fsck = subprocess.run(
            [sys.executable, "-m", "bucketfs.hub.fsck", str(hub.data_dir)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert fsck.returncode == 0, fsck.stdout + fsck.stderr
        hub.start()  # the start-up GC sweeps with grace 0
        with hub.channel() as channel:
            api = TokenApi(channel, plain.thread, api.token)
            assert api.pull(key, "a/b/c.txt") == b"new"
            assert api.pull(key, ".textileseed") == made.seed


def test_fs_service_refuses_private_buckets(api: Api) -> None:
    key = _create(api).root.key
    with pytest.raises(grpc.RpcError) as err:
        api.fscall("Mkdir", fs_pb2.MkdirRequest(key=key, path="d"))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "private" in err.value.details()
    assert api.names(key) == [".textileseed"]  # the refused call changed nothing
