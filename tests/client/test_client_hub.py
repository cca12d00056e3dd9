"""BucketsClient and ThreadsClient against the real hub over loopback."""

from __future__ import annotations

import hashlib
import io
import os
import threading
from pathlib import Path

import pytest

from bucketfs.client import errors
from bucketfs.client.buckets import BucketsClient
from bucketfs.ipfs.blockstore import MemoryBlockstore
from bucketfs.ipfs.importer import import_bytes

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def client(hub: str):
    with BucketsClient(hub) as c:
        thread = c.threads.new_db(name="tests")
        yield c.with_thread(thread)


def _random_file(path: Path, size: int) -> str:
    """Write ``size`` pseudo-random bytes in 1 MiB steps; returns their sha256."""
    h = hashlib.sha256()
    seed = hashlib.sha256(path.name.encode()).digest()
    with open(path, "wb") as f:
        written = 0
        block = 0
        while written < size:
            chunk = hashlib.shake_256(seed + block.to_bytes(8, "big")).digest(
                min(1 << 20, size - written)
            )
            f.write(chunk)
            h.update(chunk)
            written += len(chunk)
            block += 1
    return h.hexdigest()


def _cid(data: bytes) -> str:
    return str(import_bytes(data, MemoryBlockstore()).cid)


def test_threads_new_list_info_delete(hub: str) -> None:
    with BucketsClient(hub) as c:
        tid = c.threads.new_db(name="alpha")
        assert tid.startswith("b")
        listed = {t.id: t.name for t in c.threads.list_dbs()}
        assert listed.get(tid) == "alpha"
        assert c.threads.get_db_info(tid).name == "alpha"
        c.threads.delete_db(tid)
        assert tid not in {t.id for t in c.threads.list_dbs()}
        with pytest.raises(errors.NotFound):
            c.threads.delete_db(tid)


def test_create_list_root_links(client: BucketsClient) -> None:
    created = client.create("photos")
    key = created.root.key
    assert key.startswith("bafzb") and created.root.path.startswith("/ipfs/")
    assert len(created.seed) == 32
    assert [r.key for r in client.list() if r.name == "photos"] == [key]
    assert client.root(key).path == created.root.path
    listing = client.list_path(key)
    assert listing.item.is_dir
    assert ".textileseed" in [i.name for i in listing.item.items]
    links = client.links(key)
    assert key in links.url and key in links.ipns


