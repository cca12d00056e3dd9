"""``api.bucketsd.pb.APIService``: Textile's buckets API (spec sections 5 and 6).

Deliberate differences from Textile, all in the direction of linear cost or clearer errors:

- PushPaths builds the new tree in memory and stores each changed directory once at the end
  (Textile re-encodes the path to the root per file). Its per-file responses carry a Root
  *without* ``path_metadata`` except the pushed path's own entry: Textile sends every entry in
  every response, which makes pushing n files cost O(n²) bytes. The root ``path`` of a per-file
  response is the root as last computed: exact for the final file (its response is held back
  until the stream ends, then sent with the saved root); when the client pauses it is
  recomputed, at most as often as keeps the total cost linear (see ``_paused_root``); between
  two files of a fast stream it is the previous computed root. Intermediate roots are never
  saved in Textile either, so no client can use them for a fast-forward check.
- Paths with ``..``, NUL or over 4096 bytes are rejected (INVALID_ARGUMENT), see ``paths``.
- MovePath refuses to move a directory into its own subtree (INVALID_ARGUMENT) where Textile
  rearranged the subtree, and records the metadata entry at the final destination path.
- Private (encrypted) buckets follow spec section 7 (see ``private`` and ``dcrypto``). Where
  Textile's MovePath would leave a moved file encrypted under a key its new path does not
  have, the moved files are re-encrypted with the destination's key.
- There is no IPFS network: ``SetPath``/``Create(bootstrap_cid)`` accept only DAGs whose
  blocks are already in this hub (pushed before, or sent with ``bucketfs.pb.FS/PutBlocks``).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc

from bucketfs import metrics
from bucketfs.hub import access, dcrypto, tree
from bucketfs.hub.errors import (
    ARCHIVING_DISABLED,
    HEADER_REQUIRED,
    INVALID_REQUEST,
    NODE_IS_DIR,
    HubError,
    check_active,
    check_size,
    grpc_errors,
    invalid,
    unknown,
)
from bucketfs.hub.listing import inspect, nearest, path_item, root_pb
from bucketfs.hub.paths import (
    SEED_NAME,
    basename,
    clean_path,
    join,
    new_bucket_key,
    parse_path,
    thread_from_metadata,
)
from bucketfs.hub.private import (
    PrivateDirs,
    dirs_of,
    encrypt_dag,
    file_key,
    key_text,
    keys_of,
    plain_pieces,
    reencrypt,
)
from bucketfs.hub.pushing import FileSlots, StreamingImport
from bucketfs.hub.store import Bucket, Changes, HubStore, Meta, dirs_for, now_ns
from bucketfs.hub.tree import TreeEditor, new_root
from bucketfs.ipfs.blockstore import BlockNotFound
from bucketfs.ipfs.cid import CID, InvalidCID
from bucketfs.pb import bucketsd_pb2 as pb
from bucketfs.pb import bucketsd_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

BYTES_IN = metrics.BYTES.labels("hub", "in")
BYTES_OUT = metrics.BYTES.labels("hub", "out")
PULL_CHUNK = 32 * 1024  # spec 5.6 PullPath: chunks of at most 32768 bytes
PROGRESS_STEP = 1 << 20  # a PushPath progress event after at least this many more bytes
#: ...and at most this often: a sync gRPC handler waits for each response it yields to be
#: sent, so an event per MiB cost a round trip through the completion queue per MiB (about a
#: third of the time of a fast 1 GiB push). Clients show progress; a few per second suffice.
PROGRESS_INTERVAL = 0.25
HOLD_RELEASE_SECONDS = 0.2  # a held PushPaths response is sent if the client pauses this long
SEED_SIZE = 32


def resolve(store: HubStore, root: CID, rel: str) -> tuple[CID, int | None]:
    """The node at path ``rel`` under a plain DAG ``root`` and the Tsize its parent records
    (None for the root). Missing paths raise UNKNOWN with the IPFS resolver text (spec 13).
    """
    return tree.resolve(store.blocks, root, rel)


def resolve_in(store: HubStore, bucket: Bucket, rel: str) -> tuple[CID, int | None]:
    """:func:`resolve` inside a bucket (decrypting directories of a private bucket)."""
    return tree.resolve(store.blocks, bucket.root_cid, rel, dirs_for(bucket))


def private_dirs(bucket: Bucket) -> PrivateDirs | None:
    """The directory codec of a private bucket, None for a public one."""
    return dirs_of(bucket.link_key) if bucket.link_key else None


def rechunk(pieces: Iterator[bytes], size: int) -> Iterator[bytes]:
    """Cut a stream of byte pieces (file leaves) into messages of exactly ``size`` bytes
    (the last one shorter), slicing through a memoryview instead of shifting a buffer."""
    carry = b""
    for piece in pieces:
        start = 0
        if carry:
            start = size - len(carry)
            carry += piece[:start]
            if len(carry) < size:
                continue
            yield carry
            carry = b""
        view = memoryview(piece)
        end = len(view)
        while end - start >= size:
            yield bytes(view[start : start + size])
            start += size
        carry = bytes(view[start:])
    if carry:
        yield carry


def parse_cid(text: str, what: str) -> CID:
    """A CID from a request, or UNKNOWN ``invalid <what> cid: <err>`` (spec 13)."""
    try:
        return CID.decode(text.removeprefix("/ipfs/"))
    except (InvalidCID, ValueError) as exc:
        raise unknown(f"invalid {what} cid: {exc}") from None


EMPTY_DIR_BLOCK = b"\x0a\x02\x08\x01"  # the empty UnixFS directory (unixfs.md 2.5)
WELL_KNOWN = {
    CID.of_dagpb(EMPTY_DIR_BLOCK, 0): EMPTY_DIR_BLOCK,
    CID.of_dagpb(EMPTY_DIR_BLOCK, 1): EMPTY_DIR_BLOCK,
}


def require_dag(store: HubStore, cid: CID, what: str) -> tuple[int, str]:
    """Check the root block of a DAG is here; returns (tsize, kind).

    The empty directory is always available (spec 5.6: SetPath to its CID is how Textile
    clients create a directory), as an IPFS node would fetch it from anywhere.
    """
    if cid in WELL_KNOWN and not store.blocks.has(cid):
        store.blocks.put(cid, WELL_KNOWN[cid])
    try:
        facts = inspect(store.blocks, cid)
    except BlockNotFound:
        raise unknown(
            f"invalid {what} cid: {cid} is not in this hub (push its blocks with FS/PutBlocks)"
        ) from None
    except ValueError as exc:
        raise unknown(f"invalid {what} cid: {exc}") from None
    return facts.tsize, facts.kind


class BucketsService(pb_grpc.APIServiceServicer):
    """The servicer; one instance serves every call (thread-safe through HubStore)."""

    def __init__(
        self, store: HubStore, hub_auth: object = None, gateway_url: str = "http://127.0.0.1:8006"
    ) -> None:
        self.store = store
        self.auth = hub_auth
        self.gateway_url = gateway_url.rstrip("/")
        self.spill_dir = store.data_dir / "tmp"
        self.spill_dir.mkdir(exist_ok=True)

    # -- helpers ------------------------------------------------------------------------------

    def _enter(self, context: grpc.ServicerContext, owned: bool) -> tuple[str, access.Caller]:
        """Thread header, caller and thread checks common to every bucket RPC.

        ``owned``: the method is not one of spec 3.4's cross-user methods, so the caller must
        own the thread (keys mode).
        """
        thread = thread_from_metadata(context)
        caller = access.caller_of(context)
        if owned:
            access.authorize_thread(self.auth, caller, thread)
        self.store.check_thread(thread)
        return thread, caller

    def _meta_for_read(self, bucket: Bucket, caller: access.Caller) -> dict[str, Meta]:
        meta = self.store.all_metadata(bucket.key)
        return access.visible_metadata(bucket.owner, caller, meta)

    def _check_write(
        self, bucket: Bucket, caller: access.Caller, paths: list[str], change: str = "update"
    ) -> None:
        if access.is_owner(bucket.owner, caller):
            return  # skip loading every metadata entry in the common case
        meta = self.store.all_metadata(bucket.key)
        access.check_write(bucket.owner, caller, meta, paths, change)

    def _links(self, bucket: Bucket, rel: str, caller: access.Caller) -> pb.LinksResponse:
        suffix = f"/{rel}" if rel else ""
        token = getattr(caller.record, "token", None) if bucket.link_key else None
        if token:
            suffix += f"?token={token}"  # spec 5.6 Links: private buckets carry the token
        return pb.LinksResponse(
            url=f"{self.gateway_url}/thread/{bucket.thread}/buckets/{bucket.key}{suffix}",
            www="",
            ipns=f"{self.gateway_url}/ipns/{bucket.key}{suffix}",
        )

    # -- unary reads --------------------------------------------------------------------------

    @grpc_errors
    def List(self, request: pb.ListRequest, context: grpc.ServicerContext) -> pb.ListResponse:
        thread, caller = self._enter(context, owned=True)
        roots = []
        for bucket in self.store.list_buckets(thread):
            meta = self._meta_for_read(bucket, caller)
            if access.is_owner(bucket.owner, caller) or meta:
                roots.append(root_pb(bucket, meta))
        return pb.ListResponse(roots=roots)

    @grpc_errors
    def Root(self, request: pb.RootRequest, context: grpc.ServicerContext) -> pb.RootResponse:
        thread, caller = self._enter(context, owned=False)
        bucket = self.store.get_bucket(thread, request.key)
        meta = self._meta_for_read(bucket, caller)
        return pb.RootResponse(root=root_pb(bucket, meta))

    @grpc_errors
    def Links(self, request: pb.LinksRequest, context: grpc.ServicerContext) -> pb.LinksResponse:
        thread, caller = self._enter(context, owned=False)
        bucket = self.store.get_bucket(thread, request.key)
        rel = clean_path(request.path)
        if rel:
            meta = self._meta_for_read(bucket, caller)
            if nearest(meta, rel) is None:
                raise unknown(f"could not resolve path: {rel}")
            resolve_in(self.store, bucket, rel)
        return self._links(bucket, rel, caller)

    @grpc_errors
    def ListPath(
        self, request: pb.ListPathRequest, context: grpc.ServicerContext
    ) -> pb.ListPathResponse:
        thread, caller = self._enter(context, owned=False)
        bucket = self.store.get_bucket(thread, request.key)
        rel = clean_path(request.path)
        meta = self._meta_for_read(bucket, caller)
        access.check_read(bucket.owner, caller, meta, rel)
        cid, tsize = resolve_in(self.store, bucket, rel)
        if nearest(meta, rel) is None:
            raise unknown(f"could not resolve path: {rel}")
        ipfs_path = bucket.path + (f"/{rel}" if rel else "")
        name = basename(rel) if rel else bucket.name
        attrs = self.store.attrs_under(bucket.key, rel)
        if rel:
            mode, mtime = self.store.attrs(bucket.key, rel)
            attrs[rel] = (mode, mtime)
        item = path_item(
            self.store.blocks, cid, tsize, name, ipfs_path, rel, meta, attrs, True,
            private_dirs(bucket),
        )  # fmt: skip
        return pb.ListPathResponse(item=item, root=root_pb(bucket, meta))

    @grpc_errors
    def ListIpfsPath(
        self, request: pb.ListIpfsPathRequest, context: grpc.ServicerContext
    ) -> pb.ListIpfsPathResponse:
        cid, rel, tsize = self._ipfs_path(request.path)
        name = basename(rel) if rel else str(cid)
        ipfs_path = request.path.rstrip("/")
        item = path_item(self.store.blocks, cid, tsize, name, ipfs_path, None, None, None, True)
        return pb.ListIpfsPathResponse(item=item)

    def _ipfs_path(self, text: str) -> tuple[CID, str, int | None]:
        if not text.startswith("/ipfs/"):
            raise unknown(f"invalid path {text!r}: expected /ipfs/<cid>[/path]")
        head, _, rest = text[len("/ipfs/") :].partition("/")
        root = parse_cid(head, "remote")
        rel = clean_path(rest)
        try:
            cid, tsize = resolve(self.store, root, rel)
        except BlockNotFound as exc:
            raise unknown(f"could not resolve path: {text}: {exc}") from None
        return cid, rel, tsize

    # -- pulls --------------------------------------------------------------------------------

    def _stream_file(self, cid: CID) -> Iterator[bytes]:
        from bucketfs.ipfs.reader import FileReader

        facts = inspect(self.store.blocks, cid)
        if facts.kind == "dir":
            raise unknown(NODE_IS_DIR)
        if facts.kind == "symlink":
            raise unknown("node is a symlink")
        reader = FileReader(self.store.blocks, cid)
        for chunk in rechunk(reader.iter_range(0, reader.size), PULL_CHUNK):
            BYTES_OUT.inc(len(chunk))
            yield chunk

    @grpc_errors
    def PullPath(
        self, request: pb.PullPathRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.PullPathResponse]:
        thread, caller = self._enter(context, owned=False)
        bucket = self.store.get_bucket(thread, request.key)
        rel = clean_path(request.path)
        if not access.is_owner(bucket.owner, caller):
            access.check_read(bucket.owner, caller, self._meta_for_read(bucket, caller), rel)
        cid, _ = resolve_in(self.store, bucket, rel)
        dirs = private_dirs(bucket)
        if dirs is None:
            chunks = self._stream_file(cid)
        else:
            if dirs.entries(self.store.blocks, cid) is not None:
                raise unknown(NODE_IS_DIR)
            key = file_key(self.store.all_metadata(bucket.key), rel)
            chunks = rechunk(plain_pieces(self.store.blocks, cid, key), PULL_CHUNK)
        for chunk in chunks:
            yield pb.PullPathResponse(chunk=chunk)

    @grpc_errors
    def PullIpfsPath(
        self, request: pb.PullIpfsPathRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.PullIpfsPathResponse]:
        cid, _, _ = self._ipfs_path(request.path)
        for chunk in self._stream_file(cid):
            yield pb.PullIpfsPathResponse(chunk=chunk)

    # -- create / remove ----------------------------------------------------------------------

    @grpc_errors
    def Create(self, request: pb.CreateRequest, context: grpc.ServicerContext) -> pb.CreateResponse:
        thread, caller = self._enter(context, owned=True)
        bootstrap = parse_cid(request.bootstrap_cid, "bootstrap") if request.bootstrap_cid else None
        if request.unfreeze:
            raise unknown(ARCHIVING_DISABLED)
        self.store.check_thread(thread)
        seed = os.urandom(SEED_SIZE)
        # Spec 5.6 Create: a private bucket gets a link key and a root file key; its seed is
        # stored encrypted with the file key (the response still carries the plaintext seed).
        link_key = dcrypto.new_key() if request.private else b""
        root_key = dcrypto.new_key() if request.private else b""
        dirs = PrivateDirs(link_key) if request.private else tree.PLAIN
        stored_seed = dcrypto.encrypt(root_key, seed) if request.private else seed
        seed_cid = CID.of_raw(stored_seed)
        with self.store.mutation_gate():
            self.store.blocks.put(seed_cid, stored_seed, trusted=True)
            if bootstrap is not None:
                _, kind = require_dag(self.store, bootstrap, "bootstrap")
                if kind != "dir":
                    raise unknown(f"invalid bootstrap cid: {bootstrap} is not a directory")
                if isinstance(dirs, PrivateDirs):
                    bootstrap, _ = encrypt_dag(
                        self.store.blocks, dirs, bootstrap, "", lambda _p: root_key
                    )
                editor = TreeEditor(self.store.blocks, bootstrap, dirs)
                editor.set_cid(SEED_NAME, seed_cid, len(stored_seed))
                root, tsize = editor.flush()
            else:
                root, tsize = new_root(self.store.blocks, seed_cid, len(stored_seed), dirs)
            ts = now_ns()
            roles: dict[str, int] = {}
            if caller.identity:
                roles[caller.identity] = access.ADMIN
                if not request.private:
                    roles["*"] = access.READER  # spec 5.3: private buckets are owner-only
            meta = {
                "": Meta(ts, roles, key_text(root_key) if request.private else ""),
                SEED_NAME: Meta(ts),
            }
            bucket = self.store.create_bucket(
                thread, new_bucket_key(), request.name, caller.identity, root, meta,
                key_text(link_key) if request.private else "",
            )  # fmt: skip
        return pb.CreateResponse(
            root=root_pb(bucket, meta),
            links=self._links(bucket, "", caller),
            seed=seed,
            seed_cid=str(seed_cid),
            pinned=tsize,
        )

    @grpc_errors
    def Remove(self, request: pb.RemoveRequest, context: grpc.ServicerContext) -> pb.RemoveResponse:
        thread, caller = self._enter(context, owned=True)
        with self.store.mutation(thread, request.key) as bucket:
            access.check_owner(bucket.owner, caller)
            _, tsize = resolve_root_size(self.store, bucket)
            self.store.delete_bucket(bucket)
        return pb.RemoveResponse(pinned=-tsize)

    # -- path mutations -----------------------------------------------------------------------

    @grpc_errors
    def SetPath(
        self, request: pb.SetPathRequest, context: grpc.ServicerContext
    ) -> pb.SetPathResponse:
        thread, caller = self._enter(context, owned=False)
        rel = clean_path(request.path)
        cid = parse_cid(request.cid, "remote")
        with self.store.mutation(thread, request.key) as bucket:
            self._check_write(bucket, caller, [rel])
            tsize, kind = require_dag(self.store, cid, "remote")
            _, old_size = resolve_root_size(self.store, bucket)
            dirs = private_dirs(bucket)
            if dirs is not None:
                # Spec 5.6 SetPath: a private bucket re-encrypts the imported DAG; its files
                # take the keys their paths will have (entries under rel/ are unset below).
                meta = {
                    p: m
                    for p, m in self.store.all_metadata(bucket.key).items()
                    if not (rel and p.startswith(rel + "/"))
                }
                cid, tsize = encrypt_dag(self.store.blocks, dirs, cid, rel, keys_of(meta))
            if not rel:
                # Spec 5.6: the whole root becomes the DAG plus a new .textileseed.
                if kind != "dir":
                    raise unknown(f"invalid remote cid: {cid} is not a directory")
                seed = os.urandom(SEED_SIZE)
                if dirs is not None:
                    seed = dcrypto.encrypt(file_key(meta, SEED_NAME), seed)
                seed_cid = CID.of_raw(seed)
                self.store.blocks.put(seed_cid, seed, trusted=True)
                editor = TreeEditor(self.store.blocks, cid, dirs_for(bucket))
                editor.set_cid(SEED_NAME, seed_cid, len(seed))
            else:
                editor = self.store.editor(bucket)
                editor.set_cid(rel, cid, tsize)
            root, new_size = editor.flush()
            ts = now_ns()
            ch = Changes()
            ch.set_meta(rel, ts)
            if rel:
                ch.unset_meta_prefix(rel + "/")
            else:
                # Textile unsets the prefix "/" here, which matches nothing: the root's roles
                # and every other entry stay.
                ch.set_meta(SEED_NAME, ts)
            ch.drop_attrs(rel)
            self.store.commit(bucket, root, ch, ts)
        return pb.SetPathResponse(pinned=new_size - old_size)

    @grpc_errors
    def MovePath(
        self, request: pb.MovePathRequest, context: grpc.ServicerContext
    ) -> pb.MovePathResponse:
        thread, caller = self._enter(context, owned=False)
        src = parse_path(request.from_path)
        dst = parse_path(request.to_path)
        if not src:
            raise unknown("source is root directory")
        if src == dst:
            return pb.MovePathResponse()
        with self.store.mutation(thread, request.key) as bucket:
            self._check_write(bucket, caller, [src, dst])
            editor = self.store.editor(bucket)
            node = editor.get(src)
            if node is None:
                resolve_in(self.store, bucket, src)  # raises the resolver text
                raise unknown(f"could not resolve path: {src}")
            # mv semantics (spec 5.6 MovePath step 6).
            target = editor.get(dst) if dst else editor.root
            if target is not None and editor.is_dir(target):
                dst = join(dst, basename(src))
                target = editor.get(dst)
            if target is not None and editor.is_dir(node) and not editor.is_dir(target):
                raise unknown("not a directory")
            if dst == src:
                return pb.MovePathResponse()
            if dst.startswith(src + "/"):
                raise invalid(f"cannot move {src!r} into its own subtree {dst!r}")
            ts = now_ns()
            dirs = private_dirs(bucket)
            if dirs is not None:
                node = self._rekey_moved(bucket, dirs, node, src, dst, ts)
            editor.remove(src)
            editor.set(dst, node)
            root, _ = editor.flush()
            ch = Changes()
            ch.set_meta(dst, ts)
            ch.unset_meta_prefix(src + "/")
            ch.move_attrs(src, dst)
            self.store.commit(bucket, root, ch, ts)
        return pb.MovePathResponse()

    def _rekey_moved(
        self, bucket: Bucket, dirs: PrivateDirs, node: tree.Node, src: str, dst: str, ts: int
    ) -> tree.Node:
        """A moved private node re-encrypted where its files' keys change: the metadata
        below ``src`` (with any keys) is dropped and ``dst`` takes the nearest key there."""
        assert node.cid is not None, "a node about to move has not been edited"
        old = self.store.all_metadata(bucket.key)
        new = {p: m for p, m in old.items() if not p.startswith(src + "/")}
        new.setdefault(dst, Meta(ts))
        done = reencrypt(
            self.store.blocks, dirs, node.cid, src, dst, keys_of(old), keys_of(new)
        )
        return node if done is None else tree.Ref(*done)

    @grpc_errors
    def RemovePath(
        self, request: pb.RemovePathRequest, context: grpc.ServicerContext
    ) -> pb.RemovePathResponse:
        thread, caller = self._enter(context, owned=False)
        rel = parse_path(request.path)
        if not rel:
            raise invalid("cannot remove the bucket root (use Remove to delete the bucket)")
        with self.store.mutation(thread, request.key, request.root) as bucket:
            self._check_write(bucket, caller, [rel], "delete")
            editor = self.store.editor(bucket)
            editor.remove(rel)
            root, new_size = editor.flush()
            _, old_size = resolve_root_size(self.store, bucket)
            ch = Changes()
            ch.unset_meta_prefix(rel)  # spec: no trailing slash, so a/bc goes with a/b
            ch.drop_attrs(rel)
            new = self.store.commit(bucket, root, ch)
            meta = self._meta_for_read(new, caller)
        return pb.RemovePathResponse(root=root_pb(new, meta), pinned=new_size - old_size)

    # -- access roles -------------------------------------------------------------------------

    @grpc_errors
    def PushPathAccessRoles(
        self, request: pb.PushPathAccessRolesRequest, context: grpc.ServicerContext
    ) -> pb.PushPathAccessRolesResponse:
        thread, caller = self._enter(context, owned=False)
        rel = parse_path(request.path)
        for who in request.roles:
            if who != "*":
                _check_public_key(who)
        with self.store.mutation(thread, request.key) as bucket:
            resolve_in(self.store, bucket, rel)
            meta = self.store.all_metadata(bucket.key)
            if not access.is_owner(bucket.owner, caller):
                access.check_write(bucket.owner, caller, meta, [rel], "roles")
            current = meta.get(rel)
            roles = dict(current.roles) if current is not None else {}
            before = dict(roles)
            for who, role in request.roles.items():
                if role > 0:
                    roles[who] = int(role)
                else:
                    roles.pop(who, None)
            if current is not None and roles == before:
                return pb.PushPathAccessRolesResponse(pinned=0)
            ch = Changes()
            ts = now_ns()
            dirs = private_dirs(bucket)
            if dirs is None:
                ch.set_meta(rel, ts, roles)
                self.store.commit(bucket, None, ch)
                return pb.PushPathAccessRolesResponse(pinned=0)
            root, pinned = self._rotate_keys(bucket, dirs, meta, rel, roles, ts, ch)
            self.store.commit(bucket, root, ch, ts)
        return pb.PushPathAccessRolesResponse(pinned=pinned)

    def _rotate_keys(
        self,
        bucket: Bucket,
        dirs: PrivateDirs,
        meta: dict[str, Meta],
        rel: str,
        roles: dict[str, int],
        ts: int,
        ch: Changes,
    ) -> tuple[CID, int]:
        """Spec 5.6 PushPathAccessRoles for a private bucket: a new file key at ``rel``, every
        key under it rotated, and the sub-DAG re-encrypted. Returns (new root, pinned)."""
        new = dict(meta)
        new_key = key_text(dcrypto.new_key())
        ch.set_meta(rel, ts, roles, key=new_key)
        new[rel] = Meta(ts, roles, new_key)
        for p, m in meta.items():
            if p != rel and m.key and (not rel or p.startswith(rel + "/")):
                rotated = key_text(dcrypto.new_key())
                ch.set_key(p, rotated)
                new[p] = Meta(m.updated_at, m.roles, rotated)
        _, old_size = resolve_root_size(self.store, bucket)
        cid, _ = resolve_in(self.store, bucket, rel)
        done = reencrypt(self.store.blocks, dirs, cid, rel, rel, keys_of(meta), keys_of(new))
        if done is None:  # pragma: no cover - every key under rel changed
            return bucket.root_cid, 0
        if not rel:
            return done[0], done[1] - old_size
        editor = self.store.editor(bucket)
        editor.set_cid(rel, *done)
        root, new_size = editor.flush()
        return root, new_size - old_size

    @grpc_errors
    def PullPathAccessRoles(
        self, request: pb.PullPathAccessRolesRequest, context: grpc.ServicerContext
    ) -> pb.PullPathAccessRolesResponse:
        thread, caller = self._enter(context, owned=False)
        rel = parse_path(request.path)
        bucket = self.store.get_bucket(thread, request.key)
        try:
            resolve_in(self.store, bucket, rel)
        except HubError:
            raise unknown(f"could not resolve path: {rel}") from None
        meta = self._meta_for_read(bucket, caller)
        m = nearest(meta, rel)
        if m is None:
            raise unknown(f"could not resolve path: {rel}")
        return pb.PullPathAccessRolesResponse(roles=m.roles)

    # -- archives: no Filecoin here -----------------------------------------------------------

    def _archiving(self, request: object, context: grpc.ServicerContext) -> None:
        context.abort(grpc.StatusCode.UNKNOWN, ARCHIVING_DISABLED)

    DefaultArchiveConfig = _archiving
    SetDefaultArchiveConfig = _archiving
    Archive = _archiving
    Archives = _archiving

    def ArchiveWatch(self, request: object, context: grpc.ServicerContext) -> Iterator[object]:
        context.abort(grpc.StatusCode.UNKNOWN, ARCHIVING_DISABLED)
        yield from ()

    # -- pushes -------------------------------------------------------------------------------

    @grpc_errors
    def PushPath(
        self, request_iterator: Iterator[pb.PushPathRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.PushPathResponse]:
        thread, caller = self._enter(context, owned=False)
        first = next(request_iterator, None)
        if first is None:
            return  # spec: a stream that ends before any message ends with OK
        if first.WhichOneof("payload") != "header":
            raise unknown(HEADER_REQUIRED)
        header = first.header
        rel = parse_path(header.path)
        if not rel:
            raise invalid("a file cannot replace the bucket root")
        mode = header.mode if header.HasField("mode") else None
        mtime = header.mtime if header.HasField("mtime") else None
        with self.store.mutation(thread, header.key, header.root) as bucket:
            self._check_write(bucket, caller, [rel])
            importer = StreamingImport(self.store.blocks, f"push {rel[:40]}")
            received = reported = 0
            reported_at = time.monotonic()
            enc = None
            try:
                if bucket.link_key:  # spec 7.3: the file is stored as its dcrypto stream
                    enc = dcrypto.Encryptor(file_key(self.store.all_metadata(bucket.key), rel))
                    importer.feed(enc.header())
                for req in request_iterator:
                    if req.WhichOneof("payload") != "chunk":
                        raise unknown(INVALID_REQUEST)
                    # Each access of a bytes field copies it (upb), so read it once.
                    chunk = req.chunk
                    check_size(len(chunk))
                    BYTES_IN.inc(len(chunk))
                    importer.feed(enc.update(chunk) if enc else chunk)
                    received += len(chunk)
                    if (
                        received - reported >= PROGRESS_STEP
                        and time.monotonic() - reported_at >= PROGRESS_INTERVAL
                    ):
                        reported, reported_at = received, time.monotonic()
                        yield pb.PushPathResponse(
                            event=pb.PushPathResponse.Event(name=rel, bytes=received)
                        )
                if enc is not None:
                    importer.feed(enc.finalize())
                result = importer.finish()
            except BaseException:
                importer.abort()
                raise
            _, old_size = resolve_root_size(self.store, bucket)
            editor = self.store.editor(bucket)
            editor.set_cid(rel, result.cid, result.tsize)
            root, new_size = editor.flush()
            ts = now_ns()
            ch = Changes()
            _file_changes(ch, rel, ts, mode, mtime)
            check_active(context)
            new = self.store.commit(bucket, root, ch, ts)
            meta = None if header.light_root else self._meta_for_read(new, caller)
        yield pb.PushPathResponse(
            event=pb.PushPathResponse.Event(
                name=rel,
                path=f"/ipfs/{result.cid}",
                bytes=received,
                size=str(result.tsize),
                root=root_pb(new, meta),
                pinned=new_size - old_size,
            )
        )

    @grpc_errors
    def PushPaths(
        self, request_iterator: Iterator[pb.PushPathsRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.PushPathsResponse]:
        thread, caller = self._enter(context, owned=True)
        first = next(request_iterator, None)
        if first is None:
            return
        if first.WhichOneof("payload") != "header":
            raise unknown(HEADER_REQUIRED)
        header = first.header
        with self.store.mutation(thread, header.key, header.root) as bucket:
            if header.paths and not access.is_owner(bucket.owner, caller):
                try:
                    self._check_write(bucket, caller, list(header.paths))
                except HubError as exc:
                    raise access.denied(f"verifying bucket update: {exc.message}") from None
            yield from _PushPathsRun(self, bucket, caller, request_iterator, context).run()


def _file_changes(ch: Changes, rel: str, ts: int, mode: int | None, mtime: int | None) -> None:
    """Metadata for a pushed file (spec 5.6 PushPath step 4) plus bucketfs attributes."""
    ch.set_meta(rel, ts)
    ch.unset_meta_prefix(rel + "/")
    ch.drop_attrs_below(rel)  # a file replacing a directory drops the old subtree's attrs
    # A new file keeps a recorded mode (like writing into an existing file) unless one is
    # given; its mtime is the push time unless one is given.
    if mtime is None:
        ch.clear_mtime(rel)
    ch.set_attrs(rel, mode, mtime)


def resolve_root_size(store: HubStore, bucket: Bucket) -> tuple[CID, int]:
    """The bucket's root and its cumulative size."""
    return bucket.root_cid, inspect(store.blocks, bucket.root_cid).tsize


