"""A big new file's leaves go to the hub while it is written (bucketfs/mount/leafpipe.py).

Real hub, real mounts. Each test checks the file in the bucket against what was written
(PullPath bytes) and its CID against the importer's (the CID ``ipfs add --cid-version=1``
gives, checked against Kubo's golden CIDs in tests/ipfs), and reads the status counters to
know that the early upload was really used (``early_upload_bytes``, ``linked_uploads``) or
really fell back to a whole push. No timings.
"""

from __future__ import annotations

import io
import os
import random
import time
from pathlib import Path

import pytest
from hubproc import running_hub
from mountproc import daemon_log, kill_daemon, mounted, new_bucket, sha256_file, sha256_stream

from bucketfs.ipfs.blockstore import MemoryBlockstore
from bucketfs.ipfs.importer import import_file

MiB = 1 << 20


def _cid_of(path: Path) -> str:
    with open(path, "rb") as f:
        return str(import_file(f, MemoryBlockstore()).cid)


def _pulled_sha(client, key: str, path: str) -> str:  # noqa: ANN001
    out = io.BytesIO()
    client.pull_path(key, path, out)
    out.seek(0)
    return sha256_stream(out)


def _wait_early(m, at_least: int, timeout: float = 90) -> None:  # noqa: ANN001
    """Until the daemon says ``at_least`` bytes of leaves are on the hub (the file is open)."""
    deadline = time.monotonic() + timeout
    while m.status()["early_upload_bytes"] < at_least:
        if time.monotonic() > deadline:
            raise AssertionError(f"no early upload: {m.status()}\n{daemon_log(m)}")
        time.sleep(0.1)


def _item(client, key: str, name: str):  # noqa: ANN001, ANN202
    return {i.name: i for i in client.list_dir(key, "").item.items}[name]


