"""``bucketfs.pb.FS``: what the mount needs beyond Textile's API (see protos/.../fs.proto).

Every mutation runs under the bucket's lock with the fast-forward check, builds the new tree
with :class:`~bucketfs.hub.tree.TreeEditor`, and commits like the Textile RPCs do; replies
carry a Root without ``path_metadata`` (O(1) per call) and the changed entry's PathItem.

POSIX error mapping (the mount turns codes into errnos): a missing entry is NOT_FOUND, an
existing one where none may be is ALREADY_EXISTS, and type or emptiness conflicts are
FAILED_PRECONDITION with the messages ``not a directory``, ``is a directory`` or
``directory not empty``; a directory moved into itself is INVALID_ARGUMENT.

Also home of :func:`listen_adapter`, which serves ``threads.pb.API/Listen`` from the store's
change events for the auth layer's threads service.
"""

from __future__ import annotations

import json
import logging
import queue
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import grpc

from bucketfs.hub import access
from bucketfs.hub.buckets import (
    BYTES_IN,
    BYTES_OUT,
    parse_cid,
    rechunk,
    require_dag,
    resolve,
)
from bucketfs.hub.errors import (
    NODE_IS_DIR,
    HubError,
    check_size,
    grpc_errors,
    invalid,
    not_found,
    unknown,
)
from bucketfs.hub.listing import inspect, path_item, root_pb
from bucketfs.hub.paths import (
    MAX_PATH_BYTES,
    basename,
    clean_path,
    parent_of,
    parse_path,
    thread_from_metadata,
    thread_id_bytes,
    thread_id_string,
)
from bucketfs.hub.store import CREATE, DELETE, Bucket, Changes, HubStore, Meta, RootEvent, now_ns
from bucketfs.hub.tree import TreeEditor
from bucketfs.ipfs.blockstore import BlockNotFound
from bucketfs.ipfs.cid import CID, RAW, InvalidCID
from bucketfs.pb import bucketsd_pb2 as pb
from bucketfs.pb import fs_pb2, fs_pb2_grpc, threads_pb2

log = logging.getLogger(__name__)

READ_CHUNK = 256 * 1024
MAX_BLOCKS_PER_CALL = 65536
WATCH_POLL = 1.0  # seconds between checks that a WatchRoot client is still there


def _precondition(message: str) -> HubError:
    return HubError(grpc.StatusCode.FAILED_PRECONDITION, message)


def _exists(message: str) -> HubError:
    return HubError(grpc.StatusCode.ALREADY_EXISTS, message)


def _opt(msg: Any, name: str) -> Any:
    return getattr(msg, name) if msg.HasField(name) else None


