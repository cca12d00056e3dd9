"""Fixtures for hub tests: a real hub subprocess on loopback and stubs bound to a new thread."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/hubproc.py
sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/hub/hub_helpers.py

from hub_helpers import Api  # noqa: E402
from hubproc import Hub, running_hub  # noqa: E402


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    """A fresh hub in local mode (``--auth none``)."""
    with running_hub(tmp_path, auth="none") as h:
        yield h


@pytest.fixture
def api(hub: Hub) -> Iterator[Api]:
    """Stubs on a channel to ``hub``, with a new thread already created."""
    with hub.channel() as channel:
        yield Api.new_thread(channel)