class _Both:
    """The same writes to a file on the mount and to a local model file."""

    def __init__(self, mounted_path: Path, model_path: Path) -> None:
        self.fds = [os.open(p, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
                    for p in (mounted_path, model_path)]

    def pwrite(self, data: bytes, offset: int) -> None:
        for fd in self.fds:
            assert os.pwrite(fd, data, offset) == len(data)

    def fill(self, rng: random.Random, first: int, stop: int) -> None:
        """Random MiB blocks ``first..stop-1`` (a sequential writer)."""
        for i in range(first, stop):
            self.pwrite(rng.randbytes(MiB), i * MiB)

    def truncate(self, size: int) -> None:
        for fd in self.fds:
            os.ftruncate(fd, size)

    def fsync_mount(self) -> None:
        os.fsync(self.fds[0])

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("local", [True, False], ids=["local-ingest", "grpc"])
def test_leaves_go_up_while_the_file_is_written(hub, thread, client, tmp_path, local) -> None:  # noqa: ANN001
    """By default the hub (on this host) reads the leaves from the mount's cache file itself
    (local ingest); with ``nolocal_ingest`` their bytes go over gRPC. Same file either way."""
    _, key = new_bucket(hub, "pipe", thread=thread)
    rng = random.Random(7)
    with mounted(hub, tmp_path, key, thread=thread, nolocal_ingest=not local) as m:
        before = m.status()
        f = _Both(m.path / "big.bin", tmp_path / "model.bin")
        try:
            f.fill(rng, 0, 24)
            # Most of the file reaches the hub while it is still open, before any fsync.
            _wait_early(m, before["early_upload_bytes"] + 16 * MiB)
            f.pwrite(rng.randbytes(5 * MiB + 1000), 24 * MiB)  # and a tail not on a chunk boundary
            f.fsync_mount()  # returns once the bucket has the file: by Link, not PushPath
            st = m.status()
            assert st["linked_uploads"] == before["linked_uploads"] + 1, st
            assert st["pushes"] == before["pushes"], st
            if local:  # every leaf, the partial last one too, went by descriptor, once
                assert st["local_ingest_bytes"] == 29 * MiB + 1000, st
            else:
                assert st["local_ingest_bytes"] == 0, st
            item = _item(client, key, "big.bin")
            assert item.cid == _cid_of(tmp_path / "model.bin")
            assert item.file_size == 29 * MiB + 1000
            assert _pulled_sha(client, key, "big.bin") == sha256_file(tmp_path / "model.bin")
        finally:
            f.close()
        m.wait_synced()
        assert (m.path / "big.bin").stat().st_size == 29 * MiB + 1000


@pytest.mark.timeout(240)
def test_rewrites_and_truncates_of_sent_chunks(hub, thread, client, tmp_path) -> None:  # noqa: ANN001
    """Chunks changed after they were sent are sent again; a truncate voids what it cut."""
    _, key = new_bucket(hub, "pipe-edit", thread=thread)
    rng = random.Random(11)
    with mounted(hub, tmp_path, key, thread=thread) as m:
        before = m.status()
        f = _Both(m.path / "edited.bin", tmp_path / "model.bin")
        try:
            f.fill(rng, 0, 20)
            _wait_early(m, before["early_upload_bytes"] + 12 * MiB)
            f.pwrite(rng.randbytes(300 * 1024), 3 * MiB + 5)  # inside chunks already sent
            f.truncate(10 * MiB + 77)  # cuts sent chunks, leaves a partial one
            for i in range(6):  # grows again from the cut, unaligned
                f.pwrite(rng.randbytes(MiB), 10 * MiB + 77 + i * MiB)
            f.pwrite(b"0123456789", 0)
        finally:
            f.close()
        m.wait_synced()
        st = m.status()
        assert st["linked_uploads"] == before["linked_uploads"] + 1, st
    item = _item(client, key, "edited.bin")
    assert item.file_size == 16 * MiB + 77
    assert item.cid == _cid_of(tmp_path / "model.bin")
    assert _pulled_sha(client, key, "edited.bin") == sha256_file(tmp_path / "model.bin")


@pytest.mark.timeout(300)
def test_a_hub_outage_during_the_early_upload_falls_back_to_a_whole_push(tmp_path) -> None:  # noqa: ANN001
    from bucketfs.client.buckets import BucketsClient

    rng = random.Random(5)
    with running_hub(tmp_path / "hub") as hub:
        thread, key = new_bucket(hub, "pipe-outage")
        with mounted(hub, tmp_path, key, thread=thread, writeback_delay=0, hub_timeout=3) as m:
            before = m.status()
            f = _Both(m.path / "big.bin", tmp_path / "model.bin")
            try:
                f.fill(rng, 0, 12)
                _wait_early(m, before["early_upload_bytes"] + 8 * MiB)
                hub.stop()
                f.fill(rng, 12, 20)  # the early upload's next call fails
            finally:
                f.close()
            deadline = time.monotonic() + 60
            while m.status()["online"]:
                assert time.monotonic() < deadline, daemon_log(m)
                time.sleep(0.2)
            hub.start()
            m.wait_synced(timeout=120)
            st = m.status()
            assert st["linked_uploads"] == before["linked_uploads"], st  # pushed whole
            assert "early upload of big.bin stopped" in daemon_log(m)
        with BucketsClient(hub.address) as c:
            c = c.with_thread(thread)
            item = _item(c, key, "big.bin")
            assert item.cid == _cid_of(tmp_path / "model.bin")
            assert _pulled_sha(c, key, "big.bin") == sha256_file(tmp_path / "model.bin")


@pytest.mark.timeout(240)
def test_kill_9_after_the_early_upload_loses_nothing(hub, thread, client, tmp_path) -> None:  # noqa: ANN001
    """Early-uploaded leaves are not a state to recover: the next mount pushes the closed file
    whole from its cache, and the bucket gets exactly one copy."""
    _, key = new_bucket(hub, "pipe-kill", thread=thread)
    cache = tmp_path / "cache"
    rng = random.Random(3)
    with mounted(hub, tmp_path, key, thread=thread, cache_dir=cache, writeback_delay=3600,
                 umount=False) as m:
        f = _Both(m.path / "big.bin", tmp_path / "model.bin")
        try:
            f.fill(rng, 0, 20)
            _wait_early(m, 12 * MiB)
        finally:
            f.close()  # closed: covered by the crash guarantee, not uploaded (delay 3600)
        kill_daemon(m)
        with mounted(hub, tmp_path, key, thread=thread, cache_dir=cache) as m2:
            m2.wait_synced(timeout=120)
    names = {i.name for i in client.list_dir(key, "").item.items} - {".textileseed"}
    assert names == {"big.bin"}
    item = _item(client, key, "big.bin")
    assert item.cid == _cid_of(tmp_path / "model.bin")
    assert _pulled_sha(client, key, "big.bin") == sha256_file(tmp_path / "model.bin")


@pytest.mark.timeout(240)
def test_a_small_change_to_a_big_file_uploads_a_delta(hub, thread, client, tmp_path) -> None:  # noqa: ANN001
    """A file already in the bucket keeps its unchanged leaves: a few bytes changed in 24 MiB
    send one leaf (and the tree's interior nodes), not the whole file."""
    _, key = new_bucket(hub, "pipe-delta", thread=thread)
    model = tmp_path / "model.bin"
    model.write_bytes(random.Random(13).randbytes(24 * MiB))
    with open(model, "rb") as f:
        client.push_path(key, "db.bin", f)
    with mounted(hub, tmp_path, key, thread=thread) as m:
        before = m.status()
        for path in (m.path / "db.bin", model):
            with open(path, "r+b") as f:
                f.seek(5 * MiB + 3)
                f.write(b"0123456789")
        m.wait_synced()
        st = m.status()
        assert st["linked_uploads"] == before["linked_uploads"] + 1, st
        sent = (st["early_upload_bytes"] - before["early_upload_bytes"]
                + st["linked_sent_bytes"] - before["linked_sent_bytes"])
        assert 0 < sent <= 256 * 1024, st  # the one changed leaf
    item = _item(client, key, "db.bin")
    assert item.cid == _cid_of(model)
    assert _pulled_sha(client, key, "db.bin") == sha256_file(model)
