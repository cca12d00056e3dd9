"""Two mounts and outside writers on one bucket: changes show up, conflicts keep both sides."""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from mountproc import mounted, new_bucket

pytestmark = pytest.mark.timeout(240)

WAIT = 30.0  # generous bound on a busy machine; the poll interval is 0.5 s


def eventually(check: Callable[[], object], what: str, timeout: float = WAIT) -> object:
    """Poll ``check`` until it returns something truthy (no timing assertion: a bound)."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except OSError as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.1)
    raise AssertionError(f"{what}: not seen within {timeout}s (last: {last!r})")


def read_or_none(p: Path) -> bytes | None:
    try:
        return p.read_bytes()
    except FileNotFoundError:
        return None


def test_two_mounts_and_an_outside_push(hub, thread, client, tmp_path) -> None:  # noqa: ANN001
    _, key = new_bucket(hub, "shared", thread=thread)
    with (
        mounted(hub, tmp_path, key, thread=thread, name="a", poll=0.5, writeback_delay=0) as a,
        mounted(hub, tmp_path, key, thread=thread, name="b", poll=0.5, writeback_delay=0) as b,
    ):
        os.listdir(b.path)  # B has listed the root before A writes
        (a.path / "from-a.txt").write_bytes(b"written in A")
        os.mkdir(a.path / "dir-a")
        a.wait_synced()
        eventually(lambda: read_or_none(b.path / "from-a.txt") == b"written in A",
                   "A's file in B")
        eventually(lambda: (b.path / "dir-a").is_dir(), "A's directory in B")

        # An outside client (the CLI's code path) pushes a new file and replaces one.
        client.push_path(key, "outside.txt", io.BytesIO(b"pushed by the CLI"))
        client.push_path(key, "from-a.txt", io.BytesIO(b"replaced from outside"))
        for m in (a, b):
            eventually(lambda m=m: read_or_none(m.path / "outside.txt") == b"pushed by the CLI",
                       f"outside push in {m.path.name}")
            eventually(
                lambda m=m: read_or_none(m.path / "from-a.txt") == b"replaced from outside",
                f"replaced content in {m.path.name}",
            )
        # Removal elsewhere disappears here too.
        os.unlink(b.path / "outside.txt")
        eventually(lambda: not (a.path / "outside.txt").exists(), "B's unlink in A")


def test_conflict_keeps_both_versions(hub, thread, client, tmp_path) -> None:  # noqa: ANN001
    _, key = new_bucket(hub, "conflict", thread=thread)
    client.push_path(key, "doc.txt", io.BytesIO(b"version 0"))
    with mounted(hub, tmp_path, key, thread=thread, poll=0.5, writeback_delay=3600) as m:
        assert (m.path / "doc.txt").read_bytes() == b"version 0"
        (m.path / "doc.txt").write_bytes(b"local edit")  # held back by the long delay
        assert m.status()["dirty_files"] == 1
        client.push_path(key, "doc.txt", io.BytesIO(b"remote edit"))

        def conflict_copy() -> list[str]:
            return [n for n in os.listdir(m.path) if n.startswith("doc.conflict-")]

        (copy,) = eventually(conflict_copy, "the conflict copy")
        assert copy.endswith(".txt")
        assert (m.path / copy).read_bytes() == b"local edit"
        eventually(lambda: (m.path / "doc.txt").read_bytes() == b"remote edit",
                   "the bucket's version under the name")
        st = m.status()
        assert st["conflicts"] == 1 and st["conflict_paths"] == [copy]
    # umount uploaded the conflict copy: the bucket now holds both versions.
    out = io.BytesIO()
    client.pull_path(key, copy, out)
    assert out.getvalue() == b"local edit"
    out = io.BytesIO()
    client.pull_path(key, "doc.txt", out)
    assert out.getvalue() == b"remote edit"


def test_chmod_and_utime_elsewhere_show_up(hub, thread, client, tmp_path) -> None:  # noqa: ANN001
    # chmod and utime change only the bucket's metadata (FS.SetAttr): the root CID stays the
    # same, so a mount must notice the bucket's updated_at, not only its root, to see them.
    _, key = new_bucket(hub, "attrs", thread=thread)
    with (
        mounted(hub, tmp_path, key, thread=thread, name="a", poll=0.5, writeback_delay=0) as a,
        mounted(hub, tmp_path, key, thread=thread, name="b", poll=0.5, writeback_delay=0) as b,
    ):
        (a.path / "f.txt").write_bytes(b"attrs")
        os.mkdir(a.path / "d")
        a.wait_synced()
        eventually(lambda: (b.path / "f.txt").exists() and (b.path / "d").is_dir(),
                   "A's entries in B")
        assert os.stat(b.path / "f.txt").st_mode & 0o777 == 0o644  # B has it cached now
        root_before = a.status()["root"]
        # B may list the new entries from the hub before its reconciler adopts A's root (one
        # more remote change, counted later): wait for the adoption before counting.
        eventually(lambda: b.status()["root"] == root_before, "B at A's root")
        adopted = b.status()["remote_changes"]
        os.chmod(a.path / "f.txt", 0o600)
        os.utime(a.path / "d", ns=(1_500_000_000 * 10**9, 1_500_000_000 * 10**9))
        a.wait_synced()
        assert a.status()["root"] == root_before  # metadata only: same root CID
        eventually(lambda: os.stat(b.path / "f.txt").st_mode & 0o777 == 0o600, "chmod in B")
        eventually(lambda: os.stat(b.path / "d").st_mtime_ns == 1_500_000_000 * 10**9,
                   "utime in B")
        # No new root was adopted in B: its cached listings were compared at the same root.
        assert b.status()["remote_changes"] == adopted
