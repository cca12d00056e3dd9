"""Fixtures for mount tests: one real hub per module, fresh buckets, real FUSE mounts."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/hubproc, tests/mountproc

if shutil.which("fusermount3") is None or not Path("/dev/fuse").exists():
    pytest.skip("FUSE is not available here", allow_module_level=True)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A real hub subprocess (auth none) shared by the tests of one module."""
    from hubproc import running_hub

    with running_hub(tmp_path_factory.mktemp("hub"), auth="none") as h:
        yield h


@pytest.fixture(scope="module")
def thread(hub: object) -> str:
    """A thread on the module's hub."""
    from bucketfs.client.buckets import BucketsClient

    with BucketsClient(hub.address) as c:  # type: ignore[attr-defined]
        return c.threads.new_db(name="mount-tests")


@pytest.fixture
def client(hub: object, thread: str) -> Iterator[object]:
    """A BucketsClient on the module's thread (for checking what reached the bucket)."""
    from bucketfs.client.buckets import BucketsClient

    with BucketsClient(hub.address) as c:  # type: ignore[attr-defined]
        yield c.with_thread(thread)
