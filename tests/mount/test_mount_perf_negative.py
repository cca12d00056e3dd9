"""Missing names are cached by the kernel (a negative entry for the entry TTL), and a name that
then appears in the bucket through someone else shows up all the same: the reconciler
invalidates it like any changed name."""

from __future__ import annotations

import io
import os
import urllib.request

import pytest
from hubproc import free_port
from mountproc import mounted, new_bucket, wait_until


def _lookups(port: int) -> float:
    """Lookups the daemon answered so far (any result), from its metrics."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30).read()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.decode().splitlines()
               if line.startswith("bucketfs_ops_total{") and 'op="lookup"' in line
               and 'component="mount"' in line)


@pytest.mark.timeout(120)
def test_a_missing_name_pushed_elsewhere_shows_up(hub, thread, client, tmp_path) -> None:  # noqa: ANN001
    _, key = new_bucket(hub, "negative", thread=thread)
    port = free_port()
    # A long TTL: without the invalidation, the negative entries would hide the pushed
    # files for a minute, well past the wait below.
    with mounted(hub, tmp_path, key, thread=thread, poll=0.5, ttl=60,
                 metrics=f"127.0.0.1:{port}") as m:
        os.mkdir(m.path / "d")
        m.wait_synced()
        missing = [m.path / "x.txt", m.path / "d" / "y.txt"]
        before = _lookups(port)
        for _ in range(5):
            for p in missing:
                with pytest.raises(FileNotFoundError):
                    os.stat(p)
        # Asked once per name: the other stats were answered by the kernel's negative entry.
        assert _lookups(port) - before == len(missing)

        client.push_path(key, "x.txt", io.BytesIO(b"pushed"))
        client.push_path(key, "d/y.txt", io.BytesIO(b"pushed too"))
        wait_until(lambda: all(p.exists() for p in missing), "the pushed names to show up")
        assert (m.path / "x.txt").read_bytes() == b"pushed"
        assert (m.path / "d" / "y.txt").read_bytes() == b"pushed too"

        # A name created through the mount replaces its negative entry at once.
        with pytest.raises(FileNotFoundError):
            os.stat(m.path / "d" / "local.txt")
        (m.path / "d" / "local.txt").write_bytes(b"here")
        assert (m.path / "d" / "local.txt").read_bytes() == b"here"
        assert sorted(os.listdir(m.path / "d")) == ["local.txt", "y.txt"]
