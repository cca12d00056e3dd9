"""Unit tests of the mount's parts that need no kernel: errno table, inodes, options, store."""

from __future__ import annotations

import errno
import hashlib
import inspect
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bucketfs.client import errors as ce
from bucketfs.errors import UserError
from bucketfs.mount import errors as merr
from bucketfs.mount import mountinfo, options
from bucketfs.mount.fs import FSError, check_name, conflict_name
from bucketfs.mount.inodes import ROOT_INODE, InodeTable
from bucketfs.mount.writeback import CHUNK, DirtyStore


def test_every_client_error_class_has_its_own_errno_row() -> None:
    classes = [c for _, c in inspect.getmembers(ce, inspect.isclass)
               if issubclass(c, ce.ClientError)]
    assert len(classes) >= 10
    missing = [c.__name__ for c in classes if c not in merr.TABLE]
    assert missing == []
    assert merr.to_errno(ce.NotFound("x")) == errno.ENOENT
    assert merr.to_errno(ce.HubUnavailable("x")) == errno.EIO
    assert merr.to_errno(FSError(errno.ENOTEMPTY)) == errno.ENOTEMPTY
    assert merr.to_errno(OSError(errno.ENOSPC, "full")) == errno.ENOSPC
    assert merr.to_errno(RuntimeError("bug")) == errno.EIO


def test_names_are_checked() -> None:
    check_name("a" * 255)
    with pytest.raises(FSError) as e:
        check_name("a" * 256)
    assert e.value.errno == errno.ENAMETOOLONG
    with pytest.raises(FSError) as e:
        check_name("é" * 128)  # 256 bytes in UTF-8
    assert e.value.errno == errno.ENAMETOOLONG
    with pytest.raises(FSError) as e:
        check_name("x.textileseed")
    assert e.value.errno == errno.EPERM


def test_conflict_name_keeps_the_extension() -> None:
    assert conflict_name("report.txt", "box", 0) == "report.conflict-box-19700101T000000Z.txt"
    assert conflict_name("Makefile", "box", 0) == "Makefile.conflict-box-19700101T000000Z"


def test_inode_table_keeps_inodes_until_forgotten_and_renames_subtrees() -> None:
    t = InodeTable()
    a = t.lookup("d")
    b = t.lookup("d/f")
    t.rename("d", "e")
    assert t.path(a) == "e" and t.path(b) == "e/f" and t.get("d/f") is None
    t.unlink("e/f")
    assert t.path(b) is None  # still known to the kernel
    t.forget(b, 1)
    with pytest.raises(KeyError):
        t.path(b)
    t.forget(ROOT_INODE, 5)
    assert t.path(ROOT_INODE) == ""


def test_options_parse_and_reject_unknown() -> None:
    o = options.parse("ro,allow_other,cache_size=1G,poll=0.5,writeback_delay=0,fsync=local")
    assert (o.read_only, o.allow_other, o.cache_size, o.poll, o.writeback_delay,
            o.fsync_local) == (True, True, 1 << 30, 0.5, 0.0, True)
    with pytest.raises(UserError):
        options.parse("bogus=1")
    with pytest.raises(UserError):
        options.parse("poll=-1")
    assert options.parse("").early_upload == 8 << 20
    assert options.parse("early_upload=0").early_upload == 0
    assert options.parse("early_upload=64M").early_upload == 64 << 20
    with pytest.raises(UserError, match="early_upload"):
        options.parse("early_upload=lots")
    assert options.parse("").direct_write
    assert not options.parse("nodirect_write").direct_write


def test_mountinfo_decodes_mount_points_and_finds_the_one_on_top(tmp_path) -> None:  # noqa: ANN001
    real = tmp_path / "real"
    (real / "a b\\c é").mkdir(parents=True)
    (tmp_path / "link").symlink_to(real)  # (callers resolve symlinks: see find)
    point = str(real / "a b\\c é").replace("\\", "\\134").replace(" ", "\\040")
    info = tmp_path / "mountinfo"
    info.write_text(
        "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
        f"40 22 0:40 / {point} rw,nosuid - fuse.bucketfs bucketfs:k rw,user_id=0\n"
        f"41 40 0:41 / {point} rw,nosuid master:3 - fuse.bucketfs bucketfs:k rw,user_id=0\n"
    )
    entries = mountinfo.mounts(str(info))
    assert [(m.point, m.dev, m.fstype) for m in entries][1] == (
        str(real / "a b\\c é"), "0:40", "fuse.bucketfs")
    top = mountinfo.find(os.path.realpath(tmp_path / "link" / "a b\\c é"), str(info))
    assert top is not None and top.dev == "0:41"  # the later one
    assert mountinfo.find(str(tmp_path), str(info)) is None


@settings(max_examples=100, deadline=None)
@given(
    base=st.binary(max_size=3 * CHUNK // 2),
    ops=st.lists(
        st.one_of(
            st.tuples(
                st.just("w"), st.integers(0, 3 * CHUNK), st.binary(min_size=1, max_size=CHUNK + 7)
            ),
            st.tuples(st.just("t"), st.integers(0, 3 * CHUNK), st.just(b"")),
        ),
        max_size=6,
    ),
)
def test_dirty_store_matches_a_bytearray_model(tmp_path_factory, base: bytes, ops) -> None:  # noqa: ANN001
    """Base + random writes/truncates read back exactly like a plain bytearray."""
    d = tmp_path_factory.mktemp("store")
    bases = {"basecid": base}

    def read_base(cid: str, size: int, offset: int, length: int) -> bytes:
        return bases[cid][offset : offset + length]

    store = DirtyStore(d, read_base)
    try:
        rec = store.new("f", "basecid" if base else "", len(base), 0o644, 0)
        model = bytearray(base)
        for kind, off, data in ops:
            if kind == "w":
                store.write(rec, off, data)
                if off > len(model):
                    model += bytes(off - len(model))
                model[off : off + len(data)] = data
            else:
                store.truncate(rec, off)
                del model[off:]
                model += bytes(off - len(model))
        assert rec.size == len(model)
        assert store.read(rec, 0, len(model) + 10) == bytes(model)
        whole = b"".join(store.iter_content(rec))
        assert hashlib.sha256(whole).hexdigest() == hashlib.sha256(model).hexdigest()
        # The record survives a reopen of the store (it is what a restart finds) once it was
        # saved as close(2) saves it: a small new file's writes stay in memory until then, and
        # a bigger one's are saved at most every SAVE_EVERY.
        store.save_if_changed(rec)
        store.close()
        store = DirtyStore(d, read_base)
        (again,) = store.load_all()
        assert again.size == len(model) and again.path == "f"
        assert store.read(again, 0, len(model)) == bytes(model)
        store.drop(again)
        assert store.load_all() == []
    finally:
        store.close()


@settings(max_examples=50, deadline=None)
@given(cid=st.text(max_size=120), data=st.binary(max_size=70_000))
def test_block_message_is_the_protobuf_wire_form(cid: str, data: bytes) -> None:
    """Remote.put_blocks builds Block messages itself: the hub must parse what protobuf would
    have sent (byte for byte when both fields are set; proto3 omits empty ones)."""
    from bucketfs.mount.remote import block_message
    from bucketfs.pb import fs_pb2

    wire = block_message(cid, data)
    assert fs_pb2.Block.FromString(wire) == fs_pb2.Block(cid=cid, data=data)
    if cid and data:
        assert wire == fs_pb2.Block(cid=cid, data=data).SerializeToString()
