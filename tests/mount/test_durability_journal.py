"""The namespace journal without a kernel: persistence, damaged entries, and a reference model.

The model test is the one definition of what pending operations do to listings: random valid
sequences of mkdir/symlink/remove/rename/setattr are applied to a plain dict tree, and every
directory's listing rebuilt by :func:`oplog.history` + :func:`oplog.overlay` from the *base*
tree must equal the model's.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bucketfs.mount import oplog
from bucketfs.mount.oplog import Journal, Op
from bucketfs.mount.remote import RemoteItem
from bucketfs.mount.writeback import INLINE_MAX, DirtyStore

pytestmark = pytest.mark.timeout(120)


def test_appended_ops_survive_a_reopen_in_order(tmp_path: Path) -> None:
    j = Journal(tmp_path / "journal.db")
    a = j.append(Op("mkdir", "d", mode=0o750, mtime_ns=5))
    b = j.append(Op("rename", "x", dst="d/x", item={"name": "x", "cid": "c", "kind": "file",
                                                    "size": 3, "mode": 0, "mtime_ns": 1,
                                                    "target": ""}))
    c = j.append(Op("remove", "old", rmdir=True))
    assert a.seq < b.seq < c.seq
    j.done(a.seq)
    j.close()
    j = Journal(tmp_path / "journal.db")
    assert j.pending() == [b, c]
    # seq never repeats, even after the newest row is gone (the snapshot mark relies on it)
    j.done(c.seq)
    assert j.append(Op("setattr", "f", mode=0o600)).seq > c.seq
    j.close()


def test_a_damaged_entry_is_set_aside_not_lost(tmp_path: Path) -> None:
    j = Journal(tmp_path / "journal.db")
    good = j.append(Op("mkdir", "a"))
    j.close()
    db = sqlite3.connect(tmp_path / "journal.db")
    db.execute("INSERT INTO ops (body) VALUES ('{not json')")
    db.execute("INSERT INTO ops (body) VALUES ('{\"kind\": \"format-disk\", \"path\": \"\"}')")
    db.commit()
    db.close()
    j = Journal(tmp_path / "journal.db")
    assert j.pending() == [good]
    j.close()
    db = sqlite3.connect(tmp_path / "journal.db")
    assert [r[0] for r in db.execute("SELECT body FROM bad_ops ORDER BY seq")] == [
        "{not json", '{"kind": "format-disk", "path": ""}']
    db.close()


def test_snapshot_roundtrip_and_replacement(tmp_path: Path) -> None:
    j = Journal(tmp_path / "journal.db")
    assert j.load_snapshot() is None
    item = RemoteItem("f", "bafy", "file", 3, 0o644, 7)
    link = RemoteItem("l", "bafz", "symlink", 0, 0, 8, "f")
    j.save_snapshot("/ipfs/r1", 4, {"": {"f": item, "l": link}, "d": {}})
    j.save_snapshot("/ipfs/r2", 9, {"": {"f": item}})
    j.close()
    snap = Journal(tmp_path / "journal.db").load_snapshot()
    assert snap is not None
    assert (snap.root, snap.mark, snap.listings) == ("/ipfs/r2", 9, {"": {"f": item}})


class Crash(Exception):
    """The daemon dies here."""


def test_a_crash_inside_drop_never_leaves_a_record_without_its_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_base(cid: str, size: int, offset: int, length: int) -> bytes:
        raise AssertionError("no base file here")

    store = DirtyStore(tmp_path / "dirty", no_base)
    rec = store.new("f.bin", "", 0, 0o644, 1, expect_cid="")
    store.write(rec, 0, b"x" * 300_000)
    store.save(rec)  # as the upload saves a clean record before dropping it
    real_unlink = os.unlink

    def unlink_then_die(path, *a, **kw) -> None:  # noqa: ANN001, ANN002, ANN003
        real_unlink(path, *a, **kw)
        raise Crash  # the process dies right after the data file is gone

    monkeypatch.setattr(os, "unlink", unlink_then_die)
    with pytest.raises(Crash):
        store.drop(rec)
    monkeypatch.undo()
    store.close()
    again = DirtyStore(tmp_path / "dirty", no_base)
    for r in again.load_all():  # a survivor must still read as what was written
        assert again.read(r, 0, r.size) == b"x" * 300_000
    again.close()


def test_data_files_without_a_record_are_removed_at_load(tmp_path: Path) -> None:
    store = DirtyStore(tmp_path / "dirty", lambda *a: b"")
    rec = store.new("kept", "", 0, 0o644, 1, expect_cid="")
    store.write(rec, 0, b"k" * (INLINE_MAX + 1))  # past the inline size: it has a data file
    (tmp_path / "dirty" / "data" / "orphan").write_bytes(b"left by a crash")
    assert [r.file_id for r in store.load_all()] == [rec.file_id]
    assert sorted(os.listdir(tmp_path / "dirty" / "data")) == [rec.file_id]
    store.close()


# -- the reference model ----------------------------------------------------------------------

NAMES = ["a", "b", "c"]


def _base_tree() -> dict[str, RemoteItem]:
    tree = {}
    for path, kind in [("a", "dir"), ("a/b", "dir"), ("a/b/c", "file"), ("b", "file"),
                       ("c", "dir"), ("c/a", "symlink")]:
        name = path.rpartition("/")[2]
        tree[path] = RemoteItem(name, f"cid-{path}", kind, 1 if kind == "file" else 0, 0, 0,
                                "t" if kind == "symlink" else "")
    return tree


def _children(tree: dict[str, RemoteItem], d: str) -> dict[str, RemoteItem]:
    return {p.rpartition("/")[2]: i for p, i in tree.items() if p.rpartition("/")[0] == d}


def _dirs(tree: dict[str, RemoteItem]) -> list[str]:
    return [""] + [p for p, i in tree.items() if i.kind == "dir"]


def _step(tree: dict[str, RemoteItem], draw_op: tuple) -> Op | None:
    """Apply one drawn operation to ``tree`` if it is valid there; return it as an Op."""
    kind, d1, n1, d2, n2, mode = draw_op
    dirs = _dirs(tree)
    parent = dirs[d1 % len(dirs)]
    p1 = f"{parent}/{n1}".lstrip("/")
    parent2 = dirs[d2 % len(dirs)]
    p2 = f"{parent2}/{n2}".lstrip("/")
    if kind == "mkdir" and p1 not in tree:
        tree[p1] = RemoteItem(n1, "", "dir", 0, mode, 11)
        return Op("mkdir", p1, mode=mode, mtime_ns=11)
    if kind == "symlink" and p1 not in tree:
        tree[p1] = RemoteItem(n1, "", "symlink", 0, 0, 12, "target")
        return Op("symlink", p1, target="target", mtime_ns=12)
    if kind == "remove" and p1 in tree:
        is_dir = tree[p1].kind == "dir"
        if is_dir and _children(tree, p1):
            return None
        del tree[p1]
        return Op("remove", p1, rmdir=is_dir)
    if kind == "setattr" and p1 in tree:
        tree[p1] = RemoteItem(n1, tree[p1].cid, tree[p1].kind, tree[p1].size, mode, 13,
                              tree[p1].target)
        return Op("setattr", p1, mode=mode, mtime_ns=13)
    if kind == "rename" and p1 in tree and p1 != p2 and not oplog.under(p2, p1):
        src = tree[p1]
        if p2 in tree:
            dst = tree[p2]
            if (dst.kind == "dir") != (src.kind == "dir"):
                return None
            if dst.kind == "dir" and _children(tree, p2):
                return None
            del tree[p2]
        item = {"name": src.name, "cid": src.cid, "kind": src.kind, "size": src.size,
                "mode": src.mode, "mtime_ns": src.mtime_ns, "target": src.target}
        moved = {p: i for p, i in tree.items() if oplog.under(p, p1)}
        for p in moved:
            del tree[p]
        for p, i in moved.items():
            np = p2 + p[len(p1):]
            tree[np] = RemoteItem(np.rpartition("/")[2], i.cid, i.kind, i.size, i.mode,
                                  i.mtime_ns, i.target)
        return Op("rename", p1, dst=p2, item=item)
    return None


op_strategy = st.tuples(
    st.sampled_from(["mkdir", "symlink", "remove", "rename", "setattr"]),
    st.integers(0, 8), st.sampled_from(NAMES), st.integers(0, 8), st.sampled_from(NAMES),
    st.sampled_from([0o700, 0o755]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(op_strategy, max_size=14))
def test_listings_rebuilt_from_the_bucket_plus_pending_ops_match_the_model(draws) -> None:  # noqa: ANN001
    base = _base_tree()
    tree = dict(base)
    ops = [op for op in (_step(tree, d) for d in draws) if op is not None]
    for d in _dirs(tree):
        start, paths = oplog.history(ops, d)
        listing = None
        if start == 0:
            assert paths[0] == "" or base[paths[0]].kind == "dir", (d, paths[0], ops)
            listing = _children(base, paths[0])
        got = oplog.overlay(ops, d, listing, start, paths)
        want = _children(tree, d)
        assert {n: (i.kind, i.mode, i.cid, i.target) for n, i in got.items()} == {
            n: (i.kind, i.mode, i.cid, i.target) for n, i in want.items()}, (d, ops)