def _check_public_key(who: str) -> None:
    try:
        from bucketfs.keys import parse_public_key
    except ImportError:  # pragma: no cover - keys module is part of the tree
        return
    try:
        parse_public_key(who)
    except ValueError as exc:
        raise unknown(f"unmarshaling role public key: {exc}") from None


_END = object()


class _PushPathsRun:
    """One PushPaths stream after its header: chunks in, one response per completed file."""

    def __init__(
        self,
        service: BucketsService,
        bucket: Bucket,
        caller: access.Caller,
        requests: Iterator[pb.PushPathsRequest],
        context: grpc.ServicerContext,
    ) -> None:
        self.service = service
        self.store = service.store
        self.bucket = bucket
        self.caller = caller
        self.requests = requests
        self.context = context
        self.inbox: queue.Queue[object] = queue.Queue(maxsize=64)
        self.stop = threading.Event()
        self.editor = self.store.editor(bucket)
        self.changes = Changes()
        self.last_root = bucket.path
        self.old_size = resolve_root_size(self.store, bucket)[1]
        cipher = None
        if bucket.link_key:
            meta = self.store.all_metadata(bucket.key)
            cipher = lambda rel: dcrypto.Encryptor(file_key(meta, rel))  # noqa: E731
        self.slots = FileSlots(self.store.blocks, Path(service.spill_dir), cipher)
        self.checked: set[str] = set()
        self.completed = 0
        self.flushed_at = 0  # self.completed when last_root was last computed

    def _reader(self) -> None:
        # Reads the request stream in its own thread so the main loop can notice a pause
        # (and send a held response with an exact root) without a blocking next().
        try:
            for req in self.requests:
                while not self.stop.is_set():
                    try:
                        self.inbox.put(req, timeout=0.5)
                        break
                    except queue.Full:
                        continue
                if self.stop.is_set():
                    return
            item: object = _END
        except BaseException as exc:  # noqa: BLE001 - handed to the main loop
            item = exc
        while not self.stop.is_set():
            try:
                self.inbox.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def _response(self, rel: str, cid: CID, tsize: int, root_path: str) -> pb.PushPathsResponse:
        b = self.bucket
        root = pb.Root(
            key=b.key, name=b.name, path=root_path, created_at=b.created_at,
            updated_at=now_ns(), thread=b.thread, owner=b.owner, version=b.version,
        )  # fmt: skip
        root.path_metadata[rel].updated_at = root.updated_at
        return pb.PushPathsResponse(path=rel, cid=str(cid), size=tsize, pinned=tsize, root=root)

    def _paused_root(self) -> str:
        """The root for a response held while the client paused.

        Computing it encodes every changed directory, which costs about as much as the files
        pushed so far; doing that at every pause would make a stream of n files O(n²) on a
        client that waits for each response. So the root is recomputed only once the files
        completed since the last computation are a tenth of all files completed (total cost
        O(n)); otherwise the last computed root is reused. The final response is exact anyway.
        """
        since = self.completed - self.flushed_at
        if since > 0 and since * 10 >= self.completed:
            cid, _ = self.editor.flush()
            self.last_root = f"/ipfs/{cid}"
            self.flushed_at = self.completed
        return self.last_root

    def run(self) -> Iterator[pb.PushPathsResponse]:
        reader = threading.Thread(target=self._reader, name="pushpaths-reader", daemon=True)
        reader.start()
        held: pb.PushPathsResponse | None = None
        committed = False
        try:
            while True:
                try:
                    item = self.inbox.get(timeout=HOLD_RELEASE_SECONDS if held else None)
                except queue.Empty:
                    # The client paused: give it the held response with an exact root.
                    assert held is not None
                    held.root.path = self._paused_root()
                    yield held
                    held = None
                    continue
                if item is _END:
                    break
                if isinstance(item, BaseException):
                    raise item
                req = item
                if req.WhichOneof("payload") != "chunk":  # type: ignore[attr-defined]
                    raise unknown(INVALID_REQUEST)
                done = self._chunk(req.chunk)  # type: ignore[attr-defined]
                if done is not None:
                    if held is not None:
                        held.root.path = self.last_root
                        yield held
                    held = done
            if len(self.slots):
                open_paths = ", ".join(sorted(self.slots.files)[:5])
                raise unknown(
                    f"stream ended with unfinished files ({open_paths}); "
                    "close each file with an empty chunk"
                )
            root, new_size = self.editor.flush()
            check_active(self.context)
            self.store.commit(self.bucket, root, self.changes)
            committed = True
            if held is not None:
                held.root.path = f"/ipfs/{root}"
                held.root.updated_at = now_ns()
                yield held
        except BaseException:
            self.slots.abort()
            if not committed:
                self._save_completed()
            raise
        finally:
            self.stop.set()

    def _save_completed(self) -> None:
        """Spec 5.6: on any error, the files linked before it are saved (each was closed with
        its empty chunk, so each is complete); the call still ends with the error."""
        if not self.completed:
            log.info("PushPaths to %s failed before any file completed", self.bucket.key)
            return
        try:
            root, _ = self.editor.flush()
            self.store.commit(self.bucket, root, self.changes)
            log.info("PushPaths to %s failed; saved the %d files completed before the error",
                     self.bucket.key, self.completed)  # fmt: skip
        except Exception:
            log.exception("PushPaths to %s: saving the completed files failed", self.bucket.key)

    def _chunk(self, chunk: pb.PushPathsRequest.Chunk) -> pb.PushPathsResponse | None:
        try:
            rel = parse_path(chunk.path)
        except HubError as exc:
            raise HubError(exc.code, f"parsing path: {exc.message}") from None
        if not rel:
            raise invalid("a file cannot replace the bucket root")
        if rel not in self.checked:
            if not access.is_owner(self.bucket.owner, self.caller):
                try:
                    self.service._check_write(self.bucket, self.caller, [rel])
                except HubError as exc:
                    raise unknown(f"enqueueing file: verifying bucket update: {exc}") from None
            self.checked.add(rel)
        data = chunk.data  # each access of a bytes field copies it (upb)
        check_size(len(data))
        BYTES_IN.inc(len(data))
        mode = chunk.mode if chunk.HasField("mode") else None
        mtime = chunk.mtime if chunk.HasField("mtime") else None
        closed = self.slots.write(rel, data, mode, mtime)
        if closed is None:
            return None
        result, attrs = closed
        self.editor.set_cid(rel, result.cid, result.tsize)
        _file_changes(self.changes, rel, now_ns(), attrs.mode, attrs.mtime)
        self.completed += 1
        return self._response(rel, result.cid, result.tsize, self.last_root)