class FSService(fs_pb2_grpc.FSServicer):
    """The FS servicer."""

    def __init__(self, store: HubStore, hub_auth: object = None, ingest: str = "") -> None:
        self.store = store
        self.auth = hub_auth
        self.ingest = ingest  # the local ingest socket's name ("" = not offered)

    # -- helpers ------------------------------------------------------------------------------

    def _enter(self, context: grpc.ServicerContext) -> tuple[str, access.Caller]:
        thread = thread_from_metadata(context)
        caller = access.caller_of(context)
        self.store.check_thread(thread)
        return thread, caller

    def _bucket(self, thread: str, key: str) -> Bucket:
        """The bucket ``key``; FAILED_PRECONDITION for a private one (see ``_public``)."""
        return _public(self.store.get_bucket(thread, key))

    @contextmanager
    def _mutation(self, thread: str, key: str, root: str) -> Iterator[Bucket]:
        """``HubStore.mutation`` for a public bucket (see ``_public``)."""
        with self.store.mutation(thread, key, root) as bucket:
            yield _public(bucket)

    def _check_write(
        self, bucket: Bucket, caller: access.Caller, paths: list[str], change: str = "update"
    ) -> None:
        if not access.is_owner(bucket.owner, caller):
            meta = self.store.all_metadata(bucket.key)
            access.check_write(bucket.owner, caller, meta, paths, change)

    def _check_read(self, bucket: Bucket, caller: access.Caller, rel: str) -> None:
        if not access.is_owner(bucket.owner, caller):
            meta = self.store.all_metadata(bucket.key)
            access.check_read(bucket.owner, caller, meta, rel)

    def _item(self, bucket: Bucket, rel: str, children: bool = False) -> pb.PathItem:
        """The PathItem of ``rel`` in the committed ``bucket``."""
        cid, tsize = resolve(self.store, bucket.root_cid, rel)
        meta: dict[str, Meta] = {}
        found = self.store.nearest_metadata(bucket.key, rel)
        if found is not None:
            meta[rel] = found[1]  # the nearest entry stands in for the path's own
        attrs = self.store.attrs_under(bucket.key, rel) if children else {}
        attrs[rel] = self.store.attrs(bucket.key, rel)
        if children:
            # Children without their own entry inherit the nearest one, like ListPath.
            meta = self.store.all_metadata(bucket.key)
        ipfs_path = bucket.path + (f"/{rel}" if rel else "")
        name = basename(rel) if rel else bucket.name
        return path_item(self.store.blocks, cid, tsize, name, ipfs_path, rel, meta, attrs, children)

    def _reply(self, bucket: Bucket, rel: str | None) -> fs_pb2.MutationReply:
        reply = fs_pb2.MutationReply(root=root_pb(bucket, None))
        if rel is not None:
            reply.item.CopyFrom(self._item(bucket, rel))
        return reply

    @staticmethod
    def _target(path: str) -> str:
        rel = parse_path(path)
        if not rel:
            raise invalid("the bucket root cannot be the target of this call")
        return rel

    # -- reads --------------------------------------------------------------------------------

    @grpc_errors
    def ReadFile(
        self, request: fs_pb2.ReadFileRequest, context: grpc.ServicerContext
    ) -> Iterator[fs_pb2.ReadFileReply]:
        from bucketfs.ipfs.reader import FileReader

        if request.offset < 0 or (request.HasField("length") and request.length < 0):
            raise invalid("offset and length must not be negative")
        which = request.WhichOneof("target")
        if which == "cid":
            self._enter(context)
            cid = parse_cid(request.cid, "remote")
        else:
            thread, caller = self._enter(context)
            bucket = self._bucket(thread, request.key)
            rel = clean_path(request.path)
            self._check_read(bucket, caller, rel)
            cid, _ = resolve(self.store, bucket.root_cid, rel)
        try:
            facts = inspect(self.store.blocks, cid)
        except BlockNotFound:
            raise not_found(f"block not found: {cid}") from None
        if facts.kind == "dir":
            raise unknown(NODE_IS_DIR)
        if facts.kind == "symlink":
            raise unknown("node is a symlink")
        reader = FileReader(self.store.blocks, cid)
        size = reader.size
        length = request.length if request.HasField("length") else max(0, size - request.offset)
        offset = request.offset
        sent = False
        for data in rechunk(reader.iter_range(offset, length), READ_CHUNK):
            BYTES_OUT.inc(len(data))
            yield fs_pb2.ReadFileReply(data=data, offset=offset, file_size=size, cid=str(cid))
            offset += len(data)
            sent = True
        if not sent:  # an empty range still tells the caller the size and CID
            yield fs_pb2.ReadFileReply(data=b"", offset=offset, file_size=size, cid=str(cid))

    def _cids(self, texts: Any) -> list[CID]:
        if len(texts) > MAX_BLOCKS_PER_CALL:
            raise invalid(f"at most {MAX_BLOCKS_PER_CALL} CIDs per call")
        out = []
        for text in texts:
            try:
                out.append(CID.decode(text))
            except (InvalidCID, ValueError) as exc:
                raise invalid(f"invalid cid {text!r}: {exc}") from None
        return out

    @grpc_errors
    def GetBlocks(
        self, request: fs_pb2.GetBlocksRequest, context: grpc.ServicerContext
    ) -> Iterator[fs_pb2.Block]:
        for cid in self._cids(request.cids):
            try:
                data = self.store.blocks.get(cid)
            except BlockNotFound:
                raise not_found(f"block not found: {cid}") from None
            BYTES_OUT.inc(len(data))
            yield fs_pb2.Block(cid=str(cid), data=data)

    @grpc_errors
    def HasBlocks(
        self, request: fs_pb2.HasBlocksRequest, context: grpc.ServicerContext
    ) -> fs_pb2.HasBlocksReply:
        return fs_pb2.HasBlocksReply(
            has=[self.store.blocks.has(c) for c in self._cids(request.cids)]
        )

    @grpc_errors
    def PutBlocks(
        self, request_iterator: Iterator[fs_pb2.Block], context: grpc.ServicerContext
    ) -> fs_pb2.PutBlocksReply:
        count = total = 0
        # Raw leaves (a big file sent ahead by a mount) into one pack, other blocks as files.
        with self.store.loose_blocks() as pack:
            for block in request_iterator:
                data = block.data  # (read once: upb copies the field on every access)
                check_size(len(data))
                try:
                    cid = CID.decode(block.cid)
                except (InvalidCID, ValueError) as exc:
                    raise invalid(f"invalid cid {block.cid!r}: {exc}") from None
                if not cid.verify(data):
                    raise invalid(f"block data does not match its cid {cid}")
                if cid.codec == RAW:
                    pack.put(cid, data, trusted=True)
                else:
                    self.store.blocks.put(cid, data, trusted=True)
                BYTES_IN.inc(len(data))
                count += 1
                total += len(data)
        return fs_pb2.PutBlocksReply(blocks=count, bytes=total)

    @grpc_errors
    def LocalIngest(
        self, request: fs_pb2.LocalIngestRequest, context: grpc.ServicerContext
    ) -> fs_pb2.LocalIngestReply:
        return fs_pb2.LocalIngestReply(socket=self.ingest)

    @grpc_errors
    def ListDir(
        self, request: fs_pb2.ListDirRequest, context: grpc.ServicerContext
    ) -> fs_pb2.ListDirReply:
        thread, caller = self._enter(context)
        bucket = self._bucket(thread, request.key)
        rel = clean_path(request.path)
        self._check_read(bucket, caller, rel)
        return fs_pb2.ListDirReply(item=self._item(bucket, rel, children=True), root=bucket.path)

    @grpc_errors
    def WatchRoot(
        self, request: fs_pb2.WatchRootRequest, context: grpc.ServicerContext
    ) -> Iterator[fs_pb2.WatchRootReply]:
        thread, _ = self._enter(context)
        with self.store.watch(request.key) as events:
            # Subscribe first, then read: a change in between is seen twice, never missed.
            bucket = self._bucket(thread, request.key)
            yield fs_pb2.WatchRootReply(
                key=bucket.key, path=bucket.path, updated_at=bucket.updated_at
            )
            while context.is_active() and not self.store.stopping:
                try:
                    ev = events.get(timeout=WATCH_POLL)
                except queue.Empty:
                    continue
                yield fs_pb2.WatchRootReply(
                    key=request.key, path=ev.path, updated_at=ev.updated_at, removed=ev.removed
                )
                if ev.removed:
                    return

    # -- mutations ----------------------------------------------------------------------------

    @grpc_errors
    def SetAttr(
        self, request: fs_pb2.SetAttrRequest, context: grpc.ServicerContext
    ) -> fs_pb2.MutationReply:
        thread, caller = self._enter(context)
        rel = parse_path(request.path)
        mode, mtime = _opt(request, "mode"), _opt(request, "mtime")
        _check_mode(mode)
        with self._mutation(thread, request.key, request.root) as bucket:
            self._check_write(bucket, caller, [rel])
            resolve(self.store, bucket.root_cid, rel)
            ch = Changes()
            ch.set_attrs(rel, mode, mtime)
            new = self.store.commit(bucket, None, ch)
            return self._reply(new, rel)

    @grpc_errors
    def Symlink(
        self, request: fs_pb2.SymlinkRequest, context: grpc.ServicerContext
    ) -> fs_pb2.MutationReply:
        from bucketfs.ipfs.importer import import_symlink

        thread, caller = self._enter(context)
        rel = self._target(request.path)
        if not request.target or "\0" in request.target:
            raise invalid("a symlink target must be non-empty and free of NUL bytes")
        if len(request.target.encode()) > MAX_PATH_BYTES:
            raise invalid(f"symlink target longer than {MAX_PATH_BYTES} bytes")
        mode, mtime = _opt(request, "mode"), _opt(request, "mtime")
        _check_mode(mode)
        with self._mutation(thread, request.key, request.root) as bucket:
            self._check_write(bucket, caller, [rel])
            editor = self.store.editor(bucket)
            self._need_parent(editor, rel)
            if editor.get(rel) is not None:
                raise _exists(f"file exists: {rel}")
            link = import_symlink(request.target, self.store.blocks)
            editor.set_cid(rel, link.cid, link.tsize)
            return self._commit_new(bucket, editor, rel, mode, mtime)

    @grpc_errors
    def Mkdir(
        self, request: fs_pb2.MkdirRequest, context: grpc.ServicerContext
    ) -> fs_pb2.MutationReply:
        thread, caller = self._enter(context)
        rel = self._target(request.path)
        mode, mtime = _opt(request, "mode"), _opt(request, "mtime")
        _check_mode(mode)
        with self._mutation(thread, request.key, request.root) as bucket:
            self._check_write(bucket, caller, [rel])
            editor = self.store.editor(bucket)
            if editor.get(rel) is not None:
                raise _exists(f"file exists: {rel}")
            editor.mkdir(rel)
            return self._commit_new(bucket, editor, rel, mode, mtime)

    @grpc_errors
    def Link(
        self, request: fs_pb2.LinkRequest, context: grpc.ServicerContext
    ) -> fs_pb2.MutationReply:
        thread, caller = self._enter(context)
        rel = self._target(request.path)
        cid = parse_cid(request.cid, "remote")
        mode, mtime = _opt(request, "mode"), _opt(request, "mtime")
        _check_mode(mode)
        with self._mutation(thread, request.key, request.root) as bucket:
            self._check_write(bucket, caller, [rel])
            tsize, _ = require_dag(self.store, cid, "remote")
            editor = self.store.editor(bucket)
            editor.set_cid(rel, cid, tsize)
            return self._commit_new(bucket, editor, rel, mode, mtime)

    def _need_parent(self, editor: TreeEditor, rel: str) -> None:
        parent = parent_of(rel)
        if parent:
            node = editor.get(parent)
            if node is None:
                raise not_found(f"no such directory: {parent}")
            if not editor.is_dir(node):
                raise _precondition(f"not a directory: {parent}")

    def _commit_new(
        self,
        bucket: Bucket,
        editor: TreeEditor,
        rel: str,
        mode: int | None,
        mtime: int | None,
    ) -> fs_pb2.MutationReply:
        root, _ = editor.flush()
        ts = now_ns()
        ch = Changes()
        ch.set_meta(rel, ts)
        ch.unset_meta_prefix(rel + "/")
        ch.drop_attrs_below(rel)
        if mtime is None:
            ch.clear_mtime(rel)
        ch.set_attrs(rel, mode, mtime)
        new = self.store.commit(bucket, root, ch, ts)
        return self._reply(new, rel)

    @grpc_errors
    def Remove(
        self, request: fs_pb2.RemoveRequest, context: grpc.ServicerContext
    ) -> fs_pb2.MutationReply:
        thread, caller = self._enter(context)
        rel = self._target(request.path)
        with self._mutation(thread, request.key, request.root) as bucket:
            self._check_write(bucket, caller, [rel], "delete")
            editor = self.store.editor(bucket)
            node = editor.get(rel)
            if node is None:
                raise not_found(f"no such file or directory: {rel}")
            is_dir = editor.is_dir(node)
            if request.rmdir:
                if not is_dir:
                    raise _precondition(f"not a directory: {rel}")
                d = editor.open_dir(rel)
                if d is not None and d.entries:
                    raise _precondition(f"directory not empty: {rel}")
            elif is_dir:
                raise _precondition(f"is a directory: {rel}")
            editor.remove(rel)
            root, _ = editor.flush()
            ch = Changes()
            ch.unset_meta(rel)
            ch.unset_meta_prefix(rel + "/")
            ch.drop_attrs(rel)
            new = self.store.commit(bucket, root, ch)
            return self._reply(new, None)

    @grpc_errors
    def Rename(
        self, request: fs_pb2.RenameRequest, context: grpc.ServicerContext
    ) -> fs_pb2.MutationReply:
        thread, caller = self._enter(context)
        src = self._target(request.from_path)
        dst = self._target(request.to_path)
        flags = request.flags
        if flags & ~3 or flags == 3:
            raise invalid(f"invalid rename flags {flags}")
        exchange = bool(flags & fs_pb2.RENAME_EXCHANGE)
        noreplace = bool(flags & fs_pb2.RENAME_NOREPLACE)
        if dst.startswith(src + "/") or (exchange and src.startswith(dst + "/")):
            raise invalid(f"cannot move {src!r} into its own subtree")
        with self._mutation(thread, request.key, request.root) as bucket:
            self._check_write(bucket, caller, [src, dst])
            editor = self.store.editor(bucket)
            node = editor.get(src)
            if node is None:
                raise not_found(f"no such file or directory: {src}")
            self._need_parent(editor, dst)
            target = editor.get(dst)
            if src == dst:
                return self._reply(bucket, dst)
            ts = now_ns()
            ch = Changes()
            if exchange:
                if target is None:
                    raise not_found(f"no such file or directory: {dst}")
                editor.set(src, target)
                editor.set(dst, node)
                tmp = f"\0swap\0{src}"  # never a valid path, so it cannot collide
                for move in (ch.move_attrs, ch.move_meta):
                    move(src, tmp)
                    move(dst, src)
                    move(tmp, dst)
                ch.set_meta(src, ts)
                ch.set_meta(dst, ts)
            else:
                if target is not None:
                    if noreplace:
                        raise _exists(f"file exists: {dst}")
                    self._check_replace(editor, node, target, dst)
                editor.remove(src)
                editor.set(dst, node)
                ch.move_meta(src, dst)  # roles and timestamps travel with the entry
                ch.set_meta(dst, ts)
                ch.move_attrs(src, dst)
            root, _ = editor.flush()
            new = self.store.commit(bucket, root, ch, ts)
            return self._reply(new, dst)

    def _check_replace(self, editor: TreeEditor, node: Any, target: Any, dst: str) -> None:
        src_dir, dst_dir = editor.is_dir(node), editor.is_dir(target)
        if src_dir and not dst_dir:
            raise _precondition(f"not a directory: {dst}")
        if dst_dir and not src_dir:
            raise _precondition(f"is a directory: {dst}")
        if dst_dir:
            d = editor.open_dir(dst)
            if d is not None and d.entries:
                raise _precondition(f"directory not empty: {dst}")


