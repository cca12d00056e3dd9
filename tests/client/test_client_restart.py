"""Uploads across a hub crash: a seekable source is pushed again from the start once the hub is
back; an unseekable one fails with one clear error. The hub is SIGKILLed mid-stream."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import threading
from pathlib import Path

import pytest

from bucketfs.client import errors
from bucketfs.client.buckets import BucketsClient
from bucketfs.client.channel import RetryPolicy

pytestmark = pytest.mark.timeout(240)

SIZE = 24 * 1024 * 1024

# Patient enough for a hub restart on a busy machine (about 30 s of backoff in all).
PATIENT = RetryPolicy(attempts=20, initial=0.2, cap=2.0)


@pytest.fixture
def crashable(tmp_path: Path):
    from hubproc import running_hub

    with running_hub(tmp_path / "hub", auth="none") as hub:
        yield hub


def _crash_after(hub, nbytes: int, restart: bool):
    """A progress callback that, once ``nbytes`` were sent, kills (and restarts) the hub from
    another thread, so the gRPC thread calling back is never blocked."""
    fired = threading.Event()
    done = threading.Event()

    def crash() -> None:
        try:
            hub.kill()
            if restart:
                hub.start()
        finally:
            done.set()

    def progress(total: int) -> None:
        if total >= nbytes and not fired.is_set():
            fired.set()
            threading.Thread(target=crash).start()

    return progress, fired, done


def test_seekable_push_restarts_after_hub_crash(crashable, tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="bucketfs.client.buckets")
    src = tmp_path / "data.bin"
    src.write_bytes(os.urandom(SIZE))
    with BucketsClient(crashable.address, retry=PATIENT) as c:
        c = c.with_thread(c.threads.new_db())
        key = c.create("crash").root.key
        progress, fired, done = _crash_after(crashable, SIZE // 4, restart=True)
        with open(src, "rb") as f:
            res = c.push_path(key, "data.bin", f, progress=progress)
        assert fired.is_set()
        done.wait(60)
        out = io.BytesIO()
        c.pull_path(key, "data.bin", out)
    assert hashlib.sha256(out.getvalue()).digest() == hashlib.sha256(src.read_bytes()).digest()
    assert res.root.path
    assert any("restarting" in r.getMessage() for r in caplog.records)


def test_unseekable_push_fails_clearly_after_hub_crash(crashable) -> None:
    policy = RetryPolicy(attempts=3, initial=0.05, cap=0.1)
    with BucketsClient(crashable.address, retry=policy) as c:
        c = c.with_thread(c.threads.new_db())
        key = c.create("pipe").root.key
        progress, fired, done = _crash_after(crashable, 4 * 1024 * 1024, restart=False)
        r, w = os.pipe()

        def feed() -> None:
            try:
                with os.fdopen(w, "wb") as f:
                    for _ in range(SIZE // 65536):
                        f.write(b"\xab" * 65536)
            except BrokenPipeError:
                pass  # the client stopped reading after the crash: expected

        feeder = threading.Thread(target=feed)
        feeder.start()
        with os.fdopen(r, "rb", buffering=0) as stream:
            with pytest.raises(errors.HubUnavailable) as info:
                c.push_path(key, "piped", stream, progress=progress)
        feeder.join(30)
        done.wait(60)
    assert "cannot be rewound" in info.value.message