def test_push_pull_round_trip_multi_mb_with_progress(client: BucketsClient, tmp_path) -> None:
    size = 5 * 1024 * 1024 + 12345  # several chunks, not a multiple of any chunk size
    src = tmp_path / "big.bin"
    digest = _random_file(src, size)
    key = client.create("big").root.key

    seen: list[int] = []
    with open(src, "rb") as f:
        res = client.push_path(key, "dir/big.bin", f, progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == size and len(seen) > 2
    assert res.root.path == client.root(key).path
    assert res.cid.startswith("bafybei")  # multi-block file: a dag-pb root

    pulled: list[int] = []
    out = tmp_path / "back.bin"
    with open(out, "wb") as f:
        n = client.pull_path(key, "dir/big.bin", f, progress=pulled.append)
    assert n == size and pulled[-1] == size
    h = hashlib.sha256()
    with open(out, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    assert h.hexdigest() == digest
    item = client.list_path(key, "dir/big.bin").item
    assert item.cid == res.cid and item.file_size == size

    # download() takes FS.ReadFile (bigger messages) and must give the same bytes.
    seen.clear()
    h = hashlib.sha256()

    class Sink:
        def write(self, data: bytes) -> int:
            h.update(data)
            return len(data)

    assert client.download(key, "dir/big.bin", Sink(), progress=seen.append) == size
    assert h.hexdigest() == digest and seen[-1] == size


def test_push_from_a_pipe(client: BucketsClient) -> None:
    key = client.create("pipe").root.key
    r, w = os.pipe()
    payload = b"streamed through a pipe\n" * 5000

    def feed() -> None:
        with os.fdopen(w, "wb") as f:
            f.write(payload)

    t = threading.Thread(target=feed)
    t.start()
    with os.fdopen(r, "rb", buffering=0) as stream:
        res = client.push_path(key, "p.txt", stream)
    t.join()
    assert res.cid == _cid(payload)
    out = io.BytesIO()
    client.pull_path(key, "p.txt", out)
    assert out.getvalue() == payload


def test_push_paths_many_files(client: BucketsClient, tmp_path) -> None:
    key = client.create("many").root.key
    on_disk = tmp_path / "disk.txt"
    on_disk.write_bytes(b"from a local path")
    files = [(f"batch/f{i:04d}.txt", f"file number {i}\n".encode()) for i in range(300)]
    items = [(p, io.BytesIO(d)) for p, d in files]
    items.append(("batch/empty", b""))
    items.append(("batch/disk.txt", str(on_disk)))
    seen: list[int] = []
    res = client.push_paths(key, items, progress=seen.append)
    assert len(res.files) == len(items)
    by_path = {f.path: f for f in res.files}
    for p, d in files[:10]:
        assert by_path[p].cid == _cid(d)
    assert by_path["batch/empty"].cid == _cid(b"")
    assert seen[-1] == sum(len(d) for _, d in files) + on_disk.stat().st_size
    assert res.root.path == client.root(key).path  # saved once, at the end
    listing = client.list_path(key, "batch").item
    assert listing.items_count == len(items)
    out = io.BytesIO()
    client.pull_path(key, "batch/f0299.txt", out)
    assert out.getvalue() == b"file number 299\n"


def test_non_fast_forward(client: BucketsClient) -> None:
    key = client.create("ff").root.key
    old = client.push_path(key, "a.txt", io.BytesIO(b"one")).root.path
    new = client.push_path(key, "b.txt", io.BytesIO(b"two"), root=old).root.path
    with pytest.raises(errors.NonFastForward):
        client.push_path(key, "c.txt", io.BytesIO(b"three"), root=old)
    with pytest.raises(errors.NonFastForward):
        client.push_paths(key, [("d.txt", b"four")], root=old)
    with pytest.raises(errors.NonFastForward):
        client.remove_path(key, "a.txt", root=old)
    assert client.root(key).path == new  # nothing changed
    assert client.remove_path(key, "a.txt", root=new).path != new


def test_not_found_and_bad_input(client: BucketsClient) -> None:
    key = client.create("nf").root.key
    with pytest.raises(errors.NotFound):
        client.pull_path(key, "missing.txt", io.BytesIO())
    with pytest.raises(errors.NotFound):
        client.list_path(key, "no/such/dir")
    with pytest.raises(errors.ClientError) as info:
        client.push_path(key, "x/.textileseed", io.BytesIO(b"x"))
    assert ".textileseed" in info.value.message
    assert client.root(key).path == client.list_path(key).root.path


def test_set_move_remove(client: BucketsClient) -> None:
    key = client.create("smr").root.key
    cid = client.push_path(key, "src.txt", io.BytesIO(b"content")).cid
    client.set_path(key, "copy.txt", cid)
    client.move_path(key, "src.txt", "moved.txt")
    names = {i.name for i in client.list_path(key).item.items}
    assert {"copy.txt", "moved.txt"} <= names and "src.txt" not in names
    client.remove_path(key, "copy.txt")
    assert "copy.txt" not in {i.name for i in client.list_path(key).item.items}
    client.remove(key)
    with pytest.raises(errors.NotFound):
        client.root(key)


def test_one_client_many_threads(client: BucketsClient) -> None:
    """The mount calls one client from many worker threads at once."""
    key = client.create("conc").root.key
    failures: list[BaseException] = []

    def work(i: int) -> None:
        try:
            data = f"worker {i}".encode() * 1000
            client.push_path(key, f"w/{i}.txt", io.BytesIO(data))
            out = io.BytesIO()
            client.pull_path(key, f"w/{i}.txt", out)
            assert out.getvalue() == data
        except BaseException as exc:  # collected and re-raised in the main thread
            failures.append(exc)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not failures, failures
    assert client.list_path(key, "w").item.items_count == 8


def test_fs_extension_read_range_and_attrs(client: BucketsClient) -> None:
    key = client.create("fs").root.key
    data = bytes(range(256)) * 4096  # 1 MiB: several blocks
    res = client.push_path(
        key, "f.bin", io.BytesIO(data), mode=0o640, mtime_ns=1_700_000_000 * 10**9
    )
    assert client.read_file(key, "f.bin", 300_000, 1000) == data[300_000:301_000]
    assert client.read_file(key, res.cid, len(data) - 10, 100) == data[-10:]
    item = client.list_path(key, "f.bin").item
    assert (item.mode, item.mtime) == (0o640, 1_700_000_000 * 10**9)
    root = client.root(key).path
    client.set_attr(key, "f.bin", root=root, mode=0o600)
    assert client.list_path(key, "f.bin").item.mode == 0o600
    client.mkdir(key, "d")
    client.rename(key, "f.bin", "d/g.bin")
    assert [i.name for i in client.list_dir(key, "d").item.items] == ["g.bin"]


def test_watch_root_sees_changes(client: BucketsClient) -> None:
    key = client.create("watch").root.key
    with client.watch_root(key, timeout=60) as watch:
        it = iter(watch)
        first = next(it)
        assert first.path == client.root(key).path
        new = client.push_path(key, "x", io.BytesIO(b"x")).root.path
        assert next(it).path == new


def test_stale_token_is_replaced_once(hub: str, tmp_path) -> None:
    """A token the hub no longer accepts is fetched anew with the identity, transparently."""
    from bucketfs.client.auth import AuthContext
    from bucketfs.keys import Identity, issue_token

    me = Identity.generate()
    with BucketsClient(hub, AuthContext(identity=me)) as c:
        c = c.with_thread(c.threads.new_db())
        owner = c.create("mine").root.owner
        assert owner == me.public_key_string()  # the token was fetched and used
        # A token signed by some other host: the hub refuses it, the client gets a new one.
        foreign = issue_token(Identity.generate(), me.public_key_string())
        c.auth.set_token(foreign)
        assert [r.owner for r in c.list()] == [owner]
        assert c.auth.token and c.auth.token != foreign