PRIVATE_UNSUPPORTED = (
    "bucket {key} is private (encrypted); the FS service and the mount serve public buckets "
    "only: use `bucketfs bucket push/pull/cat` for private buckets"
)


def _public(bucket: Bucket) -> Bucket:
    """Refuse a private bucket: the FS calls read and write blocks and ranges directly, which
    for a private bucket would be ciphertext (the mount refuses it with this message)."""
    if bucket.link_key:
        raise HubError(
            grpc.StatusCode.FAILED_PRECONDITION, PRIVATE_UNSUPPORTED.format(key=bucket.key)
        )
    return bucket


def _check_mode(mode: int | None) -> None:
    if mode is not None and not 0 <= mode <= 0o7777:
        raise invalid(f"mode must be permission bits (0..07777), not {mode:#o}")


# -- threads.pb.API/Listen ---------------------------------------------------------------------


def instance_json(store: HubStore, bucket: Bucket, caller: access.Caller) -> bytes | None:
    """The bucket instance as ThreadDB JSON (spec 5.3), through the read filter; None when
    the caller may see nothing of it."""
    meta = access.visible_metadata(bucket.owner, caller, store.all_metadata(bucket.key))
    if not meta and not access.is_owner(bucket.owner, caller):
        return None

    def entry(m: Meta) -> dict[str, Any]:
        out: dict[str, Any] = {"roles": m.roles, "updated_at": m.updated_at}
        if m.key:
            out["key"] = m.key
        return out

    doc: dict[str, Any] = {
        "_id": bucket.key,
        "owner": bucket.owner,
        "name": bucket.name,
        "version": bucket.version,
        "path": bucket.path,
        "metadata": {p: entry(m) for p, m in meta.items()},
        "archives": {"current": {"cid": "", "deals": []}, "history": []},
        "created_at": bucket.created_at,
        "updated_at": bucket.updated_at,
    }
    if bucket.link_key:
        doc["key"] = bucket.link_key
    return json.dumps(doc, separators=(",", ":")).encode()


