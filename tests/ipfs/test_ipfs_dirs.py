"""Directory reading and editing by path, HAMT shards, and the Merkle diff."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bucketfs.ipfs import dagpb, hamt
from bucketfs.ipfs.blockstore import MemoryBlockstore
from bucketfs.ipfs.cid import CID
from bucketfs.ipfs.diff import Change, diff
from bucketfs.ipfs.dirs import (
    InvalidPath,
    NotADirectory,
    PathNotFound,
    list_dir,
    lookup,
    remove_entry,
    resolve,
    set_entry,
    split_path,
    stat,
)
from bucketfs.ipfs.importer import (
    empty_dir,
    import_bytes,
    import_symlink,
    import_tree,
    make_directory,
)
from bucketfs.ipfs.unixfs import DataType, decode_data

pytestmark = pytest.mark.timeout(300)


class PutCounter(MemoryBlockstore):
    """A MemoryBlockstore that records which new blocks each edit writes."""

    def __init__(self) -> None:
        super().__init__()
        self.new: list[CID] = []

    def put(self, cid: CID, data: bytes, *, trusted: bool = False) -> None:
        if not self.has(cid):
            self.new.append(cid)
        super().put(cid, data, trusted=trusted)


def _file(store: MemoryBlockstore, content: bytes) -> tuple[CID, int]:
    res = import_bytes(content, store)
    return res.cid, res.tsize


def test_split_path() -> None:
    assert split_path("") == split_path("/") == []
    assert split_path("/a/b/") == [b"a", b"b"]
    for bad in ("a//b", "a/./b", "../x"):
        with pytest.raises(InvalidPath):
            split_path(bad)


def test_set_creates_parents_and_resolve_errors_use_ipfs_wording() -> None:
    store = MemoryBlockstore()
    root = empty_dir(store).cid
    cid, tsize = _file(store, b"hi")
    root2 = set_entry(store, root, "/a/b/c.txt", cid, tsize)
    assert resolve(store, root2, "a/b/c.txt") == cid
    a = resolve(store, root2, "a")
    assert a.version == 1 and stat(store, a).kind == "dir"
    assert [e.name for e in list_dir(store, root2)] == ["a"]
    with pytest.raises(PathNotFound) as info:
        resolve(store, root2, "a/x/y")
    assert str(info.value) == f'no link named "x" under {a}'
    with pytest.raises(PathNotFound, match='no link named "more"'):
        resolve(store, root2, "a/b/c.txt/more")
    with pytest.raises(NotADirectory):
        set_entry(store, root2, "a/b/c.txt/d", cid, tsize)
    with pytest.raises(InvalidPath):
        set_entry(store, root2, "", cid, tsize)


def test_remove_missing_ends_with_no_link_by_that_name() -> None:
    store = MemoryBlockstore()
    cid, tsize = _file(store, b"x")
    root = set_entry(store, empty_dir(store).cid, "d/f", cid, tsize)
    with pytest.raises(PathNotFound) as info:
        remove_entry(store, root, "d/nope")
    assert str(info.value).endswith("no link by that name")
    root2 = remove_entry(store, root, "d/f")
    assert list_dir(store, resolve(store, root2, "d")) == []  # the parent stays, empty


def test_edit_rewrites_only_nodes_on_the_path() -> None:
    store = PutCounter()
    root = empty_dir(store).cid
    for i in range(5):
        for j in range(5):
            cid, tsize = _file(store, f"{i}/{j}".encode())
            root = set_entry(store, root, f"d{i}/sub/f{j}", cid, tsize)
    cid, tsize = _file(store, b"new content")
    store.new.clear()
    new_root = set_entry(store, root, "d3/sub/f2", cid, tsize)
    assert len(store.new) == 3  # d3/sub, d3, root
    assert new_root == store.new[-1]
    assert resolve(store, new_root, "d2/sub/f2") == resolve(store, root, "d2/sub/f2")


def test_edits_equal_import_tree(tmp_path: Path) -> None:
    """A tree built by set_entry has the same root CID as ipfs add -r of the same files."""
    src = tmp_path / "tree"
    files = {
        "a.txt": b"alpha",
        "docs/readme.md": b"# readme",
        "docs/deep/x.bin": bytes(300000),
        "z/y/w.txt": b"w",
    }
    for rel, data in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    (src / "empty").mkdir()
    (src / "link").symlink_to("a.txt")
    store = MemoryBlockstore()
    expected = import_tree(src, store).cid
    root = empty_dir(store).cid
    for rel, data in files.items():
        res = import_bytes(data, store)
        root = set_entry(store, root, rel, res.cid, res.tsize)
    e = empty_dir(store)
    root = set_entry(store, root, "empty", e.cid, e.tsize)
    sl = import_symlink("a.txt", store)
    root = set_entry(store, root, "link", sl.cid, sl.tsize)
    assert root == expected
    info = stat(store, resolve(store, root, "link"))
    assert (info.kind, info.target) == ("symlink", "a.txt")
    assert stat(store, resolve(store, root, "docs/deep/x.bin")).size == 300000


def _entries(store: MemoryBlockstore, n: int, start: int = 0) -> list[tuple[bytes, CID, int]]:
    out = []
    for i in range(start, start + n):
        cid, tsize = _file(store, b"%d" % i)
        out.append((b"entry-name-%06d.txt" % i, cid, tsize))
    return out


def test_large_directory_is_a_hamt_and_edits_keep_it_canonical() -> None:
    store = MemoryBlockstore()
    n = 4700  # 21-byte names + 36-byte CIDs: 267900 > 262144
    entries = _entries(store, n)
    big = make_directory(entries, store).cid
    node = dagpb.decode(store.get(big))
    assert decode_data(node.data or b"").type == DataType.HAMTShard
    listed = list_dir(store, big)
    assert [e.name.encode() for e in listed] == [e[0] for e in entries]
    assert lookup(store, big, "entry-name-000123.txt").cid == entries[123][1]  # type: ignore[union-attr]
    assert resolve(store, big, "entry-name-004000.txt") == entries[4000][1]
    with pytest.raises(PathNotFound, match='no link named "nope" under'):
        resolve(store, big, "nope")
    # Insert one more: same CID as building the bigger directory from scratch.
    extra = _entries(store, 1, start=n)
    root = empty_dir(store).cid
    root = set_entry(store, root, "big", big, stat(store, big).tsize)
    grown = set_entry(store, root, "big/" + extra[0][0].decode(), extra[0][1], extra[0][2])
    assert resolve(store, grown, "big") == make_directory(entries + extra, store).cid
    # Remove entries until below the threshold: it becomes the flat directory again.
    cur = resolve(store, grown, "big")
    removed = entries[:100] + extra
    for name, _, _ in removed:
        cur = remove_entry(store, cur, name.decode())
    assert decode_data(dagpb.decode(store.get(cur)).data or b"").type == DataType.HAMTShard
    for name, _, _ in entries[100:110]:
        cur = remove_entry(store, cur, name.decode())
    remaining = entries[110:]
    assert cur == make_directory(remaining, store).cid
    assert decode_data(dagpb.decode(store.get(cur)).data or b"").type == DataType.Directory
    with pytest.raises(PathNotFound, match="no link by that name$"):
        remove_entry(store, big, "not-there")


def test_flat_directory_grows_into_hamt_by_edits() -> None:
    store = MemoryBlockstore()
    entries = _entries(store, 4590)  # 4590 * 57 = 261630: just under the threshold
    root = make_directory(entries, store).cid
    assert decode_data(dagpb.decode(store.get(root)).data or b"").type == DataType.Directory
    more = _entries(store, 20, start=4590)
    for name, cid, tsize in more:
        root = set_entry(store, root, name.decode(), cid, tsize)
    assert root == make_directory(entries + more, store).cid


names = st.binary(min_size=1, max_size=6).filter(lambda b: b"/" not in b)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(names, min_size=0, max_size=40, unique=True),
    st.lists(st.tuples(st.booleans(), names), max_size=30),
)
def test_hamt_insert_remove_equals_build(
    initial: list[bytes], ops: list[tuple[bool, bytes]]
) -> None:
    """Shard edits give exactly the tree that build() makes from the final entry set."""
    store = MemoryBlockstore()
    target = import_bytes(b"t", store)
    model = {n: target.cid for n in initial}
    cid, _ = hamt.build(store, [(n, target.cid, 1) for n in sorted(model)])
    for add, name in ops:
        node = dagpb.decode(store.get(cid))
        if add:
            cid, _ = hamt.insert(store, node, 1, name, target.cid, 1)
            model[name] = target.cid
        else:
            res = hamt.remove(store, node, 1, name)
            assert (res is None) == (name not in model)
            if res is not None:
                cid = res[0]
                del model[name]
    expected, _ = hamt.build(store, [(n, target.cid, 1) for n in sorted(model)])
    assert cid == expected
    got = sorted(n for n, _, _ in hamt.iter_entries(store, dagpb.decode(store.get(cid))))
    assert got == sorted(model)


# --- diff ------------------------------------------------------------------------------------

seg = st.sampled_from(["a", "b", "c"])
paths = st.lists(seg, min_size=1, max_size=3).map("/".join)
contents = st.sampled_from([b"1", b"2", b"3"])


def _build(store: MemoryBlockstore, files: dict[str, bytes]) -> CID:
    root = empty_dir(store).cid
    for p, data in files.items():
        res = import_bytes(data, store)
        try:
            root = set_entry(store, root, p, res.cid, res.tsize)
        except NotADirectory:
            pass  # a path through an existing file: not part of this tree
    return root


def _kind(store: MemoryBlockstore, root: CID, path: str) -> str | None:
    try:
        return stat(store, resolve(store, root, path)).kind
    except PathNotFound:
        return None


@settings(max_examples=120, deadline=None)
@given(st.dictionaries(paths, contents, max_size=8), st.booleans(), paths, contents)
def test_edit_then_diff_reports_exactly_the_edited_path(
    files: dict[str, bytes], is_set: bool, path: str, content: bytes
) -> None:
    store = MemoryBlockstore()
    old = _build(store, files)
    parts = path.split("/")
    if is_set:
        res = import_bytes(content, store)
        try:
            new = set_entry(store, old, path, res.cid, res.tsize)
        except NotADirectory:
            assert any(
                _kind(store, old, "/".join(parts[:i])) == "file" for i in range(1, len(parts))
            )
            return
        missing = next(
            (
                "/".join(parts[:i])
                for i in range(1, len(parts) + 1)
                if _kind(store, old, "/".join(parts[:i])) is None
            ),
            None,
        )
        if missing is not None:
            expected = [Change(missing, "added", None, resolve(store, new, missing))]
        elif resolve(store, old, path) == res.cid:
            expected = []
        else:
            expected = [Change(path, "changed", resolve(store, old, path), res.cid)]
    else:
        if _kind(store, old, path) is None:
            with pytest.raises(PathNotFound):
                remove_entry(store, old, path)
            return
        new = remove_entry(store, old, path)
        expected = [Change(path, "removed", resolve(store, old, path), None)]
    assert diff(store, old, new) == expected
    assert diff(store, new, new) == []


def test_diff_descends_and_reports_type_changes() -> None:
    store = MemoryBlockstore()
    old = _build(store, {"x/1": b"1", "x/2": b"2", "y": b"y", "z/k": b"k"})
    f = import_bytes(b"now a file", store)
    new = set_entry(store, old, "z", f.cid, f.tsize)
    new = remove_entry(store, new, "x/1")
    g = import_bytes(b"3", store)
    new = set_entry(store, new, "x/3", g.cid, g.tsize)
    got = [(c.path, c.kind) for c in diff(store, old, new)]
    assert got == [("x/1", "removed"), ("x/3", "added"), ("z", "changed")]
    # v0 and v1 forms of the same root are the same content.
    assert diff(store, old, old.to_v0()) == []


def test_diff_between_hamts_skips_equal_shards() -> None:
    store = MemoryBlockstore()
    entries = _entries(store, 4800)
    a = make_directory(entries, store).cid
    f = import_bytes(b"changed", store)
    b = set_entry(store, a, "entry-name-000007.txt", f.cid, f.tsize)
    b = remove_entry(store, b, "entry-name-000008.txt")
    got = diff(store, a, b)
    assert [(c.path, c.kind) for c in got] == [
        ("entry-name-000007.txt", "changed"),
        ("entry-name-000008.txt", "removed"),
    ]


def test_stat_of_raw_file_and_missing_block(tmp_path: Path) -> None:
    from bucketfs.ipfs.blockstore import BlockNotFound, FSBlockstore

    for store in (MemoryBlockstore(), FSBlockstore(tmp_path / "bs", fsync=False)):
        res = import_bytes(b"12345", store)
        info = stat(store, res.cid)
        assert (info.kind, info.size, info.tsize) == ("file", 5, 5)
        with pytest.raises(BlockNotFound):
            stat(store, CID.of_raw(b"absent"))
