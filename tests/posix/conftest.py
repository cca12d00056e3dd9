"""Fixtures for the POSIX conformance tests: the same real hub, thread and client fixtures as
``tests/mount`` (imported from there, not copied)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))  # tests/hubproc, tests/mountproc, tests/mount/conftest

if shutil.which("fusermount3") is None or not Path("/dev/fuse").exists():
    pytest.skip("FUSE is not available here", allow_module_level=True)

from mount.conftest import client, hub, thread  # noqa: E402, F401 - re-exported fixtures

