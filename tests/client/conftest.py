"""Fixtures for client tests: a real hub process on a loopback port (``tests/hubproc.py``)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # make tests/hubproc importable


def hub_address(hub: Any) -> str:
    """``HOST:PORT`` of a running hub object from ``running_hub``."""
    if isinstance(hub, str):
        return hub
    for name in ("api", "address", "target", "addr"):
        value = getattr(hub, name, None)
        if isinstance(value, str):
            return value
    raise AttributeError(f"cannot find the address of {hub!r}")


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[str]:
    """The address of a fresh hub in local mode (``--auth none``)."""
    from hubproc import running_hub

    with running_hub(tmp_path / "hub", auth="none") as h:
        yield hub_address(h)