_REPLY_ACTION = {
    CREATE: threads_pb2.ListenReply.CREATE,
    DELETE: threads_pb2.ListenReply.DELETE,
}
_FILTER_ACTION = {
    threads_pb2.ListenRequest.Filter.CREATE: CREATE,
    threads_pb2.ListenRequest.Filter.SAVE: "save",
    threads_pb2.ListenRequest.Filter.DELETE: DELETE,
}


def _matches(filters: Any, ev: RootEvent) -> bool:
    if not filters:
        return True
    for f in filters:
        if (
            f.action != threads_pb2.ListenRequest.Filter.ALL
            and _FILTER_ACTION[f.action] != ev.action
        ):
            continue
        if f.collectionName and f.collectionName != "buckets":
            continue
        if f.instanceID and f.instanceID != ev.key:
            continue
        return True
    return False


def listen_adapter(store: HubStore) -> Callable[[Any, grpc.ServicerContext], Iterator[Any]]:
    """``listen(request, context)`` for the threads service: bucket events of one DB."""

    def listen(
        request: threads_pb2.ListenRequest, context: grpc.ServicerContext
    ) -> Iterator[threads_pb2.ListenReply]:
        for f in request.filters:
            if f.action not in (0, 1, 2, 3):
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid filter action {f.action}")
        try:
            thread = thread_id_string(thread_id_bytes(thread_id_string(bytes(request.dbID))))
        except ValueError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        caller = access.caller_of(context)
        with store.watch_thread(thread) as events:
            while context.is_active() and not store.stopping:
                try:
                    ev = events.get(timeout=WATCH_POLL)
                except queue.Empty:
                    continue
                if not ev.key or not _matches(request.filters, ev):
                    continue
                reply = threads_pb2.ListenReply(
                    collectionName="buckets",
                    instanceID=ev.key,
                    action=_REPLY_ACTION.get(ev.action, threads_pb2.ListenReply.SAVE),
                )
                if ev.action != DELETE:
                    try:
                        doc = instance_json(store, store.get_bucket(thread, ev.key), caller)
                    except HubError:
                        continue  # deleted since; its DELETE event follows
                    if doc is None:
                        continue  # the read filter hides this bucket from the caller
                    reply.instance = doc
                yield reply

    return listen
